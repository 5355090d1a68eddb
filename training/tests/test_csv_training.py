"""Training on a project's uploaded CSV data set: uploaded through the API, started through the API,
trained for real on the embedded federation (eager Celery), checked against stated thresholds."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.tests.fixtures import access_token_for, assert_error
from projects.models import ProjectDataset
from projects.tests.csvdata import csv_bytes, sklearn_csv
from projects.tests.factories import ProjectFactory, ProjectUploadFactory
from training import services
from training.choices import ExecutionStatus
from training.config import parse_training_config
from training.models import Execution, RoundClient
from training.runner import run_config_for
from training.tests.api.helpers import EXECUTIONS, START

pytestmark = pytest.mark.django_db


def upload_csv(user, project, content: bytes, filename: str, **fields) -> dict:
    client = Client(headers={"Authorization": f"Bearer {access_token_for(user)}"})
    r = client.post(f"/api/v1/projects/{project.pk}/datasets",
                    {"file": SimpleUploadedFile(filename, content, content_type="text/csv"), **fields})
    assert r.status_code == 201, r.content
    return r.json()["data"]


def start(api, project, capture, config: dict, *, path: str = EXECUTIONS) -> Execution:
    with capture(execute=True):
        r = api.post(path, {"project_id": str(project.pk), "config": config})
    assert r.status_code == 202, r.content
    data = r.json()["data"]
    return Execution.objects.get(pk=data.get("id") or data.get("job_id"))


def server_metric(execution: Execution, key: str) -> list[float]:
    return [r.server_metrics[key] for r in execution.rounds.order_by("number")]


def test_breast_cancer_csv_trains_to_a_good_federated_model(owner, owner_api, project,
                                                            django_capture_on_commit_callbacks):
    dataset = upload_csv(owner, project, sklearn_csv("breast_cancer"), "breast_cancer.csv")
    assert dataset["task"] == "classification" and dataset["rows"] == 569

    execution = start(owner_api, project, django_capture_on_commit_callbacks, {
        "dataset": f"csv:{dataset['id']}", "model_type": "logistic", "rounds": 5, "clients": 4,
        "local_epochs": 2, "learning_rate": 0.1, "batch_size": 32, "seed": 3})

    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.dataset == f"csv:{dataset['id']}:classification"
    assert execution.config["dataset_id"] == dataset["id"] and execution.config["target_column"] == "target"
    accuracy = server_metric(execution, "accuracy")
    # Evaluated by the server on the held-out fifth of the file (114 rows) after every round.
    assert len(accuracy) == 5 and accuracy[-1] >= 0.95, accuracy
    sizes = RoundClient.objects.filter(round__execution=execution, round__number=1, phase="train")
    # four nodes share the 455 training rows, each keeping a fifth of its part for local validation
    assert sizes.count() == 4 and sum(c.num_examples for c in sizes) in range(355, 366)


def test_wine_csv_with_the_seed_000_alias_and_a_dirichlet_split(owner, owner_api, project,
                                                                django_capture_on_commit_callbacks):
    dataset = upload_csv(owner, project, sklearn_csv("wine"), "wine.csv", name="Wine")
    execution = start(owner_api, project, django_capture_on_commit_callbacks, {
        "dataset_id": dataset["id"], "model_type": "mlp", "rounds": 5, "clients": 3, "partition": "dirichlet",
        "alpha": 1.0, "local_epochs": 3, "learning_rate": 0.05, "batch_size": 16, "seed": 1}, path=START)

    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.model_type == "mlp" and execution.config["dataset_name"] == "Wine"
    accuracy = server_metric(execution, "accuracy")
    assert accuracy[-1] >= 0.85, accuracy
    sizes = [c.num_examples for c in RoundClient.objects.filter(round__execution=execution, round__number=1,
                                                                 phase="train")]
    assert len(sizes) == 3 and len(set(sizes)) > 1  # label skew makes unequal parts
    # the data distribution reads the same CSV the run trained on
    spread = owner_api.get(f"/api/v1/fl/metrics/data-distribution?executionId={execution.pk}")
    assert spread.status_code == 200, spread.content
    assert spread.json()["data"]["nodes"] == 3


def test_diabetes_csv_with_linear_regression_improves(owner, owner_api, project, django_capture_on_commit_callbacks):
    dataset = upload_csv(owner, project, sklearn_csv("diabetes"), "diabetes.csv")
    assert dataset["task"] == "regression"
    # no model named: a regression data set defaults to linear regression
    execution = start(owner_api, project, django_capture_on_commit_callbacks, {
        "dataset": f"csv:{dataset['id']}", "rounds": 6, "clients": 3, "local_epochs": 2, "learning_rate": 0.05,
        "batch_size": 16, "seed": 2})

    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.model_type == "linear"
    r2, mse = server_metric(execution, "r2"), server_metric(execution, "mse")
    assert r2[-1] > r2[0] and mse[-1] < mse[0], (r2, mse)
    assert r2[-1] >= 0.4, r2


def test_an_overridden_task_is_the_task_the_run_trains(owner, owner_api, project, django_capture_on_commit_callbacks):
    # a 0..9 score: classes by inference, a number because the uploader says so
    rows = [[i % 13, (i * 7) % 11, (i % 13 + (i * 7) % 11) % 10] for i in range(200)]
    dataset = upload_csv(owner, project, csv_bytes(["x1", "x2", "score"], rows), "scores.csv", task="regression")
    assert dataset["task"] == "regression"

    r = owner_api.post(EXECUTIONS, {"project_id": str(project.pk), "config": {
        "dataset": f"csv:{dataset['id']}", "model_type": "logistic"}})
    body = assert_error(r, 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "model_type" and "['kmeans', 'linear']" in body["error"]["message"]

    execution = start(owner_api, project, django_capture_on_commit_callbacks, {
        "dataset": f"csv:{dataset['id']}", "model_type": "linear", "rounds": 2, "clients": 2})
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.dataset.endswith(":regression") and "mse" in execution.metrics


def test_the_run_config_names_the_stored_file_and_target(owner, project):
    content = csv_bytes(["label", "a", "b"], [[i % 2, i, -i] for i in range(20)])
    dataset = upload_csv(owner, project, content, "flipped.csv", target_column="label")
    execution = services.execution_start(project=project, user=owner, config={"dataset": f"csv:{dataset['id']}",
                                                                            "clients": 2, "rounds": 1})
    run_config = run_config_for(execution)
    stored = ProjectDataset.objects.get()
    assert run_config["pollen.csv-path"] == stored.file.path and os.path.isabs(run_config["pollen.csv-path"])
    assert open(run_config["pollen.csv-path"], "rb").read() == content
    assert run_config["pollen.target-column"] == "label"
    assert run_config["pollen.dataset"] == f"csv:{stored.pk}:classification"
    # a bundled data set adds neither key
    builtin = services.execution_start(project=project, user=owner, config={"dataset": "iris"})
    assert "pollen.csv-path" not in run_config_for(builtin) and "pollen.target-column" not in run_config_for(builtin)


def test_a_stored_config_parses_again_without_its_project(owner, project):
    """Resume and aggregation changes re-check an execution's config with no project at hand."""
    dataset = upload_csv(owner, project, sklearn_csv("iris"), "iris.csv")
    execution = services.execution_start(project=project, user=owner, config={"dataset_id": dataset["id"],
                                                                            "clients": 2})
    again = parse_training_config(execution.config)
    assert {k: again[k] for k in ("dataset", "dataset_id", "target_column", "task")} == \
        {k: execution.config[k] for k in ("dataset", "dataset_id", "target_column", "task")}
    # and a changed id cannot ride along with the stored name
    with pytest.raises(Exception) as exc:
        parse_training_config({**execution.config, "dataset_id": str(ProjectFactory().pk)})
    assert exc.value.details["field"] == "dataset_id"


