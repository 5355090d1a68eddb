"""The parent side of running an uploaded Flower app: extract, limit, supervise, record.

The archive was validated at upload; it is extracted again defensively (regular files only, inside
the target folder). The app runs in ``python -m training.engine.isolated`` with an address-space
limit (memory) and a CPU-time limit, and a wall-clock deadline enforced here. What the child
reports is applied through the same ``ExecutionObserver`` as Pollen's own app, so rounds, clients,
checkpoints, logs and events look the same whichever app trained.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from flwr.app import ArrayRecord

from training.choices import ControlRequest
from training.engine.grid import ClientResult, ExecutionInterrupted
from training.engine.isolated import decode_arrays
from training.models import Execution

MAX_MESSAGE_BYTES = 512 * 1024 * 1024


class UploadedAppFailed(Exception):
    pass


def extract_archive(upload, target: Path) -> Path:
    """Extract the stored archive under ``target`` and return the app root (pyproject's folder)."""
    target = target.resolve()
    with upload.archive.open("rb") as fh, zipfile.ZipFile(fh) as archive:
        for info in archive.infolist():
            destination = (target / info.filename).resolve()
            if not str(destination).startswith(str(target) + os.sep) and destination != target:
                raise UploadedAppFailed(f"Archive entry {info.filename!r} escapes the extraction folder")
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return target / upload.app_root if upload.app_root else target


def run_config_for_upload(execution: Execution) -> dict:
    """The app's own ``[tool.flwr.app.config]`` with Pollen's overrides: ``config.rounds`` sets
    ``num-server-rounds``; ``config.run_config`` overrides any other key."""
    run_config = dict(execution.upload.app_config or {})
    run_config["num-server-rounds"] = int(execution.total_rounds - (execution.resume_from_round or 0))
    run_config.update(execution.config.get("run_config") or {})
    return {k: v for k, v in run_config.items() if isinstance(v, (str, int, float, bool))}


def drive_uploaded_app(execution: Execution, observer) -> None:
    """Run the execution's uploaded app to its end; raise ExecutionInterrupted or an error."""
    from training.runner import flower_run_id, nodes_for

    workdir = Path(tempfile.mkdtemp(prefix=f"pollen-app-{execution.pk}-"))
    try:
        app_dir = extract_archive(execution.upload, workdir / "app")
        spec = {
            "app_dir": str(app_dir),
            "serverapp": execution.upload.components["serverapp"],
            "clientapp": execution.upload.components["clientapp"],
            "nodes": {str(k): v for k, v in nodes_for(execution).items()},
            "run_config": run_config_for_upload(execution),
            "run_id": flower_run_id(execution),
            "round_offset": int(execution.resume_from_round or 0),
            "resume_arrays": _checkpoint_text(execution),
        }
        observer.log(f"Running uploaded app {execution.upload.app_name or execution.upload.original_name} "
                     f"({execution.upload.checksum[:12]}) with {spec['run_config']}")
        _supervise(execution, observer, spec, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(execution, observer, spec, workdir) -> None:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET", "REDIS", "CELERY"))}
    env.update({"POLLEN_PIPE_IN": str(to_child_r), "POLLEN_PIPE_OUT": str(from_child_w),
                "PYTHONPATH": str(settings.BASE_DIR), "PYTHONUNBUFFERED": "1", "HOME": str(workdir),
                "POLLEN_LIMIT_MEMORY_BYTES": str(settings.TRAINING_UPLOADED_APP_MEMORY_MB * 1024 * 1024),
                "POLLEN_LIMIT_CPU_SECONDS": str(settings.TRAINING_UPLOADED_APP_CPU_SECONDS)})
    # No preexec_fn: forking a threaded process (heartbeat, pipes) and running Python before exec
    # can deadlock. The child applies its limits itself before it imports the app.
    process = subprocess.Popen(
        [sys.executable, "-m", "training.engine.isolated"], cwd=str(workdir), env=env,
        pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    os.close(to_child_r)
    os.close(from_child_w)
    to_child = os.fdopen(to_child_w, "w", buffering=1)
    from_child = os.fdopen(from_child_r, "r")
    output_lines: list[str] = []
    reader = threading.Thread(target=_collect_output, args=(process.stdout, output_lines), daemon=True)
    reader.start()
    # Protocol lines arrive through a queue filled by a thread: the main loop can then wait with
    # a deadline without select() and a buffered reader disagreeing about what is pending.
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=_pump_lines, args=(from_child, inbox), daemon=True).start()
    deadline = time.monotonic() + settings.TRAINING_UPLOADED_APP_TIMEOUT_SECONDS
    outcome = None
    try:
        to_child.write(json.dumps(spec) + "\n")
        while outcome is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UploadedAppFailed(
                    f"The app exceeded its time limit of {settings.TRAINING_UPLOADED_APP_TIMEOUT_SECONDS} s")
            try:
                line = inbox.get(timeout=min(remaining, 5.0))
            except queue.Empty:
                continue
            if line is None:
                break
            outcome = _dispatch(json.loads(line), observer, to_child, execution)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=5)
        to_child.close()
        from_child.close()
        for text in output_lines[-200:]:
            observer.log(text, source="app")
    if outcome is None:
        code = process.returncode
        reason = "it ran out of memory or CPU time" if code in (-9, -24, 137) else f"it exited with code {code}"
        raise UploadedAppFailed(f"The app stopped before finishing: {reason}. Last output: "
                                f"{' | '.join(output_lines[-3:])[:500]}")
    if outcome[0] == "interrupted":
        raise ExecutionInterrupted(outcome[1], outcome[2])
    if outcome[0] == "failed":
        raise UploadedAppFailed(outcome[1])


def _pump_lines(stream, inbox: queue.Queue) -> None:
    try:
        for line in iter(stream.readline, ""):
            inbox.put(line)
    except (OSError, ValueError):  # the pipe closed under us: the child is gone
        pass
    inbox.put(None)


def _collect_output(stream, lines: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", "replace").rstrip()
        if text:
            lines.append(text[:2000])
            del lines[:-1000]


def _dispatch(message: dict, observer, to_child, execution):
    kind = message.get("kind")
    if kind == "before_round":
        try:
            observer.before_round(int(message["round"]))
            to_child.write(json.dumps({"action": "continue"}) + "\n")
        except ExecutionInterrupted as interrupt:
            to_child.write(json.dumps({"action": interrupt.action}) + "\n")
        return None
    if kind == "replies":
        results = [ClientResult(**{k: r.get(k) for k in ClientResult.__dataclass_fields__ if k in r})
                   for r in message.get("results", [])]
        observer.on_replies(int(message["round"]), str(message["phase"]), results)
        return None
    if kind == "arrays":
        observer.on_global_arrays(int(message["round"]), ArrayRecord(decode_arrays(message["arrays"])))
        return None
    if kind == "round_end":
        observer.on_round_end(int(message["round"]))
        Execution.objects.filter(pk=execution.pk).update(heartbeat_at=timezone.now())
        return None
    if kind == "interrupted":
        return ("interrupted", message.get("action", ControlRequest.STOP), int(message.get("round", 0)))
    if kind == "failed":
        return ("failed", str(message.get("error", "the app failed")))
    if kind == "done":
        return ("done",)
    return None


def _checkpoint_text(execution: Execution) -> str | None:
    """The checkpoint to resume from, as the child expects it (base64 .npz), or None."""
    import base64

    from training.models import Round

    if not execution.resume_from_round:
        return None
    checkpoint = Round.objects.filter(execution=execution, number=execution.resume_from_round).exclude(
        checkpoint="").first()
    if checkpoint is None:
        raise UploadedAppFailed(f"There is no checkpoint of round {execution.resume_from_round} to resume from")
    with checkpoint.checkpoint.open("rb") as fh:
        return base64.b64encode(fh.read()).decode("ascii")
