"""/fl/metrics/*: per-round series, summaries, exports and the data distribution of a real run."""

import csv
import io

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from training.tests.api.helpers import API, run_execution

pytestmark = pytest.mark.django_db
METRICS = f"{API}/fl/metrics"


@pytest.fixture
def finished(owner_api, project, django_capture_on_commit_callbacks):
    return run_execution(owner_api, project, django_capture_on_commit_callbacks, rounds=3)


def test_training_metrics_by_round_with_a_summary(owner_api, finished):
    body = assert_success(owner_api.get(f"{METRICS}/training", {"executionId": str(finished.pk),
                                                                 "metrics": "accuracy,loss", "aggregation": "max"}))
    data = body["data"]
    assert [r["round"] for r in data["rounds"]] == [1, 2, 3]
    assert set(data["rounds"][0]["server"]) == {"accuracy", "loss"}
    accuracies = [r["server"]["accuracy"] for r in data["rounds"]]
    assert data["summary"]["server.accuracy"] == pytest.approx(max(accuracies))


@pytest.mark.parametrize("family,expected", [("loss", "loss"), ("accuracy", "accuracy"),
                                             ("precision-recall", "precision"), ("f1", "f1")])
def test_each_metric_family(owner_api, finished, family, expected):
    data = assert_success(owner_api.get(f"{METRICS}/{family}", {"executionId": str(finished.pk)}))["data"]
    assert data["metric"] == family and expected in data["rounds"][-1]["server"]
    assert f"server.{expected}" in data["summary"]


def test_export_as_csv_and_json(owner_api, finished):
    response = owner_api.post(f"{METRICS}/export", {"executionIds": [str(finished.pk)], "metrics": ["accuracy"],
                                                    "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["round"] for r in rows} == {"1", "2", "3"} and {r["metric"] for r in rows} == {"accuracy"}
    response = owner_api.post(f"{METRICS}/export", {"executionId": str(finished.pk), "format": "json"})
    assert response.status_code == 200 and isinstance(response.json(), list)


def test_export_in_an_unsupported_format_names_the_supported_ones(owner_api, finished):
    error = assert_error(owner_api.post(f"{METRICS}/export", {"executionId": str(finished.pk),
                                                              "format": "xlsx"}), 422, "VALIDATION_ERROR")
    assert error["error"]["details"]["field"] == "format" and "csv" in error["error"]["message"]


def test_data_distribution_of_a_dirichlet_federation(owner_api, project, django_capture_on_commit_callbacks):
    execution = run_execution(owner_api, project, django_capture_on_commit_callbacks, clients=4,
                              partition="dirichlet", alpha=0.1)
    data = assert_success(owner_api.get(f"{METRICS}/data-distribution", {"executionId": str(execution.pk)}))["data"]
    assert data["nodes"] == 4 and len(data["sizes"]) == 4 and sum(data["sizes"]) > 0
    assert data["heterogeneity"] > 0.05 and len(data["label_distribution"]) == 4


def test_missing_unknown_and_foreign_executions(owner_api, api_for, finished):
    assert_error(owner_api.get(f"{METRICS}/training"), 422, "VALIDATION_ERROR")
    assert_error(owner_api.get(f"{METRICS}/training", {"executionId": "nope"}), 404, "FL001")
    stranger = api_for(UserFactory())
    assert_error(stranger.get(f"{METRICS}/loss", {"executionId": str(finished.pk)}), 404, "FL001")
    analyst = api_for(UserFactory(roles=["service_owner"]))
    assert_error(analyst.get(f"{METRICS}/loss", {"executionId": str(finished.pk)}), 403, "AUTHORIZATION_FAILED")
