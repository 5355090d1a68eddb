"""End to end: three devices running the SDK example train a real model through five device rounds.

The platform runs as it is deployed (``live_platform``: uvicorn serving HTTP and the WebSocket, a
Celery worker driving the device execution, SQLite in WAL mode shared by both). The operator starts
the execution through the API; each device is ``examples/device_client/train_on_csv.py`` on its own
CSV partition of digits, with the SDK's ``run()`` loop: two listen on the WebSocket (with the polling
safety net), one polls only. The global model's accuracy, as the server evaluates it on the held-out
split after each round, must improve.
"""

import asyncio
import importlib.util
import json
import sqlite3
import sys

import pytest

from nodes.tests.protocol.live_platform import REPO, LivePlatform

pytestmark = pytest.mark.timeout(300)

ROUNDS = 5
DEVICES = 3


def _example(name: str):
    path = REPO / "examples" / "device_client" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"device_client_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def platform(tmp_path):
    with LivePlatform(tmp_path / "platform") as running:
        yield running


def _stored_events(platform: LivePlatform) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{platform.directory / 'pollen.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("SELECT event, groups FROM core_event ORDER BY created_at").fetchall()


def test_three_sdk_devices_train_through_five_rounds_and_the_model_improves(platform, tmp_path):
    export_partition, train_on_csv = _example("export_partition"), _example("train_on_csv")
    partitions = export_partition.export("digits", DEVICES, tmp_path / "data", seed=0)

    project = platform.api("POST", "projects", json={"name": "Devices"}).json()["data"]["id"]
    clients = [train_on_csv.build_client(platform.url, platform.credentials["device_key"], partitions[i],
                                         f"device-{i}", state_path=tmp_path / f"device-{i}.json",
                                         poll_interval=1.0, use_websocket=i < 2)
               for i in range(DEVICES)]
    response = platform.api("POST", "fl/executions", json={"project_id": project, "config": {
        "transport": "device", "model_type": "logistic", "dataset": "digits", "rounds": ROUNDS,
        "clients": DEVICES, "local_epochs": 1, "learning_rate": 0.01, "batch_size": 32, "seed": 0,
        "round_timeout": 120}})
    assert response.status_code == 202, response.text
    execution_id = response.json()["data"]["id"]

    async def devices():
        # Each run() returns by itself once the execution it trained for has finished.
        await asyncio.wait_for(asyncio.gather(*(client.run() for client in clients)), timeout=180)

    try:
        asyncio.run(devices())
    except BaseException:
        print(platform.log_tail())
        raise

    execution = platform.api("GET", f"fl/executions/{execution_id}").json()["data"]
    assert execution["status"] == "completed", (execution, platform.log_tail())
    rounds = sorted(platform.api("GET", f"fl/executions/{execution_id}/rounds").json()["data"],
                    key=lambda r: r["round_number"])
    assert [r["round_number"] for r in rounds] == list(range(1, ROUNDS + 1))
    assert all(r["status"] == "completed" and r["participants"] == DEVICES for r in rounds), rounds
    accuracy = [r["metrics"]["server"]["accuracy"] for r in rounds]
    # Ten classes: the initial model is near 0.1; federated training must keep improving it.
    assert accuracy[0] > 0.5, accuracy
    assert accuracy[-1] >= accuracy[0] + 0.03, accuracy
    assert accuracy[-1] >= max(accuracy) - 0.01, accuracy

    for client in clients:
        assert [r.round_number for r in client.rounds_handled] == list(range(1, ROUNDS + 1))
        assert len(client.receipts) == ROUNDS and client.finished_execution["execution_id"] == execution_id
    # Invitations reached the listening devices over the WebSocket; the third one only polled.
    assert any(r.source == "websocket" for c in clients[:2] for r in c.rounds_handled)
    assert {r.source for r in clients[2].rounds_handled} == {"poll"}

    events = _stored_events(platform)
    progress = [groups for name, groups in events if name == "client.training_progress"]
    # The WebSocket devices reported their progress every round (one epoch: one report each).
    assert len(progress) >= 2 * ROUNDS, [name for name, _ in events]
    node_groups = {f"node.{client.client_id}" for client in clients}
    started = [groups for name, groups in events if name == "round.started"]
    # From round 2 on every device is assigned to the execution, so the round's event reaches its node.
    assert len(started) == ROUNDS and all(node_groups <= set(json.loads(g)) for g in started[1:])
