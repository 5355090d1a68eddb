"""seed 001 Training Rounds (rounds, metrics, checkpoints, clients), seed 004 rounds by id, execution
metrics and Training Logs, read from a real run."""

import hashlib
import io
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from projects.tests.factories import ProjectFactory
from training.models import ExecutionLog, Round
from training.tests.api.factories import ExecutionFactory, ExecutionLogFactory, RoundFactory
from training.tests.api.helpers import EXECUTIONS, LOGS, run_execution

pytestmark = pytest.mark.django_db

ROUND_KEYS = {"id", "execution_id", "round_number", "status", "participants", "started_at", "completed_at",
              "duration_seconds", "bytes_sent", "bytes_received", "metrics", "checkpoint"}


@pytest.fixture
def execution(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks)
    assert execution.status == "completed", execution.error_message
    return execution


def _url(execution, suffix=""):
    return f"{EXECUTIONS}/{execution.pk}{suffix}"


# ---- rounds ----------------------------------------------------------------------------------------

def test_rounds_list_each_round_with_its_metrics_and_checkpoint(owner_api, execution):
    body = assert_success(owner_api.get(_url(execution, "/rounds")))
    assert body["pagination"]["total"] == 2
    rounds = body["data"]
    assert [r["round_number"] for r in rounds] == [1, 2]
    for r in rounds:
        assert set(r) == ROUND_KEYS
        assert r["status"] == "completed" and r["participants"] == 3 and r["execution_id"] == str(execution.pk)
        assert r["bytes_sent"] > 0 and r["bytes_received"] > 0 and r["duration_seconds"] > 0
        assert set(r["metrics"]) == {"train", "evaluate", "server"}
        assert 0 <= r["metrics"]["server"]["accuracy"] <= 1 and "eval_loss" in r["metrics"]["evaluate"]
        assert r["checkpoint"]["url"] == _url(execution, f"/rounds/{r['round_number']}/checkpoint")
        assert len(r["checkpoint"]["checksum_sha256"]) == 64


def test_one_round_and_its_metrics(owner_api, execution):
    detail = assert_success(owner_api.get(_url(execution, "/rounds/2")))["data"]
    assert detail["round_number"] == 2 and set(detail) == ROUND_KEYS

    metrics = assert_success(owner_api.get(_url(execution, "/rounds/2/metrics/")))["data"]
    assert metrics["round_number"] == 2 and metrics["execution_id"] == str(execution.pk)
    assert metrics["server"] == detail["metrics"]["server"]
    assert sorted(c["phase"] for c in metrics["clients"]) == ["evaluate"] * 3 + ["train"] * 3
    assert all(c["num_examples"] > 0 for c in metrics["clients"])

    assert_error(owner_api.get(_url(execution, "/rounds/3")), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(_url(execution, "/rounds/3/metrics")), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(_url(execution, "/rounds/99999999999999999999999")), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(f"{EXECUTIONS}/rounds/99999999999999999999999"), 404, "RESOURCE_NOT_FOUND")


def test_the_participating_clients_of_a_round(owner_api, execution):
    body = assert_success(owner_api.get(_url(execution, "/rounds/1/clients")))
    clients = body["data"]
    assert body["pagination"]["total"] == 6
    train = [c for c in clients if c["phase"] == "train"]
    assert sorted(c["node_id"] for c in train) == [1, 2, 3]
    assert sorted(c["partition_id"] for c in train) == [0, 1, 2]
    assert all(c["error"] == "" and c["bytes_up"] > 0 and "train_loss" in c["metrics"] for c in train)


