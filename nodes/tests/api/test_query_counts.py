"""Lists answer in a number of queries that does not grow with their rows (STYLE item 10)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodes.tests.factories import ClusterFactory, NodeDatasetFactory, NodeFactory, ZoneFactory
from projects.tests.factories import ProjectFactory, ProjectMemberFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _count(fetch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = fetch()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _same_count_for_2_and_8(fetch, add_rows, size=lambda body: len(body["data"])):
    add_rows(2)
    fetch()
    small = _count(fetch)
    assert size(fetch().json()) == 2
    add_rows(6)
    large = _count(fetch)
    assert size(fetch().json()) == 8
    assert small == large, f"{small} queries for 2 rows, {large} for 8"
    return small


def _add_nodes(owner):
    def add(n):
        for i in range(n):
            cluster = ClusterFactory()
            project = ProjectFactory(owner=owner, configuration={}) if i % 2 else \
                ProjectMemberFactory(user=owner, project=ProjectFactory(configuration={})).project
            NodeFactory(project=project, zone=cluster.zone, cluster=cluster)
    return add


@pytest.mark.parametrize("path", ["/nodes", "/fl/clients"])
def test_node_lists(owner_api, owner, path):
    queries = _same_count_for_2_and_8(lambda: owner_api.get(f"{API}{path}"), _add_nodes(owner))
    assert queries <= 5


def test_client_list_with_filters(owner_api, owner):
    _same_count_for_2_and_8(lambda: owner_api.get(f"{API}/fl/clients", {"status": "connected", "sort": "-name",
                                                                        "capability": "cpu", "region": "eu-west"}),
                            _add_nodes(owner))


@pytest.mark.parametrize("path", ["/fl/clients/by-zone", "/fl/clients/by-location"])
def test_groupings(owner_api, owner, path):
    _same_count_for_2_and_8(lambda: owner_api.get(f"{API}{path}"), _add_nodes(owner),
                            size=lambda body: sum(g["count"] for g in body["data"]))


def test_zones_clusters_and_datasets(owner_api, node):
    _same_count_for_2_and_8(lambda: owner_api.get(f"{API}/fl/zones"), lambda n: ZoneFactory.create_batch(n))
    _same_count_for_2_and_8(lambda: owner_api.get(f"{API}/fl/clusters"), lambda n: ClusterFactory.create_batch(n))
    _same_count_for_2_and_8(lambda: owner_api.get(f"{API}/fl/datasets"),
                            lambda n: NodeDatasetFactory.create_batch(n, node=node))
