from django.conf import settings
from django.db import models

from core.models import TimeStampedModel, UUIDModel
from training.choices import ControlRequest, ExecutionStatus, LogLevel, RoundStatus, Transport


class Execution(UUIDModel, TimeStampedModel):
    """One federated training run: seed 000's training job, seed 001's TrainingExecution, seed
    004's Execution. ``config`` holds the validated training parameters; rounds, clients and the
    latest metrics are kept in columns for lists and filters."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="executions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING,
                              db_index=True)
    algorithm = models.CharField(max_length=30, default="fedavg")
    strategy_params = models.JSONField(default=dict, blank=True)
    model_type = models.CharField(max_length=50)
    dataset = models.CharField(max_length=100, blank=True)
    upload = models.ForeignKey("projects.ProjectUpload", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="executions", help_text="The uploaded Flower app this runs, if any")
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.EMBEDDED)
    config = models.JSONField(default=dict)
    privacy = models.JSONField(default=dict, blank=True)
    total_rounds = models.PositiveIntegerField()
    current_round = models.PositiveIntegerField(default=0)
    min_clients = models.PositiveIntegerField(default=2)
    metrics = models.JSONField(default=dict, blank=True, help_text="Latest aggregated metrics")
    control = models.CharField(max_length=10, choices=ControlRequest.choices, default=ControlRequest.NONE, blank=True)
    control_reason = models.CharField(max_length=500, blank=True)
    save_checkpoint_on_stop = models.BooleanField(default=True)
    resume_from_round = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    cpu_seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self):
        return self.name or f"{self.algorithm} on {self.dataset or self.model_type} ({self.pk})"

    @property
    def completion_percentage(self) -> int:
        return int(100 * self.current_round / self.total_rounds) if self.total_rounds else 0


def checkpoint_path(instance, filename):
    return f"executions/{instance.execution_id}/rounds/{instance.number:04d}.npz"


class Round(TimeStampedModel):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=RoundStatus.choices, default=RoundStatus.PENDING)
    participants = models.PositiveIntegerField(default=0)
    train_metrics = models.JSONField(default=dict, blank=True)
    evaluate_metrics = models.JSONField(default=dict, blank=True)
    server_metrics = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    bytes_received = models.PositiveBigIntegerField(default=0)
    checkpoint = models.FileField(upload_to=checkpoint_path, max_length=255, blank=True)
    checkpoint_checksum = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["execution", "number"]
        constraints = [models.UniqueConstraint(fields=["execution", "number"], name="round_unique_number")]

    def __str__(self):
        return f"round {self.number} of {self.execution_id}"


class RoundClient(models.Model):
    """What one node did in one phase (train or evaluate) of a round."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="clients")
    node_id = models.BigIntegerField()
    partition_id = models.IntegerField(null=True)
    phase = models.CharField(max_length=10)
    num_examples = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    duration_ms = models.FloatField(default=0.0)
    bytes_down = models.PositiveBigIntegerField(default=0)
    bytes_up = models.PositiveBigIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["round", "phase", "node_id"]
        constraints = [models.UniqueConstraint(fields=["round", "node_id", "phase"], name="round_client_unique")]


class ExecutionLog(models.Model):
    """seed 004 log entry: written in batches by the engine, searchable."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
    timestamp = models.DateTimeField(db_index=True)
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    round_number = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=50, default="server")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [models.Index(fields=["execution", "timestamp"])]


# ---- model registry (seed 001 AggregatedModel, seed 004 Model Management and Model Operations) ----

class ModelVersionStatus(models.TextChoices):
    PUBLISHED = "published", "Published"
    ROLLED_BACK = "rolled_back", "Rolled back"
    DEPRECATED = "deprecated", "Deprecated"
    ARCHIVED = "archived", "Archived"


class EvaluationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class RegisteredModel(UUIDModel, TimeStampedModel):
    """The registry entry of what an execution trains: created with its first published round (or
    registered by hand), one per execution. Model type, algorithm and data set are copied from the
    execution so that lists filter without a join."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="registered_models")
    execution = models.OneToOneField(Execution, on_delete=models.CASCADE, related_name="registered_model")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    current_version = models.ForeignKey("ModelVersion", on_delete=models.SET_NULL, null=True, blank=True,
                                        related_name="+")
    pinned = models.BooleanField(default=False, help_text="Set by a rollback: new versions no longer become current")
    model_type = models.CharField(max_length=50, db_index=True)
    algorithm = models.CharField(max_length=30)
    dataset = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="+")
    last_training = models.ForeignKey(Execution, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                      help_text="The execution most recently started from this model")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self):
        return self.name


class ModelVersion(UUIDModel, TimeStampedModel):
    """The aggregated model of one round: version number = round number. ``file`` names the round's
    checkpoint (.npz), which stays the canonical weights; other formats are converted from it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    round = models.ForeignKey(Round, on_delete=models.SET_NULL, null=True, blank=True, related_name="model_versions")
    file = models.FileField(max_length=255)
    checksum = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True, help_text="The round's server, evaluate and train metrics")
    status = models.CharField(max_length=20, choices=ModelVersionStatus.choices, default=ModelVersionStatus.PUBLISHED)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="model_version_unique_number")]

    def __str__(self):
        return f"{self.model} v{self.number}"


class ModelEvaluation(UUIDModel, TimeStampedModel):
    """A requested evaluation of a version on the held-out test split of a data set; a worker runs it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="evaluations")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    dataset = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
