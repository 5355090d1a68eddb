"""Writes for nodes: register, update, status, heartbeats, assignment, and the offline sweep.

Every change of a node happens under its row lock and broadcasts ``node.status`` (plus
``client.joined`` / ``client.left`` when it comes or goes) to its audience after commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from core.exceptions import ApplicationError, NotFound, ValidationFailed
from core.lifecycle import move
from core.realtime import broadcast_many_on_commit
from nodes import events
from nodes.choices import TRANSITIONS, NodeRole, NodeStatus, NodeType
from nodes.models import Cluster, Node, NodeDataset, NodeMetric, Zone
from training.choices import ExecutionStatus
from training.models import Execution

ASSIGNABLE_EXECUTION_STATUSES = {ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.SUSPENDED}
METRIC_FIELDS = ("cpu_percent", "memory_percent", "disk_percent", "network_bytes_sent", "network_bytes_recv",
                 "rounds_completed", "updates_sent", "avg_training_seconds")
# Fields ``node_update`` may change; status and assignment have their own services.
EDITABLE_FIELDS = ("name", "type", "host", "capability", "data_profile", "location", "region", "zone", "cluster",
                   "dataset", "resources", "connectivity", "framework", "framework_version", "metadata",
                   "heartbeat_interval_seconds", "performance", "project")


def _stale_at(node: Node) -> datetime | None:
    return node.last_seen + timedelta(seconds=2 * node.heartbeat_interval_seconds) if node.last_seen else None


def _place(fields: dict) -> None:
    """A cluster implies its zone; a cluster of another zone than the one given is refused."""
    cluster: Cluster | None = fields.get("cluster")
    if cluster is None:
        return
    zone: Zone | None = fields.get("zone")
    if zone is None:
        fields["zone"] = cluster.zone
    elif zone.pk != cluster.zone_id:
        raise ValidationFailed(f"Cluster {cluster.name!r} belongs to zone {cluster.zone.code!r}, not {zone.code!r}",
                               field="cluster")


def node_transition(node: Node, new_status: str) -> None:
    """Move ``node`` to ``new_status`` or raise 409. Call holding the row lock; the caller saves."""
    move(node, TRANSITIONS, new_status, noun="A node", details={"field": "status"})


def _locked(node: Node) -> Node:
    return Node.objects.select_for_update(of=("self",)).select_related("project", "zone", "cluster").get(pk=node.pk)


@transaction.atomic
def node_register(*, user: User, name: str, registration_key: str = "", **fields) -> Node:
    """Register a node; it has just talked to us, so it starts ``connected``."""
    return node_register_once(user=user, name=name, registration_key=registration_key, **fields)[0]


def node_register_once(*, user: User, name: str, registration_key: str = "", **fields) -> tuple[Node, bool]:
    """``node_register`` that a client may repeat safely: with a ``registration_key`` (its
    Idempotency-Key), the node this user already registered with that key is returned instead of a
    second one, however close together the two requests come. ``(node, created)``."""
    fields = {k: v for k, v in fields.items() if k in EDITABLE_FIELDS}
    _place(fields)
    if registration_key:
        existing = Node.objects.filter(registered_by=user, registration_key=registration_key).first()
        if existing is not None:
            return existing, False
    now = timezone.now()
    node = Node(name=name, registered_by=user, status=NodeStatus.CONNECTED, last_seen=now,
                registration_key=registration_key, **fields)
    node.stale_at = _stale_at(node)
    try:
        with transaction.atomic():
            node.save(force_insert=True)
    except IntegrityError:
        existing = Node.objects.filter(registered_by=user, registration_key=registration_key).first()
        if not registration_key or existing is None:
            raise
        return existing, False  # the same key registered by a request that was a moment ahead
    events.broadcast_node(node, NodeStatus.OFFLINE)
    return node, True


@transaction.atomic
def node_update(*, node: Node, **fields) -> Node:
    node = _locked(node)
    changes = {k: v for k, v in fields.items() if k in EDITABLE_FIELDS}
    if "zone" in changes or "cluster" in changes:
        placed = {"zone": changes.get("zone", node.zone), "cluster": changes.get("cluster", node.cluster)}
        if "zone" in changes and "cluster" not in changes and node.cluster and node.cluster.zone_id != getattr(
                changes["zone"], "pk", None):
            placed["cluster"] = None  # moving to another zone leaves the old zone's cluster
        _place(placed)
        changes.update(placed)
    if changes.get("type") == NodeType.CLIENT and node.role == NodeRole.AGGREGATOR:
        raise ValidationFailed("This node aggregates for an execution; unassign it before making it a client",
                               field="type")
    for key, value in changes.items():
        setattr(node, key, value)
    node.stale_at = _stale_at(node)
    node.save()
    events.broadcast_node(node, node.status)
    return node


@transaction.atomic
def node_delete(*, node: Node) -> None:
    node = _locked(node)
    groups = events.audiences([node])[node.pk]
    previous = node.status
    node.status = NodeStatus.OFFLINE
    events.broadcast_node(node, previous, groups)
    node.delete()


@transaction.atomic
def node_status_set(*, node: Node, status: str, metadata: dict | None = None) -> Node:
    """Set a node's status (409 for a transition the lifecycle does not allow)."""
    node = _locked(node)
    previous = node.status
    node_transition(node, status)
    if metadata:
        node.metadata = {**node.metadata, **metadata}
    node.save(update_fields=["status", "metadata", "updated_at"])
    events.broadcast_node(node, previous)
    return node


