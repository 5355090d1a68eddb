"""Every list answers in a number of queries that does not grow with its rows (STYLE item 10)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from projects.tests.conftest import API
from projects.tests.factories import ProjectFactory, ProjectMemberFactory, ProjectUploadFactory


# JWT user with roles (2), count and page (2): a list that needs more has grown a query per row
QUERY_BUDGET = 5


def _count(fetch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = fetch()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _same_count_for_2_and_15(fetch, add_rows, rows_in):
    add_rows(2)
    fetch()  # warm up per-process caches (content types, sessions) before counting
    small = _count(fetch)
    assert rows_in(fetch()) == 2
    add_rows(13)
    large = _count(fetch)
    assert rows_in(fetch()) == 15
    assert small == large, f"{small} queries for 2 rows, {large} for 15"
    return small


def _data_len(response):
    return len(response.json()["data"])


def test_project_list_api(api, owner):
    def add(n):
        for i in range(n):
            # own projects and others' projects shared with the caller, each with an upload
            project = ProjectFactory(owner=owner) if i % 2 else ProjectMemberFactory(user=owner).project
            ProjectUploadFactory(project=project)

    queries = _same_count_for_2_and_15(lambda: api.get(API), add, _data_len)
    assert queries <= QUERY_BUDGET


def test_project_uploads_api(api, owner):
    project = ProjectFactory(owner=owner)

    def add(n):
        for _ in range(n):
            ProjectUploadFactory(project=project, uploaded_by=UserFactory())

    _same_count_for_2_and_15(lambda: api.get(f"{API}/{project.pk}/uploads"), add, _data_len)


def test_project_members_api(api, owner):
    project = ProjectFactory(owner=owner)

    def add(n):
        ProjectMemberFactory.create_batch(n, project=project)

    _same_count_for_2_and_15(lambda: api.get(f"{API}/{project.pk}/members"), add, _data_len)


@pytest.fixture
def page_client(client, owner):
    client.force_login(owner)
    return client


def test_project_list_page(page_client, owner):
    def add(n):
        for _ in range(n):
            ProjectUploadFactory(project=ProjectFactory(owner=owner))

    _same_count_for_2_and_15(lambda: page_client.get("/projects/"), add,
                             lambda r: len(r.context["page"].object_list))


def test_project_detail_page(page_client, owner):
    project = ProjectFactory(owner=owner)

    def add(n):
        for _ in range(n):
            ProjectMemberFactory(project=project)
            ProjectUploadFactory(project=project, uploaded_by=UserFactory())

    _same_count_for_2_and_15(lambda: page_client.get(f"/projects/{project.pk}/"), add,
                             lambda r: len(r.context["members"]))


def test_dashboard_page(page_client, owner):
    def add(n):
        for _ in range(n):
            ProjectUploadFactory(project=ProjectFactory(owner=owner))

    _same_count_for_2_and_15(lambda: page_client.get("/"), add, lambda r: r.context["project_count"])
