"""The device protocol's operations, shared by the REST views, the gRPC service and the WebSocket.

Registration (an API key or user with ``client:register``), token checks and revocation, the current
round, model downloads, update ingestion and progress reports. Every error is an ApplicationError,
which each front door renders its own way (the REST envelope, a gRPC status).
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from core.exceptions import ApplicationError, AuthenticationFailed, Conflict, NotFound, ValidationFailed
from core.realtime import broadcast_on_commit
from nodes import services as node_services
from nodes.choices import NodeRole, NodeStatus, NodeType
from nodes.models import DeviceCredential, DeviceModel, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node
from nodes.protocol import events, ingest, selectors
from nodes.protocol.auth import DEVICE_SCOPES, TOUCH_SECONDS, DeviceIdentity, token_claims, token_issue
from nodes.protocol.ingest import ReceivedBody
from nodes.protocol.signatures import parse_public_key, parse_signature, raw_public_key
from projects import selectors as project_selectors
from training.choices import ExecutionStatus, FINISHED_STATUSES, Transport
from training.models import Execution

logger = logging.getLogger("pollen.nodes.protocol")

CHECKSUM = re.compile(r"^[0-9a-f]{64}$")
# Descriptive fields: seed 002's own example sends "android|ios|linux" and "low|medium|high" as written.
PLATFORM = re.compile(r"^[a-z0-9][a-z0-9_.|+-]{0,49}$")
COMPUTE_LEVELS = ("low", "medium", "high")
COMPUTE_LEVEL = re.compile(r"^(low|medium|high)(\|(low|medium|high)){0,2}$")
MOBILE_PLATFORMS = {"android", "ios"}


@dataclass
class Registration:
    node: Node
    token: str
    expires_at: datetime
    created: bool


@dataclass
class ModelBlob:
    path: Path
    checksum: str
    version: str
    size: int
    execution_id: uuid.UUID
    number: int


# ---- registration and tokens ------------------------------------------------------------------------

def _check_registration(device_id, platform, capabilities, public_key) -> tuple[str, str, dict, str]:
    if not isinstance(device_id, str) or not device_id.strip() or len(device_id) > 255:
        raise ValidationFailed("device_id must be a non-empty string of at most 255 characters", field="device_id")
    platform = platform.strip().lower() if isinstance(platform, str) else platform
    if not isinstance(platform, str) or not PLATFORM.match(platform):
        raise ValidationFailed("platform must be a short name such as android, ios or linux", field="platform")
    if capabilities is None:
        capabilities = {}
    if not isinstance(capabilities, dict):
        raise ValidationFailed("capabilities must be an object", field="capabilities")
    size = capabilities.get("max_model_size_mb")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0):
        raise ValidationFailed("capabilities.max_model_size_mb must be a non-negative number",
                               field="capabilities.max_model_size_mb")
    frameworks = capabilities.get("supported_frameworks")
    if frameworks is not None and (not isinstance(frameworks, list)
                                   or not all(isinstance(f, str) and 0 < len(f) <= 50 for f in frameworks)):
        raise ValidationFailed("capabilities.supported_frameworks must be a list of names",
                               field="capabilities.supported_frameworks")
    level = capabilities.get("compute_capability")
    if level is not None and not (isinstance(level, str) and COMPUTE_LEVEL.match(level)):
        raise ValidationFailed(f"capabilities.compute_capability must be one of {list(COMPUTE_LEVELS)}",
                               field="capabilities.compute_capability")
    # A device without a key may register (seed 002's example sends none) but cannot sign an update
    # until it registers again with one.
    key = "" if public_key is None else parse_public_key(public_key)
    if key is None:
        raise ValidationFailed("public_key must be an ed25519 public key: 32 raw bytes in base64",
                               field="public_key")
    return device_id.strip(), platform, dict(capabilities), key


def _node_fields(device_id: str, platform: str, capabilities: dict, metadata: dict) -> dict:
    frameworks = capabilities.get("supported_frameworks") or []
    capability = {"compute": "mobile" if platform in MOBILE_PLATFORMS else "cpu"}
    if capabilities.get("compute_capability"):
        capability["compute_capability"] = capabilities["compute_capability"]
    if capabilities.get("max_model_size_mb") is not None:
        capability["max_model_size_mb"] = capabilities["max_model_size_mb"]
    return {"type": NodeType.CLIENT, "framework": frameworks[0] if frameworks else "", "capability": capability,
            "metadata": {**metadata, "device_id": device_id, "platform": platform, "protocol": "seed-002"}}


@transaction.atomic
def device_register(*, user: User, device_id: str, platform: str, capabilities: dict | None,
                    public_key: str | None = None, project_id=None) -> Registration:
    """Register a device of ``user`` (who holds ``client:register``) or register it again.

    A new device gets a client node (type client, framework and platform from its capabilities,
    ``registered_by`` = ``user``) and a credential. The same ``device_id`` registered again by the
    same user keeps its node, takes the new public key (or keeps its key when none is sent) and gets
    a new token: the old token stops working. A device with no key registers but cannot sign
    updates (401 until it registers a key). ``project_id`` (optional) must be a project ``user`` may write to; the node then serves
    that project's executions only."""
    device_id, platform, capabilities, key = _check_registration(device_id, platform, capabilities, public_key)
    project = None
    if project_id not in (None, ""):
        project = project_selectors.project_get(user=user, project_id=project_id, for_write=True)
    credential = (DeviceCredential.objects.select_for_update(of=("self",)).select_related("node")
                  .filter(owner=user, device_id=device_id).first())
    created = credential is None
    if created:
        fields = _node_fields(device_id, platform, capabilities, {})
        node = node_services.node_register(user=user, name=f"{platform}-{device_id}"[:200], project=project, **fields)
        credential = DeviceCredential(node=node, owner=user, device_id=device_id)
    else:
        node = credential.node
        fields = _node_fields(device_id, platform, capabilities, node.metadata)
        if project is not None:
            fields["project"] = project
        node = node_services.node_update(node=node, **fields)
        node = node_services.node_heartbeat(node=node)
    now = timezone.now()
    key = key or credential.public_key or ""
    token, jti, expires_at = token_issue(node_id=node.pk, now=now, public_key=key or None)
    credential.platform = platform
    credential.capabilities = capabilities
    credential.public_key = key
    credential.token_jti = jti
    credential.token_issued_at = now
    credential.token_expires_at = expires_at
    credential.revoked_at = None
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:  # the same device registering twice at once
        raise Conflict("This device is being registered by another request; try again",
                       details={"device_id": device_id})
    return Registration(node=node, token=token, expires_at=expires_at, created=created)


