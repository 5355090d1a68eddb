"""Runs one execution inside a Celery worker: the embedded federation and its records.

``run_execution`` takes a pending execution, marks it running, drives Flower's ServerApp over the
in-process Grid and records every round through ``ExecutionObserver``: rounds, per-client results,
checkpoints, logs and live events. Stop and suspend requests are honoured between rounds. A
heartbeat thread stamps the row while the run lasts, so that a worker that dies is noticed by the
reaper (``training.tasks.executions_reap``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from flwr.app import ArrayRecord

from core.realtime import broadcast_many_on_commit, broadcast_on_commit
from training import events
from training.choices import ControlRequest, ExecutionStatus, RoundStatus, Transport
from training.engine.grid import ClientResult, ExecutionInterrupted, InProcessGrid, server_context, server_identity
from training.engine.npz import arrays_to_npz, npz_to_arrays  # noqa: F401 - part of this module's interface
from training.models import Execution, ExecutionLog, Round, RoundClient
from training.registry import publish_round
from training.services import execution_transition

logger = logging.getLogger("pollen.training")


def _weighted(results: list[ClientResult]) -> dict:
    """Metrics averaged over clients, weighted by their number of examples."""
    totals: dict[str, float] = {}
    weight = 0
    for r in results:
        if r.error:
            continue
        n = max(r.num_examples, 1)
        weight += n
        for key, value in r.metrics.items():
            if isinstance(value, (int, float)) and key not in ("num-examples", "num_examples"):
                totals[key] = totals.get(key, 0.0) + float(value) * n
    return {k: v / weight for k, v in totals.items()} if weight else {}


def _same_arrays(a: ArrayRecord, b: ArrayRecord) -> bool:
    if a is b:
        return True
    left, right = a.to_numpy_ndarrays(), b.to_numpy_ndarrays()
    return len(left) == len(right) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(left, right))


class AggregationFailed(Exception):
    """A round had no update to aggregate (FL004)."""

    code = "FL004"


class ExecutionObserver:
    """Turns what the Grid and the ServerApp see into Pollen's records and events."""

    def __init__(self, execution: Execution):
        self.execution = execution
        # Who may see this execution's events: read once per run, not once per event.
        self.audience = events.audience(execution)
        self.round_started: dict[int, float] = {}
        self.results: dict[tuple[int, str], list[ClientResult]] = {}
        self.server_metrics: dict[int, dict] = {}
        self.log_buffer: list[ExecutionLog] = []
        # A round in which every node failed ends the run with FL004 (Flower would go on with the
        # old model); a deployed run reports it instead, its ServerApp decides.
        self.fail_on_empty_round = True
        self.rounds: dict[int, Round | None] = {}
        self.checkpointed: set[int] = set()
        self.saved_arrays: dict[int, ArrayRecord] = {}  # the latest checkpoint written, as arrays
        # Fields a transport adds to a round's round.started / model.aggregated events (device rounds).
        self.event_data: dict[int, dict] = {}

    # ---- logs --------------------------------------------------------------------------------
    def log(self, message: str, *, level: str = "INFO", round_number: int | None = None, source: str = "server",
            data: dict | None = None) -> None:
        self.log_buffer.append(ExecutionLog(execution_id=self.execution.pk, timestamp=timezone.now(), level=level,
                                            message=message[:10_000], round_number=round_number, source=source,
                                            data=data or {}))
        if len(self.log_buffer) >= 200:
            self.flush_logs()

    def flush_logs(self) -> None:
        if self.log_buffer:
            ExecutionLog.objects.bulk_create(self.log_buffer)
            self.log_buffer = []

    # ---- Grid callbacks ----------------------------------------------------------------------
    def before_round(self, round_number: int) -> None:
        control = Execution.objects.filter(pk=self.execution.pk).values_list("control", flat=True).first()
        if control in (ControlRequest.STOP, ControlRequest.SUSPEND):
            raise ExecutionInterrupted(control, round_number - 1)
        target, reached = target_accuracy(self.execution), latest_accuracy(self.execution.metrics)
        if target is not None and reached is not None and reached >= target:
            self.log(f"Target accuracy {target} reached ({reached:.4f}) after round {round_number - 1}")
            raise ExecutionInterrupted(CONVERGED, round_number - 1)
        self.round_started[round_number] = time.monotonic()
        with transaction.atomic():
            self.rounds[round_number], _ = Round.objects.update_or_create(
                execution=self.execution, number=round_number,
                defaults={"status": RoundStatus.COLLECTING, "started_at": timezone.now(), "completed_at": None},
            )
            broadcast_on_commit("round.started", {**events.round_data(self.execution, round_number),
                                                  **self.event_data.get(round_number, {})}, self.audience)
        self.log(f"Round {round_number}/{self.execution.total_rounds} started", round_number=round_number)

    def on_replies(self, round_number: int, phase: str, results: list[ClientResult]) -> None:
        # Replies with no examples, metrics or error are protocol traffic (SecAgg+'s key exchange
        # stages), not training results.
        results = [r for r in results if r.error or r.num_examples or r.metrics]
        if not results:
            return
        self.results.setdefault((round_number, phase), []).extend(results)
        round_obj = self._round(round_number)
        if round_obj is None:
            return
        RoundClient.objects.bulk_create(
            [RoundClient(round=round_obj, node_id=r.node_id, partition_id=r.partition_id, phase=r.phase,
                         num_examples=r.num_examples, metrics=r.metrics, duration_ms=r.duration_ms,
                         bytes_down=r.bytes_down, bytes_up=r.bytes_up, error=r.error) for r in results],
            ignore_conflicts=True,
        )
        failed = [r for r in results if r.error]
        for r in failed:
            self.log(f"Node {r.node_id} failed in {phase}: {r.error}", level="WARNING", round_number=round_number,
                     source=f"node-{r.node_id}")
        if phase == "train" and len(failed) == len(results) and self.fail_on_empty_round:
            self.flush_logs()
            raise AggregationFailed(f"No node returned an update in round {round_number}: nothing to aggregate "
                                    f"(first error: {failed[0].error})")
        if phase == "train":
            base = events.round_data(self.execution, round_number)
            received = [("client.update_received", {
                **base, "node_id": r.node_id, "num_examples": r.num_examples, "metrics": r.metrics,
                "duration_ms": round(r.duration_ms, 2)}) for r in results if not r.error]
            with transaction.atomic():
                Round.objects.filter(pk=round_obj.pk).update(
                    status=RoundStatus.AGGREGATING, participants=len(results) - len(failed))
                broadcast_many_on_commit(received, self.audience)

    def on_global_arrays(self, round_number: int, arrays: ArrayRecord) -> None:
        self._save_checkpoint(round_number, arrays, overwrite=False)

    def on_server_evaluation(self, round_number: int, arrays: ArrayRecord, metrics: dict) -> None:
        self.server_metrics[round_number] = metrics
        # The checkpoint is the model the server evaluated; the one the nodes evaluated moments
        # before is usually the same arrays, and then it is not written twice.
        saved = self.saved_arrays.get(round_number)
        if saved is not None and _same_arrays(saved, arrays):
            return
        self._save_checkpoint(round_number, arrays, overwrite=True)

    def on_round_end(self, round_number: int) -> None:
        train = self.results.get((round_number, "train"), [])
        evaluate = self.results.get((round_number, "evaluate"), [])
        started = self.round_started.get(round_number)
        now = timezone.now()
        train_metrics, eval_metrics = _weighted(train), _weighted(evaluate)
        server = self.server_metrics.get(round_number, {})
        with transaction.atomic():  # one commit for the round's records, its version and its events
            self._close_round_records(round_number, train, evaluate, train_metrics, eval_metrics, server, started, now)

    def _close_round_records(self, round_number, train, evaluate, train_metrics, eval_metrics, server, started, now):
        Round.objects.filter(execution=self.execution, number=round_number).update(
            status=RoundStatus.COMPLETED, completed_at=now,
            duration_seconds=(time.monotonic() - started) if started else None,
            train_metrics=train_metrics, evaluate_metrics=eval_metrics, server_metrics=server,
            bytes_sent=sum(r.bytes_down for r in train + evaluate),
            bytes_received=sum(r.bytes_up for r in train + evaluate),
        )
        latest = {**{f"train_{k}" if not k.startswith("train_") else k: v for k, v in train_metrics.items()},
                  **eval_metrics, **server, "clients_participated": len([r for r in train if not r.error])}
        Execution.objects.filter(pk=self.execution.pk).update(current_round=round_number, metrics=latest,
                                                              heartbeat_at=now)
        self.execution.current_round = round_number
        self.execution.metrics = latest
        self.log(f"Round {round_number} completed", round_number=round_number, data={"metrics": latest})
        self.flush_logs()
        publish_round(self.execution, round_number)
        data = {**events.round_data(self.execution, round_number), "metrics": latest,
                **self.event_data.get(round_number, {})}
        broadcast_many_on_commit([("model.aggregated", data), ("round.completed", data), ("metrics.updated", data),
                                  ("training_update", events.training_update(self.execution))], self.audience)

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self, round_number: int, arrays: ArrayRecord, *, overwrite: bool) -> None:
        if round_number in self.checkpointed and not overwrite:
            return
        round_obj = self._round(round_number)
        if round_obj is None or (round_obj.checkpoint and not overwrite):
            return
        payload = arrays_to_npz(arrays)
        if round_obj.checkpoint:
            round_obj.checkpoint.delete(save=False)
        round_obj.checkpoint.save(f"{round_number:04d}.npz", ContentFile(payload), save=False)
        round_obj.checkpoint_checksum = hashlib.sha256(payload).hexdigest()
        round_obj.save(update_fields=["checkpoint", "checkpoint_checksum", "updated_at"])
        self.checkpointed.add(round_number)
        self.saved_arrays = {round_number: arrays}

    def _round(self, round_number: int) -> Round | None:
        """The round's row: the one this observer opened, else from the database."""
        if round_number not in self.rounds:
            self.rounds[round_number] = Round.objects.filter(execution=self.execution, number=round_number).first()
        return self.rounds[round_number]


class Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` every few seconds while the run lasts (own DB connection)."""

    def __init__(self, execution_id, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{execution_id}")
        self.execution_id = execution_id
        self.interval = interval
        self.stopped = threading.Event()

    def run(self):
        try:
            while not self.stopped.wait(self.interval):
                try:
                    Execution.objects.filter(pk=self.execution_id, status=ExecutionStatus.RUNNING).update(
                        heartbeat_at=timezone.now())
                except DatabaseError:  # a busy database skips a beat; the next one will land
                    logger.warning("Heartbeat of %s could not be written", self.execution_id, exc_info=True)
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()


class _FlowerLogHandler(logging.Handler):
    """Keeps what Flower logs during the run as the execution's log entries."""

    def __init__(self, observer: ExecutionObserver):
        super().__init__(level=logging.INFO)
        self.observer = observer

    def emit(self, record):
        try:
            message = record.getMessage().strip()
        except Exception:  # a malformed log call must not break training
            return
        if message:
            self.observer.log(message, level=record.levelname if record.levelname in {"DEBUG", "INFO", "WARNING", "ERROR"}
                              else "INFO", source="flower")


def run_config_for(execution: Execution) -> dict:
    c = execution.config
    flat = {
        "pollen.algorithm": execution.algorithm,
        "pollen.strategy-params": json.dumps(execution.strategy_params),
        "pollen.model": execution.model_type,
        "pollen.model-params": json.dumps(c.get("model_params", {})),
        "pollen.dataset": execution.dataset,
        "pollen.seed": int(c.get("seed", 0)),
        "pollen.partition": c.get("partition", "iid"),
        "pollen.alpha": float(c.get("alpha", 0.5)),
        "pollen.local-epochs": int(c.get("local_epochs", 1)),
        "pollen.batch-size": int(c.get("batch_size", 32)),
        "pollen.learning-rate": float(c.get("learning_rate", 0.1)),
        "pollen.min-clients": int(execution.min_clients),
        "pollen.rounds": int(execution.total_rounds - (execution.resume_from_round or 0)),
        "pollen.round-offset": int(execution.resume_from_round or 0),
        "pollen.dp": json.dumps((execution.privacy or {}).get("differential_privacy") or {}),
        "pollen.secagg": json.dumps((execution.privacy or {}).get("secagg") or {}),
        "pollen.weights": (c.get("aggregation") or {}).get("weights", "proportional"),
        "pollen.validation": json.dumps((c.get("aggregation") or {}).get("validation") or {}),
        # A manual step is for the one run its trigger queued (the attempt after it), never a later one.
        "pollen.manual-step": json.dumps(c["manual_step"] if (c.get("manual_step") or {}).get("attempt")
                                         == execution.attempt else {}),
    }
    if c.get("dataset_id"):
        from projects.selectors import dataset_for_run

        dataset = dataset_for_run(project_id=execution.project_id, dataset_id=c["dataset_id"])
        flat["pollen.csv-path"] = dataset.file.path
        flat["pollen.target-column"] = dataset.target_column
    return flat


def flower_run_id(execution: Execution) -> int:
    return execution.pk.int & 0x7FFFFFFFFFFF


def run_execution(execution_id) -> str | None:
    """Run a pending execution to its end. Returns the final status, or None if it was not pending."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().filter(pk=execution_id).first()
        if execution is None or execution.status != ExecutionStatus.PENDING:
            return None
        execution_transition(execution, ExecutionStatus.RUNNING)
        now = timezone.now()
        execution.started_at = execution.started_at or now
        execution.heartbeat_at = now
        execution.worker = f"{socket.gethostname()}:{os.getpid()}"
        execution.attempt += 1
        execution.control = ControlRequest.NONE
        execution.save()
        broadcast_on_commit("execution.started", events.execution_data(execution), events.audience(execution))

    observer = ExecutionObserver(execution)
    heartbeat = Heartbeat(execution.pk, settings.TRAINING_HEARTBEAT_SECONDS)
    heartbeat.start()
    cpu_started = time.process_time()
    outcome, error, error_code = ExecutionStatus.COMPLETED, None, ""
    try:
        if execution.transport == Transport.DEPLOYED:
            from training.deployed import drive_deployed

            drive_deployed(execution, observer)
        elif execution.transport == Transport.DEVICE:
            from nodes.protocol.rounds import drive_device

            drive_device(execution, observer)
        elif execution.upload_id:
            from training.isolation import drive_uploaded_app

            drive_uploaded_app(execution, observer)
        else:
            _drive_builtin_app(execution, observer)
    except ExecutionInterrupted as interrupt:
        outcome = {ControlRequest.SUSPEND: ExecutionStatus.SUSPENDED, CONVERGED: ExecutionStatus.COMPLETED}.get(
            interrupt.action, ExecutionStatus.STOPPED)
    except Exception as exc:  # the run failed; the reason is kept for the user, the trace for us
        logger.exception("Execution %s failed", execution.pk)
        outcome, error = ExecutionStatus.FAILED, f"{exc.__class__.__name__}: {exc}"
        code = getattr(exc, "code", None)  # FL004 aggregation, FL006 a missing data set or checkpoint
        error_code = code if isinstance(code, str) and code.startswith("FL") else "FL003"
    finally:
        heartbeat.stop()
    observer.flush_logs()
    error_code = (error_code or "FL003") if error else ""
    target, reached = target_accuracy(execution), latest_accuracy(observer.execution.metrics)
    if outcome == ExecutionStatus.COMPLETED and target is not None and (reached is None or reached < target):
        outcome, error_code = ExecutionStatus.FAILED, "FL008"
        error = (f"Did not converge: accuracy {reached if reached is None else round(reached, 4)} after "
                 f"{observer.execution.current_round} rounds is below the target {target}")
    return finish_execution(execution.pk, outcome, error_code=error_code, error_message=error or "",
                            cpu_seconds=time.process_time() - cpu_started)


CONVERGED = "converged"


def target_accuracy(execution: Execution) -> float | None:
    value = (execution.config or {}).get("target_accuracy")
    return float(value) if value is not None else None


def latest_accuracy(metrics: dict) -> float | None:
    """The accuracy a target is judged on: the server's held-out evaluation, else the clients'."""
    for key in ("accuracy", "eval_accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            return float(metrics[key])
    return None


def nodes_for(execution: Execution) -> dict[int, dict]:
    """The simulated nodes of the embedded federation: one partition each."""
    count = int(execution.config.get("clients", execution.min_clients))
    return {i + 1: {"partition-id": i, "num-partitions": count} for i in range(count)}


def _drive_builtin_app(execution: Execution, observer: ExecutionObserver) -> None:
    from training.engine import secure

    offset = execution.resume_from_round or 0
    run_config = run_config_for(execution)
    # Flower's strategies sample and order nodes with the global random module: seed it so that a
    # run is reproducible from its config alone.
    random.seed(int(execution.config.get("seed", 0)) * 1_000_003 + offset)
    grid = InProcessGrid(client_app=secure.client_app_for(run_config), nodes=nodes_for(execution),
                         run_config=run_config,
                         run_id=flower_run_id(execution), observer=observer, round_offset=offset)
    grid.initial_arrays = None
    if offset:
        checkpoint = Round.objects.filter(execution=execution, number=offset).exclude(checkpoint="").first()
        with checkpoint.checkpoint.open("rb") as fh:
            grid.initial_arrays = npz_to_arrays(fh.read())
        observer.log(f"Resuming from the checkpoint of round {offset}")
    server_identity(grid.run.run_id)
    flower_logger = logging.getLogger("flwr")
    handler = _FlowerLogHandler(observer)
    flower_logger.addHandler(handler)
    try:
        secure.server_app_for(run_config)(grid, server_context(grid.run.run_id, run_config))
        grid.finish()
    finally:
        flower_logger.removeHandler(handler)


def finish_execution(execution_id, outcome: str, *, error_code: str = "", error_message: str = "",
                     cpu_seconds: float = 0.0) -> str:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.status != ExecutionStatus.RUNNING:
            return execution.status
        execution_transition(execution, outcome)
        execution.finished_at = timezone.now() if outcome != ExecutionStatus.SUSPENDED else None
        execution.error_code = error_code
        execution.error_message = error_message[:5000]
        execution.cpu_seconds += cpu_seconds
        if outcome in (ExecutionStatus.SUSPENDED, ExecutionStatus.STOPPED):
            execution.control = ControlRequest.NONE
        execution.save()
        ExecutionLog.objects.create(execution=execution, timestamp=timezone.now(),
                                    level="ERROR" if error_message else "INFO",
                                    message=f"Execution {outcome}" + (f": {error_message}" if error_message else ""))
        name = {ExecutionStatus.COMPLETED: "execution.completed", ExecutionStatus.FAILED: "execution.failed",
                ExecutionStatus.STOPPED: "execution.stopped", ExecutionStatus.SUSPENDED: "execution.suspended"}[outcome]
        broadcast_on_commit(name, events.execution_data(execution), events.audience(execution))
        broadcast_on_commit("training_update", events.training_update(execution), events.audience(execution))
        from budgets.services import execution_cost_book_on_commit  # the compute cost, booked once this commits
        execution_cost_book_on_commit(execution_id=execution.pk)
        if execution.transport == Transport.DEVICE and outcome != ExecutionStatus.COMPLETED:
            from nodes.protocol.rounds import discard_open_rounds  # a reaped worker left its round open

            transaction.on_commit(lambda: discard_open_rounds(execution.pk))
    return outcome


def stale_cutoff():
    return timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT_SECONDS)
