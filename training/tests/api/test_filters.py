"""ExecutionFilterSet on GET /fl/executions: seed 001/004 names and the API's own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from projects.tests.factories import ProjectFactory
from training.models import Execution
from training.tests.api.factories import ExecutionFactory
from training.tests.api.helpers import EXECUTIONS

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(owner, project):
    other = ProjectFactory(owner=owner, configuration={})
    now = timezone.now()
    made = {
        "digits": ExecutionFactory(project=project, name="Digits baseline", status="completed", model_type="logistic",
                                   dataset="digits", algorithm="fedavg"),
        "diabetes": ExecutionFactory(project=project, name="Diabetes regression", status="running",
                                     model_type="linear", dataset="diabetes", algorithm="fedprox"),
        "clusters": ExecutionFactory(project=other, name="Wine clusters", status="failed", model_type="kmeans",
                                     dataset="wine", algorithm="fedmedian"),
    }
    for age, execution in zip((30, 5, 1), made.values()):
        Execution.objects.filter(pk=execution.pk).update(created_at=now - timedelta(days=age))
    return made


def names(api, **params):
    return sorted(e["name"] for e in assert_success(api.get(EXECUTIONS, params))["data"])


def test_filters(owner_api, project, rows):
    now = timezone.now()
    assert names(owner_api, status="running") == ["Diabetes regression"]
    assert names(owner_api, model_type="logistic") == ["Digits baseline"]
    assert names(owner_api, modelType="classification") == ["Digits baseline"]
    assert names(owner_api, modelType="regression") == ["Diabetes regression"]
    assert names(owner_api, model_type="clustering") == ["Wine clusters"]
    assert names(owner_api, algorithm="FedProx") == ["Diabetes regression"]
    assert names(owner_api, dataset="wine") == ["Wine clusters"]
    assert names(owner_api, project=str(project.pk)) == ["Diabetes regression", "Digits baseline"]
    assert names(owner_api, search="CLUSTER") == ["Wine clusters"]
    week_ago = (now - timedelta(days=7)).isoformat()
    recent = ["Diabetes regression", "Wine clusters"]
    assert names(owner_api, created_after=week_ago) == recent
    assert names(owner_api, dateFrom=week_ago) == recent
    assert names(owner_api, startDate=week_ago) == recent
    assert names(owner_api, created_before=week_ago) == ["Digits baseline"]
    assert names(owner_api, dateTo=week_ago) == ["Digits baseline"]
    assert names(owner_api, endDate=week_ago) == ["Digits baseline"]
    assert names(owner_api, status="completed", search="digits", modelType="classification") == ["Digits baseline"]


def test_default_order_is_newest_first_and_sort_changes_it(owner_api, rows):
    def order(**params):
        return [e["name"] for e in assert_success(owner_api.get(EXECUTIONS, params))["data"]]

    assert order() == ["Wine clusters", "Diabetes regression", "Digits baseline"]
    assert order(sort="name") == ["Diabetes regression", "Digits baseline", "Wine clusters"]
    assert order(sort="-name") == ["Wine clusters", "Digits baseline", "Diabetes regression"]
    assert order(sort="created_at")[0] == "Digits baseline"


def test_pagination(owner_api, rows):
    body = assert_success(owner_api.get(EXECUTIONS, {"limit": 2, "page": 2}))
    assert len(body["data"]) == 1
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2, "has_next": False, "has_prev": True}


@pytest.mark.parametrize("params", [{"status": "exploded"}, {"created_after": "last week"}, {"project": "xyz"},
                                    {"sort": "password"}])
def test_a_bad_filter_value_is_400(owner_api, rows, params):
    assert_error(owner_api.get(EXECUTIONS, params), 400, "VALIDATION_ERROR")
