"""The model registry: versions published by real runs, downloads, rollback, evaluation, training,
permissions and visibility (seed 004 Model Management under /fl/models, Model Operations under /models)."""

import hashlib
import io

import numpy as np
import onnx
import pytest
import torch
from django.db import connection
from django.test.utils import CaptureQueriesContext
from onnx.reference import ReferenceEvaluator

from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import ALL_ROLES, assert_error, assert_success
from core.models import Event
from core.permissions import has_permission
from projects.tests.factories import ProjectFactory, ProjectMemberFactory, ProjectUploadFactory
from training.api.registry_views import READ, WRITE
from training.choices import ExecutionStatus
from training.engine.datasets import load_dataset
from training.engine.models import build_model
from training.models import Execution, ExecutionLog, ModelEvaluation, ModelVersion, RegisteredModel, Round
from training.registry import publish_round, services, version_publish
from training.tests.api.factories import ExecutionFactory, RoundFactory, store_checkpoint
from training.tests.api.helpers import API, run_execution

pytestmark = pytest.mark.django_db

FL_MODELS = f"{API}/fl/models"
MODELS = f"{API}/models"


@pytest.fixture
def trained(owner_api, project, django_capture_on_commit_callbacks) -> RegisteredModel:
    """The model of a real run: logistic regression on iris over three nodes, two rounds."""
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks, rounds=2)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    return RegisteredModel.objects.get(execution=execution)


def _weights(response) -> list[np.ndarray]:
    with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]


def _stored_model(project, *, model_type="logistic", dataset="iris", rounds=2, arrays=None, **execution_fields):
    """A registered model with versions over stored checkpoints, without a run."""
    execution = ExecutionFactory(project=project, model_type=model_type, dataset=dataset, total_rounds=rounds,
                                 status=ExecutionStatus.COMPLETED, **execution_fields)
    for number in range(1, rounds + 1):
        store_checkpoint(RoundFactory(execution=execution, number=number),
                         arrays or [np.full((4, 3), number, dtype=np.float32), np.zeros(3, dtype=np.float32)])
    return services.model_register(execution=execution, user=project.owner)


# ---- publishing ------------------------------------------------------------------------------------

def test_a_run_publishes_one_version_per_round(owner_api, trained):
    execution = trained.execution
    rounds = list(Round.objects.filter(execution=execution).order_by("number"))
    model = assert_success(owner_api.get(f"{FL_MODELS}/{trained.pk}"))["data"]
    assert model["execution_id"] == str(execution.pk) and model["project_id"] == str(execution.project_id)
    assert (model["model_type"], model["algorithm"], model["dataset"]) == ("logistic", "fedavg", "iris")
    assert model["versions_count"] == 2 and model["latest_version"] == 2 and model["pinned"] is False
    assert model["current_version"]["version"] == 2
    assert model["current_version"]["accuracy"] == rounds[1].server_metrics["accuracy"]
    assert model["formats"] == ["npz", "pt", "onnx"]

    versions = assert_success(owner_api.get(f"{FL_MODELS}/{trained.pk}/versions"))["data"]
    # No later round could catch the last one up: its checkpoint was there when its round ended.
    assert [v["version"] for v in versions] == [2, 1]
    for version, round_obj in zip(versions, reversed(rounds), strict=True):
        assert version["round_number"] == round_obj.number and version["status"] == "published"
        assert version["checksum_sha256"] == round_obj.checkpoint_checksum
        assert version["metrics"]["server"] == round_obj.server_metrics and version["metrics"]["train"]
        assert version["size_bytes"] == round_obj.checkpoint.size
        assert {d["format"] for d in version["downloads"]} == {"npz", "pt", "onnx"}
    assert [v["is_current"] for v in versions] == [True, False]
    assert assert_success(owner_api.get(f"{MODELS}/{trained.pk}/versions"))["data"] == versions


def test_publishing_is_idempotent_and_aggregate_republishes_what_is_missing(owner_api, trained):
    last = Round.objects.get(execution=trained.execution, number=2)
    before = list(ModelVersion.objects.order_by("number").values_list("pk", "checksum", "updated_at"))
    assert version_publish(last).number == 2
    assert list(ModelVersion.objects.order_by("number").values_list("pk", "checksum", "updated_at")) == before

    ModelVersion.objects.filter(model=trained, number=1).delete()
    body = assert_success(owner_api.post(f"{FL_MODELS}/{trained.pk}/aggregate"))["data"]
    assert body["published"] == 1 and [v["version"] for v in body["versions"]] == [2, 1]
    body = assert_success(owner_api.post(f"{FL_MODELS}/{trained.pk}/aggregate"))["data"]
    assert body["published"] == 0 and body["model"]["current_version"]["version"] == 2


