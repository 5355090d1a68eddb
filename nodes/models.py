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
    # The Idempotency-Key its registration was sent with: sending it again returns this node.
    registration_key = models.CharField(max_length=100, blank=True, default="", editable=False)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["status", "stale_at"])]
        constraints = [models.UniqueConstraint(fields=["registered_by", "registration_key"],
                                               condition=~models.Q(registration_key=""),
                                               name="node_registration_key_unique")]

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


# ---- seed 002's device protocol (nodes.protocol) ---------------------------------------------------

class DeviceCredential(TimeStampedModel):
    """How a device proves it is its node: the ed25519 key it registered and the one token it holds.

    A device is known by ``device_id`` per registrant: registering the same id again rotates the key
    and issues a new token, whose ``token_jti`` replaces the old one (which then stops working)."""

    node = models.OneToOneField(Node, on_delete=models.CASCADE, related_name="device_credential")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_credentials")
    device_id = models.CharField(max_length=255)
    platform = models.CharField(max_length=50)
    capabilities = models.JSONField(default=dict, blank=True)
    public_key = models.CharField(max_length=64, blank=True,
                                  help_text="ed25519 public key, 32 raw bytes in base64 (empty: cannot sign)")
    token_jti = models.CharField(max_length=64, blank=True, db_index=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["device_id"]
        constraints = [models.UniqueConstraint(fields=["owner", "device_id"], name="device_unique_id_per_owner")]

    def __str__(self):
        return f"{self.device_id} ({self.platform})"


class DeviceRoundStatus(models.TextChoices):
    OPEN = "open", "Open"
    AGGREGATING = "aggregating", "Aggregating"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


def device_model_path(instance, filename):
    return f"device_models/{instance.execution_id}/{instance.number:04d}.npz"


class DeviceModel(TimeStampedModel):
    """A global model of a device execution in the wire format (``pollen-tensors/1``), as devices
    download it: ``number`` 0 is the initial model, ``n`` the aggregate of round ``n``. ``version``
    is the string of ``GET /models/{version}``; it is never a UUID (``/models/{uuid}`` is the registry)."""

    execution = models.ForeignKey("training.Execution", on_delete=models.CASCADE, related_name="device_models")
    number = models.PositiveIntegerField()
    version = models.CharField(max_length=64, unique=True)
    file = models.FileField(upload_to=device_model_path, max_length=255)
    checksum = models.CharField(max_length=64, help_text="sha256 hex of the uncompressed file")
    size = models.PositiveBigIntegerField(default=0)
    tensors = models.JSONField(default=dict, blank=True,
                               help_text='{name: {"shape": [...], "dtype": "float32"}}: what an update must match')

    class Meta:
        ordering = ["execution", "number"]
        constraints = [models.UniqueConstraint(fields=["execution", "number"], name="device_model_unique_number")]

    def __str__(self):
        return self.version


class DeviceRound(UUIDModel, TimeStampedModel):
    """One round of a device execution (the ``round_id`` of seed 002's URLs): open until its target
    of updates arrived, its deadline passed or every missing node is known to be gone, then
    aggregated. ``updates_received`` and ``total_weight`` change only under this row's lock, with the
    fold of the update into the round's state under ``state_dir``."""

    execution = models.ForeignKey("training.Execution", on_delete=models.CASCADE, related_name="device_rounds")
    round = models.OneToOneField("training.Round", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="device_round")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=DeviceRoundStatus.choices, default=DeviceRoundStatus.OPEN,
                              db_index=True)
    deadline = models.DateTimeField()
    target_updates = models.PositiveIntegerField(default=1)
    updates_received = models.PositiveIntegerField(default=0)
    total_weight = models.FloatField(default=0.0)
    global_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="rounds",
                                     help_text="The model this round trains from")
    state_dir = models.CharField(max_length=500, blank=True, help_text="The aggregation state on disk")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "number"]
        constraints = [models.UniqueConstraint(fields=["execution", "number"], name="device_round_unique_number")]

    def __str__(self):
        return f"device round {self.number} of {self.execution_id}"

    @property
    def model_version(self) -> str:
        return self.global_model.version

    @property
    def model_checksum(self) -> str:
        return self.global_model.checksum

    @property
    def model_size(self) -> int:
        return self.global_model.size


class DeviceUpdate(UUIDModel):
    """An update a device sent for a round (``update_id``): accepted once per node and round. Its
    arrays live in the round's aggregation state, not here."""

    round = models.ForeignKey(DeviceRound, on_delete=models.CASCADE, related_name="updates")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="device_updates")
    checksum = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    num_examples = models.PositiveIntegerField()
    weight = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["round", "received_at"]
        constraints = [models.UniqueConstraint(fields=["round", "node"], name="device_update_one_per_node")]

    def __str__(self):
        return f"update {self.pk} of {self.node_id}"
