"""Executions on a deployed federation: a Flower SuperLink with real SuperNodes.

The worker builds a Flower App Bundle (FAB) for the execution, submits it through the SuperLink's
Control API (``StartRun``), then follows it (``ListRuns``) until Flower reports it finished,
asking the SuperLink to stop it (``StopRun``) when the user stops the execution. The ServerApp in
that FAB reports every round to ``/api/v1/fl/executions/{id}/callback`` (see
``training.engine.callback``); ``apply_callback`` turns those reports into the same records and
events as an embedded run, through the same ``ExecutionObserver``.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
from pathlib import Path

import httpx
import tomli_w
from django.conf import settings
from django.utils.crypto import salted_hmac
from flwr.cli.build import build_fab_from_files
from flwr.common.serde import fab_to_proto, user_config_to_proto
from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest, StreamLogsRequest
from flwr.supercore.control.control_http_client import ControlHttpClient
from flwr.supercore.fab import Fab

from core.exceptions import ApplicationError, ValidationFailed
from training.choices import ControlRequest, ExecutionStatus
from training.engine.grid import ClientResult, ExecutionInterrupted
from training.engine.npz import npz_to_arrays
from training.models import Execution, Round

SHIM_DIR = Path(__file__).resolve().parent / "engine" / "fab"
SHIM_PACKAGE = "pollen_federation"
# Flower node ids are unsigned 64-bit; the records keep them in a signed column.
NODE_ID_MASK = 0x7FFFFFFFFFFFFFFF


class DeployedRunFailed(Exception):
    pass


def callback_secret() -> str:
    return settings.FLOWER_CALLBACK_SECRET or salted_hmac("pollen.flower-callback", "v1").hexdigest()


def callback_url(execution: Execution) -> str:
    return f"{settings.FLOWER_CALLBACK_URL.rstrip('/')}/api/v1/fl/executions/{execution.pk}/callback"


def control_client() -> ControlHttpClient:
    certificates = None
    if settings.FLOWER_ROOT_CERTIFICATES:
        certificates = Path(settings.FLOWER_ROOT_CERTIFICATES).read_bytes()
    return ControlHttpClient.from_server_address(
        server_address=settings.FLOWER_SUPERLINK_ADDRESS, insecure=settings.FLOWER_INSECURE,
        root_certificates=certificates, interceptors=[])


# ---- the Flower App Bundle -----------------------------------------------------------------------
def _shim_files() -> dict[str, bytes]:
    return {f"{SHIM_PACKAGE}/{name}": (SHIM_DIR / name).read_bytes()
            for name in ("__init__.py", "server_app.py", "client_app.py")}


def build_fab(execution: Execution) -> bytes:
    """The FAB for ``execution``: Pollen's ServerApp shim around the execution's app, with the
    execution's run config as the app's config (so nothing needs overriding at StartRun)."""
    from training.runner import run_config_for

    files = _shim_files()
    if execution.upload_id:
        from training.isolation import extract_archive, run_config_for_upload

        with tempfile.TemporaryDirectory(prefix="pollen-fab-") as workdir:
            root = extract_archive(execution.upload, Path(workdir))
            for path in root.rglob("*"):
                relative = path.relative_to(root).as_posix()
                if path.is_file() and relative != "pyproject.toml" and "__pycache__" not in relative:
                    files[relative] = path.read_bytes()
        run_config = run_config_for_upload(execution)
        app_target, client_target = execution.upload.components["serverapp"], execution.upload.components["clientapp"]
    else:
        run_config = run_config_for(execution)
        app_target, client_target = "builtin", f"{SHIM_PACKAGE}.client_app:app"
    run_config.update({"pollen.execution-id": str(execution.pk), "pollen.callback-url": callback_url(execution),
                       "pollen.app": app_target})
    pyproject = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": f"pollen-execution-{execution.pk.hex[:12]}", "version": "1.0.0",
                    "description": f"Pollen execution {execution.pk}", "dependencies": []},
        "tool": {
            "hatch": {"build": {"targets": {"wheel": {"packages": ["."]}}}},
            "flwr": {"app": {"publisher": "pollen",
                             "components": {"serverapp": f"{SHIM_PACKAGE}.server_app:app", "clientapp": client_target},
                             "config": run_config}},
        },
    }
    files["pyproject.toml"] = tomli_w.dumps(pyproject).encode()
    return build_fab_from_files(files)[0]


# ---- the worker side -------------------------------------------------------------------------------
def drive_deployed(execution: Execution, observer) -> None:
    """Submit ``execution`` to the SuperLink and follow it to its end (raise as the other drivers)."""
    fab = build_fab(execution)
    client = control_client()
    try:
        response = client.StartRun(StartRunRequest(
            fab=fab_to_proto(Fab(hashlib.sha256(fab).hexdigest(), fab, {})),
            override_config=user_config_to_proto({}), federation=settings.FLOWER_FEDERATION))
        if not response.HasField("run_id"):
            raise DeployedRunFailed("The SuperLink did not start the run")
        run_id = response.run_id
        observer.log(f"Submitted to the SuperLink at {settings.FLOWER_SUPERLINK_ADDRESS} as Flower run {run_id}",
                     data={"flower_run_id": str(run_id)})
        observer.flush_logs()
        deadline = time.monotonic() + settings.FLOWER_RUN_TIMEOUT_SECONDS
        stop_sent = False
        while True:
            status = client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id].status
            if status.status == "finished":
                break
            control = Execution.objects.filter(pk=execution.pk).values_list("control", flat=True).first()
            if (control == ControlRequest.STOP or time.monotonic() > deadline) and not stop_sent:
                client.StopRun(StopRunRequest(run_id=run_id))
                stop_sent = True
            time.sleep(settings.FLOWER_POLL_SECONDS)
        _keep_server_logs(client, run_id, observer)
    finally:
        client.close()

    fresh = Execution.objects.get(pk=execution.pk)
    observer.execution.metrics, observer.execution.current_round = fresh.metrics, fresh.current_round
    details = f" ({status.details})" if status.details else ""
    observer.log(f"Flower run {run_id} finished: {status.sub_status}{details}")
    if fresh.control in (ControlRequest.STOP, ControlRequest.SUSPEND) and fresh.current_round < fresh.total_rounds:
        raise ExecutionInterrupted(fresh.control, fresh.current_round)
    if stop_sent:
        raise DeployedRunFailed(f"Flower run {run_id} exceeded {settings.FLOWER_RUN_TIMEOUT_SECONDS} s and was stopped")
    if status.sub_status != "completed":
        raise DeployedRunFailed(f"Flower run {run_id} {status.sub_status}: {status.details or 'see the logs'}")


MAX_LOG_LINES = 5000


def _keep_server_logs(client: ControlHttpClient, run_id: int, observer) -> None:
    """The ServerApp's own output on the SuperLink (``StreamLogs``; the stream ends with the run)."""
    kept = 0
    try:
        for response in client.StreamLogs(StreamLogsRequest(run_id=run_id, after_timestamp=0.0)):
            for line in response.log_output.splitlines():
                line = line.strip()
                if line and kept < MAX_LOG_LINES:
                    observer.log(line, source="superlink")
                    kept += 1
    except httpx.HTTPError:  # the logs are a courtesy: the run's records are already in
        observer.log("The SuperLink's logs of this run could not be read", level="WARNING")


