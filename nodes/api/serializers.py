"""Shapes of the nodes API: seed 000 nodes, seed 001 FL clients, seed 004 zones, clusters, datasets.

Inputs accept seed 001's camelCase names next to snake_case (``dataProfile``, ``executionId``); a
bad value answers 400 ``VALIDATION_ERROR`` whose ``details.field`` names it as the caller wrote it.
"""

from __future__ import annotations

from rest_framework import serializers

from core.api.fields import BoundedJSONField, TextChoiceField
from core.exceptions import ValidationFailed
from nodes.choices import Compute, NodeRole, NodeStatus, NodeType
from nodes.models import Cluster, Node, NodeDataset, Zone

INPUT_ALIASES = {
    "dataProfile": "data_profile", "frameworkVersion": "framework_version",
    "heartbeatIntervalSeconds": "heartbeat_interval_seconds", "heartbeatInterval": "heartbeat_interval_seconds",
    "projectId": "project_id", "zoneId": "zone", "executionId": "execution_id",
    "clientId": "client_id", "nodeId": "client_id", "clusterId": "cluster",
}
SAMPLE_ALIASES = {"cpu_usage": "cpu_percent", "memory_usage": "memory_percent", "disk_usage": "disk_percent",
                  "bytes_sent": "network_bytes_sent", "bytes_received": "network_bytes_recv",
                  "training_rounds_completed": "rounds_completed", "model_updates_sent": "updates_sent",
                  "average_training_time": "avg_training_seconds"}
MAX_BIG = 2**63 - 1


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _first_error(errors) -> tuple[list[str], str]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            path, message = _first_error(value)
            return ([] if key == "non_field_errors" else [str(key)]) + path, message
    if isinstance(errors, list) and errors:
        return _first_error(errors[0])
    return [], str(errors)


def validated_input(serializer_class, data, *, partial: bool = False, instance=None) -> dict:
    """``data`` checked by ``serializer_class`` or 400 naming the first bad field."""
    if data is None or data == "":
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object", field="body")
    sent_as = {INPUT_ALIASES.get(k, k): k for k in data}
    normalized = {INPUT_ALIASES.get(k, k): v for k, v in sorted(data.items(), key=lambda i: i[0] not in INPUT_ALIASES)}
    serializer = serializer_class(instance, data=normalized, partial=partial)
    if not serializer.is_valid():
        path, message = _first_error(serializer.errors)
        if path:
            path[0] = sent_as.get(path[0], path[0])
        field = ".".join(path) or "body"
        raise ValidationFailed(f"{field}: {message}", details={"field": field, "reason": message,
                                                                "errors": serializer.errors})
    return serializer.validated_data


# ---- inputs --------------------------------------------------------------------------------------

class CapabilitySerializer(serializers.Serializer):
    compute = TextChoiceField(choices=Compute.values, required=False)
    memory_gb = serializers.FloatField(min_value=0, max_value=1_000_000, required=False)
    bandwidth_mbps = serializers.FloatField(min_value=0, max_value=10_000_000, required=False)
    gpu = serializers.BooleanField(required=False)


class DataProfileSerializer(serializers.Serializer):
    samples = serializers.IntegerField(min_value=0, max_value=MAX_BIG, required=False)
    distribution = BoundedJSONField(required=False)
    quality = TextChoiceField(choices=["high", "medium", "low"], required=False)


class LocationSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    code = serializers.CharField(max_length=50, required=False, allow_blank=True)
    lat = serializers.FloatField(min_value=-90, max_value=90, required=False)
    lon = serializers.FloatField(min_value=-180, max_value=180, required=False)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    zone = serializers.CharField(max_length=50, required=False, allow_blank=True,
                                 help_text="Zone id or code (seed 001)")


