"""The node pages: the list with its filters, a node's page and the zones overview.

Nodes come from the factories (as a heartbeat leaves them); executions from ``execution_start``
(their run is queued on commit, which never comes, so they stay pending).
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from nodes.choices import NodeStatus, NodeType
from nodes.tests.factories import ClusterFactory, NodeDatasetFactory, NodeFactory, NodeMetricFactory, ZoneFactory
from projects.tests.factories import ProjectFactory, ProjectMemberFactory
from training import services as training_services

pytestmark = pytest.mark.django_db

TINY = {"rounds": 2, "clients": 3, "model_type": "logistic", "dataset": "iris"}


@pytest.fixture
def web(client, owner):
    client.force_login(owner)
    return client


def _html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _rows(html: str) -> list[str]:
    """The node ids listed, in order."""
    return re.findall(r'<tr data-node-id="([0-9a-f-]+)"', html)


def _execution(project, name="Run"):
    return training_services.execution_start(project=project, user=project.owner, name=name, config=TINY)


# ---- access --------------------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_log_in(client, node):
    for url in ("/nodes/", "/nodes/zones/", f"/nodes/{node.pk}/"):
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/login/?next="), url


def test_a_user_sees_their_nodes_and_their_projects_nodes_only(web, owner, project, node):
    mine = NodeFactory(registered_by=owner, name="registered-by-me")
    # registered by someone else, but serving a project the user owns
    for_project = NodeFactory(project=project, name="serves-my-project")
    other = NodeFactory(name="someone-elses")
    html = _html(web.get("/nodes/"))
    assert set(_rows(html)) == {str(node.pk), str(mine.pk), str(for_project.pk)}
    assert "someone-elses" not in html
    assert web.get(f"/nodes/{other.pk}/").status_code == 404
    assert web.get(f"/nodes/{for_project.pk}/").status_code == 200
    assert web.get("/nodes/not-a-uuid/").status_code == 404


def test_a_project_member_sees_the_projects_nodes(client, project, node):
    viewer = UserFactory(roles=["viewer"])
    ProjectMemberFactory(project=project, user=viewer, access="read")
    client.force_login(viewer)
    assert _rows(_html(client.get("/nodes/"))) == [str(node.pk)]
    assert client.get(f"/nodes/{node.pk}/").status_code == 200


def test_seed_004_client_permissions_also_read(client):
    engineer = UserFactory(roles=["ml_engineer"])  # client:* without read:projects
    node = NodeFactory(registered_by=engineer)
    client.force_login(engineer)
    assert _rows(_html(client.get("/nodes/"))) == [str(node.pk)]
    assert client.get(f"/nodes/{node.pk}/").status_code == 200


def test_a_user_without_a_read_permission_is_refused(client):
    controller = UserFactory(roles=["financial_controller"])
    node = NodeFactory(registered_by=controller)
    client.force_login(controller)
    for url in ("/nodes/", "/nodes/zones/", f"/nodes/{node.pk}/"):
        assert client.get(url).status_code == 403, url


def test_the_nav_links_to_the_nodes(web):
    html = _html(web.get("/nodes/"))
    assert re.search(r'<a href="/nodes/" aria-current="page">Nodes</a>', html)
    assert '<a href="/nodes/" >Nodes</a>' in _html(web.get("/projects/"))


def test_pages_carry_no_inline_script(web, node):
    """CSP is default-src 'self': scripts come from static files, data from json_script blocks."""
    NodeMetricFactory(node=node)
    for url in ("/nodes/", "/nodes/zones/", f"/nodes/{node.pk}/"):
        html = _html(web.get(url))
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert " style=" not in html, url


# ---- list ----------------------------------------------------------------------------------------

def test_the_list_shows_status_last_seen_execution_and_latest_metrics(web, owner, project):
    execution = _execution(project, name="Iris run")
    NodeFactory(registered_by=owner, name="busy", status=NodeStatus.TRAINING, current_execution=execution,
                role="trainer", latest_metrics={"cpu_percent": 73.4, "memory_percent": 41.6})
    NodeFactory(registered_by=owner, name="never-seen", last_seen=None, stale_at=None)
    html = _html(web.get("/nodes/"))
    busy = html[html.index(">busy<"):html.index(">never-seen<")]
    assert 'class="badge node-status training"' in busy
    assert f'href="/training/{execution.pk}/">Iris run</a>' in busy
    assert "73 %" in busy and "42 %" in busy
    assert "0\xa0minutes ago" in busy
    assert "never" in html[html.index(">never-seen<"):]


def test_another_projects_execution_is_not_named(web, owner):
    theirs = _execution(ProjectFactory(configuration={}), name="Secret run")
    NodeFactory(registered_by=owner, current_execution=theirs)
    html = _html(web.get("/nodes/"))
    assert "Secret run" not in html and str(theirs.pk) not in html
    assert "another project&#x27;s" in html or "another project's" in html


def test_a_late_node_is_marked(web, owner):
    past = timezone.now() - timedelta(minutes=10)
    NodeFactory(registered_by=owner, last_seen=past, stale_at=past + timedelta(seconds=60))
    assert ">late</small>" in _html(web.get("/nodes/"))


def test_filters_status_type_zone_region_and_search(web, owner):
    zone = ZoneFactory(code="eu-1", name="Europe one")
    a = NodeFactory(registered_by=owner, name="alpha", host="a.example", status=NodeStatus.TRAINING,
                    zone=zone, region="eu-west")
    b = NodeFactory(registered_by=owner, name="beta", host="b.example", status=NodeStatus.OFFLINE,
                    type=NodeType.AGGREGATOR, region="us-east")
    c = NodeFactory(registered_by=owner, name="gamma", host="alpha-host", status=NodeStatus.IDLE,
                    zone=zone, region="us-east")
    NodeFactory(name="alpha-elsewhere", status=NodeStatus.TRAINING, zone=zone)  # not visible

    def listed(query):
        return set(_rows(_html(web.get("/nodes/?" + query))))

    assert listed("") == {str(a.pk), str(b.pk), str(c.pk)}
    assert listed("status=training") == {str(a.pk)}
    assert listed("type=aggregator") == {str(b.pk)}
    assert listed("zone=eu-1") == {str(a.pk), str(c.pk)}
    assert listed(f"zone={zone.pk}") == {str(a.pk), str(c.pk)}
    assert listed("region=US-East") == {str(b.pk), str(c.pk)}
    assert listed("search=alpha") == {str(a.pk), str(c.pk)}  # name or host
    assert listed("zone=eu-1&region=us-east") == {str(c.pk)}
    html = _html(web.get("/nodes/?status=offline"))
    assert '<option value="offline" selected>' in html
    # the region choices are the visible nodes' regions
    assert re.findall(r'<option value="([^"]+)"[^>]*>\1</option>', html[html.index('name="region"'):]) == [
        "eu-west", "us-east"]


def test_a_bad_filter_lists_nothing_and_says_why(web, node):
    html = _html(web.get("/nodes/?status=sleeping"))
    assert _rows(html) == []
    assert 'class="error"' in html and "status" in html


def test_the_list_is_paginated(web, owner):
    for i in range(23):
        NodeFactory(registered_by=owner, name=f"n{i:02d}")
    first = _html(web.get("/nodes/?status=connected"))
    assert len(_rows(first)) == 20
    assert "Page 1 of 2 (23 nodes)" in first
    assert 'href="?status=connected&page=2"' in first
    assert len(_rows(_html(web.get("/nodes/?status=connected&page=2")))) == 3


def test_the_list_takes_a_constant_number_of_queries(web, owner, project):
    execution = _execution(project)
    zone = ZoneFactory()

    def add(count):
        for _ in range(count):
            cluster = ClusterFactory(zone=zone)
            node = NodeFactory(project=project, zone=zone, cluster=cluster, current_execution=execution,
                               latest_metrics={"cpu_percent": 10.0, "memory_percent": 20.0})
            NodeMetricFactory(node=node)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert web.get("/nodes/").status_code == 200
        return len(captured)

    add(2)
    few = queries()
    add(10)
    assert queries() == few


# ---- one node ------------------------------------------------------------------------------------

def test_the_node_page_shows_its_fields_zone_cluster_datasets_and_metrics(web, owner, project):
    zone = ZoneFactory(name="Europe one", code="eu-1")
    cluster = ClusterFactory(zone=zone, name="Paris racks")
    execution = _execution(project, name="Digits run")
    node = NodeFactory(registered_by=owner, project=project, name="clinic-7", host="10.1.2.3", zone=zone,
                       cluster=cluster, framework="flower", framework_version="1.20", dataset="part-a",
                       current_execution=execution, role="trainer",
                       latest_metrics={"cpu_percent": 12.5, "memory_percent": 48.25, "disk_percent": 3.0,
                                       "network_bytes_sent": 2048, "network_bytes_recv": 4096,
                                       "rounds_completed": 4, "updates_sent": 5})
    NodeDatasetFactory(node=node, name="part-a", rows=1234)
    NodeDatasetFactory(node=node, name="part-b")
    now = timezone.now()
    for minutes in range(30):
        NodeMetricFactory(node=node, timestamp=now - timedelta(minutes=minutes), cpu_percent=minutes,
                          memory_percent=50)
    html = _html(web.get(f"/nodes/{node.pk}/"))
    for text in ("clinic-7", "10.1.2.3", "Europe one", "Paris racks", "flower 1.20", project.name, "Digits run",
                 "Trainer", "12.5 %", "48.3 %", "2.0\xa0KB sent", "part-a", "1234", "part-b"):
        assert text in html, text
    assert f'href="/nodes/?zone=eu-1"' in html and f'href="/nodes/?cluster={cluster.pk}"' in html
    assert 'id="node-status">connected</span>' in html
    # the chart: two lines of 30 points each (the last hour's samples, newest on the right)
    chart = re.search(r"<svg .*?</svg>", html, re.S).group(0)
    cpu = re.search(r'data-series="cpu"><polyline class="line" points="([^"]+)"', chart).group(1).split()
    memory = re.search(r'data-series="memory"><polyline class="line" points="([^"]+)"', chart).group(1).split()
    assert len(cpu) == len(memory) == 30
    ys = [float(p.split(",")[1]) for p in cpu]
    assert ys == sorted(ys)  # cpu falls with time: the newest samples have the lowest values
    # and the samples table: the newest 20
    table = html[html.index('id="metric-samples"'):html.index('id="datasets"')]
    assert table.count("<tr><td>") == 20
    assert '"nodeId": "%s"' % node.pk in html


def test_periods_average_in_the_database_and_cap_the_points(web, node):
    now = timezone.now()
    NodeMetricFactory.create_batch(3, node=node, timestamp=now - timedelta(hours=30), cpu_percent=80)
    NodeMetricFactory(node=node, timestamp=now - timedelta(hours=2), cpu_percent=20)
    day = _html(web.get(f"/nodes/{node.pk}/?period=24h"))
    assert 'aria-current="page">Last 24 hours' in day
    assert "1 points from" in day  # only the sample of two hours ago
    week = _html(web.get(f"/nodes/{node.pk}/?period=7d"))
    assert "2 points from" in week  # the three samples of one hour average into one point
    assert "No metrics reported in this period." in _html(web.get(f"/nodes/{node.pk}/?period=1h"))
    assert "Last 24 hours" in _html(web.get(f"/nodes/{node.pk}/?period=bogus"))


def test_a_long_period_is_drawn_with_at_most_120_points(web, node):
    from nodes.models import NodeMetric

    now = timezone.now()
    NodeMetric.objects.bulk_create([NodeMetric(node=node, timestamp=now - timedelta(minutes=i), cpu_percent=i % 100,
                                               memory_percent=30) for i in range(1, 600)])
    html = _html(web.get(f"/nodes/{node.pk}/?period=24h"))
    cpu = re.search(r'data-series="cpu"><polyline class="line" points="([^"]+)"', html).group(1).split()
    assert len(cpu) == 120


def test_a_node_without_metrics_or_datasets_renders(web, node):
    html = _html(web.get(f"/nodes/{node.pk}/"))
    assert "No metrics reported in this period." in html
    assert "No sample yet." in html and "No data set registered." in html


# ---- zones ---------------------------------------------------------------------------------------

def test_the_zones_overview_counts_only_visible_nodes(web, owner):
    zone = ZoneFactory(name="Europe one", code="eu-1")
    cluster = ClusterFactory(zone=zone, name="Paris racks")
    ClusterFactory(zone=zone, name="Empty racks")
    NodeFactory(registered_by=owner, zone=zone, cluster=cluster, status=NodeStatus.TRAINING)
    NodeFactory(registered_by=owner, zone=zone, status=NodeStatus.OFFLINE)
    NodeFactory(registered_by=owner)  # no zone
    NodeFactory.create_batch(5, zone=zone, cluster=cluster)  # someone else's
    html = _html(web.get("/nodes/zones/"))
    section = html[html.index('id="zone-eu-1"'):html.index('id="zone-none"')]
    assert "<strong>2</strong> nodes" in section
    assert '1 training</span>' in section and '1 offline</span>' in section
    rows = {name: row for row in re.findall(r"<tr>.*?</tr>", section, re.S)
            for name in ("Paris racks", "Empty racks") if name in row}
    assert "<strong>1</strong> node " in rows["Paris racks"] and "1 training</span>" in rows["Paris racks"]
    assert "<strong>0</strong> nodes" in rows["Empty racks"]
    assert "<strong>1</strong> node " in html[html.index('id="zone-none"'):]
