"""The nodes API: seed 000 ``/nodes``, seed 001/004 ``/fl/clients``, seed 004 zones, clusters and
datasets.

Permissions. Reading nodes needs any of ``read:projects`` (seed 000), ``client:read`` (seed 004's
``ml_engineer`` holds ``client:*``) or ``view:metrics``; changing them any of ``client:write``,
``client:create``, ``client:update`` or ``write:projects``. Registering also accepts a device's
``client:register`` and a heartbeat its ``training:participate``. Zones and clusters are shared by
the platform: anyone who reads nodes reads them, and changing them needs a ``client:*`` permission.
Which nodes a caller sees is ``nodes.selectors``' business: someone else's node answers 404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action

from core.api.envelope import respond
from core.api.permissions import RequiresPermission
from core.exceptions import ValidationFailed
from nodes import selectors, services
from nodes.api import serializers as s
from nodes.api.throttles import HeartbeatFleetThrottle, NodeHeartbeatThrottle
from nodes.filters import NodeDatasetFilterSet, NodeFilterSet, has_filter_parameters
from nodes.models import Cluster, Node, NodeDataset, Zone
from projects import selectors as project_selectors
from training import selectors as training_selectors

READ = ("read:projects", "client:read", "view:metrics")
WRITE = ("client:write", "client:create", "client:update", "write:projects")
REGISTER = (*WRITE, "client:register")
HEARTBEAT = (*WRITE, "training:participate")
ZONE_WRITE = ("client:write", "client:create", "client:update")

NODE_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Node (client) id")
INT_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
PERIOD = OpenApiParameter("period", OpenApiTypes.STR, enum=["1h", "24h", "7d", "30d"], default="24h")
_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
CONFLICT = {409: OpenApiResponse(_ERROR, description="Not possible in the node's status (RESOURCE_CONFLICT, FL005)")}


class _NodesViewSet(viewsets.GenericViewSet):
    permission_classes = [RequiresPermission]
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset_model.objects.none()
        return self.visible()

    def filter_queryset(self, queryset):
        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is None or not has_filter_parameters(filterset_class, self.request.query_params):
            return queryset
        return super().filter_queryset(queryset)

    def get_throttles(self):
        if self.action == "heartbeat":
            return [NodeHeartbeatThrottle(), HeartbeatFleetThrottle()]
        return super().get_throttles()

    def _page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    def _node(self, pk, *, for_write: bool = False) -> Node:
        return selectors.node_get(user=self.request.user, node_id=pk, for_write=for_write)

    def _heartbeat(self, request, pk):
        from nodes.protocol.auth import check_acting_for

        check_acting_for(request, pk)  # a device token beats for its own node only (403)
        node = self._node(pk, for_write=True)
        data = s.validated_input(s.HeartbeatInputSerializer, request.data)
        samples = list(data.get("samples", []))
        if data.get("metrics"):
            samples.append(data["metrics"])
        node = services.node_heartbeat(node=node, samples=samples, status=data.get("status"), agent=data.get("agent"))
        return respond({**s.NodeSerializer(node).data, "federation": selectors.node_federation(node=node)},
                       message="Heartbeat recorded")


def _metrics_query(request) -> dict:
    return s.validated_input(s.MetricsQuerySerializer, request.query_params.dict())


def _choices(raw: str | None, allowed, default, field: str) -> list[str]:
    wanted = [p.strip() for p in (raw or "").split(",") if p.strip()] or list(default)
    unknown = [p for p in wanted if p not in allowed]
    if unknown:
        raise ValidationFailed(f"{field} must be among {sorted(allowed)}; {unknown[0]!r} is not", field=field)
    return wanted


# ---- /nodes (seed 000) -----------------------------------------------------------------------------

class NodeViewSet(_NodesViewSet):
    """seed 000 Node Management: the connected nodes, their metrics, and their heartbeats."""

    serializer_class = s.NodeListItemSerializer
    filterset_class = NodeFilterSet
    queryset_model = Node
    required_permissions = {"list": READ, "metrics": READ, "heartbeat": HEARTBEAT}

    def visible(self):
        return selectors.node_list(user=self.request.user)

    @extend_schema(responses={200: s.NodeListItemSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.NodeListItemSerializer)

    @extend_schema(parameters=[NODE_ID, PERIOD, OpenApiParameter(
        "metrics", OpenApiTypes.STR, description="Comma-separated: cpu, memory, disk, network, fl (all by default)")],
        responses={200: s.NodeMetricsSerializer})
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        node = self._node(pk)
        query = _metrics_query(request)
        groups = _choices(query.get("metrics"), selectors.SERIES_GROUPS, selectors.SERIES_GROUPS, "metrics")
        report = selectors.node_metrics_report(node=node, period=query["period"], groups=groups)
        return respond(report, message="Node metrics")

    @extend_schema(parameters=[NODE_ID], request=s.HeartbeatInputSerializer,
                   responses={200: s.HeartbeatSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, pk=None):
        return self._heartbeat(request, pk)


# ---- /fl/clients (seed 001, seed 004) --------------------------------------------------------------

class ClientViewSet(_NodesViewSet):
    """seed 001 Client Management and seed 004 Federated Learning Client Management."""

    serializer_class = s.NodeSerializer
    filterset_class = NodeFilterSet
    queryset_model = Node
    required_permissions = {
        "list": READ, "retrieve": READ, "metrics": READ, "by_location": READ, "by_zone": READ,
        "dataset:get": READ, "datasets:get": READ, "cluster:get": READ,
        "create": REGISTER, "heartbeat": HEARTBEAT,
        "*": WRITE,
    }

    def visible(self):
        return selectors.node_list(user=self.request.user)

    def _fields(self, data: dict) -> dict:
        """Input fields as the services take them: zone, cluster and project resolved."""
        fields = {k: v for k, v in data.items() if k not in ("zone", "cluster", "project_id", "location")}
        location = data.get("location")
        if location is not None:
            location = dict(location)
            if location.get("region") and "region" not in data:
                fields["region"] = location.pop("region")
            if location.get("zone") and "zone" not in data:
                data = {**data, "zone": location.pop("zone")}
            location.pop("zone", None)
            fields["location"] = location
        if "zone" in data:
            fields["zone"] = None
            if data["zone"] not in (None, ""):
                fields["zone"] = selectors.zone_by_reference(data["zone"])
                if fields["zone"] is None:
                    raise ValidationFailed(f"There is no zone {data['zone']!r}", field="zone")
        if "cluster" in data:
            fields["cluster"] = None
            if data["cluster"] is not None:
                fields["cluster"] = selectors.cluster_list().filter(pk=data["cluster"]).first()
                if fields["cluster"] is None:
                    raise ValidationFailed(f"There is no cluster {data['cluster']}", field="cluster")
        if "project_id" in data:
            fields["project"] = None if data["project_id"] is None else project_selectors.project_get(
                user=self.request.user, project_id=data["project_id"], for_write=True)
        if "capability" in fields:
            fields["capability"] = dict(fields["capability"])
        if "data_profile" in fields:
            fields["data_profile"] = dict(fields["data_profile"])
        return fields

    @extend_schema(responses={200: s.NodeSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.NodeSerializer)

    @extend_schema(request=s.NodeInputSerializer, responses={201: s.NodeSerializer, 200: s.NodeSerializer},
                   parameters=[OpenApiParameter(
                       "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                       description="Any string up to 100 characters: sending the registration again with "
                                   "the same key returns the node registered the first time (200)")])
    def create(self, request):
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 100 or not key.isprintable():
            raise ValidationFailed("Idempotency-Key must be at most 100 printable characters", field="Idempotency-Key")
        fields = self._fields(s.validated_input(s.NodeInputSerializer, request.data))
        node, created = services.node_register_once(user=request.user, registration_key=key, **fields)
        if not created:  # a repeated registration (its first answer may have been lost)
            return respond(s.NodeSerializer(self._node(node.pk)).data, message="Client already registered")
        return respond(s.NodeSerializer(self._node(node.pk)).data, message="Client registered",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[NODE_ID], responses={200: s.NodeSerializer})
    def retrieve(self, request, pk=None):
        return respond(s.NodeSerializer(self._node(pk)).data, message="Client")

    @extend_schema(parameters=[NODE_ID], request=s.NodeInputSerializer, responses={200: s.NodeSerializer})
    def update(self, request, pk=None):
        return self._update(request, pk, partial=False)

    @extend_schema(parameters=[NODE_ID], request=s.NodeInputSerializer, responses={200: s.NodeSerializer})
    def partial_update(self, request, pk=None):
        return self._update(request, pk, partial=True)

    def _update(self, request, pk, *, partial: bool):
        node = self._node(pk, for_write=True)
        fields = self._fields(s.validated_input(s.NodeInputSerializer, request.data, partial=partial))
        node = services.node_update(node=node, **fields)
        return respond(s.NodeSerializer(self._node(node.pk)).data, message="Client updated")

    @extend_schema(parameters=[NODE_ID], responses={204: None})
    def destroy(self, request, pk=None):
        services.node_delete(node=self._node(pk, for_write=True))
        return respond(None, message="Client unregistered", status_code=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[NODE_ID], request=s.NodeStatusInputSerializer,
                   responses={200: s.NodeSerializer, **CONFLICT})
    @action(detail=True, methods=["put", "patch"], url_path="status")
    def change_status(self, request, pk=None):
        node = self._node(pk, for_write=True)
        data = s.validated_input(s.NodeStatusInputSerializer, request.data)
        node = services.node_status_set(node=node, status=data["status"], metadata=data.get("metadata"))
        return respond(s.NodeSerializer(node).data, message="Client status updated")

    @extend_schema(parameters=[NODE_ID], request=s.HeartbeatInputSerializer,
                   responses={200: s.HeartbeatSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, pk=None):
        return self._heartbeat(request, pk)

    @extend_schema(parameters=[NODE_ID], request=s.NodeAssignInputSerializer,
                   responses={200: s.NodeSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        node = self._node(pk, for_write=True)
        data = s.validated_input(s.NodeAssignInputSerializer, request.data)
        execution = training_selectors.execution_get(user=request.user, execution_id=data["execution_id"])
        node = services.node_assign(node=node, execution=execution, role=data["role"], config=data.get("config"))
        return respond(s.NodeSerializer(node).data, message="Client assigned")

    @extend_schema(parameters=[NODE_ID], request=None, responses={200: s.NodeSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def unassign(self, request, pk=None):
        node = services.node_unassign(node=self._node(pk, for_write=True))
        return respond(s.NodeSerializer(node).data, message="Client unassigned")

    @extend_schema(parameters=[NODE_ID, PERIOD, OpenApiParameter(
        "metrics", OpenApiTypes.STR,
        description="Comma-separated: performance, data_quality, contribution (all by default)")],
        responses={200: s.ClientMetricsSerializer})
    @action(detail=True, methods=["get"], url_path="metrics")
    def metrics(self, request, pk=None):
        node = self._node(pk)
        query = _metrics_query(request)
        blocks = _choices(query.get("metrics"), {"performance", "data_quality", "contribution"},
                          ("performance", "data_quality", "contribution"), "metrics")
        report = selectors.client_metrics_report(node=node, period=query["period"], blocks=blocks)
        return respond(report, message="Client metrics")

    def _groups(self, key_of) -> list[dict]:
        groups: dict = {}
        for node in self.filter_queryset(self.get_queryset()):
            key, extra = key_of(node)
            group = groups.setdefault(key, {"key": key, **extra, "count": 0, "clients": []})
            group["count"] += 1
            group["clients"].append(s.NodeSerializer(node).data)
        return sorted(groups.values(), key=lambda g: (g["key"] is None, g["key"] or ""))

    @extend_schema(responses={200: s.NodeGroupSerializer(many=True)},
                   description="Clients grouped by their location's code (or name), with counts.")
    @action(detail=False, methods=["get"], url_path="by-location", pagination_class=None)
    def by_location(self, request):
        def key_of(node):
            loc = node.location or {}
            key = loc.get("code") or loc.get("name") or None
            return key, {"location": {k: loc.get(k) for k in ("name", "code", "lat", "lon")} | {
                "region": node.region}}

        return respond(self._groups(key_of), message="Clients by location")

    @extend_schema(responses={200: s.NodeGroupSerializer(many=True)},
                   description="Clients grouped by AI zone (``key`` null for clients in no zone), with counts.")
    @action(detail=False, methods=["get"], url_path="by-zone", pagination_class=None)
    def by_zone(self, request):
        return respond(self._groups(lambda node: (node.zone.code if node.zone else None,
                                                  {"zone": s._zone_ref(node.zone)})), message="Clients by zone")

    @extend_schema(parameters=[NODE_ID], methods=["GET"], responses={200: s.NodeDatasetSerializer(many=True)},
                   description="The client's datasets (``dataset`` names the one it trains on).")
    @extend_schema(parameters=[NODE_ID], methods=["PUT"], request=s.DatasetInputSerializer,
                   responses={200: s.NodeDatasetSerializer},
                   description="Create or update a dataset of the client and make it the one it trains on.")
    @action(detail=True, methods=["get", "put"])
    def dataset(self, request, pk=None):
        if request.method == "GET":
            node = self._node(pk)
            return respond(s.NodeDatasetSerializer(node.datasets.all(), many=True).data, message="Client datasets")
        node = self._node(pk, for_write=True)
        data = s.validated_input(s.DatasetInputSerializer, request.data)
        dataset, _ = services.node_dataset_put(node=node, make_current=True, **data)
        return respond(s.NodeDatasetSerializer(dataset).data, message="Client dataset updated")

    @extend_schema(parameters=[NODE_ID], methods=["GET"], responses={200: s.NodeDatasetSerializer(many=True)})
    @extend_schema(parameters=[NODE_ID], methods=["POST"], request=s.DatasetInputSerializer,
                   responses={201: s.NodeDatasetSerializer, 200: s.NodeDatasetSerializer})
    @action(detail=True, methods=["get", "post"])
    def datasets(self, request, pk=None):
        if request.method == "GET":
            return respond(s.NodeDatasetSerializer(self._node(pk).datasets.all(), many=True).data,
                           message="Client datasets")
        node = self._node(pk, for_write=True)
        dataset, created = services.node_dataset_put(node=node, **s.validated_input(s.DatasetInputSerializer,
                                                                                    request.data))
        return respond(s.NodeDatasetSerializer(dataset).data, message="Client dataset stored",
                       status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(parameters=[NODE_ID], methods=["GET"], responses={200: s.ClusterSerializer})
    @extend_schema(parameters=[NODE_ID], methods=["PUT"], request=s.ClusterAssignInputSerializer,
                   responses={200: s.NodeSerializer})
    @action(detail=True, methods=["get", "put"])
    def cluster(self, request, pk=None):
        if request.method == "GET":
            node = self._node(pk)
            return respond(s.ClusterSerializer(node.cluster).data if node.cluster else None,
                           message="Client cluster")
        node = self._node(pk, for_write=True)
        data = s.validated_input(s.ClusterAssignInputSerializer, request.data)
        node = services.node_update(node=node, **self._fields({"cluster": data["cluster"]}))
        return respond(s.NodeSerializer(self._node(node.pk)).data, message="Client assigned to cluster")


# ---- /fl/zones, /fl/clusters, /fl/datasets (seed 004) ------------------------------------------------

class ZoneViewSet(_NodesViewSet):
    """seed 004 AI zones."""

    serializer_class = s.ZoneSerializer
    queryset_model = Zone
    required_permissions = {"list": READ, "retrieve": READ, "*": ZONE_WRITE}

    def visible(self):
        return selectors.zone_list()

    @extend_schema(responses={200: s.ZoneSerializer(many=True)})
    def list(self, request):
        return self._page(self.get_queryset(), s.ZoneSerializer)

    @extend_schema(parameters=[INT_ID])
    def retrieve(self, request, pk=None):
        return respond(s.ZoneSerializer(selectors.zone_get(zone_id=pk)).data, message="Zone")

    @extend_schema(request=s.ZoneInputSerializer, responses={201: s.ZoneSerializer})
    def create(self, request):
        zone = services.zone_create(**s.validated_input(s.ZoneInputSerializer, request.data))
        return respond(s.ZoneSerializer(zone).data, message="Zone created",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INT_ID], request=s.ZoneInputSerializer, responses={200: s.ZoneSerializer})
    def update(self, request, pk=None):
        return self._save(request, pk, partial=False)

    @extend_schema(parameters=[INT_ID], request=s.ZoneInputSerializer, responses={200: s.ZoneSerializer})
    def partial_update(self, request, pk=None):
        return self._save(request, pk, partial=True)

    def _save(self, request, pk, *, partial):
        zone = selectors.zone_get(zone_id=pk)
        zone = services.zone_update(zone=zone, **s.validated_input(s.ZoneInputSerializer, request.data,
                                                                   partial=partial, instance=zone))
        return respond(s.ZoneSerializer(zone).data, message="Zone updated")

    @extend_schema(parameters=[INT_ID], responses={204: None, 409: OpenApiResponse(
        _ERROR, description="The zone still has clusters (RESOURCE_CONFLICT)")})
    def destroy(self, request, pk=None):
        selectors.zone_get(zone_id=pk).delete()
        return respond(None, message="Zone deleted", status_code=status.HTTP_204_NO_CONTENT)


class ClusterViewSet(_NodesViewSet):
    """seed 004 client clusters."""

    serializer_class = s.ClusterSerializer
    queryset_model = Cluster
    required_permissions = {"list": READ, "retrieve": READ, "clients": READ, "*": ZONE_WRITE}

    def visible(self):
        return selectors.cluster_list()

    @extend_schema(responses={200: s.ClusterSerializer(many=True)})
    def list(self, request):
        return self._page(self.get_queryset(), s.ClusterSerializer)

    @extend_schema(parameters=[INT_ID])
    def retrieve(self, request, pk=None):
        return respond(s.ClusterSerializer(selectors.cluster_get(cluster_id=pk)).data, message="Cluster")

    def _input(self, request, *, partial) -> dict:
        data = dict(s.validated_input(s.ClusterInputSerializer, request.data, partial=partial))
        if "zone" in data:
            zone = selectors.zone_by_reference(data["zone"])
            if zone is None:
                raise ValidationFailed(f"There is no zone {data['zone']!r}", field="zone")
            data["zone"] = zone
        return data

    @extend_schema(request=s.ClusterInputSerializer, responses={201: s.ClusterSerializer})
    def create(self, request):
        cluster = services.cluster_create(**self._input(request, partial=False))
        return respond(s.ClusterSerializer(cluster).data, message="Cluster created",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INT_ID], request=s.ClusterInputSerializer, responses={200: s.ClusterSerializer})
    def update(self, request, pk=None):
        return self._save(request, pk, partial=False)

    @extend_schema(parameters=[INT_ID], request=s.ClusterInputSerializer, responses={200: s.ClusterSerializer})
    def partial_update(self, request, pk=None):
        return self._save(request, pk, partial=True)

    def _save(self, request, pk, *, partial):
        cluster = services.cluster_update(cluster=selectors.cluster_get(cluster_id=pk),
                                          **self._input(request, partial=partial))
        return respond(s.ClusterSerializer(cluster).data, message="Cluster updated")

    @extend_schema(parameters=[INT_ID], responses={204: None})
    def destroy(self, request, pk=None):
        selectors.cluster_get(cluster_id=pk).delete()
        return respond(None, message="Cluster deleted", status_code=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[INT_ID], responses={200: s.NodeSerializer(many=True)},
                   description="The clients of the cluster that the caller can see.")
    @action(detail=True, methods=["get"])
    def clients(self, request, pk=None):
        cluster = selectors.cluster_get(cluster_id=pk)
        return self._page(selectors.node_list(user=request.user).filter(cluster=cluster), s.NodeSerializer)


class DatasetViewSet(_NodesViewSet):
    """seed 004 Client Dataset Management: every dataset of the caller's nodes, assign and unassign."""

    serializer_class = s.NodeDatasetSerializer
    filterset_class = NodeDatasetFilterSet
    queryset_model = NodeDataset
    required_permissions = {"list": READ, "*": WRITE}

    def visible(self):
        return selectors.dataset_list(user=self.request.user)

    @extend_schema(responses={200: s.NodeDatasetSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.NodeDatasetSerializer)

    @extend_schema(request=s.DatasetAssignInputSerializer,
                   responses={201: s.NodeDatasetSerializer, 200: s.NodeDatasetSerializer})
    @action(detail=False, methods=["post"])
    def assign(self, request):
        data = dict(s.validated_input(s.DatasetAssignInputSerializer, request.data))
        node = self._node(data.pop("client_id"), for_write=True)
        dataset, created = services.node_dataset_put(node=node, **data)
        return respond(s.NodeDatasetSerializer(dataset).data, message="Dataset assigned",
                       status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=s.DatasetUnassignInputSerializer, responses={204: None}, parameters=[
        OpenApiParameter("clientId", OpenApiTypes.UUID, description="Or in the body"),
        OpenApiParameter("name", OpenApiTypes.STR, description="Or in the body")])
    @action(detail=False, methods=["delete"])
    def unassign(self, request):
        body = request.data if isinstance(request.data, dict) and request.data else request.query_params.dict()
        data = s.validated_input(s.DatasetUnassignInputSerializer, body)
        services.node_dataset_remove(node=self._node(data["client_id"], for_write=True), name=data["name"])
        return respond(None, message="Dataset unassigned", status_code=status.HTTP_204_NO_CONTENT)
