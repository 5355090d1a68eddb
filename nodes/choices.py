from django.db import models


class NodeType(models.TextChoices):
    AGGREGATOR = "aggregator", "Aggregator"
    CLIENT = "client", "Client"


class NodeStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    ACTIVE = "active", "Active"
    IDLE = "idle", "Idle"
    TRAINING = "training", "Training"
    OFFLINE = "offline", "Offline"


S = NodeStatus

# The one declaration of a node's lifecycle. A node comes back from offline only by talking to us
# (connected, idle or active), never straight into training; a status may be reported again.
TRANSITIONS: dict[str, set[str]] = {
    S.OFFLINE: {S.OFFLINE, S.CONNECTED, S.IDLE, S.ACTIVE},
    S.CONNECTED: {S.CONNECTED, S.ACTIVE, S.IDLE, S.TRAINING, S.OFFLINE},
    S.ACTIVE: {S.ACTIVE, S.CONNECTED, S.IDLE, S.TRAINING, S.OFFLINE},
    S.IDLE: {S.IDLE, S.CONNECTED, S.ACTIVE, S.TRAINING, S.OFFLINE},
    S.TRAINING: {S.TRAINING, S.ACTIVE, S.IDLE, S.OFFLINE},
}


class NodeRole(models.TextChoices):
    TRAINER = "trainer", "Trainer"
    VALIDATOR = "validator", "Validator"
    AGGREGATOR = "aggregator", "Aggregator"


class Compute(models.TextChoices):
    GPU = "gpu", "GPU"
    CPU = "cpu", "CPU"
    MOBILE = "mobile", "Mobile"


class MetricPeriod(models.TextChoices):
    HOUR = "1h", "Last hour"
    DAY = "24h", "Last 24 hours"
    WEEK = "7d", "Last 7 days"
    MONTH = "30d", "Last 30 days"
