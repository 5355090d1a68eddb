"""Reads for nodes, zones, clusters, datasets and metrics.

Visibility: a user sees the nodes they registered and the nodes of projects they can see (owner or
member); holders of ``*`` see every node. Someone else's node answers 404, as if it did not exist;
changing one needs to be its registrant or to have write access to its project (403 otherwise).
Zones and clusters are shared by the whole platform.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Avg, Count, Max, Min, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from core.exceptions import Forbidden, NotFound
from nodes.choices import MetricPeriod, NodeStatus
from nodes.models import Cluster, Node, NodeDataset, NodeMetric, Zone
from projects import selectors as project_selectors

PERIODS = {MetricPeriod.HOUR: timedelta(hours=1), MetricPeriod.DAY: timedelta(hours=24),
           MetricPeriod.WEEK: timedelta(days=7), MetricPeriod.MONTH: timedelta(days=30)}


def node_list(*, user: User) -> QuerySet[Node]:
    qs = Node.objects.select_related("zone", "cluster", "project")
    if user.has_wildcard_permission():
        return qs
    visible = project_selectors.visible_projects(user).values("pk")
    return qs.filter(Q(registered_by=user) | Q(project__in=visible))


def can_write(user: User, node: Node) -> bool:
    if user.has_wildcard_permission() or node.registered_by_id == user.pk:
        return True
    return node.project is not None and project_selectors.can_write(user, node.project)


def node_get(*, user: User, node_id, for_write: bool = False) -> Node:
    """The node if ``user`` may see it (404 otherwise, also for a malformed id) and, with
    ``for_write``, may change it (403)."""
    try:
        node_id = uuid.UUID(str(node_id))
    except ValueError:
        raise NotFound("Node not found", details={"node_id": str(node_id)})
    node = node_list(user=user).filter(pk=node_id).first()
    if node is None:
        raise NotFound("Node not found", details={"node_id": str(node_id)})
    if for_write and not can_write(user, node):
        raise Forbidden("You can see this node but not change it: that needs to have registered it or write "
                        "access to its project")
    return node


def offline_node_ids(execution) -> set[uuid.UUID]:
    """The nodes assigned to ``execution`` that are known to be gone: marked offline, or past twice
    their heartbeat interval and not yet marked. For the engine, so that it does not wait out a
    round's timeout for them."""
    now = timezone.now()
    return set(Node.objects.filter(current_execution=execution)
               .filter(Q(status=NodeStatus.OFFLINE) | Q(stale_at__lt=now)).values_list("pk", flat=True))


def flower_nodes_offline(flower_node_ids, *, project_id) -> list[int]:
    """Of ``flower_node_ids`` (the ids a SuperLink gave its SuperNodes), those whose registry node is
    known to be gone (offline, or past twice its heartbeat interval and not yet marked). The node
    agent reports its SuperNode's id in every heartbeat (``metadata.agent.supernode.flower_node_id``);
    nodes of another project are not answered for."""
    wanted = {str(n) for n in flower_node_ids}
    if not wanted:
        return []
    rows = (Node.objects.filter(metadata__agent__supernode__flower_node_id__in=sorted(wanted))
            .filter(Q(project__isnull=True) | Q(project_id=project_id))
            .filter(Q(status=NodeStatus.OFFLINE) | Q(stale_at__lt=timezone.now()))
            .values_list("metadata__agent__supernode__flower_node_id", flat=True))
    return sorted({int(value) for value in rows if str(value) in wanted})


def zone_list() -> QuerySet[Zone]:
    return Zone.objects.all()


def zone_get(*, zone_id) -> Zone:
    return _by_int(Zone.objects.all(), zone_id, "Zone not found")


def zone_by_reference(reference) -> Zone | None:
    """A zone by id or code (seed 001 writes ``location.zone`` as a name)."""
    ref = str(reference).strip()
    if ref.isdigit():
        return Zone.objects.filter(pk=int(ref)).first() if len(ref) < 19 else None
    return Zone.objects.filter(code=ref).first()


def cluster_list() -> QuerySet[Cluster]:
    return Cluster.objects.select_related("zone")


def cluster_get(*, cluster_id) -> Cluster:
    return _by_int(cluster_list(), cluster_id, "Cluster not found")


def dataset_list(*, user: User) -> QuerySet[NodeDataset]:
    return NodeDataset.objects.filter(node__in=node_list(user=user).values("pk")).order_by("node_id", "name")


def metric_samples(*, node: Node, period: str) -> QuerySet[NodeMetric]:
    since = timezone.now() - PERIODS[period]
    return NodeMetric.objects.filter(node=node, timestamp__gte=since).order_by("timestamp", "id")


def _by_int(queryset: QuerySet, pk, message: str):
    try:
        pk = int(str(pk))
    except ValueError:
        raise NotFound(message)
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise NotFound(message)
    return row


# ---- metric reports ------------------------------------------------------------------------------

