"""Node services: lifecycle, heartbeats, assignment, the offline sweep and metric retention."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from core.exceptions import ApplicationError, ValidationFailed
from core.models import Event
from core.realtime import user_group
from nodes import selectors, services
from nodes.choices import NodeStatus
from nodes.models import Node, NodeMetric
from nodes.tasks import nodes_mark_offline
from nodes.tests.factories import NodeFactory, NodeMetricFactory
from projects.tests.factories import ProjectMemberFactory
from training.tests.api.factories import ExecutionFactory

pytestmark = pytest.mark.django_db


def _events(name):
    return list(Event.objects.filter(event=name))


def _stale(node, seconds=1):
    Node.objects.filter(pk=node.pk).update(last_seen=timezone.now() - timedelta(seconds=200),
                                           stale_at=timezone.now() - timedelta(seconds=seconds))


def test_register_starts_connected_and_announces_itself(owner, project):
    node = services.node_register(user=owner, name="edge-1", project=project, heartbeat_interval_seconds=10)
    assert node.status == NodeStatus.CONNECTED and node.last_seen is not None
    assert node.stale_at == node.last_seen + timedelta(seconds=20)
    assert [e.event for e in Event.objects.order_by("created_at")] == ["node.status", "client.joined"]
    assert user_group(owner.pk) in _events("node.status")[0].groups


def test_status_changes_follow_the_lifecycle(node):
    services.node_status_set(node=node, status=NodeStatus.TRAINING)
    services.node_status_set(node=node, status=NodeStatus.OFFLINE)
    with pytest.raises(ApplicationError) as err:
        services.node_status_set(node=node, status=NodeStatus.TRAINING)
    assert err.value.http_status == 409 and err.value.details["from"] == "offline"
    node.refresh_from_db()
    assert node.status == NodeStatus.OFFLINE
    assert len(_events("client.left")) == 1 and len(_events("node.status")) == 2


def test_heartbeat_brings_an_offline_node_back_and_writes_its_samples(node):
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)
    earlier = timezone.now() - timedelta(seconds=20)
    node = services.node_heartbeat(node=node, samples=[{"cpu_percent": 50.0, "memory_percent": 70.0},
                                                       {"cpu_percent": 10.0, "timestamp": earlier}])
    assert node.status == NodeStatus.CONNECTED
    assert node.stale_at == node.last_seen + timedelta(seconds=60)
    assert list(NodeMetric.objects.filter(node=node).values_list("cpu_percent", flat=True)) == [10.0, 50.0]
    assert node.latest_metrics["cpu_percent"] == 50.0 and node.latest_metrics["memory_percent"] == 70.0
    assert len(_events("client.joined")) == 1


def test_a_heartbeat_without_a_change_sends_no_event(node):
    services.node_heartbeat(node=node, samples=[])
    assert not Event.objects.exists()


def test_the_sweep_marks_a_quiet_node_offline_once(node, owner, project):
    member = ProjectMemberFactory(project=project).user
    fresh = NodeFactory(registered_by=owner)
    _stale(node)
    assert nodes_mark_offline() == 1
    assert nodes_mark_offline() == 0
    node.refresh_from_db()
    fresh.refresh_from_db()
    assert node.status == NodeStatus.OFFLINE and fresh.status == NodeStatus.CONNECTED
    left = _events("client.left")
    assert len(left) == 1 and len(_events("node.status")) == 1
    assert left[0].data["node_id"] == str(node.pk) and left[0].data["previous_status"] == "connected"
    assert {user_group(owner.pk), user_group(member.pk)} <= set(left[0].groups)


def test_the_sweep_groups_events_by_audience(owner):
    others = [NodeFactory() for _ in range(2)]
    mine = [NodeFactory(registered_by=owner) for _ in range(2)]
    for node in others + mine:
        _stale(node)
    assert services.nodes_mark_offline() == 4
    assert Node.objects.filter(status=NodeStatus.OFFLINE).count() == 4
    mine_events = [e for e in _events("client.left") if user_group(owner.pk) in e.groups]
    assert sorted(e.data["node_id"] for e in mine_events) == sorted(str(n.pk) for n in mine)


def test_the_sweep_prunes_old_metrics(node, settings):
    settings.NODE_METRICS_RETENTION_DAYS = 7
    NodeMetricFactory(node=node, timestamp=timezone.now() - timedelta(days=8))
    kept = NodeMetricFactory(node=node, timestamp=timezone.now() - timedelta(days=6))
    nodes_mark_offline()
    assert list(NodeMetric.objects.values_list("pk", flat=True)) == [kept.pk]


def test_offline_node_ids_names_the_gone_nodes_of_an_execution(owner, project):
    execution = ExecutionFactory(project=project, status="running")
    alive, marked, quiet = (NodeFactory(registered_by=owner, project=project, current_execution=execution)
                            for _ in range(3))
    NodeFactory(registered_by=owner, status=NodeStatus.OFFLINE)  # not assigned
    Node.objects.filter(pk=marked.pk).update(status=NodeStatus.OFFLINE)
    _stale(quiet)
    assert selectors.offline_node_ids(execution) == {marked.pk, quiet.pk}


def test_assign_checks_execution_status_role_and_project(node, project, owner):
    execution = ExecutionFactory(project=project, status="running")
    services.node_assign(node=node, execution=execution, role="trainer", config={"epochs": 2})
    node.refresh_from_db()
    assert node.current_execution_id == execution.pk and node.role == "trainer"
    with pytest.raises(ValidationFailed):
        services.node_assign(node=node, execution=execution, role="aggregator")
    with pytest.raises(ApplicationError) as err:
        services.node_assign(node=node, execution=ExecutionFactory(project=project), role="trainer")
    assert err.value.code == "RESOURCE_CONFLICT"
    services.node_unassign(node=node)
    with pytest.raises(ApplicationError) as err:
        services.node_assign(node=node, execution=ExecutionFactory(project=project, status="completed"),
                             role="trainer")
    assert err.value.code == "FL001"
    with pytest.raises(ValidationFailed):
        services.node_assign(node=node, execution=ExecutionFactory(status="pending"), role="trainer")
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)
    with pytest.raises(ApplicationError) as err:
        services.node_assign(node=node, execution=execution, role="trainer")
    assert err.value.code == "FL005"


def test_the_sweep_delivers_client_left_to_the_owner_after_commit(node, owner, fresh_channel_layer,
                                                                  django_capture_on_commit_callbacks):
    _stale(node)
    group = user_group(owner.pk)

    async def scenario():
        channel = await fresh_channel_layer.new_channel()
        await fresh_channel_layer.group_add(group, channel)

        def sweep():
            with django_capture_on_commit_callbacks(execute=True):
                nodes_mark_offline()

        await sync_to_async(sweep)()
        received = []
        while True:
            try:
                received.append(await asyncio.wait_for(fresh_channel_layer.receive(channel), 0.3))
            except asyncio.TimeoutError:
                return received

    received = async_to_sync(scenario)()
    assert [m["event"] for m in received] == ["node.status", "client.left"]
    assert received[1]["data"]["node_id"] == str(node.pk) and received[1]["data"]["status"] == "offline"