# ---- the callback side -----------------------------------------------------------------------------
def _results(raw: list) -> list[ClientResult]:
    out = []
    for item in raw[:10_000]:
        if not isinstance(item, dict):
            continue
        out.append(ClientResult(
            node_id=int(item.get("node_id") or 0) & NODE_ID_MASK, partition_id=item.get("partition_id"),
            phase=str(item.get("phase", ""))[:10], num_examples=max(0, int(item.get("num_examples") or 0)),
            metrics={k: v for k, v in (item.get("metrics") or {}).items() if isinstance(v, (int, float, list))},
            duration_ms=float(item.get("duration_ms") or 0.0), bytes_down=max(0, int(item.get("bytes_down") or 0)),
            bytes_up=max(0, int(item.get("bytes_up") or 0)), error=str(item.get("error") or "")[:500]))
    return out


def _arrays(encoded):
    return npz_to_arrays(base64.b64decode(encoded, validate=True)) if encoded else None


def apply_callback(execution: Execution, payload: dict) -> dict:
    """Apply one report of the deployed ServerApp; return what it must do next."""
    from training.runner import ExecutionObserver

    if execution.status != ExecutionStatus.RUNNING:
        raise ApplicationError("RESOURCE_CONFLICT", f"The execution is {execution.status}, not running",
                               http_status=409)
    kind = payload.get("type")
    if kind == "liveness":
        return {"offline": _offline_flower_nodes(execution, payload.get("node_ids"))}
    observer = ExecutionObserver(execution)
    observer.fail_on_empty_round = False
    try:
        if kind == "hello":
            offset = int(execution.resume_from_round or 0)
            initial = None
            if offset:
                checkpoint = Round.objects.filter(execution=execution, number=offset).exclude(checkpoint="").first()
                if checkpoint is not None:
                    with checkpoint.checkpoint.open("rb") as fh:
                        initial = base64.b64encode(fh.read()).decode()
            observer.log("The ServerApp on the SuperLink started", source="flower")
            return {"round_offset": offset, "initial_arrays": initial,
                    "poll_seconds": settings.FLOWER_REPLY_POLL_SECONDS,
                    "liveness_seconds": settings.FLOWER_LIVENESS_SECONDS}
        if kind == "round_started":
            try:
                observer.before_round(_round(payload))
            except ExecutionInterrupted as interrupt:
                return {"action": interrupt.action}
            return {"action": "continue"}
        if kind == "round_completed":
            number = _round(payload)
            duration = payload.get("duration_seconds")
            if isinstance(duration, (int, float)):
                observer.round_started[number] = time.monotonic() - float(duration)
            results = _results(payload.get("results") or [])
            for phase in ("train", "evaluate"):
                observer.on_replies(number, phase, [r for r in results if r.phase == phase])
            arrays = _arrays(payload.get("checkpoint"))
            server = {k: v for k, v in (payload.get("server_metrics") or {}).items() if isinstance(v, (int, float))}
            if arrays is not None:
                observer.on_server_evaluation(number, arrays, server)
            else:
                observer.server_metrics[number] = server
            observer.on_round_end(number)
            return {"action": "continue"}
        if kind == "checkpoint":
            arrays = _arrays(payload.get("checkpoint"))
            if arrays is not None:
                observer.on_global_arrays(_round(payload), arrays)
            return {}
        if kind == "interrupted":
            if payload.get("action") == ControlRequest.SUSPEND:
                # A manual aggregation step ends suspended: the worker reads that from the row.
                Execution.objects.filter(pk=execution.pk).update(control=ControlRequest.SUSPEND)
            observer.log(f"The ServerApp ended early ({payload.get('action')}) after round "
                         f"{payload.get('completed_round')}", source="flower")
            return {}
        if kind == "finished":
            observer.log("The ServerApp finished", source="flower")
            return {}
        if kind == "failed":
            observer.log(f"The ServerApp failed: {str(payload.get('error'))[:2000]}", level="ERROR", source="flower")
            return {}
        raise ValidationFailed("Unknown callback type", field="type", http_status=422)
    finally:
        observer.flush_logs()


def _offline_flower_nodes(execution: Execution, raw) -> list[int]:
    """Of the Flower node ids a round waits for, those whose node the registry has marked offline
    (the node agent reports its SuperNode's id in its heartbeats); the round stops waiting for them."""
    from nodes.selectors import flower_nodes_offline

    if (not isinstance(raw, list) or len(raw) > 10_000
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 64 for n in raw)):
        raise ValidationFailed("node_ids must be a list of Flower node ids", field="node_ids", http_status=422)
    offline = flower_nodes_offline(raw, project_id=execution.project_id)
    if offline:
        from training.runner import ExecutionObserver

        observer = ExecutionObserver(execution)
        observer.log(f"The round stops waiting for {len(offline)} node(s) the registry marked offline "
                     f"(Flower node ids {', '.join(map(str, offline))})", level="WARNING")
        observer.flush_logs()
    return offline


def _round(payload: dict) -> int:
    number = payload.get("round")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 100_000:
        raise ValidationFailed("round must be a positive whole number", field="round", http_status=422)
    return number
