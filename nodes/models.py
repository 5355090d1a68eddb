from django.conf import settings
from django.db import models

from core.models import TimeStampedModel, UUIDModel
from nodes.choices import NodeRole, NodeStatus, NodeType


class Zone(TimeStampedModel):
    """An AI zone (seed 004): a named area nodes and clusters belong to."""

    name = models.CharField(max_length=100)
    code = models.SlugField(max_length=50, unique=True)
    region = models.CharField(max_length=100, blank=True, db_index=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.code})"


class Cluster(TimeStampedModel):
    name = models.CharField(max_length=100)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="clusters")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["zone", "name"], name="cluster_unique_name_in_zone")]

    def __str__(self):
        return self.name


class Node(UUIDModel, TimeStampedModel):
    """A federated node: seed 000's node, seed 001's FLClient, seed 004's client.

    ``stale_at`` is ``last_seen`` plus twice the heartbeat interval, kept with every heartbeat so that
    finding the nodes that went quiet is one indexed comparison.
    """

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=NodeType.choices, default=NodeType.CLIENT)
    host = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=NodeStatus.choices, default=NodeStatus.CONNECTED, db_index=True)
    capability = models.JSONField(default=dict, blank=True, help_text="compute, memory_gb, bandwidth_mbps, gpu")
    data_profile = models.JSONField(default=dict, blank=True)
    location = models.JSONField(default=dict, blank=True, help_text="name, code, lat, lon")
    region = models.CharField(max_length=100, blank=True, db_index=True)
    zone = models.ForeignKey(Zone, on_delete=models.SET_NULL, null=True, blank=True, related_name="nodes")
    cluster = models.ForeignKey(Cluster, on_delete=models.SET_NULL, null=True, blank=True, related_name="nodes")
    dataset = models.CharField(max_length=200, blank=True)
    resources = models.JSONField(default=dict, blank=True)
    connectivity = models.JSONField(default=dict, blank=True)
    framework = models.CharField(max_length=50, blank=True)
    framework_version = models.CharField(max_length=50, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    heartbeat_interval_seconds = models.PositiveIntegerField(default=30)
    last_seen = models.DateTimeField(null=True, blank=True)
    stale_at = models.DateTimeField(null=True, blank=True)
    latest_metrics = models.JSONField(default=dict, blank=True, help_text="The last reported system metrics")
    current_execution = models.ForeignKey("training.Execution", on_delete=models.SET_NULL, null=True, blank=True,
                                          related_name="nodes")
    role = models.CharField(max_length=20, choices=NodeRole.choices, blank=True)
    assignment_config = models.JSONField(default=dict, blank=True)
    performance = models.JSONField(default=dict, blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                      related_name="registered_nodes")
    project = models.ForeignKey("projects.Project", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="nodes", help_text="The project whose executions this node serves")

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["status", "stale_at"])]

    def __str__(self):
        return self.name

    @property
    def is_online(self) -> bool:
        return self.status != NodeStatus.OFFLINE


class NodeDataset(TimeStampedModel):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    rows = models.PositiveBigIntegerField(null=True, blank=True)
    features = models.PositiveIntegerField(null=True, blank=True)
    classes = models.PositiveIntegerField(null=True, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["node", "name"], name="node_dataset_unique_name")]

    def __str__(self):
        return self.name


class NodeMetric(models.Model):
    """One sample of a node's system and federated-learning counters (a time series, pruned after
    NODE_METRICS_RETENTION_DAYS)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="metric_samples")
    timestamp = models.DateTimeField(db_index=True)
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    disk_percent = models.FloatField(null=True, blank=True)
    network_bytes_sent = models.PositiveBigIntegerField(null=True, blank=True)
    network_bytes_recv = models.PositiveBigIntegerField(null=True, blank=True)
    rounds_completed = models.PositiveIntegerField(null=True, blank=True)
    updates_sent = models.PositiveIntegerField(null=True, blank=True)
    avg_training_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [models.Index(fields=["node", "timestamp"])]

    def __str__(self):
        return f"{self.node_id} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"
