"""Lists answer in a number of queries that does not grow with their rows (STYLE item 10)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from projects.tests.factories import ProjectFactory, ProjectMemberFactory
from training.tests.api.factories import ExecutionFactory, ExecutionLogFactory, RoundClientFactory, RoundFactory
from training.tests.api.helpers import EXECUTIONS, LOGS

pytestmark = pytest.mark.django_db


def _count(fetch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = fetch()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _same_count_for_2_and_8(fetch, add_rows):
    add_rows(2)
    fetch()  # warm per-process caches before counting
    small = _count(fetch)
    assert len(fetch().json()["data"]) == 2
    add_rows(6)
    large = _count(fetch)
    assert len(fetch().json()["data"]) == 8
    assert small == large, f"{small} queries for 2 rows, {large} for 8"
    return small


def test_execution_list(owner_api, owner):
    def add(n):
        for i in range(n):
            # own projects and projects shared with the caller, each from another creator
            project = ProjectFactory(owner=owner, configuration={}) if i % 2 else \
                ProjectMemberFactory(user=owner, project=ProjectFactory(configuration={})).project
            ExecutionFactory(project=project, created_by=UserFactory())

    queries = _same_count_for_2_and_8(lambda: owner_api.get(EXECUTIONS), add)
    # authentication, membership ids, count and page
    assert queries <= 5


def test_execution_list_with_filters(owner_api, project):
    _same_count_for_2_and_8(lambda: owner_api.get(EXECUTIONS, {"status": "pending", "sort": "-name"}),
                            lambda n: ExecutionFactory.create_batch(n, project=project))


def test_rounds(owner_api, project):
    execution = ExecutionFactory(project=project)
    _same_count_for_2_and_8(lambda: owner_api.get(f"{EXECUTIONS}/{execution.pk}/rounds"),
                            lambda n: RoundFactory.create_batch(n, execution=execution))


def test_round_clients(owner_api, project):
    round_obj = RoundFactory(execution=ExecutionFactory(project=project), number=1)
    _same_count_for_2_and_8(lambda: owner_api.get(f"{EXECUTIONS}/{round_obj.execution_id}/rounds/1/clients"),
                            lambda n: RoundClientFactory.create_batch(n, round=round_obj))


def test_execution_logs(owner_api, project):
    execution = ExecutionFactory(project=project)
    _same_count_for_2_and_8(lambda: owner_api.get(f"{EXECUTIONS}/{execution.pk}/logs"),
                            lambda n: ExecutionLogFactory.create_batch(n, execution=execution))


def test_all_logs(owner_api, project):
    _same_count_for_2_and_8(lambda: owner_api.get(LOGS, {"level": "INFO"}),
                            lambda n: [ExecutionLogFactory(execution=ExecutionFactory(project=project))
                                       for _ in range(n)])