# seed 000 names for each stored column, grouped by what ``?metrics=`` asks for.
SERIES_GROUPS = {
    "cpu": {"cpu_percent": "cpu_usage"},
    "memory": {"memory_percent": "memory_usage"},
    "disk": {"disk_percent": "disk_usage"},
    "network": {"network_bytes_sent": "bytes_sent", "network_bytes_recv": "bytes_received"},
    "fl": {"rounds_completed": "training_rounds_completed", "updates_sent": "model_updates_sent",
           "avg_training_seconds": "average_training_time"},
}


def node_metrics_report(*, node: Node, period: str, groups: list[str]) -> dict:
    """seed 000's node metrics: the latest values and the period's series of the ``groups`` asked."""
    columns = {col: name for g in groups for col, name in SERIES_GROUPS[g].items()}
    samples = list(metric_samples(node=node, period=period).only("timestamp", *columns))
    series = [{"timestamp": s.timestamp, **{name: getattr(s, col) for col, name in columns.items()}} for s in samples]
    last = node.latest_metrics or {}
    return {
        "node_id": node.pk,
        "period": period,
        "metrics": {
            "system": {"cpu_usage": last.get("cpu_percent"), "memory_usage": last.get("memory_percent"),
                       "disk_usage": last.get("disk_percent"),
                       "network_io": {"bytes_sent": last.get("network_bytes_sent"),
                                      "bytes_received": last.get("network_bytes_recv")}},
            "federated_learning": {"training_rounds_completed": last.get("rounds_completed"),
                                   "model_updates_sent": last.get("updates_sent"),
                                   "average_training_time": last.get("avg_training_seconds")},
        },
        "series": series,
    }


def client_metrics_report(*, node: Node, period: str, blocks: list[str]) -> dict:
    """seed 001's client metrics by period: performance, data_quality and contribution."""
    report: dict = {"client_id": node.pk, "period": period}
    samples = metric_samples(node=node, period=period)
    if "performance" in blocks:
        stats = samples.aggregate(samples=Count("id"), cpu_avg=Avg("cpu_percent"), cpu_max=Max("cpu_percent"),
                                  memory_avg=Avg("memory_percent"), memory_max=Max("memory_percent"),
                                  training_seconds_avg=Avg("avg_training_seconds"))
        report["performance"] = {**stats, **({"reported": node.performance} if node.performance else {})}
    if "data_quality" in blocks:
        report["data_quality"] = {
            "profile": node.data_profile, "dataset": node.dataset,
            "datasets": [{"name": d.name, "rows": d.rows, "features": d.features, "classes": d.classes}
                         for d in node.datasets.all()],
        }
    if "contribution" in blocks:
        counters = samples.aggregate(rounds_first=Min("rounds_completed"), rounds_last=Max("rounds_completed"),
                                     updates_first=Min("updates_sent"), updates_last=Max("updates_sent"))
        report["contribution"] = {
            "rounds_completed": _delta(counters["rounds_first"], counters["rounds_last"]),
            "updates_sent": _delta(counters["updates_first"], counters["updates_last"]),
            "rounds_completed_total": counters["rounds_last"],
            "updates_sent_total": counters["updates_last"],
            "current_execution": str(node.current_execution_id) if node.current_execution_id else None,
            "role": node.role or None,
        }
    return report


def _delta(first, last):
    return None if first is None or last is None else last - first


# ---- the node agent's federation -------------------------------------------------------------------

logger = logging.getLogger(__name__)
# What a node's ``assignment_config["federation"]`` may set instead of the settings, with its type.
FEDERATION_OVERRIDES = {"address": str, "insecure": bool, "root_certificates": str, "node_config": dict}


def _pem(path: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("FLOWER_ROOT_CERTIFICATES %s cannot be read: %s", path, exc)
        return None


def node_federation(*, node: Node) -> dict:
    """Where the node's Flower SuperNode connects, for its agent (with every heartbeat): the
    SuperLink's Fleet API from the settings, or what ``assignment_config["federation"]`` says for
    this node (values of the wrong type are ignored). ``root_certificates`` is the CA's PEM text, not
    a path: the node runs on another host. No query."""
    federation = {
        "address": settings.FLOWER_FLEET_ADDRESS or settings.FLOWER_SUPERLINK_ADDRESS,
        "insecure": settings.FLOWER_INSECURE,
        "root_certificates": None if settings.FLOWER_INSECURE else _pem(settings.FLOWER_ROOT_CERTIFICATES),
        "node_config": {},
        "execution_id": str(node.current_execution_id) if node.current_execution_id else None,
        "source": "settings",
    }
    override = (node.assignment_config or {}).get("federation")
    if isinstance(override, dict):
        given = {key: override[key] for key, kind in FEDERATION_OVERRIDES.items()
                 if isinstance(override.get(key), kind) and override[key] != ""}
        if given:
            federation.update(given, source="assignment")
    return federation