def test_an_uploaded_apps_rounds_are_published_too(owner, project, owner_api, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from projects import services as project_services
    from projects.management.commands.seed_demo import demo_app_zip
    from training import services as execution_services

    project_services.project_upload(project=project, uploaded_by=owner, file=SimpleUploadedFile(
        "app.zip", demo_app_zip(), content_type="application/zip"))
    with django_capture_on_commit_callbacks(execute=True):
        execution = execution_services.execution_start(project=project, user=owner, config={"rounds": 2, "clients": 2})
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    model = RegisteredModel.objects.get(execution=execution)
    assert model.model_type == "flower_app" and model.current_version.number == 2
    checksums = dict(Round.objects.filter(execution=execution).values_list("number", "checkpoint_checksum"))
    assert dict(model.versions.values_list("number", "checksum")) == checksums
    response = owner_api.get(f"{FL_MODELS}/{model.pk}/download", {"format": "pt"})
    assert list(torch.load(io.BytesIO(response.content), weights_only=True))[0] == "arr_0"
    assert_error(owner_api.get(f"{FL_MODELS}/{model.pk}/download", {"format": "onnx"}), 422, "INVALID_MODEL_FORMAT")
    assert_error(owner_api.post(f"{MODELS}/{model.pk}/evaluate", {"dataset": "iris"}), 422, "FL006")


def test_a_round_whose_checkpoint_came_late_is_published_with_the_next(project):
    execution = ExecutionFactory(project=project, total_rounds=3)
    first = RoundFactory(execution=execution, number=1)
    assert version_publish(first) is None  # no checkpoint yet
    store_checkpoint(first, [np.ones((4, 3), dtype=np.float32), np.zeros(3, dtype=np.float32)])
    second = RoundFactory(execution=execution, number=2)
    store_checkpoint(second, [np.ones((4, 3), dtype=np.float32), np.ones(3, dtype=np.float32)])
    assert version_publish(second).number == 2
    model = RegisteredModel.objects.get(execution=execution)
    assert sorted(model.versions.values_list("number", flat=True)) == [1, 2] and model.current_version.number == 2


def test_a_registry_failure_does_not_fail_the_run(monkeypatch, project, caplog):
    def broken(round_obj):
        raise RuntimeError("registry down")

    monkeypatch.setattr("training.registry.services.version_publish", broken)
    execution = ExecutionFactory(project=project)
    RoundFactory(execution=execution, number=1)
    assert publish_round(execution, 1) is None
    assert "Could not publish round 1" in caplog.text


# ---- downloads ---------------------------------------------------------------------------------------

def test_npz_download_is_the_checkpoint_with_checksum_and_etag(owner_api, trained):
    round_2 = Round.objects.get(execution=trained.execution, number=2)
    response = owner_api.get(f"{FL_MODELS}/{trained.pk}/download")
    assert response.status_code == 200
    with round_2.checkpoint.open("rb") as fh:
        assert response.content == fh.read()
    digest = hashlib.sha256(response.content).hexdigest()
    assert response["X-Checksum-SHA256"] == digest == round_2.checkpoint_checksum
    assert response["ETag"] == f'"{digest}"' and response["X-Model-Version"] == "2"
    assert response["Content-Disposition"] == f'attachment; filename="{trained.pk}-v0002.npz"'
    unchanged = owner_api.get(f"{FL_MODELS}/{trained.pk}/download", headers={"If-None-Match": f'"{digest}"'})
    assert unchanged.status_code == 304 and unchanged.content == b""

    older = owner_api.get(f"{MODELS}/{trained.pk}/download", {"version": 1, "format": "npz"})
    assert older["X-Checksum-SHA256"] == Round.objects.get(execution=trained.execution, number=1).checkpoint_checksum
    assert older.content != response.content


def test_pt_and_onnx_downloads_compute_the_models_predictions(owner_api, trained):
    weights = _weights(owner_api.get(f"{FL_MODELS}/{trained.pk}/download"))
    dataset = load_dataset("iris", seed=0)
    model = build_model("logistic", dataset)
    model.set_weights(weights)

    for fmt in ("pt", "pytorch"):
        response = owner_api.get(f"{FL_MODELS}/{trained.pk}/download", {"format": fmt})
        assert response.status_code == 200 and response["Content-Disposition"].endswith('.pt"')
        assert response["X-Checksum-SHA256"] == hashlib.sha256(response.content).hexdigest()
        state = torch.load(io.BytesIO(response.content), weights_only=True)
        np.testing.assert_array_equal(state["weight"].numpy(), weights[0])
        np.testing.assert_array_equal(state["bias"].numpy(), weights[1])

    response = owner_api.get(f"{FL_MODELS}/{trained.pk}/download", {"format": "onnx"}, headers={"Accept": "text/html"})
    assert response.status_code == 200 and response["Content-Disposition"].endswith('.onnx"')
    graph = onnx.load_from_string(response.content)
    onnx.checker.check_model(graph)
    probabilities = ReferenceEvaluator(graph).run(None, {"input": dataset.x_test})[0]
    np.testing.assert_allclose(probabilities, model.predict_proba(dataset.x_test), rtol=1e-4, atol=1e-6)
    accuracy = float((probabilities.argmax(axis=1) == dataset.y_test).mean())
    server = Round.objects.get(execution=trained.execution, number=2).server_metrics
    assert accuracy == pytest.approx(server["accuracy"])


@pytest.mark.parametrize("fmt", ["h5", "tensorflow", "savedmodel", "keras", "<script>"])
def test_unsupported_formats_are_422_naming_the_supported_ones(owner_api, trained, fmt):
    body = assert_error(owner_api.get(f"{FL_MODELS}/{trained.pk}/download", {"format": fmt}), 422,
                        "INVALID_MODEL_FORMAT")
    assert body["error"]["details"]["supported"] == ["npz", "pt", "onnx"]
    assert "npz, pt, onnx" in body["error"]["message"]


def test_kmeans_and_uploaded_apps_have_no_onnx(owner_api, project):
    kmeans = _stored_model(project, model_type="kmeans", arrays=[np.zeros((3, 4), dtype=np.float32)])
    body = assert_error(owner_api.get(f"{FL_MODELS}/{kmeans.pk}/download", {"format": "onnx"}), 422,
                        "INVALID_MODEL_FORMAT")
    assert body["error"]["details"]["supported"] == ["npz", "pt"]
    state = torch.load(io.BytesIO(owner_api.get(f"{FL_MODELS}/{kmeans.pk}/download", {"format": "pt"}).content),
                       weights_only=True)
    assert list(state) == ["centroids"]

    app = _stored_model(project, model_type="flower_app", dataset="", upload=ProjectUploadFactory(project=project))
    assert_error(owner_api.get(f"{FL_MODELS}/{app.pk}/download", {"format": "onnx"}), 422, "INVALID_MODEL_FORMAT")
    assert owner_api.get(f"{FL_MODELS}/{app.pk}/download", {"format": "pt"}).status_code == 200


@pytest.mark.parametrize("version", ["abc", "0", "-1", "1.5", "\u00b2", "9" * 40])
def test_bad_download_versions(owner_api, trained, version):
    assert_error(owner_api.get(f"{FL_MODELS}/{trained.pk}/download", {"version": version}), 422, "VALIDATION_ERROR")
    assert_error(owner_api.get(f"{FL_MODELS}/{trained.pk}/download", {"version": 99}), 404, "RESOURCE_NOT_FOUND")


# ---- the model -------------------------------------------------------------------------------------

def test_register_update_and_delete_leave_the_execution_alone(owner_api, trained):
    execution = trained.execution
    assert_error(owner_api.post(MODELS, {"executionId": str(execution.pk)}), 409, "RESOURCE_CONFLICT")

    body = assert_success(owner_api.patch(f"{MODELS}/{trained.pk}", {"description": "iris, fedavg"}))["data"]
    assert body["description"] == "iris, fedavg" and body["name"] == trained.name
    body = assert_success(owner_api.put(f"{MODELS}/{trained.pk}", {"name": "Iris classifier"}))["data"]
    assert body["name"] == "Iris classifier"
    assert_error(owner_api.put(f"{MODELS}/{trained.pk}", {"description": "no name"}), 422, "VALIDATION_ERROR")
    assert_error(owner_api.put(f"{MODELS}/{trained.pk}", {"name": "   "}), 422, "VALIDATION_ERROR")

    response = owner_api.delete(f"{MODELS}/{trained.pk}")
    assert response.status_code == 204
    assert_error(owner_api.get(f"{MODELS}/{trained.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert Execution.objects.filter(pk=execution.pk).exists()
    assert Round.objects.filter(execution=execution).exclude(checkpoint="").count() == 2

    body = assert_success(owner_api.post(FL_MODELS, {"execution_id": str(execution.pk), "name": "Again",
                                                     "description": "registered by hand"}), 201)["data"]
    assert body["name"] == "Again" and body["versions_count"] == 2 and body["current_version"]["version"] == 2


@pytest.mark.parametrize("body", [{}, {"executionId": "nope"}, {"execution_id": ["x"]}, [], "x"])
def test_register_bad_input(owner_api, body):
    assert_error(owner_api.post(MODELS, body), 422, "VALIDATION_ERROR")


def test_register_an_unknown_or_someone_elses_execution(owner_api):
    theirs = ExecutionFactory(project=ProjectFactory(owner=UserFactory(), configuration={}))
    assert_error(owner_api.post(MODELS, {"executionId": str(theirs.pk)}), 404, "FL001")
    assert not RegisteredModel.objects.exists()


def test_list_filters_search_and_sort(owner_api, project, trained):
    _stored_model(project, model_type="kmeans", arrays=[np.zeros((3, 4), dtype=np.float32)])
    RegisteredModel.objects.filter(pk=trained.pk).update(name="Zebra", description="iris flowers")

    def names(params):
        return [m["name"] for m in assert_success(owner_api.get(MODELS, params))["data"]]

    assert len(names({})) == 2
    assert names({"model_type": "clustering"}) == names({"modelType": "kmeans"}) != ["Zebra"]
    assert names({"model_type": "classification"}) == ["Zebra"]
    assert names({"search": "FLOWERS"}) == ["Zebra"]
    assert names({"sort": "-name"})[0] == "Zebra"
    assert names({"execution": str(trained.execution_id)}) == ["Zebra"]
    assert names({"execution_status": "completed", "dataset": "iris", "algorithm": "FEDAVG"})
    assert_error(owner_api.get(MODELS, {"execution_status": "bogus"}), 400, "VALIDATION_ERROR")


# ---- versions -------------------------------------------------------------------------------------

def test_version_create_detail_and_update(owner_api, trained):
    ModelVersion.objects.filter(model=trained, number=1).delete()
    base = f"{MODELS}/{trained.pk}/versions"
    body = assert_success(owner_api.post(base, {"round": 1}), 201)["data"]
    assert body["version"] == 1 and body["is_current"] is False
    assert assert_success(owner_api.post(base, {"round": "1"}), 200)["data"]["id"] == body["id"]

    assert assert_success(owner_api.get(f"{base}/1"))["data"]["checksum_sha256"] == body["checksum_sha256"]
    body = assert_success(owner_api.put(f"{base}/1", {"description": "baseline", "tags": ["baseline", "iris"],
                                                      "status": "deprecated"}))["data"]
    assert (body["description"], body["tags"], body["status"]) == ("baseline", ["baseline", "iris"], "deprecated")


@pytest.mark.parametrize("body,status,code", [
    ({"round": 9}, 422, "VALIDATION_ERROR"), ({"round": "abc"}, 422, "VALIDATION_ERROR"),
    ({"round": -1}, 422, "VALIDATION_ERROR"), ({"round": 0}, 422, "VALIDATION_ERROR"),
    ({"round": 1.5}, 422, "VALIDATION_ERROR"), ({"round": True}, 422, "VALIDATION_ERROR"),
    ({}, 422, "VALIDATION_ERROR"), ({"round": 10**30}, 422, "VALIDATION_ERROR"),
])
def test_version_create_bad_rounds(owner_api, trained, body, status, code):
    assert_error(owner_api.post(f"{MODELS}/{trained.pk}/versions", body), status, code)


def test_a_round_without_a_checkpoint_is_not_a_version(owner_api, project):
    model = _stored_model(project, rounds=1)
    RoundFactory(execution=model.execution, number=2, status="collecting")
    assert_error(owner_api.post(f"{MODELS}/{model.pk}/versions", {"round": 2}), 422, "FL006")


@pytest.mark.parametrize("version", ["abc", "0", "99", "1e3", "%20", "%C2%B2", "9" * 40])
def test_unknown_versions_are_404(owner_api, trained, version):
    assert_error(owner_api.get(f"{MODELS}/{trained.pk}/versions/{version}"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("body", [{"status": "bogus"}, {"tags": "not a list"}, {"tags": ["x" * 51]}, [1]])
def test_version_update_bad_input(owner_api, trained, body):
    assert_error(owner_api.put(f"{MODELS}/{trained.pk}/versions/1", body), 422, "VALIDATION_ERROR")


# ---- rollback ----------------------------------------------------------------------------------------

def test_rollback_pins_the_version_and_roll_forward_releases_it(owner_api, owner, trained):
    body = assert_success(owner_api.post(f"{MODELS}/{trained.pk}/rollback", {"version": 1, "reason": "worse"}))["data"]
    assert body["current_version"]["version"] == 1 and body["pinned"] is True and body["rolled_back_at"]
    assert ModelVersion.objects.get(model=trained, number=2).status == "rolled_back"
    event = Event.objects.get(event="model.rolled_back")
    assert event.data["from_version"] == 2 and event.data["to_version"] == 1 and event.data["reason"] == "worse"
    assert f"user.{owner.pk}" in event.groups
    assert ExecutionLog.objects.filter(execution=trained.execution, source="registry",
                                       message__contains="to 1").exists()
    # the current version is what downloads by default
    round_1 = Round.objects.get(execution=trained.execution, number=1)
    assert owner_api.get(f"{MODELS}/{trained.pk}/download")["X-Checksum-SHA256"] == round_1.checkpoint_checksum

    # a new round publishes, but the pinned model stays where it was put
    store_checkpoint(RoundFactory(execution=trained.execution, number=3),
                     [np.zeros((4, 3), dtype=np.float32), np.zeros(3, dtype=np.float32)])
    version_publish(Round.objects.get(execution=trained.execution, number=3))
    trained.refresh_from_db()
    assert trained.current_version.number == 1 and trained.versions.count() == 3

    body = assert_success(owner_api.post(f"{MODELS}/{trained.pk}/rollback", {"version": 3}))["data"]
    assert body["current_version"]["version"] == 3 and body["pinned"] is False
    assert ModelVersion.objects.get(model=trained, number=2).status == "rolled_back"


@pytest.mark.parametrize("body", [{"version": 9}, {"version": "two"}, {"version": 0}, {"version": None}, {}])
def test_rollback_bad_versions(owner_api, trained, body):
    assert_error(owner_api.post(f"{MODELS}/{trained.pk}/rollback", body), 422, "VALIDATION_ERROR")
    trained.refresh_from_db()
    assert trained.current_version.number == 2 and not trained.pinned


# ---- evaluation --------------------------------------------------------------------------------------

def test_evaluate_runs_the_version_on_the_held_out_split(owner_api, trained, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(f"{MODELS}/{trained.pk}/evaluate", {"dataset": "iris"})
    body = assert_success(response, 202)["data"]
    assert body["status"] == "pending" and body["version"] == 2 and body["dataset"] == "iris"
    result = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/evaluations/{body['id']}"))["data"]
    assert result["status"] == "completed" and result["error"] == "" and result["finished_at"]
    server = Round.objects.get(execution=trained.execution, number=2).server_metrics
    # the same weights on the same held-out split the server evaluated: the same numbers
    assert result["metrics"]["accuracy"] == pytest.approx(server["accuracy"])
    assert result["metrics"]["loss"] == pytest.approx(server["loss"])
    assert result["metrics"]["num_examples"] == 30 and 0.5 < result["metrics"]["accuracy"] <= 1.0
    assert Event.objects.filter(event="model.evaluated").exists()

    with django_capture_on_commit_callbacks(execute=True):
        body = assert_success(owner_api.post(f"{MODELS}/{trained.pk}/evaluate", {"version": 1}), 202)["data"]
    first = ModelEvaluation.objects.get(pk=body["id"])
    assert first.version.number == 1 and first.status == "completed"
    assert first.metrics["accuracy"] == pytest.approx(
        Round.objects.get(execution=trained.execution, number=1).server_metrics["accuracy"])

    performance = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/performance"))["data"]
    assert len(performance["evaluations"]) == 2


@pytest.mark.parametrize("body,code", [
    ({"dataset": "wine"}, "FL006"), ({"dataset": "diabetes"}, "FL006"), ({"dataset": "digits"}, "FL006"),
    ({"dataset": "mnist"}, "VALIDATION_ERROR"), ({"dataset": "../../etc"}, "VALIDATION_ERROR"),
    ({"dataset": 12}, "VALIDATION_ERROR"), ({"dataset": ["iris"]}, "VALIDATION_ERROR"),
    ({"version": "abc"}, "VALIDATION_ERROR"), ({"version": 0}, "VALIDATION_ERROR"),
    ({"version": 7}, "VALIDATION_ERROR"), ({"version": -3}, "VALIDATION_ERROR"),
])
def test_evaluate_refuses_before_queueing(owner_api, trained, body, code):
    assert_error(owner_api.post(f"{MODELS}/{trained.pk}/evaluate", body), 422, code)
    assert not ModelEvaluation.objects.exists()


def test_evaluate_needs_a_built_in_model(owner_api, project):
    app = _stored_model(project, model_type="flower_app", dataset="", upload=ProjectUploadFactory(project=project))
    body = assert_error(owner_api.post(f"{MODELS}/{app.pk}/evaluate", {"dataset": "iris"}), 422, "FL006")
    assert "built-in model" in body["error"]["message"]


def test_unknown_evaluations_are_404(owner_api, trained):
    for evaluation_id in ("nope", "00000000-0000-0000-0000-000000000000"):
        assert_error(owner_api.get(f"{MODELS}/{trained.pk}/evaluations/{evaluation_id}"), 404, "RESOURCE_NOT_FOUND")


# ---- training and performance -------------------------------------------------------------------------

def test_training_status_history_and_performance(owner_api, trained):
    status = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/training-status"))["data"]
    assert status["execution_id"] == str(trained.execution_id) and status["status"] == "completed"
    assert status["current_round"] == status["total_rounds"] == 2 and status["completion_percentage"] == 100

    history = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/training-history"))["data"]
    assert [r["round_number"] for r in history] == [1, 2] and all(r["checkpoint"] for r in history)

    rounds = list(Round.objects.filter(execution=trained.execution).order_by("number"))
    performance = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/performance"))["data"]
    assert performance["current_version"] == 2
    assert performance["accuracy"] == rounds[1].server_metrics["accuracy"]
    assert [p["version"] for p in performance["trend"]] == [1, 2]
    loss = [r.server_metrics["loss"] for r in rounds]
    assert performance["change"]["loss"] == pytest.approx(loss[1] - loss[0])
    assert performance["best_version"] in (1, 2)


def test_train_starts_a_new_execution_with_the_same_config(owner_api, trained, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(f"{MODELS}/{trained.pk}/train", {"name": "again", "config": {"rounds": 1}})
    body = assert_success(response, 202)["data"]
    retrained = Execution.objects.get(pk=body["execution_id"])
    assert retrained.pk != trained.execution_id and retrained.name == "again"
    source = trained.execution
    assert (retrained.model_type, retrained.dataset, retrained.algorithm) == (source.model_type, source.dataset,
                                                                               source.algorithm)
    assert retrained.config["clients"] == source.config["clients"] and retrained.total_rounds == 1
    status = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/training-status"))["data"]
    assert status["execution_id"] == str(retrained.pk) and status["status"] == "completed"
    # its round registered a model of its own
    assert RegisteredModel.objects.get(execution=retrained).versions.count() == 1
    assert_error(owner_api.post(f"{MODELS}/{trained.pk}/stop-training"), 409, "RESOURCE_CONFLICT")


def test_training_again_keeps_the_privacy_settings(project):
    from training.config import parse_privacy

    privacy = parse_privacy({"differential_privacy": True, "mode": "client", "noise_multiplier": 0.5, "epsilon": 8})
    model = _stored_model(project, rounds=1, privacy=privacy)
    execution = services.model_train(model=model, user=project.owner)
    assert execution.privacy == privacy and execution.status == ExecutionStatus.PENDING
    model.refresh_from_db()
    assert model.last_training == execution


@pytest.mark.parametrize("body,code", [({"config": {"model_type": "mlp"}}, "FL006"),
                                       ({"config": {"dataset": "wine"}}, "FL006"),
                                       ({"config": {"rounds": 0}}, "VALIDATION_ERROR"),
                                       ({"config": "fast"}, "VALIDATION_ERROR")])
def test_train_bad_config(owner_api, trained, body, code):
    assert_error(owner_api.post(f"{MODELS}/{trained.pk}/train", body), 422, code)
    assert Execution.objects.count() == 1


def test_stop_training_stops_a_waiting_execution(owner_api, project):
    execution = ExecutionFactory(project=project)
    model = services.model_register(execution=execution, user=project.owner)
    body = assert_success(owner_api.post(f"{MODELS}/{model.pk}/stop-training", {"reason": "not needed"}))["data"]
    assert body["status"] == "stopped"
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.STOPPED and execution.control_reason == "not needed"


def test_validation_and_bias_reports(owner_api, trained):
    from training import metrics

    for name, path in (("validation_scores", "validation"), ("bias_report", "bias")):
        compute = getattr(metrics, name)
        body = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/{path}"))["data"]
        assert body["version"] == 2 and body["execution_id"] == str(trained.execution_id)
        assert body["report"] == _json(compute(trained.execution, round_number=2))
        body = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/{path}", {"version": 1}))["data"]
        assert body["version"] == 1
        assert_error(owner_api.get(f"{MODELS}/{trained.pk}/{path}", {"version": "x"}), 422, "VALIDATION_ERROR")
        assert_error(owner_api.get(f"{MODELS}/{trained.pk}/{path}", {"version": 5}), 404, "RESOURCE_NOT_FOUND")
    body = assert_success(owner_api.get(f"{MODELS}/{trained.pk}/bias", {"threshold": "0"}))["data"]
    assert body["report"]["threshold"] == 0.0
    for threshold in ("lots", "-1", "nan"):
        assert_error(owner_api.get(f"{MODELS}/{trained.pk}/bias", {"threshold": threshold}), 422, "VALIDATION_ERROR")


def _json(value):
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


# ---- access ---------------------------------------------------------------------------------------------

def _everything(api, model_id):
    base = f"{MODELS}/{model_id}"
    return [
        api.get(f"{FL_MODELS}/{model_id}"), api.get(f"{FL_MODELS}/{model_id}/versions"),
        api.get(f"{FL_MODELS}/{model_id}/download"), api.post(f"{FL_MODELS}/{model_id}/aggregate"),
        api.get(base), api.put(base, {"name": "mine"}), api.patch(base, {"name": "mine"}), api.delete(base),
        api.get(f"{base}/versions"), api.post(f"{base}/versions", {"round": 1}), api.get(f"{base}/versions/1"),
        api.put(f"{base}/versions/1", {"description": "mine"}), api.post(f"{base}/rollback", {"version": 1}),
        api.post(f"{base}/train"), api.get(f"{base}/training-status"), api.post(f"{base}/stop-training"),
        api.get(f"{base}/training-history"), api.get(f"{base}/performance"), api.get(f"{base}/validation"),
        api.get(f"{base}/bias"), api.post(f"{base}/evaluate", {"dataset": "iris"}),
        api.get(f"{base}/evaluations/00000000-0000-0000-0000-000000000000"), api.get(f"{base}/download"),
    ]


def test_someone_elses_model_is_404_everywhere(owner_api):
    theirs = _stored_model(ProjectFactory(owner=UserFactory(), configuration={}), name="Theirs")
    for response in _everything(owner_api, theirs.pk):
        assert_error(response, 404, "RESOURCE_NOT_FOUND")
    theirs.refresh_from_db()
    assert theirs.name != "mine" and theirs.current_version.number == 2 and not theirs.pinned
    assert assert_success(owner_api.get(MODELS))["data"] == []
    assert assert_success(owner_api.get(FL_MODELS))["data"] == []
    assert Execution.objects.count() == 1 and not ModelEvaluation.objects.exists()


def test_malformed_model_ids_are_404(owner_api):
    for path in (f"{MODELS}/not-a-uuid", f"{FL_MODELS}/1", f"{MODELS}/00000000-0000-0000-0000-000000000000/versions"):
        assert_error(owner_api.get(path), 404, "RESOURCE_NOT_FOUND")


def test_a_read_member_reads_but_does_not_change(api_for):
    model = _stored_model(ProjectFactory(owner=UserFactory(), configuration={}))
    reader = UserFactory(roles=["user"])
    ProjectMemberFactory(project=model.project, user=reader, access="read")
    api = api_for(reader)
    base = f"{MODELS}/{model.pk}"
    assert assert_success(api.get(base))["data"]["id"] == str(model.pk)
    assert api.get(f"{base}/download").status_code == 200
    for response in (api.patch(base, {"name": "x"}), api.delete(base), api.post(f"{base}/rollback", {"version": 1}),
                     api.put(f"{base}/versions/1", {"description": "x"}), api.post(f"{base}/train"),
                     api.post(f"{base}/evaluate", {"dataset": "iris"}), api.post(f"{FL_MODELS}/{model.pk}/aggregate"),
                     api.post(f"{base}/stop-training")):
        assert_error(response, 403, "AUTHORIZATION_FAILED")
    model.refresh_from_db()
    assert not model.pinned and RegisteredModel.objects.count() == 1


@pytest.mark.parametrize("role", ALL_ROLES)
def test_permissions_per_role(api_for, role):
    """Every built-in role as a write member of the project: what its permission strings allow."""
    model = _stored_model(ProjectFactory(owner=UserFactory(), configuration={}))
    user = UserFactory(roles=[role])
    ProjectMemberFactory(project=model.project, user=user, access="write")
    api = api_for(user)
    granted = BUILTIN_ROLES[role]["permissions"]
    can_read = any(has_permission(granted, p) for p in READ)
    can_write = any(has_permission(granted, p) for p in WRITE)
    can_train = any(has_permission(granted, p) for p in ("start:training", "execution:create"))
    if role in ("user", "ml_engineer", "admin", "platform_admin"):
        assert can_read and can_write and can_train
    if role in ("viewer", "analyst"):
        assert not can_write and not can_train

    base = f"{MODELS}/{model.pk}"
    for response in (api.get(MODELS), api.get(base), api.get(f"{base}/versions"), api.get(f"{FL_MODELS}/{model.pk}"),
                     api.get(f"{base}/training-status")):
        assert response.status_code == (200 if can_read else 403), (role, response.content)
    for response in (api.put(f"{base}/versions/1", {"tags": ["checked"]}), api.patch(base, {"description": role}),
                     api.post(f"{base}/rollback", {"version": 1}), api.post(f"{FL_MODELS}/{model.pk}/aggregate")):
        assert response.status_code == (200 if can_write else 403), (role, response.content)
    response = api.post(f"{base}/evaluate", {"dataset": "wine"})  # refused by the check, after the permission
    assert response.status_code == (422 if can_write else 403), (role, response.content)
    response = api.post(f"{base}/train", {"config": {"model_type": "mlp"}})
    assert response.status_code == (422 if can_train else 403), (role, response.content)
    response = api.delete(base)
    assert response.status_code == (204 if can_write else 403), (role, response.content)


def test_anonymous_callers_are_401(api, trained):
    for response in (api.get(MODELS), api.get(f"{FL_MODELS}/{trained.pk}/download"),
                     api.post(f"{MODELS}/{trained.pk}/rollback", {"version": 1})):
        assert_error(response, 401, "AUTHENTICATION_FAILED")


# ---- query counts -----------------------------------------------------------------------------------------

def _count(fetch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = fetch()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _same_count_for_2_and_8(fetch, add_rows):
    add_rows(2)
    fetch()
    small = _count(fetch)
    assert len(fetch().json()["data"]) == 2
    add_rows(6)
    large = _count(fetch)
    assert len(fetch().json()["data"]) == 8
    assert small == large, f"{small} queries for 2 rows, {large} for 8"
    return small


@pytest.mark.parametrize("path,params", [(MODELS, {}), (FL_MODELS, {}),
                                         (MODELS, {"model_type": "classification", "sort": "-latest_version",
                                                   "search": "run"})])
def test_model_lists(owner_api, owner, path, params):
    def add(n):
        for i in range(n):
            # own projects and projects shared with the caller, each from another creator
            project = ProjectFactory(owner=owner, configuration={}) if i % 2 else \
                ProjectMemberFactory(user=owner, project=ProjectFactory(configuration={})).project
            _stored_model(project, rounds=1, created_by=UserFactory())

    queries = _same_count_for_2_and_8(lambda: owner_api.get(path, params), add)
    # authentication, membership ids, count and page
    assert queries <= 5


def test_version_lists(owner_api, project):
    model = _stored_model(project, rounds=0)

    def add(n):
        start = model.versions.count() + 1
        for number in range(start, start + n):
            store_checkpoint(RoundFactory(execution=model.execution, number=number),
                             [np.zeros((4, 3), dtype=np.float32), np.zeros(3, dtype=np.float32)])
        services.model_aggregate(model=model)

    _same_count_for_2_and_8(lambda: owner_api.get(f"{MODELS}/{model.pk}/versions"), add)
