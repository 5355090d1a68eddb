"""The Django admin of nodes, zones, clusters and (read-only) metrics."""

import pytest

from accounts.tests.factories import UserFactory
from nodes.tests.factories import ClusterFactory, NodeDatasetFactory, NodeFactory, NodeMetricFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_every_nodes_admin_page_opens(admin_client):
    cluster = ClusterFactory()
    node = NodeFactory(name="admin-node", zone=cluster.zone, cluster=cluster)
    NodeDatasetFactory(node=node, name="inline-dataset")
    metric = NodeMetricFactory(node=node)
    pages = ["/admin/nodes/node/", f"/admin/nodes/node/{node.pk}/change/", "/admin/nodes/zone/",
             f"/admin/nodes/zone/{cluster.zone_id}/change/", "/admin/nodes/cluster/",
             f"/admin/nodes/cluster/{cluster.pk}/change/", "/admin/nodes/nodemetric/",
             f"/admin/nodes/nodemetric/{metric.pk}/change/", "/admin/nodes/node/?status__exact=connected"]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page
    assert "inline-dataset" in admin_client.get(f"/admin/nodes/node/{node.pk}/change/").content.decode()


def test_metrics_are_read_only(admin_client):
    metric = NodeMetricFactory()
    assert admin_client.get("/admin/nodes/nodemetric/add/").status_code == 403
    response = admin_client.post(f"/admin/nodes/nodemetric/{metric.pk}/change/", {"cpu_percent": 1})
    assert response.status_code == 403
    metric.refresh_from_db()
    assert metric.cpu_percent == 40.0