@transaction.atomic
def node_heartbeat(*, node: Node, samples: list[dict] | None = None, status: str | None = None,
                   agent: dict | None = None) -> Node:
    """Record that ``node`` is alive: ``last_seen`` now, back from offline to ``connected`` (or the
    status it reports), and its metric samples appended in one insert. ``agent`` (the node agent's
    own report: its SuperNode's pid, restarts, ...) replaces ``metadata["agent"]``."""
    node = _locked(node)
    now = timezone.now()
    previous = node.status
    if status:
        node_transition(node, status)
    elif previous == NodeStatus.OFFLINE:
        node_transition(node, NodeStatus.CONNECTED)
    node.last_seen = now
    node.stale_at = _stale_at(node)
    rows = node_metrics_record(node=node, samples=samples or [], now=now)
    if rows:
        latest = rows[-1]
        node.latest_metrics = {f: getattr(latest, f) for f in METRIC_FIELDS if getattr(latest, f) is not None}
        node.latest_metrics["timestamp"] = latest.timestamp.isoformat().replace("+00:00", "Z")
    fields = ["status", "last_seen", "stale_at", "latest_metrics", "updated_at"]
    if agent is not None:
        node.metadata = {**(node.metadata or {}), "agent": agent}
        fields.append("metadata")
    node.save(update_fields=fields)
    if node.status != previous:
        events.broadcast_node(node, previous)
    return node


def node_metrics_record(*, node: Node, samples: list[dict], now: datetime | None = None) -> list[NodeMetric]:
    """Append metric samples (checked dicts of ``METRIC_FIELDS`` with an optional ``timestamp``) in
    one insert, oldest first."""
    now = now or timezone.now()
    rows = [NodeMetric(node=node, timestamp=min(sample.get("timestamp") or now, now),
                       **{f: sample.get(f) for f in METRIC_FIELDS}) for sample in samples]
    rows.sort(key=lambda row: row.timestamp)
    return NodeMetric.objects.bulk_create(rows) if rows else []


@transaction.atomic
def node_assign(*, node: Node, execution: Execution, role: str, config: dict | None = None) -> Node:
    """Assign ``node`` to ``execution`` with a role. The caller checked the execution is visible; here
    it must still be pending, running or suspended (``FL001`` otherwise), the node online (``FL005``)
    and free, and the role fit the node."""
    node = _locked(node)
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    if execution.status not in ASSIGNABLE_EXECUTION_STATUSES:
        raise ApplicationError("FL001", f"Execution {execution.pk} is {execution.status}: nodes join only a pending, "
                               "running or suspended execution", details={"field": "executionId"})
    if role == NodeRole.AGGREGATOR and node.type != NodeType.AGGREGATOR:
        raise ValidationFailed("Only an aggregator node can take the aggregator role", field="role")
    if node.project_id and node.project_id != execution.project_id:
        raise ValidationFailed("This node serves another project's executions", field="executionId")
    if node.status == NodeStatus.OFFLINE:
        raise ApplicationError("FL005", "The node is offline", details={"node_id": str(node.pk)})
    if node.current_execution_id and node.current_execution_id != execution.pk:
        raise ApplicationError("RESOURCE_CONFLICT", "The node is assigned to another execution; unassign it first",
                               details={"execution_id": str(node.current_execution_id)}, http_status=409)
    node.current_execution = execution
    node.role = role
    node.assignment_config = config or {}
    node.save(update_fields=["current_execution", "role", "assignment_config", "updated_at"])
    events.broadcast_node(node, node.status)
    return node


