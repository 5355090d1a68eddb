from django.db import models


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUSPENDED = "suspended", "Suspended"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


S = ExecutionStatus

# The one declaration of the execution lifecycle (SPEC section 4). Suspend, stop and resume act
# between rounds: a suspended execution holds no worker, and resuming queues it again (pending)
# to continue from a round's checkpoint; a failed or stopped one may be resumed the same way.
TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.RUNNING, S.STOPPED, S.FAILED},
    S.RUNNING: {S.SUSPENDED, S.COMPLETED, S.FAILED, S.STOPPED},
    S.SUSPENDED: {S.PENDING, S.STOPPED},
    S.FAILED: {S.PENDING},
    S.STOPPED: {S.PENDING},
    S.COMPLETED: set(),
}
ACTIVE_STATUSES = {S.PENDING, S.RUNNING}
FINISHED_STATUSES = {S.COMPLETED, S.FAILED, S.STOPPED}


class ControlRequest(models.TextChoices):
    NONE = "", "None"
    STOP = "stop", "Stop"
    SUSPEND = "suspend", "Suspend"


class RoundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COLLECTING = "collecting", "Collecting"
    AGGREGATING = "aggregating", "Aggregating"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Transport(models.TextChoices):
    EMBEDDED = "embedded", "Embedded federation (in-process Flower grid in a worker)"
    DEPLOYED = "deployed", "Deployed federation (Flower SuperLink and SuperNodes)"
    DEVICE = "device", "Devices speaking seed 002's protocol (REST, gRPC)"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG", "Debug"
    INFO = "INFO", "Info"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"
