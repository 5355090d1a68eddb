"""Writes for executions: start, stop, suspend, resume, and the one place status changes."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.exceptions import ApplicationError, ValidationFailed
from core.lifecycle import move
from core.realtime import broadcast_on_commit
from projects.models import Project
from training.choices import TRANSITIONS, ControlRequest, ExecutionStatus, Transport
from training.config import check_secagg_fits, parse_privacy, parse_training_config
from training.models import Execution, Round


def execution_transition(execution: Execution, new_status: str) -> None:
    """Move ``execution`` to ``new_status`` or raise 409. Call holding the row lock
    (``select_for_update``); the caller saves."""
    move(execution, TRANSITIONS, new_status, noun="An execution")


def _enqueue(execution: Execution) -> None:
    from training.tasks import execution_run

    transaction.on_commit(lambda: execution_run.delay(str(execution.pk)))


@transaction.atomic
def execution_start(*, project: Project, user: User, config: dict | None, name: str = "",
                    algorithm: str | None = None, strategy_params: dict | None = None,
                    privacy: dict | None = None) -> Execution:
    """Create a pending execution from checked parameters and queue it for a worker (202).

    What trains: the project's uploaded Flower app when it has one (its latest upload, or
    ``config.upload_id``), unless ``config.source`` is ``"builtin"``; otherwise Pollen's own app with
    the model and data set the config names."""
    if isinstance(config, dict) and config.get("transport") == Transport.DEVICE and config.get("source") is None:
        config = {**config, "source": "builtin"}  # devices train a built-in model, whatever the project uploaded
    upload = _upload_for(project, config or {})
    checked = parse_training_config(config, project_configuration=project.configuration,
                                    algorithm=algorithm, strategy_params=strategy_params, upload=upload,
                                    project=project)
    checked.setdefault("source", "builtin")
    privacy_checked = parse_privacy(privacy, uploaded=upload is not None)
    if privacy_checked.get("secure_aggregation"):
        check_secagg_fits(checked["algorithm"], checked["clients"])
    transport = (config or {}).get("transport", Transport.EMBEDDED)
    if transport not in Transport.values:
        raise ValidationFailed(f"transport must be one of {list(Transport.values)}", field="transport",
                               http_status=422)
    if transport == Transport.DEVICE:
        checked = _device_config(checked, config or {}, upload=upload, privacy=privacy_checked)
    execution = Execution.objects.create(privacy=privacy_checked, transport=transport,
        project=project, created_by=user, name=name[:200], upload=upload,
        algorithm=checked["algorithm"], strategy_params=checked["strategy_params"],
        model_type=checked["model_type"], dataset=checked["dataset"],
        config=checked, total_rounds=checked["rounds"], min_clients=checked["min_clients"],
    )
    from training import events

    broadcast_on_commit("execution.created", events.execution_data(execution), events.audience(execution))
    _enqueue(execution)
    return execution


DEVICE_ROUND_TIMEOUT_RANGE = (5, 7 * 24 * 3600)


def _device_config(checked: dict, raw: dict, *, upload, privacy: dict) -> dict:
    """What a device execution needs on top of the common parameters: a built-in model and data set
    (the server evaluates on its held-out split), a strategy the device aggregation implements, no
    privacy wrapper, and ``round_timeout`` seconds (each round's deadline)."""
    from django.conf import settings

    from nodes.protocol.aggregate import resolve
    from training.config import _fail, _number

    if upload is not None:
        raise _fail("source", "A device execution trains a built-in model; set source to \"builtin\"")
    if (privacy.get("differential_privacy") or {}).get("enabled") or privacy.get("secure_aggregation"):
        raise _fail("privacy_config", "Devices send plain updates: differential privacy and secure aggregation "
                                      "are not available with transport \"device\"")
    try:
        resolve(checked["algorithm"])
    except ValueError as exc:
        raise _fail("algorithm", str(exc))
    low, high = DEVICE_ROUND_TIMEOUT_RANGE
    timeout = raw.get("round_timeout", raw.get("roundTimeout", settings.DEVICE_ROUND_TIMEOUT_SECONDS))
    return {**checked, "round_timeout": _number("round_timeout", timeout, int, low, high)}


def _upload_for(project: Project, config: dict):
    if not isinstance(config, dict):
        return None
    source = config.get("source")
    if source not in (None, "upload", "builtin"):
        raise ValidationFailed("source must be 'upload' or 'builtin'", field="source", http_status=422)
    if source == "builtin":
        return None
    uploads = project.uploads.order_by("-created_at")
    if config.get("upload_id"):
        upload = uploads.filter(pk=str(config["upload_id"])).first() if _is_uuid(config["upload_id"]) else None
        if upload is None:
            raise ValidationFailed("upload_id is not an upload of this project", field="upload_id", http_status=422)
        return upload
    upload = uploads.first()
    if upload is None and source == "upload":
        raise ValidationFailed("This project has no uploaded Flower app", field="source", http_status=422)
    return upload


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@transaction.atomic
def execution_stop(*, execution: Execution, reason: str = "", save_checkpoint: bool = True) -> Execution:
    """Stop now if nothing runs (pending, suspended); else ask the worker to stop after the round."""
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    if execution.status in (ExecutionStatus.PENDING, ExecutionStatus.SUSPENDED):
        execution_transition(execution, ExecutionStatus.STOPPED)
        execution.finished_at = timezone.now()
        execution.control_reason = reason[:500]
        execution.save()
        from training import events

        broadcast_on_commit("execution.stopped", events.execution_data(execution), events.audience(execution))
        return execution
    if execution.status != ExecutionStatus.RUNNING:
        raise ApplicationError("RESOURCE_CONFLICT", f"An execution that is {execution.status} cannot be stopped",
                               details={"from": execution.status, "to": "stopped"}, http_status=409)
    execution.control = ControlRequest.STOP
    execution.control_reason = reason[:500]
    execution.save_checkpoint_on_stop = save_checkpoint
    execution.save(update_fields=["control", "control_reason", "save_checkpoint_on_stop", "updated_at"])
    return execution


@transaction.atomic
def execution_suspend(*, execution: Execution, reason: str = "") -> Execution:
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    if execution.status != ExecutionStatus.RUNNING:
        raise ApplicationError("RESOURCE_CONFLICT", f"Only a running execution can be suspended; this one is "
                               f"{execution.status}", details={"from": execution.status, "to": "suspended"},
                               http_status=409)
    execution.control = ControlRequest.SUSPEND
    execution.control_reason = reason[:500]
    execution.save(update_fields=["control", "control_reason", "updated_at"])
    return execution


@transaction.atomic
def execution_resume(*, execution: Execution, from_round: int | None = None,
                     adjust_config: dict | None = None) -> Execution:
    """Queue a suspended, stopped or failed execution again, continuing from a round's checkpoint
    (the last one by default) with optional parameter changes (seed 001 ``fromRound``, ``adjustConfig``)."""
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    checkpoints = Round.objects.filter(execution=execution).exclude(checkpoint="")
    if from_round is None:
        latest = checkpoints.order_by("-number").first()
        from_round = latest.number if latest else 0
    elif from_round != 0 and not checkpoints.filter(number=from_round).exists():
        raise ApplicationError("FL006", f"There is no checkpoint of round {from_round} to resume from",
                               details={"field": "fromRound"})
    if from_round >= execution.total_rounds and not adjust_config:
        raise ValidationFailed(f"Round {from_round} is the last round; nothing is left to train",
                               field="fromRound", http_status=422)
    execution_transition(execution, ExecutionStatus.PENDING)
    if adjust_config:
        from training.config import ALIASES

        adjust_config = {ALIASES.get(k, k): v for k, v in adjust_config.items()}
        merged = {**execution.config, **adjust_config}
        for fixed in ("model_type", "dataset"):
            if fixed in adjust_config and adjust_config[fixed] != execution.config.get(fixed):
                raise ApplicationError("FL006", f"{fixed} cannot change on resume: the checkpoint would not fit",
                                       details={"field": f"adjustConfig.{fixed}"})
        checked = parse_training_config(merged, project_configuration=execution.project.configuration,
                                        algorithm=execution.algorithm, upload=execution.upload,
                                        strategy_params=adjust_config.get("strategy_params", execution.strategy_params))
        # What the parser does not produce (aggregation settings, the app's source, run_config
        # overrides) carries over from the execution.
        checked = {**{k: v for k, v in execution.config.items() if k not in checked}, **checked}
        execution.config = checked
        execution.total_rounds = checked["rounds"]
        execution.min_clients = checked["min_clients"]
        execution.strategy_params = checked["strategy_params"]
    if from_round >= execution.total_rounds:
        raise ValidationFailed(f"Round {from_round} is the last round; nothing is left to train",
                               field="fromRound", http_status=422)
    execution.resume_from_round = from_round or None
    execution.current_round = from_round
    execution.control = ControlRequest.NONE
    execution.error_code = execution.error_message = ""
    execution.finished_at = None
    execution.save()
    Round.objects.filter(execution=execution, number__gt=from_round).delete()
    _enqueue(execution)
    return execution


@transaction.atomic
def execution_update(*, execution: Execution, name: str) -> Execution:
    """Rename an execution (the one field a user may change once it exists)."""
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    execution.name = name.strip()[:200]
    execution.save(update_fields=["name", "updated_at"])
    from training import events

    broadcast_on_commit("execution.updated", events.execution_data(execution), events.audience(execution))
    return execution