def test_a_checkpoint_downloads_as_a_valid_npz_with_its_checksum(owner_api, execution):
    response = owner_api.get(_url(execution, "/rounds/2/checkpoint"))
    assert response.status_code == 200
    payload = b"".join(response.streaming_content)
    assert response["Content-Type"] == "application/octet-stream"
    assert "attachment" in response["Content-Disposition"] and ".npz" in response["Content-Disposition"]
    stored = Round.objects.get(execution=execution, number=2)
    assert response["X-Checksum-SHA256"] == hashlib.sha256(payload).hexdigest() == stored.checkpoint_checksum
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = [npz[name] for name in sorted(npz.files)]
    assert arrays[0].shape == (4, 3)  # iris: four features, three classes
    assert all(np.isfinite(a).all() for a in arrays)

    # a client that asks for a file gets it
    response = owner_api.get(_url(execution, "/rounds/1/checkpoint"), headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200 and response["X-Checksum-SHA256"] != stored.checkpoint_checksum


def test_a_round_without_a_checkpoint_has_none_to_download(owner_api, project):
    execution = ExecutionFactory(project=project, status="failed")
    RoundFactory(execution=execution, number=1)
    assert_error(owner_api.get(_url(execution, "/rounds/1/checkpoint")), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(_url(execution, "/rounds/2/checkpoint")), 404, "RESOURCE_NOT_FOUND")
    assert assert_success(owner_api.get(_url(execution, "/rounds/1")))["data"]["checkpoint"] is None


def test_rounds_by_their_own_id_seed_004(owner_api, execution):
    round_obj = Round.objects.get(execution=execution, number=1)
    data = assert_success(owner_api.get(f"{EXECUTIONS}/rounds/{round_obj.pk}"))["data"]
    assert data["round_number"] == 1 and data["execution_id"] == str(execution.pk)
    clients = assert_success(owner_api.get(f"{EXECUTIONS}/rounds/{round_obj.pk}/clients"))["data"]
    assert len(clients) == 6
    theirs = RoundFactory(execution=ExecutionFactory())
    assert_error(owner_api.get(f"{EXECUTIONS}/rounds/{theirs.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(f"{EXECUTIONS}/rounds/{theirs.pk}/clients"), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.get(f"{EXECUTIONS}/rounds/999999"), 404, "RESOURCE_NOT_FOUND")


def test_execution_metrics_give_the_curve_round_by_round(owner_api, execution):
    data = assert_success(owner_api.get(_url(execution, "/metrics")))["data"]
    assert data["execution_id"] == str(execution.pk) and data["status"] == "completed"
    assert [p["round_number"] for p in data["rounds"]] == [1, 2]
    assert data["accuracy"] == data["rounds"][-1]["server"]["accuracy"] == data["latest"]["accuracy"]
    assert data["loss"] == data["latest"]["loss"]


# ---- logs ------------------------------------------------------------------------------------------

def test_a_run_leaves_its_logs(owner_api, execution):
    body = assert_success(owner_api.get(_url(execution, "/logs"), {"limit": 100}))
    assert body["pagination"]["total"] == ExecutionLog.objects.filter(execution=execution).count() > 0
    logs = body["data"]
    assert set(logs[0]) == {"id", "execution_id", "timestamp", "level", "round_number", "source", "message", "data"}
    assert [entry["timestamp"] for entry in logs] == sorted(entry["timestamp"] for entry in logs)
    messages = [entry["message"] for entry in logs]
    assert "Round 1 completed" in messages and "Execution completed" in messages

    by_round = assert_success(owner_api.get(_url(execution, "/logs"), {"round": 2}))["data"]
    assert by_round and all(entry["round_number"] == 2 for entry in by_round)


def test_execution_log_filters(owner_api, project):
    execution = ExecutionFactory(project=project)
    now = timezone.now()
    ExecutionLogFactory(execution=execution, level="INFO", message="Round 1 started", round_number=1,
                        timestamp=now - timedelta(minutes=10))
    ExecutionLogFactory(execution=execution, level="WARNING", message="Node 2 failed in train: timeout",
                        round_number=1, source="node-2", timestamp=now - timedelta(minutes=5))
    ExecutionLogFactory(execution=execution, level="ERROR", message="Execution failed: boom",
                        timestamp=now - timedelta(minutes=1))

    def messages(**params):
        return [e["message"] for e in assert_success(owner_api.get(_url(execution, "/logs"), params))["data"]]

    assert messages(level="warning") == ["Node 2 failed in train: timeout"]
    assert messages(level="ERROR") == ["Execution failed: boom"]
    assert messages(round=1) == ["Round 1 started", "Node 2 failed in train: timeout"]
    assert messages(search="FAILED") == ["Node 2 failed in train: timeout", "Execution failed: boom"]
    assert messages(since=(now - timedelta(minutes=6)).isoformat()) == ["Node 2 failed in train: timeout",
                                                                       "Execution failed: boom"]
    assert messages(source="node-2") == ["Node 2 failed in train: timeout"]
    assert messages(round=99999999999999999999999) == []
    assert messages(sort="-timestamp")[0] == "Execution failed: boom"
    assert_error(owner_api.get(_url(execution, "/logs"), {"level": "LOUD"}), 400, "VALIDATION_ERROR")
    assert_error(owner_api.get(_url(execution, "/logs"), {"since": "yesterday"}), 400, "VALIDATION_ERROR")


def test_all_logs_are_those_of_visible_executions_newest_first(owner_api, owner, project):
    mine = ExecutionFactory(project=project)
    shared = ExecutionFactory(project=ProjectFactory(configuration={}))
    shared.project.memberships.create(user=owner, access="read")
    theirs = ExecutionFactory(project=ProjectFactory(owner=UserFactory(), configuration={}))
    now = timezone.now()
    ExecutionLogFactory(execution=mine, message="mine old", timestamp=now - timedelta(minutes=2))
    ExecutionLogFactory(execution=shared, message="shared", timestamp=now - timedelta(minutes=1))
    ExecutionLogFactory(execution=theirs, message="theirs secret", timestamp=now)

    body = assert_success(owner_api.get(LOGS))
    assert [e["message"] for e in body["data"]] == ["shared", "mine old"]
    assert body["pagination"]["total"] == 2
    assert [e["message"] for e in assert_success(owner_api.get(LOGS, {"execution": str(mine.pk)}))["data"]] == [
        "mine old"]

    found = assert_success(owner_api.get(f"{LOGS}/search", {"q": "secret"}))["data"]
    assert found == []
    assert [e["message"] for e in assert_success(owner_api.get(f"{LOGS}/search", {"q": "OLD"}))["data"]] == [
        "mine old"]
    error = assert_error(owner_api.get(f"{LOGS}/search"), 422, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "q"

    by_training = assert_success(owner_api.get(f"{LOGS}/by-training/{shared.pk}"))["data"]
    assert [e["message"] for e in by_training] == ["shared"]
    assert_error(owner_api.get(f"{LOGS}/by-training/{theirs.pk}"), 404, "FL001")