@transaction.atomic
def node_unassign(*, node: Node) -> Node:
    node = _locked(node)
    if node.current_execution_id is None:
        raise ApplicationError("RESOURCE_CONFLICT", "The node is not assigned to an execution", http_status=409)
    previous = node.status
    node.current_execution = None
    node.role = ""
    node.assignment_config = {}
    if node.status == NodeStatus.TRAINING:
        node.status = NodeStatus.IDLE
    node.save(update_fields=["current_execution", "role", "assignment_config", "status", "updated_at"])
    events.broadcast_node(node, previous)
    return node


@transaction.atomic
def node_dataset_put(*, node: Node, name: str, make_current: bool = False, **fields) -> tuple[NodeDataset, bool]:
    """Create or update the node's dataset called ``name``; ``(dataset, created)``."""
    node = _locked(node)
    dataset, created = NodeDataset.objects.update_or_create(node=node, name=name, defaults=fields)
    if make_current and node.dataset != name:
        node.dataset = name
        node.save(update_fields=["dataset", "updated_at"])
    return dataset, created


@transaction.atomic
def node_dataset_remove(*, node: Node, name: str) -> None:
    node = _locked(node)
    deleted, _ = NodeDataset.objects.filter(node=node, name=name).delete()
    if not deleted:
        raise NotFound(f"Node {node.pk} has no dataset {name!r}", details={"field": "name"})
    if node.dataset == name:
        node.dataset = ""
        node.save(update_fields=["dataset", "updated_at"])


def nodes_mark_offline(*, now: datetime | None = None) -> int:
    """Mark offline every node past twice its heartbeat interval: one UPDATE for the set, then the
    events, grouped by audience. Nodes whose heartbeat lands meanwhile are left alone."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(Node.objects.select_for_update(skip_locked=True, of=("self",)).select_related("project")
                     .filter(stale_at__lt=now).exclude(status=NodeStatus.OFFLINE))
        if not stale:
            return 0
        Node.objects.filter(pk__in=[n.pk for n in stale]).update(status=NodeStatus.OFFLINE, updated_at=now)
        by_audience: dict[tuple, list] = {}
        groups = events.audiences(stale)
        for node in stale:
            previous, node.status = node.status, NodeStatus.OFFLINE
            by_audience.setdefault(tuple(groups[node.pk]), []).extend(events.node_events(node, previous))
        for audience, batch in by_audience.items():
            broadcast_many_on_commit(batch, list(audience))
    return len(stale)


def node_metrics_prune(*, now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=settings.NODE_METRICS_RETENTION_DAYS)
    deleted, _ = NodeMetric.objects.filter(timestamp__lt=cutoff).delete()
    return deleted


# ---- zones and clusters ----------------------------------------------------------------------------

def zone_create(**fields) -> Zone:
    return Zone.objects.create(**fields)


@transaction.atomic
def zone_update(*, zone: Zone, **fields) -> Zone:
    zone = Zone.objects.select_for_update().get(pk=zone.pk)
    for key, value in fields.items():
        setattr(zone, key, value)
    zone.save()
    return zone


def cluster_create(*, name: str, zone: Zone, description: str = "") -> Cluster:
    if Cluster.objects.filter(zone=zone, name=name).exists():
        raise ValidationFailed(f"Zone {zone.code!r} already has a cluster {name!r}", field="name")
    return Cluster.objects.create(name=name, zone=zone, description=description)


@transaction.atomic
def cluster_update(*, cluster: Cluster, **fields) -> Cluster:
    """Change a cluster; moving it to another zone moves its nodes with it."""
    cluster = Cluster.objects.select_for_update().select_related("zone").get(pk=cluster.pk)
    for key, value in fields.items():
        setattr(cluster, key, value)
    if Cluster.objects.filter(zone=cluster.zone, name=cluster.name).exclude(pk=cluster.pk).exists():
        raise ValidationFailed(f"Zone {cluster.zone.code!r} already has a cluster {cluster.name!r}", field="name")
    cluster.save()
    Node.objects.filter(cluster=cluster).exclude(zone=cluster.zone).update(zone=cluster.zone, updated_at=timezone.now())
    return cluster
