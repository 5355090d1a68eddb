"""/fl/metrics/validation and /fl/metrics/bias (seed 004), the per-class and per-node metrics the
engine records for them, and the parquet export."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from core.exceptions import ValidationFailed
from projects.tests.factories import ProjectFactory
from training import metrics as metric_reads
from training.models import Execution
from training.tests.api.factories import ExecutionFactory, RoundClientFactory, RoundFactory
from training.tests.api.helpers import API, run_execution

pytestmark = pytest.mark.django_db
METRICS = f"{API}/fl/metrics"


@pytest.fixture
def finished(owner_api, project, django_capture_on_commit_callbacks):
    """Three rounds of logistic regression on iris across three non-IID nodes."""
    return run_execution(owner_api, project, django_capture_on_commit_callbacks, rounds=3, partition="dirichlet",
                         alpha=0.5, seed=3)


def _get(api, name, **params):
    return api.get(f"{METRICS}/{name}", {k: str(v) for k, v in params.items()})


# ---- what the engine records ----------------------------------------------------------------------

def test_the_server_records_accuracy_and_support_per_class(finished):
    from training.engine.builtin_app import dataset_for
    from training.runner import run_config_for

    y_test = dataset_for(run_config_for(finished)).y_test
    for round_obj in finished.rounds.all():
        server = round_obj.server_metrics
        assert server["class_support"] == [float((y_test == c).sum()) for c in range(3)]
        hits = sum(a * n for a, n in zip(server["class_accuracy"], server["class_support"]))
        assert hits / len(y_test) == pytest.approx(server["accuracy"])
    clients = finished.rounds.get(number=3).clients.filter(phase="evaluate")
    assert clients.count() == 3 and all("eval_accuracy" in c.metrics for c in clients)


# ---- validation scores ----------------------------------------------------------------------------

def test_validation_scores_by_round(owner_api, finished):
    data = assert_success(_get(owner_api, "validation", executionId=finished.pk))["data"]
    assert data["task"] == "classification" and [r["round"] for r in data["rounds"]] == [1, 2, 3]
    assert data["validation"]["enabled"] is False and data["summary"] == {"rounds": 3, "passed": 0, "failed": 0}
    last = data["latest"]
    round_obj = finished.rounds.get(number=3)
    assert last["held_out"]["accuracy"] == round_obj.server_metrics["accuracy"]
    assert "class_accuracy" not in last["held_out"] and last["validation_passed"] is None
    local = last["local"]["accuracy"]
    values = [c.metrics["eval_accuracy"] for c in round_obj.clients.filter(phase="evaluate")]
    sizes = [c.num_examples for c in round_obj.clients.filter(phase="evaluate")]
    assert local["nodes"] == 3 and (local["min"], local["max"]) == (min(values), max(values))
    assert local["weighted_mean"] == pytest.approx(sum(v * n for v, n in zip(values, sizes)) / sum(sizes))
    gap, held_out = last["generalisation_gap"], last["held_out"]
    assert gap["accuracy"] == pytest.approx(local["weighted_mean"] - held_out["accuracy"])
    assert gap["loss"] == pytest.approx(held_out["loss"] - last["local"]["loss"]["weighted_mean"])


def test_validation_scores_of_one_round_and_the_registry_call(owner_api, finished):
    data = assert_success(_get(owner_api, "validation", executionId=finished.pk, round=2))["data"]
    assert [r["round"] for r in data["rounds"]] == [2]
    assert metric_reads.validation_scores(finished, 2)["rounds"] == data["rounds"]
    assert_error(_get(owner_api, "validation", executionId=finished.pk, round=9), 404, "RESOURCE_NOT_FOUND")


def test_validation_verdicts_recorded_by_the_engine_or_applied_to_earlier_rounds(owner_api, project, finished):
    Execution.objects.filter(pk=finished.pk).update(config={**finished.config, "aggregation": {
        "weights": "proportional", "validation": {"enabled": True, "threshold": 1.01, "metrics": ["accuracy"]}}})
    data = assert_success(_get(owner_api, "validation", executionId=finished.pk))["data"]
    assert [r["validation_passed"] for r in data["rounds"]] == [False] * 3
    assert data["summary"] == {"rounds": 3, "passed": 0, "failed": 3}
    recorded = ExecutionFactory(project=project, config={"aggregation": {"validation": {
        "enabled": True, "threshold": 0.5, "metrics": ["accuracy"]}}})
    RoundFactory(execution=recorded, number=1, server_metrics={"accuracy": 0.2, "validation_passed": 1.0})
    rows = assert_success(_get(owner_api, "validation", executionId=recorded.pk))["data"]["rounds"]
    assert rows[0]["validation_passed"] is True and "validation_passed" not in rows[0]["held_out"]


# ---- bias -----------------------------------------------------------------------------------------

def test_bias_per_class_and_per_node(owner_api, finished):
    data = assert_success(_get(owner_api, "bias", executionId=finished.pk))["data"]
    server = finished.rounds.get(number=3).server_metrics
    assert data["round"] == 3 and data["threshold"] == 0.1 and data["task"] == "classification"
    assert [c["label"] for c in data["classes"]] == [0, 1, 2]
    for entry, accuracy in zip(data["classes"], server["class_accuracy"]):
        assert entry["accuracy"] == accuracy and entry["gap"] == pytest.approx(accuracy - server["accuracy"])
        assert entry["flagged"] == (abs(entry["gap"]) > 0.1)
    summary = data["class_summary"]
    assert summary["worst"]["accuracy"] == min(server["class_accuracy"])
    assert summary["max_gap"] == pytest.approx(max(abs(c["gap"]) for c in data["classes"]))
    nodes, node_summary = data["nodes"], data["node_summary"]
    assert len(nodes) == 3 and node_summary["metric"] == "accuracy" and node_summary["flag_basis"] == "absolute"
    values = [n["value"] for n in nodes]
    mean = sum(n["value"] * n["num_examples"] for n in nodes) / sum(n["num_examples"] for n in nodes)
    assert node_summary["weighted_mean"] == pytest.approx(mean)
    assert node_summary["max_min_gap"] == pytest.approx(max(values) - min(values))
    assert node_summary["worst"]["value"] == min(values)
    assert node_summary["std"] == pytest.approx(float(np.std(values)))
    assert data["fairness"]["max_min_gap"] == node_summary["max_min_gap"]
    assert data["fairness"]["fair"] is not data["fairness"]["flagged"]


def test_bias_threshold_and_round(owner_api, finished):
    strict = assert_success(_get(owner_api, "bias", executionId=finished.pk, threshold=0))["data"]
    assert strict["node_summary"]["flagged"] == [n["node_id"] for n in strict["nodes"] if n["gap"] != 0]
    lenient = assert_success(_get(owner_api, "bias", executionId=finished.pk, threshold=1))["data"]
    assert (lenient["fairness"]["flagged"], lenient["fairness"]["fair"]) == (False, True)
    first = assert_success(_get(owner_api, "bias", executionId=finished.pk, round=1))["data"]
    assert first["round"] == 1
    assert metric_reads.bias_report(finished, 1)["classes"] == first["classes"]


def test_bias_of_a_regression_model_is_per_node_on_loss(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks, model_type="linear",
                              dataset="diabetes", learning_rate=0.05)
    data = assert_success(_get(owner_api, "bias", executionId=execution.pk, threshold=0.2))["data"]
    assert data["task"] == "regression" and data["classes"] == [] and data["class_summary"] is None
    summary = data["node_summary"]
    assert summary["metric"] == "loss" and summary["flag_basis"] == "relative" and not summary["higher_is_better"]
    assert summary["worst"]["value"] == max(n["value"] for n in data["nodes"])
    for node in data["nodes"]:
        assert node["relative_gap"] == pytest.approx(node["gap"] / summary["weighted_mean"])
        assert node["flagged"] == (abs(node["relative_gap"]) > 0.2) and "mse" in node["metrics"]
    scores = assert_success(_get(owner_api, "validation", executionId=execution.pk))["data"]
    assert "mse" in scores["latest"]["held_out"] and "mse" in scores["latest"]["generalisation_gap"]


def test_an_execution_without_rounds(owner_api, project):
    execution = ExecutionFactory(project=project)
    data = assert_success(_get(owner_api, "bias", executionId=execution.pk))["data"]
    assert data["round"] is None and data["nodes"] == [] and data["fairness"]["fair"] is None
    data = assert_success(_get(owner_api, "validation", executionId=execution.pk))["data"]
    assert data["rounds"] == [] and data["latest"] is None


@pytest.mark.parametrize("name", ["validation", "bias"])
@pytest.mark.parametrize("params,field", [({"round": "two"}, "round"), ({"round": -1}, "round"),
                                          ({"round": 0}, "round"), ({"round": 1.5}, "round"),
                                          ({"round": 10 ** 30}, "round")])
def test_bad_rounds_are_refused(owner_api, project, name, params, field):
    execution = ExecutionFactory(project=project)
    error = assert_error(_get(owner_api, name, executionId=execution.pk, **params), 422, "VALIDATION_ERROR")
    assert error["error"]["details"]["field"] == field


@pytest.mark.parametrize("threshold", ["high", -0.5, "nan", "inf", "1e400"])
def test_bad_thresholds_are_refused(owner_api, project, threshold):
    execution = ExecutionFactory(project=project)
    error = assert_error(_get(owner_api, "bias", executionId=execution.pk, threshold=threshold), 422,
                         "VALIDATION_ERROR")
    assert error["error"]["details"]["field"] == "threshold"
    with pytest.raises(ValidationFailed):
        metric_reads.bias_report(execution, threshold=True)


def test_queries_do_not_grow_with_rounds_or_nodes(owner_api, project):
    def count(rounds: int) -> list[int]:
        execution = ExecutionFactory(project=project)
        for number in range(1, rounds + 1):
            round_obj = RoundFactory(execution=execution, number=number)
            for node in range(1, 4):
                RoundClientFactory(round=round_obj, node_id=node, phase="evaluate",
                                   metrics={"eval_accuracy": 0.5 + node / 10, "eval_loss": 1.0})
        counts = []
        for name in ("validation", "bias"):
            with CaptureQueriesContext(connection) as queries:
                assert_success(_get(owner_api, name, executionId=execution.pk))
            counts.append(len(queries))
        return counts

    assert count(1) == count(6)


# ---- who may --------------------------------------------------------------------------------------

def test_who_reads_validation_and_bias(api_for, owner_api, finished):
    for name in ("validation", "bias"):
        assert_error(owner_api.get(f"{METRICS}/{name}"), 422, "VALIDATION_ERROR")
        assert_error(_get(owner_api, name, executionId="nope"), 404, "FL001")
        assert_error(_get(api_for(UserFactory()), name, executionId=finished.pk), 404, "FL001")
        assert_error(_get(api_for(UserFactory(roles=["service_owner"])), name, executionId=finished.pk), 403,
                     "AUTHORIZATION_FAILED")


@pytest.mark.parametrize("role", ["analyst", "viewer", "ml_engineer"])
def test_roles_with_a_metric_or_read_permission_read_their_executions(api_for, role):
    user = UserFactory(roles=[role])
    execution = ExecutionFactory(project=ProjectFactory(owner=user, configuration={}))
    RoundFactory(execution=execution, number=1)
    api = api_for(user)
    assert_success(_get(api, "validation", executionId=execution.pk))
    assert_success(_get(api, "bias", executionId=execution.pk))


# ---- parquet export -------------------------------------------------------------------------------

def test_export_as_parquet_reads_back(owner_api, finished):
    response = owner_api.post(f"{METRICS}/export", {"executionId": str(finished.pk), "format": "parquet",
                                                    "metrics": ["accuracy", "loss"]})
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"].endswith('metrics.parquet"')
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == ["execution_id", "round", "source", "metric", "value"]
    rows = table.to_pylist()
    csv_rows = owner_api.post(f"{METRICS}/export", {"executionId": str(finished.pk), "format": "csv",
                                                    "metrics": ["accuracy", "loss"]}).content.decode().splitlines()
    assert len(rows) == len(csv_rows) - 1 and {r["execution_id"] for r in rows} == {str(finished.pk)}
    server = {(r["round"], r["metric"]): r["value"] for r in rows if r["source"] == "server"}
    for round_obj in finished.rounds.all():
        assert server[(round_obj.number, "accuracy")] == round_obj.server_metrics["accuracy"]
        assert server[(round_obj.number, "loss")] == round_obj.server_metrics["loss"]


def test_an_empty_parquet_export_has_the_columns(owner_api, project):
    execution = ExecutionFactory(project=project)
    response = owner_api.post(f"{METRICS}/export", {"executionId": str(execution.pk), "format": "parquet"})
    table = pq.read_table(io.BytesIO(response.content))
    assert table.num_rows == 0 and table.schema.field("value").type == "double"
