"""seed 000 Training Management: POST /training/start, GET /training/jobs/{id}, POST /training/stop/{id}."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from projects.tests.factories import ProjectFactory
from training.choices import ExecutionStatus
from training.engine.models import SUPPORTED_MODELS
from training.models import Execution, Round
from training.tests.api.factories import ExecutionFactory, RoundFactory
from training.tests.api.helpers import API, START, run_execution, start_body

pytestmark = pytest.mark.django_db

# seed 000's request body, as the seed writes it.
SEED_BODY_CONFIG = {"rounds": 10, "clients": 5, "model_type": "cnn", "learning_rate": 0.01, "batch_size": 32}


def _job(job_id):
    return f"{API}/training/jobs/{job_id}"


def _stop(job_id):
    return f"{API}/training/stop/{job_id}"


def test_the_seed_request_body_as_written(owner_api, project):
    response = owner_api.post(START, {"project_id": str(project.pk), "config": SEED_BODY_CONFIG})
    if "cnn" in SUPPORTED_MODELS:
        data = assert_success(response, 202)["data"]
        assert data["status"] == ExecutionStatus.PENDING
        assert {k: data["config"][k] for k in SEED_BODY_CONFIG} == SEED_BODY_CONFIG
    else:
        body = assert_error(response, 422, "VALIDATION_ERROR")
        assert body["error"]["details"]["field"] == "model_type"
        for name in SUPPORTED_MODELS:
            assert name in body["error"]["message"]
        assert not Execution.objects.exists()


def test_start_answers_202_in_the_seed_shape_and_the_job_really_trains(owner_api, project,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(START, start_body(project))
    body = assert_success(response, 202)
    data = body["data"]
    assert set(data) == {"job_id", "status", "created_at", "config"}
    # The response is written before the on-commit work (the run) starts.
    assert data["status"] == ExecutionStatus.PENDING
    assert {k: data["config"][k] for k in ("rounds", "clients", "model_type", "learning_rate", "batch_size")} == {
        "rounds": 2, "clients": 3, "model_type": "logistic", "learning_rate": 0.1, "batch_size": 16}
    assert data["created_at"].endswith("Z")

    execution = Execution.objects.get(pk=data["job_id"])
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.created_by == project.owner

    job = assert_success(owner_api.get(_job(data["job_id"])))["data"]
    assert set(job) >= {"job_id", "status", "progress", "metrics", "started_at", "estimated_completion"}
    assert job["job_id"] == data["job_id"]
    assert job["status"] == "completed"
    assert job["progress"] == {"current_round": 2, "total_rounds": 2, "completion_percentage": 100}
    # accuracy and loss are the server's evaluation of the global model on held-out data
    assert job["metrics"] == {"accuracy": execution.metrics["accuracy"], "loss": execution.metrics["loss"],
                              "clients_participated": 3}
    assert 0 < job["metrics"]["accuracy"] <= 1
    assert job["started_at"] is not None
    assert job["estimated_completion"] is None
    assert job["error"] is None


def test_the_start_response_names_a_substituted_dataset(owner_api, owner):
    project = ProjectFactory(owner=owner, configuration={"model_type": "logistic", "dataset": "mnist"})
    response = owner_api.post(START, {"project_id": str(project.pk), "config": {"rounds": 2, "clients": 3}})
    data = assert_success(response, 202)["data"]
    assert data["config"]["dataset"] == "digits"
    assert len(data["substitutions"]) == 1 and "mnist" in data["substitutions"][0]


def test_a_running_job_estimates_its_completion_from_its_rounds(owner_api, project):
    started = timezone.now() - timedelta(seconds=30)
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING, started_at=started, total_rounds=5,
                                 current_round=2, metrics={"eval_accuracy": 0.7, "eval_loss": 0.9,
                                                           "clients_participated": 3})
    RoundFactory(execution=execution, number=1, duration_seconds=2.0)
    RoundFactory(execution=execution, number=2, duration_seconds=4.0)
    job = assert_success(owner_api.get(_job(execution.pk)))["data"]
    assert job["progress"] == {"current_round": 2, "total_rounds": 5, "completion_percentage": 40}
    # without a server-side evaluation the clients' evaluation stands in
    assert job["metrics"] == {"accuracy": 0.7, "loss": 0.9, "clients_participated": 3}
    expected = started + timedelta(seconds=3.0 * 5)
    assert job["estimated_completion"] == expected.isoformat().replace("+00:00", "Z")


def test_stopping_a_pending_job_stops_it_at_once_and_the_worker_then_leaves_it(
        owner_api, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        job_id = assert_success(owner_api.post(START, start_body(project)), 202)["data"]["job_id"]
    assert len(queued) >= 1

    response = owner_api.post(_stop(job_id), {"reason": "changed my mind"})
    data = assert_success(response, 200)["data"]
    assert set(data) == {"job_id", "status", "stopped_at", "final_metrics"}
    assert data["status"] == "stopped" and data["stopped_at"] is not None
    assert data["final_metrics"] == {"accuracy": None, "loss": None, "rounds_completed": 0}

    for callback in queued:  # the task queued at start now reaches a worker
        callback()
    execution = Execution.objects.get(pk=job_id)
    assert execution.status == ExecutionStatus.STOPPED
    assert execution.control_reason == "changed my mind"
    assert not Round.objects.filter(execution=execution).exists()


def test_stopping_a_running_job_asks_its_worker_and_answers_202(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING, current_round=1,
                                 started_at=timezone.now(), metrics={"accuracy": 0.8, "loss": 0.4})
    data = assert_success(owner_api.post(_stop(execution.pk)), 202)["data"]
    assert data == {"job_id": str(execution.pk), "status": "running", "stopped_at": None,
                    "final_metrics": {"accuracy": 0.8, "loss": 0.4, "rounds_completed": 1}}
    execution.refresh_from_db()
    assert execution.control == "stop" and execution.status == ExecutionStatus.RUNNING


def test_stopping_a_suspended_job_stops_it_at_once(owner_api, project):
    execution = ExecutionFactory(project=project, status=ExecutionStatus.SUSPENDED, current_round=1)
    data = assert_success(owner_api.post(_stop(execution.pk)), 200)["data"]
    assert data["status"] == "stopped" and data["stopped_at"]


@pytest.mark.parametrize("status", [ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.STOPPED])
def test_a_finished_job_cannot_be_stopped(owner_api, project, status):
    execution = ExecutionFactory(project=project, status=status)
    body = assert_error(owner_api.post(_stop(execution.pk)), 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"] == {"from": status, "to": "stopped"}


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
def test_an_unknown_job_is_fl001(owner_api, job_id):
    assert_error(owner_api.get(_job(job_id)), 404, "FL001")
    assert_error(owner_api.post(_stop(job_id)), 404, "FL001")


def test_paths_answer_with_and_without_a_trailing_slash(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks, path=START + "/")
    assert execution.status == ExecutionStatus.COMPLETED
    assert_success(owner_api.get(_job(execution.pk) + "/"))
    assert_error(owner_api.post(_stop(execution.pk) + "/"), 409, "RESOURCE_CONFLICT")


def test_the_training_rate_limit_applies_to_starts_only(owner_api, project, settings, monkeypatch):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "training": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    try:
        first = owner_api.post(START, start_body(project))
        assert_success(first, 202)
        assert first["X-RateLimit-Limit"] == "2"
        assert_success(owner_api.post(f"{API}/fl/executions", start_body(project)), 202)
        assert_error(owner_api.post(START, start_body(project)), 429, "RATE_LIMIT_EXCEEDED")
        assert_error(owner_api.post(f"{API}/fl/executions", start_body(project)), 429, "RATE_LIMIT_EXCEEDED")
        assert Execution.objects.count() == 2
        job = Execution.objects.first()
        assert_success(owner_api.get(_job(job.pk)))  # reading is not a training operation
    finally:
        api_settings.reload()