class NodeInputSerializer(serializers.Serializer):
    """Register (``POST``), replace (``PUT``) or change (``PATCH``) a node."""

    name = serializers.CharField(max_length=200)
    type = TextChoiceField(choices=NodeType.values, required=False)
    host = serializers.CharField(max_length=255, required=False, allow_blank=True)
    capability = CapabilitySerializer(required=False)
    data_profile = DataProfileSerializer(required=False)
    location = LocationSerializer(required=False)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    zone = serializers.CharField(max_length=50, required=False, allow_null=True, help_text="Zone id or code")
    cluster = serializers.IntegerField(min_value=1, required=False, allow_null=True, help_text="Cluster id")
    dataset = serializers.CharField(max_length=200, required=False, allow_blank=True)
    resources = BoundedJSONField(required=False)
    connectivity = BoundedJSONField(required=False)
    framework = serializers.CharField(max_length=50, required=False, allow_blank=True)
    framework_version = serializers.CharField(max_length=50, required=False, allow_blank=True)
    heartbeat_interval_seconds = serializers.IntegerField(min_value=5, max_value=3600, required=False)
    performance = BoundedJSONField(required=False)
    metadata = BoundedJSONField(required=False)
    project_id = serializers.UUIDField(required=False, allow_null=True,
                                       help_text="The project whose executions the node serves")


class NodeStatusInputSerializer(serializers.Serializer):
    status = TextChoiceField(choices=NodeStatus.values)
    metadata = BoundedJSONField(required=False)


class NodeAssignInputSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    role = TextChoiceField(choices=NodeRole.values, default=NodeRole.TRAINER)
    config = BoundedJSONField(required=False)


class MetricSampleSerializer(serializers.Serializer):
    """One sample; seed 000's names (``cpu_usage``, ``bytes_sent``, ...) are accepted too."""

    timestamp = serializers.DateTimeField(required=False)
    cpu_percent = serializers.FloatField(min_value=0, max_value=100, required=False)
    memory_percent = serializers.FloatField(min_value=0, max_value=100, required=False)
    disk_percent = serializers.FloatField(min_value=0, max_value=100, required=False)
    network_bytes_sent = serializers.IntegerField(min_value=0, max_value=MAX_BIG, required=False)
    network_bytes_recv = serializers.IntegerField(min_value=0, max_value=MAX_BIG, required=False)
    rounds_completed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    updates_sent = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    avg_training_seconds = serializers.FloatField(min_value=0, max_value=1e9, required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = {SAMPLE_ALIASES.get(k, k): v for k, v in data.items()}
        return super().to_internal_value(data)


class HeartbeatInputSerializer(serializers.Serializer):
    status = TextChoiceField(choices=[NodeStatus.CONNECTED, NodeStatus.ACTIVE, NodeStatus.IDLE, NodeStatus.TRAINING],
                             required=False, help_text="What the node is doing now (connected, active, idle or "
                                                       "training); by default an offline node becomes connected "
                                                       "and others keep their status")
    metrics = MetricSampleSerializer(required=False, help_text="The current sample")
    samples = MetricSampleSerializer(many=True, required=False, max_length=100,
                                     help_text="Samples buffered since the last heartbeat")
    agent = BoundedJSONField(required=False, help_text="The node agent's own state (version, SuperNode pid, "
                                                       "restarts, Flower node id), kept as metadata.agent")


class ZoneInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Zone
        fields = ["name", "code", "region", "description"]


class ClusterInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    zone = serializers.CharField(max_length=50, help_text="Zone id or code")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class DatasetInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    rows = serializers.IntegerField(min_value=0, max_value=MAX_BIG, required=False, allow_null=True)
    features = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)
    classes = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class DatasetAssignInputSerializer(DatasetInputSerializer):
    client_id = serializers.UUIDField()


class DatasetUnassignInputSerializer(serializers.Serializer):
    client_id = serializers.UUIDField()
    name = serializers.CharField(max_length=200)


class MetricsQuerySerializer(serializers.Serializer):
    period = TextChoiceField(choices=["1h", "24h", "7d", "30d"], default="24h")
    metrics = serializers.CharField(required=False, allow_blank=True, max_length=200)


# ---- outputs -------------------------------------------------------------------------------------

class ZoneSerializer(serializers.ModelSerializer):
    """Output only."""

    class Meta:
        model = Zone
        fields = ["id", "name", "code", "region", "description", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: Zone):
        return {"id": obj.pk, "name": obj.name, "code": obj.code, "region": obj.region,
                "description": obj.description, "created_at": _iso(obj.created_at),
                "updated_at": _iso(obj.updated_at)}


class ZoneRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()
    region = serializers.CharField()


class ClusterRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ClusterSerializer(serializers.ModelSerializer):
    """Output only."""

    zone = ZoneRefSerializer()

    class Meta:
        model = Cluster
        fields = ["id", "name", "zone", "description", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: Cluster):
        return {"id": obj.pk, "name": obj.name, "zone": _zone_ref(obj.zone), "description": obj.description,
                "created_at": _iso(obj.created_at), "updated_at": _iso(obj.updated_at)}


def _zone_ref(zone: Zone | None) -> dict | None:
    return {"id": zone.pk, "name": zone.name, "code": zone.code, "region": zone.region} if zone else None


class SystemSummarySerializer(serializers.Serializer):
    cpu_usage = serializers.FloatField(allow_null=True)
    memory_usage = serializers.FloatField(allow_null=True)
    disk_usage = serializers.FloatField(allow_null=True)


def _summary(node: Node) -> dict:
    m = node.latest_metrics or {}
    return {"cpu_usage": m.get("cpu_percent"), "memory_usage": m.get("memory_percent"),
            "disk_usage": m.get("disk_percent")}


class NodeListItemSerializer(serializers.Serializer):
    """seed 000 ``GET /nodes`` item. Output only."""

    id = serializers.UUIDField()
    node_id = serializers.UUIDField()
    name = serializers.CharField()
    type = serializers.CharField(help_text="aggregator or client")
    host = serializers.CharField()
    status = serializers.CharField(help_text="One of: " + ", ".join(NodeStatus.values))
    last_seen = serializers.DateTimeField(allow_null=True)
    metrics = SystemSummarySerializer()

    def to_representation(self, obj: Node):
        return {"id": str(obj.pk), "node_id": str(obj.pk), "name": obj.name, "type": obj.type, "host": obj.host,
                "status": obj.status, "last_seen": _iso(obj.last_seen), "metrics": _summary(obj)}


class NodeSerializer(serializers.ModelSerializer):
    """seed 001 FLClient / seed 004 client. Output only."""

    node_id = serializers.UUIDField()
    zone = ZoneRefSerializer(allow_null=True)
    cluster = ClusterRefSerializer(allow_null=True)
    current_execution = serializers.UUIDField(allow_null=True)
    role = serializers.CharField(allow_null=True, help_text="trainer, validator or aggregator")
    metrics = SystemSummarySerializer(help_text="The last reported system metrics")
    project_id = serializers.UUIDField(allow_null=True)
    registered_by_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Node
        fields = ["id", "node_id", "name", "type", "host", "status", "capability", "data_profile", "location",
                  "region", "zone", "cluster", "dataset", "resources", "connectivity", "framework",
                  "framework_version", "heartbeat_interval_seconds", "last_seen", "current_execution", "role",
                  "assignment_config", "performance", "metadata", "metrics", "project_id", "registered_by_id",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: Node):
        return {
            "id": str(obj.pk), "node_id": str(obj.pk), "name": obj.name, "type": obj.type, "host": obj.host,
            "status": obj.status, "capability": obj.capability, "data_profile": obj.data_profile,
            "location": obj.location, "region": obj.region, "zone": _zone_ref(obj.zone),
            "cluster": {"id": obj.cluster.pk, "name": obj.cluster.name} if obj.cluster else None,
            "dataset": obj.dataset, "resources": obj.resources, "connectivity": obj.connectivity,
            "framework": obj.framework, "framework_version": obj.framework_version,
            "heartbeat_interval_seconds": obj.heartbeat_interval_seconds, "last_seen": _iso(obj.last_seen),
            "current_execution": str(obj.current_execution_id) if obj.current_execution_id else None,
            "role": obj.role or None, "assignment_config": obj.assignment_config, "performance": obj.performance,
            "metadata": obj.metadata, "metrics": _summary(obj),
            "project_id": str(obj.project_id) if obj.project_id else None,
            "registered_by_id": str(obj.registered_by_id) if obj.registered_by_id else None,
            "created_at": _iso(obj.created_at), "updated_at": _iso(obj.updated_at),
        }


