"""The worker side of a device execution: rounds that devices train over seed 002's protocol.

``drive_device(execution, observer)`` runs in the Celery worker that ``training.runner`` gives the
execution, in place of the embedded Flower federation. The model is one of Pollen's built-in models
(``model_type`` on ``dataset``); its initial weights come from the same code the embedded engine
starts from. For every round it:

1. opens the round through the observer (control checks, the ``Round`` row, ``round.started``
   with the device fields) and a ``DeviceRound`` with a deadline and a target number of updates;
2. waits, looking at the database every DEVICE_ROUND_POLL_SECONDS, until the target arrived, the
   deadline passed, every assigned node that has not sent its update is known to be offline
   (``nodes.selectors.offline_node_ids``), or a stop/suspend was asked;
3. closes the round under its row lock (later updates get 409) and aggregates: FedAvg-family
   strategies take the running weighted sum the updates were folded into as they arrived (then the
   strategy's server step), robust ones read the updates kept on disk;
4. evaluates the new model on the data set's held-out split with the model's own code, records the
   participants, writes the checkpoint, publishes the model (registry and device download) and
   broadcasts ``model.aggregated`` and ``round.completed``.

Updates arrive in web processes (``services.device_update_submit``), which fold them into the
round's state under ``DeviceRound.state_dir``; only ids and counters cross the database.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from flwr.app import ArrayRecord

from core.exceptions import ApplicationError
from nodes.models import DeviceModel, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node, device_model_path
from nodes.protocol import events, selectors
from nodes.protocol.aggregate import RunningSum, UpdateStore, is_streaming, server_step
from nodes.selectors import offline_node_ids
from training.choices import ControlRequest, RoundStatus
from training.engine import builtin_app
from training.engine.grid import ClientResult, ExecutionInterrupted
from training.models import Execution, Round, RoundClient
from training.runner import AggregationFailed, ExecutionObserver, run_config_for
from wia_fl import wire

logger = logging.getLogger("pollen.nodes.protocol")

# How often the wait looks for nodes that went offline (a few queries each time).
OFFLINE_CHECK_SECONDS = 1.0


def pause(seconds: float) -> None:
    """The wait between two looks at the round (the one place the worker yields while a round is open)."""
    time.sleep(seconds)


def round_timeout(execution: Execution) -> int:
    return int((execution.config or {}).get("round_timeout") or settings.DEVICE_ROUND_TIMEOUT_SECONDS)


def wire_format() -> str:
    return wire.FORMAT


def stable_node_id(node_id) -> int:
    """A node's uuid as the signed 64-bit integer ``RoundClient.node_id`` holds (stable across rounds)."""
    return uuid.UUID(str(node_id)).int & 0x7FFFFFFFFFFFFFFF


# ---- the model ------------------------------------------------------------------------------------

def tensor_names(model, count: int) -> list[str]:
    """The model's own names for its weight arrays: a torch module's state-dict keys, the numpy
    models' parameter names, else ``arr_<i>`` as in checkpoints."""
    module = getattr(model, "module", None)
    if module is not None and hasattr(module, "state_dict"):
        names = list(module.state_dict().keys())
    else:
        names = {"LogisticRegression": ["weight", "bias"], "LinearRegression": ["weight", "bias"],
                 "KMeans": ["centroids"]}.get(type(model).__name__, [])
    if len(names) != count or len(set(names)) != count or any(n.startswith("__") for n in names):
        names = [f"arr_{i}" for i in range(count)]
    return names


def initial_arrays(execution: Execution, model) -> dict[str, np.ndarray]:
    """The weights round 1 starts from (or the checkpoint a resumed run continues from), named."""
    offset = execution.resume_from_round or 0
    weights = model.get_weights()
    if offset:
        from training.engine.npz import npz_to_arrays

        checkpoint = Round.objects.filter(execution=execution, number=offset).exclude(checkpoint="").first()
        if checkpoint is None:
            raise ApplicationError("FL006", f"There is no checkpoint of round {offset} to resume from")
        with checkpoint.checkpoint.open("rb") as fh:
            weights = npz_to_arrays(fh.read()).to_numpy_ndarrays()
    names = tensor_names(model, len(weights))
    return {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in zip(names, weights)}


def model_version(execution: Execution, number: int) -> str:
    # Never a UUID (the registry owns /models/{uuid}); unique across executions.
    return f"{execution.pk.hex[:12]}.{number}"


