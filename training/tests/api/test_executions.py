"""seed 001/004 executions: create, read, rename, cancel, status changes, stop, suspend, resume."""

import uuid

import pytest
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from training.choices import ExecutionStatus
from training.models import Execution, Round
from training.tests.api.factories import ExecutionFactory
from training.tests.api.helpers import EXECUTIONS, queue_execution, run_execution, start_body, tiny_config

pytestmark = pytest.mark.django_db

EXECUTION_KEYS = {"id", "project_id", "project_name", "name", "status", "algorithm", "strategy_params", "model_type",
                  "dataset", "transport", "config", "substitutions", "privacy", "current_round", "total_rounds",
                  "completion_percentage", "min_clients", "participating_clients", "metrics", "control", "error",
                  "created_by_id", "started_at", "finished_at", "created_at", "updated_at"}


def _url(execution, suffix=""):
    return f"{EXECUTIONS}/{execution.pk}{suffix}"


# ---- create ----------------------------------------------------------------------------------------

def test_the_seed_001_body_starts_a_real_run(owner_api, project, django_capture_on_commit_callbacks):
    body = {
        "projectId": str(project.pk), "name": "iris prox", "modelType": "classification", "algorithm": "fedprox",
        "strategyParams": {"proximal_mu": 0.1},
        "config": {"rounds": 2, "clients": 3, "minClients": 2, "localEpochs": 1, "batchSize": 16,
                   "learningRate": 0.1, "dataset": "iris"},
        "privacyConfig": {"differential_privacy": False, "secure_aggregation": False},
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(EXECUTIONS, body)
    data = assert_success(response, 202)["data"]
    assert set(data) == EXECUTION_KEYS
    assert data["status"] == "pending"
    assert data["name"] == "iris prox" and data["project_id"] == str(project.pk)
    assert data["model_type"] == "logistic"  # seed 001's family, trained with its default model
    assert data["algorithm"] == "fedprox" and data["strategy_params"]["proximal_mu"] == 0.1
    assert data["config"]["min_clients"] == 2 and data["config"]["batch_size"] == 16
    assert "substitutions" not in data["config"]

    detail = assert_success(owner_api.get(f"{EXECUTIONS}/{data['id']}"))["data"]
    assert detail["status"] == "completed", detail["error"]
    assert detail["current_round"] == detail["total_rounds"] == 2
    assert detail["completion_percentage"] == 100
    assert detail["participating_clients"] == 3
    assert detail["error"] is None and detail["control"] is None
    assert detail["started_at"] and detail["finished_at"]
    assert Round.objects.filter(execution_id=data["id"]).count() == 2


def test_parameters_may_also_be_given_at_the_top_level(owner_api, project):
    response = owner_api.post(EXECUTIONS, {"project_id": str(project.pk), "name": "flat", **tiny_config(rounds=3)})
    data = assert_success(response, 202)["data"]
    assert data["total_rounds"] == 3 and data["dataset"] == "iris" and data["config"]["clients"] == 3


@pytest.mark.parametrize("body, status, code, field", [
    ({"project_id": None, "config": tiny_config()}, 422, "VALIDATION_ERROR", "project_id"),
    ({"projectId": "xyz", "config": tiny_config()}, 422, "VALIDATION_ERROR", "projectId"),
    ({"config": tiny_config(rounds=0)}, 422, "VALIDATION_ERROR", "rounds"),
    ({"config": tiny_config(learning_rate="fast")}, 422, "VALIDATION_ERROR", "learning_rate"),
    ({"config": tiny_config(dataset="imagenet")}, 422, "VALIDATION_ERROR", "dataset"),
    ({"config": "rounds=2"}, 422, "VALIDATION_ERROR", "config"),
    ({"algorithm": "fedmagic", "config": tiny_config()}, 422, "VALIDATION_ERROR", "algorithm"),
    ({"strategyParams": {"bogus": 1}, "config": tiny_config()}, 422, "VALIDATION_ERROR", "strategy_params.bogus"),
    ({"privacyConfig": {"secure_aggregation": True, "num_shares": 2}, "config": tiny_config()}, 422,
     "VALIDATION_ERROR", "privacy_config.num_shares"),
    ({"privacyConfig": {"secure_aggregation": True}, "config": tiny_config(clients=2, min_clients=2)}, 422,
     "VALIDATION_ERROR", "clients"),
    ({"privacyConfig": {"differential_privacy": True, "noise_multiplier": -1}, "config": tiny_config()}, 422,
     "VALIDATION_ERROR", "privacyConfig.noise_multiplier"),
    ({"config": tiny_config(clients=3, min_clients=5)}, 409, "FL002", "min_clients"),
])
def test_a_parameter_that_cannot_be_used_is_named(owner_api, project, body, status, code, field):
    if "projectId" not in body:
        body = {"project_id": str(project.pk), **body}
    body = {k: v for k, v in body.items() if v is not None}
    error = assert_error(owner_api.post(EXECUTIONS, body), status, code)["error"]
    assert error["details"]["field"] == field, error
    assert not Execution.objects.exists()


def test_differential_privacy_through_the_api_reports_epsilon(owner_api, project, django_capture_on_commit_callbacks):
    body = {"project_id": str(project.pk), "config": tiny_config(),
            "privacyConfig": {"differential_privacy": True, "noise_multiplier": 0.5, "clipping_norm": 2.0,
                              "delta": 1e-5}}
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(EXECUTIONS, body)
    assert response.status_code == 202, response.content
    execution = Execution.objects.get()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.privacy["differential_privacy"]["noise_multiplier"] == 0.5
    assert execution.rounds.order_by("-number").first().server_metrics["epsilon"] > 0


def test_a_body_that_is_not_an_object_is_refused(owner_api):
    response = owner_api.client.post(EXECUTIONS, "[1, 2]", content_type="application/json",
                                     headers=owner_api.headers)
    assert_error(response, 422, "VALIDATION_ERROR")


# ---- read ------------------------------------------------------------------------------------------

def test_list_and_detail_show_the_execution_shape(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.FAILED, error_code="FL003",
                                 error_message="ValueError: boom", current_round=1)
    listed = assert_success(owner_api.get(EXECUTIONS))
    assert listed["pagination"]["total"] == 1
    row = listed["data"][0]
    assert set(row) == EXECUTION_KEYS
    assert row["id"] == str(execution.pk)
    assert row["error"] == {"code": "FL003", "message": "ValueError: boom"}
    assert row["completion_percentage"] == 33
    assert assert_success(owner_api.get(_url(execution) + "/"))["data"] == row


# ---- rename --------------------------------------------------------------------------------------

def test_patch_and_put_change_the_name_only(owner_api, project):
    execution = ExecutionFactory(project=project, name="old")
    data = assert_success(owner_api.patch(_url(execution), {"name": "  new  ", "status": "completed"}))["data"]
    assert data["name"] == "new" and data["status"] == "pending"
    assert assert_success(owner_api.put(_url(execution), {"name": "newer"}))["data"]["name"] == "newer"
    error = assert_error(owner_api.patch(_url(execution), {"name": "x" * 201}), 422, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "name"
    assert_error(owner_api.patch(_url(execution), {}), 422, "VALIDATION_ERROR")


# ---- cancel (DELETE) ---------------------------------------------------------------------------------

def test_delete_cancels_a_pending_execution_at_once(owner_api, project):
    execution = queue_execution(owner_api, project)
    data = assert_success(owner_api.delete(_url(execution)), 200)["data"]
    assert data["status"] == "stopped" and data["finished_at"]
    assert Execution.objects.filter(pk=execution.pk).exists()  # cancelled, not deleted


def test_delete_asks_a_running_execution_to_stop(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING)
    data = assert_success(owner_api.delete(_url(execution)), 202)["data"]
    assert data["status"] == "running" and data["control"] == "stop"


def test_delete_of_a_completed_execution_is_a_conflict(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.COMPLETED)
    assert_error(owner_api.delete(_url(execution)), 409, "RESOURCE_CONFLICT")


# ---- stop, suspend -----------------------------------------------------------------------------------

def test_stop_of_a_running_execution_sets_the_request_for_its_worker(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING, started_at=timezone.now())
    response = owner_api.post(_url(execution, "/stop"), {"reason": "budget", "saveCheckpoint": False})
    data = assert_success(response, 202)["data"]
    assert data["status"] == "running" and data["control"] == "stop"
    execution.refresh_from_db()
    assert execution.control == "stop" and execution.control_reason == "budget"
    assert execution.save_checkpoint_on_stop is False


def test_stop_of_a_pending_execution_is_immediate(owner_api, project):
    execution = queue_execution(owner_api, project)
    data = assert_success(owner_api.post(_url(execution, "/stop")), 200)["data"]
    assert data["status"] == "stopped"


def test_suspend_of_a_running_execution_answers_202(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING)
    data = assert_success(owner_api.post(_url(execution, "/suspend"), {"reason": "night"}), 202)["data"]
    assert data["control"] == "suspend"
    execution.refresh_from_db()
    assert execution.control == "suspend" and execution.control_reason == "night"


@pytest.mark.parametrize("status", [ExecutionStatus.PENDING, ExecutionStatus.SUSPENDED, ExecutionStatus.COMPLETED])
def test_only_a_running_execution_can_be_suspended(owner_api, project, status):
    execution = ExecutionFactory(project=project, status=status)
    assert_error(owner_api.post(_url(execution, "/suspend")), 409, "RESOURCE_CONFLICT")


# ---- PATCH /status ---------------------------------------------------------------------------------

def test_status_patch_stops_suspends_and_resumes(owner_api, project):
    running = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING)
    assert assert_success(owner_api.patch(_url(running, "/status"), {"status": "suspended"}), 202)["data"][
        "control"] == "suspend"
    assert assert_success(owner_api.patch(_url(running, "/status"), {"status": "stopped"}), 202)["data"][
        "control"] == "stop"

    suspended = ExecutionFactory(project=project, status=ExecutionStatus.SUSPENDED)
    data = assert_success(owner_api.patch(_url(suspended, "/status"), {"status": "running"}), 202)["data"]
    assert data["status"] == "pending"  # queued again; a worker makes it running

    pending = ExecutionFactory(project=project, status=ExecutionStatus.PENDING)
    assert assert_success(owner_api.patch(_url(pending, "/status"), {"status": "stopped"}), 200)["data"][
        "status"] == "stopped"


def test_status_patch_refuses_what_the_lifecycle_does_not_allow(owner_api, project):
    pending = ExecutionFactory(project=project, status=ExecutionStatus.PENDING)
    body = assert_error(owner_api.patch(_url(pending, "/status"), {"status": "running"}), 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"] == {"from": "pending", "to": "pending"}
    completed = ExecutionFactory(project=project, status=ExecutionStatus.COMPLETED)
    assert_error(owner_api.patch(_url(completed, "/status"), {"status": "running"}), 409, "RESOURCE_CONFLICT")
    error = assert_error(owner_api.patch(_url(completed, "/status"), {"status": "completed"}), 422,
                         "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "status"


# ---- resume ----------------------------------------------------------------------------------------

def test_resume_from_a_round_with_more_rounds_trains_the_rest(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.COMPLETED
    first = Round.objects.get(execution=execution, number=1)
    # As a stop after round 2 would have left it.
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.STOPPED)
    resumed_at = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(_url(execution, "/resume"), {"fromRound": 1, "adjustConfig": {"numRounds": 3}})
    data = assert_success(response, 202)["data"]
    assert data["status"] == "pending" and data["total_rounds"] == 3 and data["current_round"] == 1

    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.current_round == 3 and execution.total_rounds == 3 and execution.config["rounds"] == 3
    rounds = list(Round.objects.filter(execution=execution).order_by("number"))
    assert [r.number for r in rounds] == [1, 2, 3]
    assert all(r.status == "completed" and r.checkpoint and r.participants == 3 for r in rounds)
    # round 1 is the one resumed from; 2 and 3 were trained again after it
    assert rounds[0].checkpoint_checksum == first.checkpoint_checksum and rounds[0].started_at < resumed_at
    assert all(r.started_at >= resumed_at for r in rounds[1:])
    assert execution.logs.filter(message__icontains="resuming from the checkpoint of round 1").exists()


def test_resume_continues_a_suspended_execution_from_its_last_checkpoint(owner_api, project,
                                                                         django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks, rounds=3)
    # As a suspend after round 2 would have left it.
    Round.objects.filter(execution=execution, number=3).delete()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.SUSPENDED, current_round=2,
                                                     finished_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.patch(_url(execution, "/status"), {"status": "running"})
    assert_success(response, 202)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED and execution.current_round == 3
    assert list(Round.objects.filter(execution=execution).values_list("number", flat=True)) == [1, 2, 3]


def test_resume_needs_a_checkpoint_of_the_round_it_names(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.STOPPED, total_rounds=3)
    error = assert_error(owner_api.post(_url(execution, "/resume"), {"fromRound": 2}), 422, "FL006")["error"]
    assert error["details"]["field"] == "fromRound"
    error = assert_error(owner_api.post(_url(execution, "/resume"), {"fromRound": -1}), 422,
                         "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "fromRound"
    error = assert_error(owner_api.post(_url(execution, "/resume"), {"adjustConfig": {"rounds": 0}}), 422,
                         "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "rounds"
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.STOPPED


@pytest.mark.parametrize("status", [ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED])
def test_resume_of_an_execution_that_is_not_paused_or_ended_is_a_conflict(owner_api, project, status):
    execution = ExecutionFactory(project=project, status=status)
    assert_error(owner_api.post(_url(execution, "/resume")), 409, "RESOURCE_CONFLICT")


@pytest.mark.parametrize("suffix, method", [("", "get"), ("", "patch"), ("", "delete"), ("/stop", "post"),
                                            ("/suspend", "post"), ("/resume", "post"), ("/status", "patch"),
                                            ("/rounds", "get"), ("/rounds/1", "get"), ("/logs", "get"),
                                            ("/metrics", "get"), ("/rounds/1/checkpoint", "get")])
@pytest.mark.parametrize("execution_id", [uuid.uuid4, lambda: "not-a-uuid"])
def test_an_unknown_execution_is_fl001_everywhere(owner_api, suffix, method, execution_id):
    path = f"{EXECUTIONS}/{execution_id()}{suffix}"
    body = {"status": "stopped", "name": "x"} if method in ("patch", "post") else None
    response = getattr(owner_api, method)(path, body) if body is not None else getattr(owner_api, method)(path)
    assert_error(response, 404, "FL001")


def test_start_on_a_project_that_does_not_exist_is_404(owner_api):
    body = start_body(type("P", (), {"pk": uuid.uuid4()})())
    assert_error(owner_api.post(EXECUTIONS, body), 404, "RESOURCE_NOT_FOUND")
