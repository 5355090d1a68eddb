"""Device executions driven end to end: the worker's rounds (``drive_device`` through
``run_execution``) and simulated devices that train the built-in model on their own partition and
speak seed 002's REST protocol over loopback HTTP (pytest-django's live server), with signed updates.

The live server shares the test's in-memory SQLite connection between threads, which is safe for
one user at a time only. So the devices' requests and the worker take turns: the worker holds a lock
except while it waits between two looks at its open round (``rounds.pause``), and each device takes
the lock for the duration of one HTTP request (its training happens outside it). Everything else is
the production path: real HTTP, real ingestion, real aggregation and evaluation.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
import requests
from django.db.models import F

from accounts import services as account_services
from accounts.tests.factories import UserFactory
from core.models import Event
from nodes.choices import NodeStatus
from nodes.models import DeviceModel, DeviceRound, DeviceUpdate, Node
from nodes.protocol import rounds
from nodes.services import nodes_mark_offline
from nodes.tests.protocol.conftest import Device
from projects.tests.factories import ProjectFactory
from training import services
from training.choices import ExecutionStatus
from training.engine import builtin_app
from training.models import ExecutionLog, ModelVersion, Round, RoundClient
from training.runner import npz_to_arrays
from wia_fl import wire


class _Response:
    def __init__(self, response: requests.Response):
        self.raw = response
        self.status_code = response.status_code
        self.content = response.content

    def json(self):
        return self.raw.json()

    def __getitem__(self, name):
        return self.raw.headers[name]


class HttpTransport:
    """Real HTTP to the live server, one request at a time under ``lock``."""

    def __init__(self, base_url: str, lock: threading.Lock):
        self.base_url = base_url
        self.lock = lock
        self.session = requests.Session()

    def request(self, method, path, *, body=None, json_body=None, headers=None):
        with self.lock:
            response = self.session.request(method.upper(), self.base_url + path, data=body, json=json_body,
                                            headers=headers, timeout=60)
        return _Response(response)


class SimulatedDevice(threading.Thread):
    """Registers, then works every round it is offered until the execution is completed: download the
    global model (checking its checksum), train on its partition, post the signed update."""

    def __init__(self, index: int, transport: HttpTransport, api_key: str, *, quit_after_round: int | None = None):
        super().__init__(daemon=True, name=f"device-{index}")
        self.index = index
        self.device = Device(f"sim-device-{index}", transport=transport)
        self.api_key = api_key
        self.quit_after_round = quit_after_round
        self.rounds_done: list[int] = []
        self.error: BaseException | None = None
        self.final: dict | None = None

    def run(self):
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self):
        response = self.device.register(self.api_key)
        assert response.status_code == 201, response.content
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            info = self.device.current().json()["data"]
            if info["status"] == "completed":
                self.final = info
                return
            if info["status"] == "active" and not info["update_submitted"]:
                self._train(info)
                self.rounds_done.append(info["round_number"])
                if self.quit_after_round is not None and info["round_number"] >= self.quit_after_round:
                    return  # the device goes away without a word
            time.sleep(0.02)
        raise TimeoutError(f"device {self.index} saw no completion")

    def _train(self, info: dict):
        config = info["training_config"]
        response = self.device.download(info["global_model_url"])
        assert response.status_code == 200, response.content
        assert hashlib.sha256(response.content).hexdigest() == response["X-Model-Checksum"] == info["model_checksum"]
        arrays, meta = wire.decode_model(response.content)
        assert meta["version"] == info["model_version"]
        run_config = {"pollen.dataset": config["dataset"], "pollen.model": config["model_type"],
                      "pollen.seed": config["seed"], "pollen.partition": config["partition"],
                      "pollen.model-params": "{}"}
        (x, y), _ = builtin_app.node_data(run_config, {"partition-id": self.index,
                                                      "num-partitions": config["num_partitions"]})
        model = builtin_app.new_model(run_config)
        model.set_weights(list(arrays.values()))
        metrics = model.fit(x, y, epochs=config["local_epochs"], learning_rate=config["learning_rate"],
                            batch_size=config["batch_size"], seed=info["round_number"] * 100 + self.index,
                            proximal_mu=config.get("proximal_mu", 0.0), global_weights=list(arrays.values()))
        body = wire.encode_update(dict(zip(arrays, model.get_weights())), num_examples=int(len(y)),
                                  metrics={"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])})
        response = self.device.submit(info["round_id"], body)
        assert response.status_code == 202, response.content


@pytest.fixture
def turns(monkeypatch):
    """The lock the worker and the devices take turns with (see the module docstring)."""
    lock = threading.Lock()
    lock.acquire()
    original = rounds.pause
    hooks: list = []

    def pause(seconds):
        lock.release()
        try:
            original(seconds)
        finally:
            lock.acquire()
        for hook in hooks:
            hook()

    monkeypatch.setattr(rounds, "pause", pause)
    yield lock, hooks
    if lock.locked():
        lock.release()


def _run(live_server, turns, django_capture_on_commit_callbacks, *, devices: int, config: dict,
         quit_after: dict | None = None):
    lock, _ = turns
    owner = UserFactory(roles=["ml_engineer"])
    project = ProjectFactory(owner=owner, configuration={})
    _, api_key = account_services.api_key_create(user=owner, name="fleet", scopes=["client:register"])
    fleet = [SimulatedDevice(i, HttpTransport(live_server.url, lock), api_key,
                             quit_after_round=(quit_after or {}).get(i)) for i in range(devices)]
    for device in fleet:
        device.start()
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.execution_start(project=project, user=owner, config={
            "transport": "device", "clients": devices, **config})
    execution.refresh_from_db()
    lock.release()
    for device in fleet:
        device.join(timeout=120)
    lock.acquire()
    for device in fleet:
        assert device.error is None, f"device {device.index}: {device.error!r}"
    return execution, fleet


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("builtin_roles")
def test_three_devices_train_digits_through_five_device_rounds(live_server, turns,
                                                              django_capture_on_commit_callbacks):
    execution, fleet = _run(live_server, turns, django_capture_on_commit_callbacks, devices=3, config={
        "rounds": 5, "model_type": "logistic", "dataset": "digits", "local_epochs": 2, "learning_rate": 0.1,
        "batch_size": 32, "seed": 7, "round_timeout": 120})
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.current_round == 5
    rounds_ = list(Round.objects.filter(execution=execution).order_by("number"))
    assert [r.number for r in rounds_] == [1, 2, 3, 4, 5]
    assert all(r.status == "completed" and r.participants == 3 and r.checkpoint for r in rounds_)
    accuracy = [r.server_metrics["accuracy"] for r in rounds_]
    assert accuracy[-1] > accuracy[0] and accuracy[-1] >= 0.85, accuracy
    assert all(0 < r.train_metrics["train_loss"] for r in rounds_)
    assert RoundClient.objects.filter(round__execution=execution, phase="train").count() == 15
    assert RoundClient.objects.filter(round__execution=execution).values("node_id").distinct().count() == 3
    assert DeviceUpdate.objects.filter(round__execution=execution).count() == 15
    assert list(DeviceRound.objects.filter(execution=execution).values_list("status", flat=True)) == ["completed"] * 5
    # every device took part in every round and saw the execution end on the final model
    final = DeviceModel.objects.get(execution=execution, number=5)
    for device in fleet:
        assert device.rounds_done == [1, 2, 3, 4, 5]
        assert device.final["status"] == "completed" and device.final["model_version"] == final.version
    # the final model the devices download is the round's checkpoint (the registry's version 5)
    with final.file.open("rb") as fh:
        served, meta = wire.decode_model(fh.read())
    with rounds_[-1].checkpoint.open("rb") as fh:
        checkpoint = npz_to_arrays(fh.read()).to_numpy_ndarrays()
    assert meta["round"] == 5 and list(served) == ["weight", "bias"]
    for mine, theirs in zip(served.values(), checkpoint):
        np.testing.assert_array_equal(mine, theirs)
    assert ModelVersion.objects.filter(model__execution=execution).count() == 5
    # the events of seed 002 with their device fields
    started = Event.objects.filter(event="round.started", data__execution_id=str(execution.pk))
    assert started.count() == 5 and all(e.data["transport"] == "device" and e.data["round_id"] for e in started)
    aggregated = list(Event.objects.filter(event="model.aggregated", data__execution_id=str(execution.pk)))
    assert len(aggregated) == 5
    assert {e.data["version"] for e in aggregated} == set(
        DeviceModel.objects.filter(execution=execution, number__gte=1).values_list("version", flat=True))
    assert all(e.data["checksum"] and e.data["download_url"].endswith(e.data["version"]) for e in aggregated)
    assert Event.objects.filter(event="client.update_received", data__execution_id=str(execution.pk)).count() == 15
    assert Event.objects.filter(event="round.completed", data__execution_id=str(execution.pk)).count() == 5
    device_groups = {f"node.{d.device.client_id}" for d in fleet}
    assert device_groups <= set(started.order_by("created_at").last().groups)


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("builtin_roles")
@pytest.mark.parametrize("algorithm, params", [("fedmedian", {}), ("fedadam", {"eta": 0.05}),
                                               ("fedprox", {"proximal_mu": 0.01})])
def test_other_strategies_aggregate_device_updates(live_server, turns,
                                                   django_capture_on_commit_callbacks, algorithm, params):
    execution, fleet = _run(live_server, turns, django_capture_on_commit_callbacks, devices=3, config={
        "rounds": 3, "model_type": "logistic", "dataset": "iris", "local_epochs": 3, "learning_rate": 0.2,
        "batch_size": 8, "seed": 1, "algorithm": algorithm, "strategy_params": params})
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    accuracy = [r.server_metrics["accuracy"] for r in Round.objects.filter(execution=execution).order_by("number")]
    assert len(accuracy) == 3 and accuracy[-1] >= accuracy[0], accuracy
    assert all(d.rounds_done == [1, 2, 3] for d in fleet)


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("builtin_roles")
def test_a_device_that_goes_away_does_not_hold_up_the_rounds(live_server, turns,
                                                            django_capture_on_commit_callbacks):
    """Device 2 trains round 1, then disappears. The heartbeat sweep marks it offline and the next
    rounds close as soon as the two others are in, long before their 10-minute deadline."""
    _, hooks = turns

    def sweep():
        # Nodes beat every second here (as node_update sets it, stale after two missed beats), and the
        # scheduled sweep runs at each look at the round.
        Node.objects.exclude(heartbeat_interval_seconds=1).update(
            heartbeat_interval_seconds=1, stale_at=F("last_seen") + timedelta(seconds=2))
        nodes_mark_offline()

    hooks.append(sweep)
    started = time.monotonic()
    execution, fleet = _run(live_server, turns, django_capture_on_commit_callbacks, devices=3, quit_after={2: 1},
                            config={"rounds": 3, "model_type": "logistic", "dataset": "iris", "seed": 2,
                                    "round_timeout": 600})
    assert time.monotonic() - started < 60
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    participants = list(Round.objects.filter(execution=execution).order_by("number").values_list("participants",
                                                                                                 flat=True))
    assert participants == [3, 2, 2]
    gone = Node.objects.get(pk=fleet[2].device.client_id)
    assert gone.status == NodeStatus.OFFLINE
    assert Event.objects.filter(event="client.left", data__client_id=str(gone.pk)).exists()
    assert ExecutionLog.objects.filter(execution=execution, message__contains="closed (offline)").count() == 2
    assert all(Node.objects.get(pk=d.device.client_id).status != NodeStatus.OFFLINE for d in fleet[:2])