def publish_model(execution: Execution, number: int, arrays: dict[str, np.ndarray]) -> DeviceModel:
    """Write ``arrays`` as the device model ``number`` of ``execution`` (wire format, on disk without
    an in-memory copy of the body) and record it with its checksum. Idempotent per number."""
    existing = DeviceModel.objects.filter(execution=execution, number=number).first()
    if existing is not None and existing.file and os.path.exists(existing.file.path):
        return existing
    version = existing.version if existing is not None else model_version(execution, number)
    if existing is None and DeviceModel.objects.filter(version=version).exists():
        version = f"{execution.pk.hex}.{number}"
    row = existing or DeviceModel(execution=execution, number=number, version=version)
    relative = device_model_path(row, "")
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as fh:
        wire.write_model(fh, arrays, version=version, round_number=number)
    digest = hashlib.sha256()
    with open(partial, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    os.replace(partial, path)
    for stale in path.parent.glob(f"{path.name}.*"):  # compressed copies of an earlier file
        stale.unlink(missing_ok=True)
    row.file.name = relative
    row.checksum = digest.hexdigest()
    row.size = path.stat().st_size
    row.tensors = {name: {"shape": list(shape), "dtype": dtype} for name, (shape, dtype) in wire.spec_of(arrays).items()}
    row.save()
    return row


def decode(body, model: DeviceModel) -> wire.Update:
    """The update in ``body``, checked against the tensors of the round's model (422 otherwise).
    A buffer (bytes, an mmap of the spooled body) is viewed in place, without its CRC: the caller
    has checked the body's sha256 and signature. A file object is read (and its CRC checked)."""
    spec = selectors.tensor_spec(model)
    try:
        if hasattr(body, "read") and not isinstance(body, mmap.mmap):
            return wire.decode_update(body, spec=spec)
        return wire.view_update(body, spec=spec)
    except wire.WireFormatError as exc:
        raise ApplicationError("INVALID_MODEL_FORMAT", f"Model update format validation failed: {exc}"[:500],
                               details=exc.details)


def update_weight(execution: Execution, num_examples: int) -> float:
    """How much an update counts: its examples, or 1 each under ``uniform`` weighting."""
    weights = ((execution.config or {}).get("aggregation") or {}).get("weights", "proportional")
    return 1.0 if weights == "uniform" else float(num_examples)


def fold(device_round: DeviceRound, key: str, arrays: dict[str, np.ndarray], weight: float) -> None:
    """Add an accepted update to the round's aggregation state. Call holding the round's row lock."""
    spec = selectors.tensor_spec(device_round.global_model)
    directory = Path(device_round.state_dir)
    if is_streaming(device_round.execution.algorithm):
        RunningSum(directory, spec).fold(arrays, weight)
    else:
        UpdateStore(directory, spec).add(key, arrays)


def evaluate(model, dataset, arrays: dict[str, np.ndarray]) -> dict:
    """The model ``arrays`` on the held-out test split, as the embedded server evaluates it."""
    model.set_weights(list(arrays.values()))
    metrics = {k: v for k, v in builtin_app._float_metrics(model.evaluate(dataset.x_test, dataset.y_test)).items()
               if k != "num_examples"}
    if getattr(model, "task", None) == "classification" and dataset.n_classes:
        metrics.update(builtin_app.class_scores(model, dataset.x_test, dataset.y_test, dataset.n_classes))
    return metrics


# ---- a round ----------------------------------------------------------------------------------------

def _state_dir(round_id) -> Path:
    return Path(settings.MEDIA_ROOT) / "device_rounds" / str(round_id)


def open_round(execution: Execution, observer: ExecutionObserver, number: int, model: DeviceModel,
               base_audience: list[str]) -> DeviceRound:
    """Open round ``number`` from ``model``: the observer's round (which raises ExecutionInterrupted
    for a stop, suspend or reached target) and its DeviceRound, in one commit with ``round.started``,
    addressed to the execution's audience and the devices assigned to it (first inviting the online
    devices the serving rule gives it: ``services.invite_devices``)."""
    from nodes.protocol.services import invite_devices, training_config

    round_id = uuid.uuid4()
    deadline = timezone.now() + timedelta(seconds=round_timeout(execution))
    # Devices that would join this execution on their next poll join now, so that a device that
    # only listens on the WebSocket hears of the round too.
    invited = invite_devices(execution=execution)
    if invited:
        observer.log(f"{len(invited)} device(s) invited to the execution", round_number=number)
    assigned = list(Node.objects.filter(current_execution=execution).values_list("pk", flat=True))
    observer.audience = sorted({*base_audience, *(f"node.{pk}" for pk in assigned)})
    observer.event_data[number] = events.round_started_data(
        round_id=round_id, number=number, model=model, deadline=deadline,
        training_config=training_config(execution, model), model_url=selectors.model_url(model.version))
    state_dir = _state_dir(round_id)
    state_dir.mkdir(parents=True, exist_ok=True)
    target = int((execution.config or {}).get("clients", execution.min_clients))
    try:
        with transaction.atomic():
            observer.before_round(number)
            device_round = DeviceRound.objects.create(
                id=round_id, execution=execution, round=observer.rounds[number], number=number, deadline=deadline,
                target_updates=max(1, target), global_model=model, state_dir=str(state_dir))
    except BaseException:
        shutil.rmtree(state_dir, ignore_errors=True)
        raise
    observer.log(f"Device round {number} open until {deadline:%H:%M:%S} for {target} updates "
                 f"(model {model.version})", round_number=number)
    observer.flush_logs()
    return device_round


def wait_for_updates(execution: Execution, device_round: DeviceRound) -> str:
    """Block until the round should close; returns why: ``target``, ``deadline``, ``offline``, or
    the control request (``stop`` / ``suspend``)."""
    poll = max(0.01, float(settings.DEVICE_ROUND_POLL_SECONDS))
    next_offline_check = 0.0
    while True:
        received = DeviceRound.objects.filter(pk=device_round.pk).values_list("updates_received", flat=True).get()
        if received >= device_round.target_updates:
            return "target"
        control = Execution.objects.filter(pk=execution.pk).values_list("control", flat=True).first()
        if control in (ControlRequest.STOP, ControlRequest.SUSPEND):
            return control
        if timezone.now() >= device_round.deadline:
            return "deadline"
        if time.monotonic() >= next_offline_check:
            next_offline_check = time.monotonic() + OFFLINE_CHECK_SECONDS
            if _only_gone_nodes_missing(execution, device_round):
                return "offline"
        pause(poll)


def _only_gone_nodes_missing(execution: Execution, device_round: DeviceRound) -> bool:
    """True when some assigned nodes have not sent their update and every one of them is known to be
    gone: waiting for the deadline would gain nothing."""
    assigned = set(Node.objects.filter(current_execution=execution).values_list("pk", flat=True))
    missing = assigned - set(DeviceUpdate.objects.filter(round=device_round).values_list("node_id", flat=True))
    return bool(missing) and missing <= offline_node_ids(execution)


def close_round(device_round: DeviceRound, status: str = DeviceRoundStatus.AGGREGATING) -> DeviceRound:
    """Stop taking updates: under the row lock, so that an update being folded either made it in
    before or gets 409 after."""
    with transaction.atomic():
        locked = DeviceRound.objects.select_for_update().select_related("global_model").get(pk=device_round.pk)
        if locked.status == DeviceRoundStatus.OPEN or (
                status == DeviceRoundStatus.FAILED and locked.status != DeviceRoundStatus.COMPLETED):
            locked.status = status
            locked.closed_at = timezone.now()
            locked.save(update_fields=["status", "closed_at", "updated_at"])
        round_status = {DeviceRoundStatus.AGGREGATING: RoundStatus.AGGREGATING}.get(status, RoundStatus.FAILED)
        Round.objects.filter(pk=locked.round_id).update(status=round_status, participants=locked.updates_received)
    return locked


def aggregate(execution: Execution, device_round: DeviceRound, global_arrays: dict[str, np.ndarray],
              updates: list[DeviceUpdate], server_state: dict) -> dict[str, np.ndarray]:
    """The round's new global model: the strategy's server step on the running mean (FedAvg family)
    or its robust aggregate of the stored updates. ``server_state`` carries the server optimiser's
    moments from round to round."""
    spec = selectors.tensor_spec(device_round.global_model)
    directory = Path(device_round.state_dir)
    params = dict(execution.strategy_params or {})
    if is_streaming(execution.algorithm):
        running = RunningSum(directory, spec)
        mean = running.mean(device_round.total_weight)
        running.close()
        new = server_step(execution.algorithm, params, global_arrays, mean, server_state,
                          server_round=device_round.number)
    else:
        new = UpdateStore(directory, spec).aggregate(execution.algorithm, params,
                                                     {str(u.pk): u.weight for u in updates})
    return {name: np.ascontiguousarray(new[name], dtype=np.float32) for name in global_arrays}


def _train_metrics(metrics: dict) -> dict:
    """A device's metrics named as the embedded engine's clients name theirs (``train_loss``)."""
    return {key if key.startswith("train_") else f"train_{key}": value for key, value in metrics.items()}


def _results(device_round: DeviceRound, updates: list[DeviceUpdate], opened_at) -> list[ClientResult]:
    return [ClientResult(node_id=stable_node_id(u.node_id), partition_id=None, phase="train",
                         num_examples=u.num_examples, metrics=_train_metrics(u.metrics),
                         duration_ms=max(0.0, (u.received_at - opened_at).total_seconds() * 1000),
                         bytes_down=device_round.global_model.size, bytes_up=u.size) for u in updates]


def _record_clients(observer: ExecutionObserver, number: int, results: list[ClientResult]) -> None:
    round_obj = observer._round(number)
    observer.results[(number, "train")] = results
    RoundClient.objects.bulk_create(
        [RoundClient(round=round_obj, node_id=r.node_id, partition_id=None, phase=r.phase,
                     num_examples=r.num_examples, metrics=r.metrics, duration_ms=r.duration_ms,
                     bytes_down=r.bytes_down, bytes_up=r.bytes_up) for r in results],
        ignore_conflicts=True)


def _discard(device_round: DeviceRound, status: str) -> None:
    close_round(device_round, status)
    shutil.rmtree(device_round.state_dir, ignore_errors=True)


def discard_open_rounds(execution_id) -> int:
    """Close as failed the rounds an execution left open when it ended without its worker closing
    them (a worker killed mid-round, then reaped): devices get 409 instead of uploading to a round
    nobody will aggregate, and the round's running sum is removed."""
    open_rounds = list(DeviceRound.objects.filter(execution_id=execution_id, status=DeviceRoundStatus.OPEN))
    for device_round in open_rounds:
        _discard(device_round, DeviceRoundStatus.FAILED)
    return len(open_rounds)


# ---- the run ----------------------------------------------------------------------------------------

def _clear_after(execution: Execution, offset: int) -> None:
    """A resumed run redoes the rounds after ``offset``: drop what an earlier attempt left of them."""
    for device_round in DeviceRound.objects.filter(execution=execution, number__gt=offset):
        shutil.rmtree(device_round.state_dir, ignore_errors=True)
        device_round.delete()
    for stale in DeviceModel.objects.filter(execution=execution, number__gt=offset):
        if stale.file:
            for path in Path(stale.file.path).parent.glob(f"{Path(stale.file.path).name}*"):
                path.unlink(missing_ok=True)
        stale.delete()
    for device_round in DeviceRound.objects.filter(execution=execution, status=DeviceRoundStatus.OPEN):
        _discard(device_round, DeviceRoundStatus.FAILED)


def drive_device(execution: Execution, observer: ExecutionObserver) -> None:
    """Run the execution's rounds with devices (see the module docstring). Raises
    ExecutionInterrupted for a stop or suspend, AggregationFailed (FL004) for a round without any
    update."""
    run_config = run_config_for(execution)
    model = builtin_app.new_model(run_config)
    dataset = builtin_app.dataset_for(run_config)
    offset = execution.resume_from_round or 0
    _clear_after(execution, offset)
    arrays = initial_arrays(execution, model)
    current = publish_model(execution, offset, arrays)
    base_audience = list(observer.audience)
    server_state: dict = {}
    observer.log(f"Device execution: {execution.model_type} on {execution.dataset}, {len(arrays)} tensors "
                 f"({sum(a.size for a in arrays.values())} parameters), {execution.algorithm}, "
                 f"format {wire.FORMAT}")
    for number in range(offset + 1, execution.total_rounds + 1):
        device_round = open_round(execution, observer, number, current, base_audience)
        opened_at = device_round.created_at
        try:
            reason = wait_for_updates(execution, device_round)
            if reason in (ControlRequest.STOP, ControlRequest.SUSPEND):
                _discard(device_round, DeviceRoundStatus.FAILED)
                observer.log(f"Device round {number} abandoned: {reason} requested", round_number=number)
                raise ExecutionInterrupted(reason, number - 1)
            device_round = close_round(device_round)
            updates = list(selectors.round_updates(device_round=device_round))
            observer.log(f"Device round {number} closed ({reason}): {len(updates)} of "
                         f"{device_round.target_updates} updates", round_number=number,
                         level="INFO" if updates else "WARNING")
            if not updates:
                raise AggregationFailed(f"No device sent an update in round {number} (closed: {reason}): "
                                        "nothing to aggregate")
            arrays = aggregate(execution, device_round, arrays, updates, server_state)
            metrics = evaluate(model, dataset, arrays)
            _record_clients(observer, number, _results(device_round, updates, opened_at))
            observer.on_server_evaluation(number, ArrayRecord(list(arrays.values())), metrics)
            current = publish_model(execution, number, arrays)
            observer.event_data[number] = events.model_aggregated_data(
                device_round=device_round, model=current, model_url=selectors.model_url(current.version))
            observer.on_round_end(number)
            DeviceRound.objects.filter(pk=device_round.pk).update(status=DeviceRoundStatus.COMPLETED,
                                                                  updated_at=timezone.now())
            shutil.rmtree(device_round.state_dir, ignore_errors=True)
        except BaseException:
            if DeviceRound.objects.filter(pk=device_round.pk).exclude(status=DeviceRoundStatus.COMPLETED).exists():
                _discard(device_round, DeviceRoundStatus.FAILED)
            raise