class FederationSerializer(serializers.Serializer):
    """Where a node's Flower SuperNode connects (the node agent follows it)."""

    address = serializers.CharField(help_text="The SuperLink's Fleet API, host:port (FLOWER_FLEET_ADDRESS)")
    insecure = serializers.BooleanField(help_text="Connect without TLS")
    root_certificates = serializers.CharField(allow_null=True, help_text="PEM CA certificate(s) for TLS, if set")
    node_config = serializers.DictField(help_text="SuperNode node config (--node-config)")
    execution_id = serializers.UUIDField(allow_null=True)
    source = serializers.CharField(help_text="settings, or assignment for the node's assignment_config.federation")


class HeartbeatSerializer(NodeSerializer):
    """The node after a heartbeat, with the federation its SuperNode should join. Output only."""

    federation = FederationSerializer()

    class Meta(NodeSerializer.Meta):
        fields = [*NodeSerializer.Meta.fields, "federation"]
        read_only_fields = fields


class NodeDatasetSerializer(serializers.ModelSerializer):
    """Output only."""

    client_id = serializers.UUIDField()

    class Meta:
        model = NodeDataset
        fields = ["id", "client_id", "name", "rows", "features", "classes", "description", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: NodeDataset):
        return {"id": obj.pk, "client_id": str(obj.node_id), "name": obj.name, "rows": obj.rows,
                "features": obj.features, "classes": obj.classes, "description": obj.description,
                "created_at": _iso(obj.created_at), "updated_at": _iso(obj.updated_at)}


class NodeGroupSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="The location code or name, or the zone code")
    location = LocationSerializer(required=False, allow_null=True)
    zone = ZoneRefSerializer(required=False, allow_null=True)
    count = serializers.IntegerField()
    clients = NodeSerializer(many=True)


class NetworkIOSerializer(serializers.Serializer):
    bytes_sent = serializers.IntegerField(allow_null=True)
    bytes_received = serializers.IntegerField(allow_null=True)


class SystemMetricsSerializer(SystemSummarySerializer):
    network_io = NetworkIOSerializer()


class FLCountersSerializer(serializers.Serializer):
    training_rounds_completed = serializers.IntegerField(allow_null=True)
    model_updates_sent = serializers.IntegerField(allow_null=True)
    average_training_time = serializers.FloatField(allow_null=True)


class NodeMetricsBlockSerializer(serializers.Serializer):
    system = SystemMetricsSerializer()
    federated_learning = FLCountersSerializer()


class MetricPointSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    cpu_usage = serializers.FloatField(allow_null=True, required=False)
    memory_usage = serializers.FloatField(allow_null=True, required=False)
    disk_usage = serializers.FloatField(allow_null=True, required=False)
    bytes_sent = serializers.IntegerField(allow_null=True, required=False)
    bytes_received = serializers.IntegerField(allow_null=True, required=False)
    training_rounds_completed = serializers.IntegerField(allow_null=True, required=False)
    model_updates_sent = serializers.IntegerField(allow_null=True, required=False)
    average_training_time = serializers.FloatField(allow_null=True, required=False)


class NodeMetricsSerializer(serializers.Serializer):
    """seed 000 ``GET /nodes/{node_id}/metrics``: the latest values plus the series of the period."""

    node_id = serializers.UUIDField()
    period = serializers.CharField()
    metrics = NodeMetricsBlockSerializer()
    series = MetricPointSerializer(many=True)


class ClientMetricsSerializer(serializers.Serializer):
    """seed 001 ``GET /fl/clients/{id}/metrics``: the blocks asked for with ``?metrics=``."""

    client_id = serializers.UUIDField()
    period = serializers.CharField()
    performance = serializers.DictField(required=False, help_text="Averages and peaks of cpu, memory and "
                                                                  "training time over the period, and the series")
    data_quality = serializers.DictField(required=False, help_text="The node's data profile and datasets")
    contribution = serializers.DictField(required=False, help_text="Rounds completed and updates sent in the "
                                                                   "period, and the current assignment")


class ClusterAssignInputSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(min_value=1, allow_null=True, help_text="Cluster id; null leaves it")