@pytest.mark.parametrize("config,field,words", [
    ({"dataset": "csv:{other}"}, "dataset", "not a data set of this project"),
    ({"dataset_id": "{other}"}, "dataset_id", "not a data set of this project"),
    ({"dataset": "csv:00000000-0000-0000-0000-000000000000"}, "dataset", "not a data set of this project"),
    ({"dataset": "csv:../../etc/passwd"}, "dataset", "not a data set of this project"),
    ({"dataset": "csv"}, "dataset", "csv:<id>"),
    ({"dataset": "iris", "dataset_id": "{mine}"}, "dataset_id", "not both"),
    ({"dataset": "csv:{mine}", "dataset_id": "{other}"}, "dataset_id", "dataset names"),
    ({"dataset": "csv:{mine}", "model_type": "cnn"}, "model_type", "['kmeans', 'logistic', 'mlp']"),
    ({"dataset": "csv:{mine}", "model_type": "linear"}, "model_type", "['kmeans', 'logistic', 'mlp']"),
    ({"dataset": "csv:{mine}", "target_column": "petal"}, "target_column", "upload it again"),
    ({"dataset": "csv:{mine}", "clients": 61}, "clients", "at most 60 nodes"),
])
def test_a_bad_csv_reference_is_422_naming_the_field(owner, owner_api, project, config, field, words):
    mine = upload_csv(owner, project, sklearn_csv("iris"), "iris.csv")["id"]
    other_project = ProjectFactory(owner=owner, configuration={})
    other = upload_csv(owner, other_project, sklearn_csv("iris"), "iris.csv")["id"]
    config = {k: v.format(mine=mine, other=other) if isinstance(v, str) else v for k, v in config.items()}

    r = owner_api.post(EXECUTIONS, {"project_id": str(project.pk), "config": {"rounds": 1, **config}})

    body = assert_error(r, 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == field and words in body["error"]["message"], body
    assert not Execution.objects.exists()


def test_kmeans_takes_any_csv_and_a_project_can_name_its_data_set(owner, project):
    dataset = upload_csv(owner, project, sklearn_csv("diabetes"), "diabetes.csv")
    execution = services.execution_start(project=project, user=owner, config={"dataset": f"csv:{dataset['id']}",
                                                                            "model_type": "kmeans"})
    assert execution.model_type == "kmeans" and execution.config["task"] == "regression"
    project.configuration = {"dataset": f"csv:{dataset['id']}"}
    project.save()
    configured = services.execution_start(project=project, user=owner, config={})
    assert configured.config["dataset_id"] == dataset["id"] and configured.model_type == "linear"


def test_a_project_with_a_flower_app_trains_a_csv_only_when_told_to(owner, project):
    from core.exceptions import ApplicationError

    dataset = upload_csv(owner, project, sklearn_csv("iris"), "iris.csv")
    ProjectUploadFactory(project=project, app_name="quickstart")
    with pytest.raises(ApplicationError) as exc:
        services.execution_start(project=project, user=owner, config={"dataset": f"csv:{dataset['id']}"})
    assert exc.value.details["field"] == "source" and "builtin" in exc.value.message
    execution = services.execution_start(project=project, user=owner, config={
        "dataset": f"csv:{dataset['id']}", "source": "builtin"})
    assert execution.upload is None and execution.config["dataset_id"] == dataset["id"]


# ---- the start page ---------------------------------------------------------------------------------

def test_start_form_offers_the_projects_csv_data_sets(owner, project, client, django_capture_on_commit_callbacks):
    dataset = upload_csv(owner, project, sklearn_csv("iris"), "iris.csv", name="Clinic iris")
    elsewhere = upload_csv(owner, ProjectFactory(owner=owner, name="Elsewhere", configuration={}),
                           sklearn_csv("wine"), "wine.csv")
    client.force_login(owner)
    html = client.get(f"/projects/{project.pk}/train/").content.decode()
    assert f'value="csv:{dataset["id"]}"' in html and "Clinic iris (classification, 150 rows)" in html
    assert f'value="csv:{elsewhere["id"]}"' in html and 'value="iris"' in html

    form = {"project": str(project.pk), "name": "CSV run", "algorithm": "fedavg", "strategy_params": "",
            "model_type": "logistic", "dataset": f"csv:{dataset['id']}", "rounds": 2, "clients": 3,
            "min_clients": "", "local_epochs": 1, "batch_size": 16, "learning_rate": 0.1, "partition": "iid",
            "alpha": 0.5, "seed": 0}
    r = client.post(f"/projects/{project.pk}/train/", {**form, "dataset": f"csv:{elsewhere['id']}"})
    assert r.status_code == 200 and "not a data set of this project" in r.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/projects/{project.pk}/train/", form)
    execution = Execution.objects.get()
    assert r.status_code == 302 and execution.config["dataset_id"] == dataset["id"]
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
