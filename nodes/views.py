"""The dashboard pages for nodes: the node list, a node's page (its metrics as a server-drawn SVG
chart and a table of samples) and the zones and clusters overview. The same selectors and
FilterSet as the API: a user sees the nodes they registered and the nodes of projects they can see;
someone else's node answers 404. Status and last-seen stay live through the one WebSocket endpoint
(``static/js/nodes.js``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Avg, Count
from django.db.models.functions import TruncHour, TruncMinute
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from core.exceptions import ApplicationError
from core.permissions import has_permission
from nodes import selectors
from nodes.choices import MetricPeriod, NodeStatus, NodeType
from nodes.filters import NodeFilterSet
from nodes.models import Node, NodeMetric
from training import selectors as training_selectors

PAGE_SIZE = 20
SAMPLE_ROWS = 20       # the newest samples listed under the chart
CHART_POINTS = 120     # at most this many points per line, whatever the period
# The API's read permissions (nodes/api/views.py): any one is enough.
READ = ("read:projects", "client:read", "view:metrics")
# Averaged in the database before the chart's own bucketing: a week of 30-second heartbeats is
# 20,000 rows, its hours 168.
TRUNC = {MetricPeriod.HOUR: None, MetricPeriod.DAY: TruncMinute, MetricPeriod.WEEK: TruncHour,
         MetricPeriod.MONTH: TruncHour}
CHART = {"width": 480, "height": 140, "left": 34, "right": 8, "top": 8, "bottom": 22}


# ---- permissions and lookups ---------------------------------------------------------------------

def _require_read(request) -> None:
    permissions = request.user.permission_strings
    if not any(has_permission(permissions, p) for p in READ):
        raise PermissionDenied(f"You need one of the permissions {', '.join(READ)}")


def _node_or_404(request, pk) -> Node:
    try:
        return selectors.node_get(user=request.user, node_id=pk)
    except ApplicationError:
        raise Http404("Node not found")


def _visible_execution_ids(user, nodes) -> set:
    """Which of the nodes' current executions ``user`` may open (one query): the others are shown
    without a link or a name."""
    ids = {n.current_execution_id for n in nodes if n.current_execution_id}
    if not ids:
        return set()
    return set(training_selectors.execution_list(user=user).filter(pk__in=ids).values_list("pk", flat=True))


def _annotate(nodes, visible_executions: set, now: datetime) -> None:
    for node in nodes:
        node.execution_visible = node.current_execution_id in visible_executions
        # Quiet for longer than twice its interval but not yet marked offline by the sweep.
        node.is_late = bool(node.status != NodeStatus.OFFLINE and node.stale_at and node.stale_at < now)


# ---- list ----------------------------------------------------------------------------------------

@login_required
def node_list(request):
    _require_read(request)
    visible = selectors.node_list(user=request.user)
    filterset = NodeFilterSet(request.GET, queryset=visible.select_related("current_execution"))
    nodes = filterset.qs if filterset.is_valid() else visible.none()
    page = Paginator(nodes, PAGE_SIZE).get_page(request.GET.get("page"))
    _annotate(page.object_list, _visible_execution_ids(request.user, page.object_list), timezone.now())
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "nodes/list.html", {
        "filterset": filterset, "page": page, "query": query.urlencode(),
        "statuses": NodeStatus.choices, "types": NodeType.choices,
        "zones": selectors.zone_list().values("pk", "code", "name"),
        "regions": visible.exclude(region="").order_by("region").values_list("region", flat=True).distinct(),
        "live": {"renderedAt": timezone.now().isoformat()},
    })


# ---- one node ------------------------------------------------------------------------------------

def _period(request) -> str:
    value = request.GET.get("period", MetricPeriod.DAY)
    return value if value in MetricPeriod.values else MetricPeriod.DAY


def _series(node: Node, period: str) -> list[tuple[datetime, float | None, float | None]]:
    """(time, cpu %, memory %) over ``period``, oldest first, at most CHART_POINTS points."""
    samples = selectors.metric_samples(node=node, period=period)
    trunc = TRUNC[period]
    if trunc is None:
        rows = samples.values_list("timestamp", "cpu_percent", "memory_percent")
    else:
        rows = (samples.order_by().annotate(bucket=trunc("timestamp")).values("bucket")
                .annotate(cpu=Avg("cpu_percent"), memory=Avg("memory_percent"))
                .order_by("bucket").values_list("bucket", "cpu", "memory"))
    return _downsample(list(rows), CHART_POINTS)


def _downsample(rows: list, points: int) -> list:
    """Average consecutive rows into at most ``points`` groups (None values are skipped)."""
    if len(rows) <= points:
        return rows
    out = []
    for i in range(points):
        group = rows[i * len(rows) // points:(i + 1) * len(rows) // points]
        cpu = [r[1] for r in group if r[1] is not None]
        memory = [r[2] for r in group if r[2] is not None]
        out.append((group[-1][0], sum(cpu) / len(cpu) if cpu else None,
                    sum(memory) / len(memory) if memory else None))
    return out


def _chart(rows: list) -> dict | None:
    """An SVG line chart of cpu and memory (0-100 %) against time, as coordinates for the template:
    drawn on the server, so the page needs no script for it and the CSP has nothing to allow."""
    if not rows:
        return None
    c = CHART
    plot_w, plot_h = c["width"] - c["left"] - c["right"], c["height"] - c["top"] - c["bottom"]
    t0, t1 = rows[0][0].timestamp(), rows[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def x(t: datetime) -> float:
        return c["left"] + (t.timestamp() - t0) / span * plot_w if t1 > t0 else c["left"] + plot_w / 2

    def y(value: float) -> float:
        return c["top"] + (1 - max(0.0, min(value, 100.0)) / 100) * plot_h

    def line(column: int) -> str:
        return " ".join(f"{x(r[0]):.1f},{y(r[column]):.1f}" for r in rows if r[column] is not None)

    return {
        **c,
        "cpu": line(1), "memory": line(2),
        "grid": [{"y": round(y(v), 1), "label": v} for v in (0, 50, 100)],
        "right_x": c["width"] - c["right"], "bottom_y": c["height"] - c["bottom"],
        "label_y": c["height"] - 6, "text_x": c["left"] - 4,
        "first": rows[0][0], "last": rows[-1][0], "points": len(rows),
    }


@login_required
def node_detail(request, pk):
    _require_read(request)
    node = _node_or_404(request, pk)
    period = _period(request)
    now = timezone.now()
    execution = None
    if node.current_execution_id:
        execution = training_selectors.execution_list(user=request.user).filter(pk=node.current_execution_id).first()
    _annotate([node], {execution.pk} if execution else set(), now)
    samples = list(NodeMetric.objects.filter(node=node).order_by("-timestamp", "-id")[:SAMPLE_ROWS])
    return render(request, "nodes/detail.html", {
        "node": node,
        "execution": execution,
        "datasets": list(node.datasets.all()),
        "latest": node.latest_metrics or {},
        "samples": samples,
        "period": period,
        "periods": MetricPeriod.choices,
        "chart": _chart(_series(node, period)),
        "live": {"nodeId": str(node.pk), "status": node.status, "renderedAt": now.isoformat()},
    })


# ---- zones and clusters --------------------------------------------------------------------------

@login_required
def zone_overview(request):
    """Every zone with its clusters and how many of the user's visible nodes are in each, by status."""
    _require_read(request)
    counts = (selectors.node_list(user=request.user).order_by()
              .values("zone_id", "cluster_id", "status").annotate(n=Count("pk")))
    by_zone: dict = defaultdict(lambda: defaultdict(int))
    by_cluster: dict = defaultdict(lambda: defaultdict(int))
    for row in counts:
        by_zone[row["zone_id"]][row["status"]] += row["n"]
        if row["cluster_id"]:
            by_cluster[row["cluster_id"]][row["status"]] += row["n"]
    clusters: dict = defaultdict(list)
    for cluster in selectors.cluster_list():
        cluster.tally = _tally(by_cluster.get(cluster.pk, {}))
        clusters[cluster.zone_id].append(cluster)
    zones = list(selectors.zone_list())
    for zone in zones:
        zone.tally = _tally(by_zone.get(zone.pk, {}))
        zone.cluster_rows = clusters.get(zone.pk, [])
    return render(request, "nodes/zones.html", {"zones": zones, "unzoned": _tally(by_zone.get(None, {}))})


def _tally(by_status: dict) -> dict:
    """``{"total": n, "statuses": [(status, n), ...]}`` in the lifecycle's order, zeros left out."""
    return {"total": sum(by_status.values()),
            "statuses": [(s, by_status[s]) for s in NodeStatus.values if by_status.get(s)]}