def device_authenticate(*, token: str, touch: bool = True) -> DeviceIdentity:
    """The device a token belongs to, or 401: a bad signature, an expired token, a token that is not
    the credential's current one (registered again since) or a revoked credential. A valid request
    counts as a sign of life for the node (written at most every few seconds); with ``touch``
    False only a node marked offline is brought back."""
    claims = token_claims(token)
    try:
        node_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise AuthenticationFailed("The device token is invalid", details={"reason": "token_invalid"})
    credential = (DeviceCredential.objects.select_related("node", "owner").filter(node_id=node_id).first())
    if credential is None or credential.revoked_at is not None or credential.token_jti != claims["jti"]:
        raise AuthenticationFailed("The device token has been revoked", details={"reason": "token_revoked"},
                                   headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
    user = credential.owner
    if not user.is_active:
        raise AuthenticationFailed("The account that registered this device is inactive",
                                   details={"reason": "owner_inactive"})
    node = _touch(credential.node) if touch or credential.node.status == NodeStatus.OFFLINE else credential.node
    # The device acts with its token's scopes, whatever else its registrant may do.
    user.__dict__["permission_strings"] = list(DEVICE_SCOPES)
    user.__dict__["role_names"] = []
    return DeviceIdentity(node=node, user=user, scopes=list(DEVICE_SCOPES), jti=claims["jti"],
                          public_key=credential.public_key or "")


def _touch(node: Node) -> Node:
    """Record the request as a heartbeat unless one was recorded moments ago (well within the node's
    heartbeat interval, so that a device that only polls never looks stale)."""
    now = timezone.now()
    every = min(TOUCH_SECONDS, node.heartbeat_interval_seconds / 2)
    if node.status != NodeStatus.OFFLINE and node.last_seen and now - node.last_seen < timedelta(seconds=every):
        return node
    return node_services.node_heartbeat(node=node)


@transaction.atomic
def device_token_revoke(*, node: Node) -> DeviceCredential:
    """Revoke the device's current token (401 from then on) until it registers again with its API
    key. 404 for a node that is not a device."""
    credential = DeviceCredential.objects.select_for_update().filter(node=node).first()
    if credential is None:
        raise NotFound("This client is not a registered device", details={"client_id": str(node.pk)})
    credential.revoked_at = timezone.now()
    credential.token_jti = ""
    credential.save(update_fields=["revoked_at", "token_jti", "updated_at"])
    return credential


# ---- rounds -----------------------------------------------------------------------------------------

def serving_execution(*, node: Node) -> Execution | None:
    """The device execution ``node`` serves: the running one it is assigned to, else the newest
    running device execution of a project its registrant can see (then it is assigned to it as a
    trainer). A node assigned to a finished device execution stays with it (its round info says
    ``completed``) until a newer device execution runs; a node assigned to another kind of
    execution serves none."""
    current = node.current_execution
    if current is not None and current.transport == Transport.DEVICE and current.status == ExecutionStatus.RUNNING:
        return current
    if current is not None and current.status not in FINISHED_STATUSES and current.transport != Transport.DEVICE:
        return None
    candidate = selectors.newest_running_execution(node=node)
    if candidate is None or (current is not None and candidate.pk == current.pk):
        return current if current is not None and current.transport == Transport.DEVICE else None
    if current is not None and current.status not in FINISHED_STATUSES:
        return current  # a pending or suspended device execution: stay with it
    if current is not None:
        node_services.node_unassign(node=node)
    node_services.node_assign(node=node, execution=candidate, role=NodeRole.TRAINER)
    node.current_execution = candidate
    node.current_execution_id = candidate.pk
    return candidate


def invite_devices(*, execution: Execution) -> list[uuid.UUID]:
    """Assign to a running device execution the online devices that ``serving_execution`` would give
    it on their next ``GET /rounds/current``: registered devices (credential not revoked) that serve
    no execution or are done with a finished one, whose registrant's newest running device execution
    (of their own project, for a device registered into one) is this one. The worker calls it as a
    round opens, so that those devices' ``node.<uuid>`` groups hear ``round.started`` (seed 002's
    ``training_invitation``) even if they only listen on the WebSocket. Returns the ids invited."""
    if execution.transport != Transport.DEVICE or execution.status != ExecutionStatus.RUNNING:
        return []
    now = timezone.now()
    candidates = (Node.objects
                  .filter(device_credential__isnull=False, device_credential__revoked_at__isnull=True,
                          registered_by__isnull=False, registered_by__is_active=True)
                  .exclude(status=NodeStatus.OFFLINE).filter(Q(stale_at__isnull=True) | Q(stale_at__gte=now))
                  .filter(Q(current_execution__isnull=True) | Q(current_execution__status__in=FINISHED_STATUSES))
                  .filter(Q(project__isnull=True) | Q(project_id=execution.project_id))
                  .order_by("registered_by_id", "project_id", "pk"))
    groups: dict[tuple, list[Node]] = {}
    for node in candidates:
        groups.setdefault((node.registered_by_id, node.project_id), []).append(node)
    invited = []
    for nodes in groups.values():
        # The rule depends only on the registrant and the node's project: one look per group.
        newest = selectors.newest_running_execution(node=nodes[0])
        if newest is None or newest.pk != execution.pk:
            continue
        for node in nodes:
            try:
                with transaction.atomic():
                    locked = Node.objects.select_for_update(of=("self",)).select_related("current_execution").get(pk=node.pk)
                    current = locked.current_execution
                    if current is not None and current.pk == execution.pk:
                        continue  # it asked for the round meanwhile
                    if locked.status == NodeStatus.OFFLINE or (
                            current is not None and current.status not in FINISHED_STATUSES):
                        continue  # went offline or took another execution meanwhile
                    if current is not None:
                        locked = node_services.node_unassign(node=locked)
                    node_services.node_assign(node=locked, execution=execution, role=NodeRole.TRAINER)
            except ApplicationError as exc:  # e.g. the execution stopped meanwhile
                logger.info("Device %s not invited to execution %s: %s", node.pk, execution.pk, exc)
                continue
            invited.append(node.pk)
    return invited


def training_config(execution: Execution, model: DeviceModel | None) -> dict:
    """What a device needs to train a round the way the execution is configured."""
    c = execution.config or {}
    params = execution.strategy_params or {}
    from nodes.protocol.rounds import round_timeout, wire_format

    out = {
        "model_type": execution.model_type, "dataset": execution.dataset, "algorithm": execution.algorithm,
        "local_epochs": int(c.get("local_epochs", 1)), "batch_size": int(c.get("batch_size", 32)),
        "learning_rate": float(c.get("learning_rate", 0.1)), "partition": c.get("partition", "iid"),
        "num_partitions": int(c.get("clients", execution.min_clients)), "seed": int(c.get("seed", 0)),
        "total_rounds": execution.total_rounds, "round_timeout": round_timeout(execution), "format": wire_format(),
    }
    if "proximal_mu" in params:
        out["proximal_mu"] = float(params["proximal_mu"])
    if model is not None:
        out["tensors"] = model.tensors
    return out


def round_info(*, execution: Execution | None, device_round: DeviceRound | None, node: Node | None = None) -> dict:
    """seed 002's round object (plus ids) for an execution and its open round, if any.
    ``execution_status`` is the execution's own status (running, completed, failed, stopped...), next
    to the round's ``status``."""
    if execution is None:
        return {"round_id": None, "round_number": 0, "status": "pending", "global_model_url": None,
                "model_version": None, "model_checksum": None, "model_size": None, "training_config": {},
                "deadline": None, "execution_id": None, "execution_status": None, "update_submitted": False}
    if device_round is not None:
        model = device_round.global_model
        status, number, deadline = "active", device_round.number, device_round.deadline
    else:
        model = selectors.latest_model(execution=execution)
        finished = execution.status in FINISHED_STATUSES
        status, number, deadline = ("completed" if finished else "pending"), execution.current_round, None
    submitted = bool(device_round is not None and node is not None
                     and DeviceUpdate.objects.filter(round=device_round, node=node).exists())
    return {
        "round_id": str(device_round.pk) if device_round is not None else None,
        "round_number": number,
        "status": status,
        "global_model_url": selectors.model_url(model.version) if model is not None else None,
        "model_version": model.version if model is not None else None,
        "model_checksum": model.checksum if model is not None else None,
        "model_size": model.size if model is not None else None,
        "training_config": training_config(execution, model),
        "deadline": _iso(deadline),
        "execution_id": str(execution.pk),
        "execution_status": execution.status,
        "update_submitted": submitted,
    }


def device_current_round(*, node: Node) -> dict:
    """The round ``node`` should work on: ``active`` (an open round before its deadline),
    ``pending`` (none open now: between rounds, or no execution to serve yet) or ``completed`` (the
    execution it served has finished)."""
    execution = serving_execution(node=node)
    device_round = None
    if execution is not None and execution.status == ExecutionStatus.RUNNING:
        device_round = selectors.open_round(execution=execution)
        if device_round is not None and device_round.deadline <= timezone.now():
            device_round = None
    return round_info(execution=execution, device_round=device_round, node=node)


def device_model(*, version: str, node: Node | None = None, user: User | None = None) -> ModelBlob:
    """The file of a model version: for a device (``node``) the versions of what it serves or its
    registrant sees, for a person (``user``) those of executions they can see."""
    model = (selectors.model_for_node(node=node, version=version) if node is not None
             else selectors.model_for_user(user=user, version=version))
    try:
        path = Path(model.file.path)
    except (ValueError, NotImplementedError):
        raise NotFound("Model version not found", details={"version": version})
    if not path.exists():
        logger.error("The file of model version %s is missing: %s", model.version, path)
        raise NotFound("Model version not found", details={"version": version})
    return ModelBlob(path=path, checksum=model.checksum, version=model.version, size=model.size,
                     execution_id=model.execution_id, number=model.number)


# ---- updates ----------------------------------------------------------------------------------------

def _too_large(limit: int) -> ApplicationError:
    return ApplicationError("PAYLOAD_TOO_LARGE", f"An update may be at most {limit} bytes",
                            details={"limit": limit}, http_status=413)


def _not_open(device_round: DeviceRound) -> ApplicationError:
    if device_round.status != DeviceRoundStatus.OPEN:
        reason = device_round.status
    elif device_round.execution.status != ExecutionStatus.RUNNING:
        reason = f"the execution is {device_round.execution.status}"
    else:
        reason = "past its deadline"
    return ApplicationError("RESOURCE_CONFLICT", f"Round {device_round.number} no longer takes updates ({reason})",
                            details={"round_id": str(device_round.pk), "status": device_round.status,
                                     "deadline": _iso(device_round.deadline)}, http_status=409)


def _is_open(device_round: DeviceRound) -> bool:
    return (device_round.status == DeviceRoundStatus.OPEN and device_round.deadline > timezone.now()
            and device_round.execution.status == ExecutionStatus.RUNNING)


def update_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "device_rounds" / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spool(body: BinaryIO, limit: int, *, signer: tuple[bytes, bytes] | None = None) -> ReceivedBody:
    """The body in a temporary file with its size, sha256 and (for ``signer``, a (public key,
    signature) pair) its ed25519 pre-hash, read in chunks in one pass; 413 past ``limit`` (nothing
    beyond ``limit + 1`` bytes is read)."""
    try:
        return ingest.spool(body, directory=update_dir(), limit=limit, signer=signer)
    except ingest.TooLarge:
        raise _too_large(limit) from None


def device_update_submit(*, node: Node, round_id, body: BinaryIO | ReceivedBody, content_length: int | None,
                         checksum: str, signature: str, public_key: str | None = None) -> tuple[DeviceUpdate, bool]:
    """Accept a device's update for a round: ``(update, created)``.

    ``body`` is a file-like (read here in chunks, once: spooled to disk while it is hashed) or a
    ``ReceivedBody`` the ASGI front spooled and hashed as it arrived (the caller closes it; its
    hashing may still be finishing while the first checks below run). ``public_key`` is the
    device's key as authentication read it (``DeviceIdentity.public_key``); None reads it here.

    Checks, in this order, each before any cost it saves: the round is one of the node's execution
    (404); the declared length is within DEVICE_UPDATE_MAX_BYTES (413, nothing read); the round is
    open and before its deadline (409); the body has the declared sha256 (400) and the device's
    ed25519 signature (401); the tensors are those of the round's model (422 INVALID_MODEL_FORMAT;
    decoded in place from the received body, whose integrity the two checks before established). Then, under the round's row lock: the same update sent again returns the
    stored one (``created`` False), another update of the node for the round is 409, and otherwise
    the update is stored and folded into the round's aggregation. Nothing is stored when any step
    fails."""
    from nodes.protocol import rounds

    device_round = selectors.round_for_node(node=node, round_id=round_id)
    limit = settings.DEVICE_UPDATE_MAX_BYTES
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    declared = (checksum or "").strip().lower()
    if not _is_open(device_round):
        existing = DeviceUpdate.objects.filter(round=device_round, node=node, checksum=declared).first()
        if existing is not None and declared:
            return existing, False
        raise _not_open(device_round)
    if not CHECKSUM.match(declared):
        raise ValidationFailed("X-Update-Checksum must be the sha256 of the body in hex",
                               details={"field": "X-Update-Checksum", "expected": "64 hex digits",
                                        "received": (checksum or "")[:100]})
    raw_signature = parse_signature(signature)
    if raw_signature is None:
        raise AuthenticationFailed("X-Client-Signature must be the base64 ed25519 signature of the body",
                                   details={"field": "X-Client-Signature"})
    if public_key is None:
        public_key = DeviceCredential.objects.filter(node=node).values_list("public_key", flat=True).first()
    raw_key = raw_public_key(public_key) if public_key else None
    if isinstance(body, ReceivedBody):
        received, owned = body, contextlib.nullcontext(body)
    else:
        received = _spool(body, limit, signer=(raw_key, raw_signature) if raw_key is not None else None)
        owned = received
    with owned:
        received.wait()  # the ASGI front may still be hashing its last batches
        digest, size = received.sha256, received.size
        if digest != declared:
            raise ValidationFailed("The body does not match X-Update-Checksum",
                                   details={"field": "X-Update-Checksum", "expected": digest, "received": declared})
        if not public_key:
            raise AuthenticationFailed("This device registered without a public key: register it again with "
                                       "public_key to sign its updates",
                                       details={"field": "X-Client-Signature", "reason": "no_public_key"})
        if not received.verify(public_key, raw_signature):
            raise AuthenticationFailed("X-Client-Signature is not this device's signature of the body",
                                       details={"field": "X-Client-Signature"})
        # The arrays are views of the received body (its memory, or a mapping of its file), which
        # lives as long as they do, even once the body is closed.
        update = rounds.decode(received.buffer(), device_round.global_model)
    return _accept(node=node, device_round=device_round, update=update, checksum=digest, size=size)


def _accept(*, node: Node, device_round: DeviceRound, update, checksum: str, size: int) -> tuple[DeviceUpdate, bool]:
    from nodes.protocol import rounds

    execution = device_round.execution
    weight = rounds.update_weight(execution, update.num_examples)
    with transaction.atomic():
        locked = DeviceRound.objects.select_for_update().get(pk=device_round.pk)
        # Neither changes while the round exists: keep the rows already loaded (no query per fold).
        locked.execution, locked.global_model = execution, device_round.global_model
        if not _is_open(locked):
            raise _not_open(locked)
        previous = DeviceUpdate.objects.filter(round=locked, node=node).first()
        if previous is not None:  # sent twice at once: the first one won
            if previous.checksum == checksum:
                return previous, False
            raise Conflict(f"This device already sent an update for round {locked.number}",
                           details={"round_id": str(locked.pk), "update_id": str(previous.pk)})
        row = DeviceUpdate.objects.create(round=locked, node=node, checksum=checksum, size=size,
                                          num_examples=update.num_examples, weight=weight,
                                          metrics=update.metrics, received_at=timezone.now())
        locked.updates_received += 1
        locked.total_weight += weight
        locked.save(update_fields=["updates_received", "total_weight", "updated_at"])
        # Last, so that a failure of any write above leaves the aggregation untouched.
        rounds.fold(locked, str(row.pk), update.arrays, weight)
        broadcast_on_commit("client.update_received", events.update_received_data(
            execution=execution, device_round=locked, node=node, update=row), events.audience(execution, [node.pk]))
    return row, True


def estimated_aggregation_time(device_round: DeviceRound) -> datetime:
    """When the round will be aggregated at the latest: now if its target is met, else its deadline."""
    if device_round.updates_received >= device_round.target_updates:
        return timezone.now()
    return device_round.deadline


# ---- progress -----------------------------------------------------------------------------------------

def device_progress_report(*, node: Node, round_number: int, progress_percent: float,
                           estimated_completion=None) -> None:
    """A device's training progress (seed 002 ``training_progress``): broadcast as
    ``client.training_progress`` to its execution's audience. 400 for bad values, 409 when the
    device's execution has no open round of that number. A report about a round the device has
    already sent its update to is still taken after the round closed: the socket may deliver it
    after the upload that overtook it."""
    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 1:
        raise ValidationFailed("round_number must be a positive whole number", field="round_number")
    if isinstance(progress_percent, bool) or not isinstance(progress_percent, (int, float)) or not (
            0 <= progress_percent <= 100):
        raise ValidationFailed("progress_percent must be a number from 0 to 100", field="progress_percent")
    if estimated_completion is not None and not isinstance(estimated_completion, (str, datetime)):
        raise ValidationFailed("estimated_completion must be an ISO-8601 time", field="estimated_completion")
    execution = node.current_execution
    device_round = None
    if execution is not None and execution.transport == Transport.DEVICE:
        device_round = DeviceRound.objects.filter(
            Q(status=DeviceRoundStatus.OPEN) | Q(updates__node=node), execution=execution, number=round_number,
        ).first()
    if device_round is None:
        raise Conflict(f"There is no open round {round_number} for this device",
                       details={"round_number": round_number})
    broadcast_on_commit("client.training_progress", events.progress_data(
        execution=execution, device_round=device_round, node=node, progress_percent=progress_percent,
        estimated_completion=estimated_completion), events.audience(execution, [node.pk]))


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)
