from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from core.models import TimeStampedModel, UUIDModel
from projects.choices import DatasetTask, MemberAccess, ProjectStatus, UploadStatus, ValidationStatus


class Project(UUIDModel, TimeStampedModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    status = models.CharField(max_length=20, choices=ProjectStatus.choices, default=ProjectStatus.ACTIVE)
    configuration = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "owner", name="project_unique_name_per_owner"),
        ]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.name


class ProjectMember(TimeStampedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    access = models.CharField(max_length=10, choices=MemberAccess.choices, default=MemberAccess.READ)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="project_member_unique")]
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.user} → {self.project} ({self.access})"


def upload_path(instance, filename):
    return f"projects/{instance.project_id}/uploads/{instance.id}.zip"


class ProjectUpload(UUIDModel):
    """A validated Flower app archive, stored as uploaded, with what validation learnt of it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="uploads")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                    related_name="+")
    archive = models.FileField(upload_to=upload_path, max_length=255)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    unpacked_size = models.PositiveBigIntegerField()
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the archive as uploaded")
    files = models.JSONField(default=list)
    app_root = models.CharField(max_length=255, blank=True, help_text="Folder in the archive holding pyproject.toml")
    app_name = models.CharField(max_length=200, blank=True)
    app_version = models.CharField(max_length=50, blank=True)
    components = models.JSONField(default=dict)
    app_config = models.JSONField(default=dict, help_text="[tool.flwr.app.config] of the app")
    status = models.CharField(max_length=20, choices=UploadStatus.choices, default=UploadStatus.UPLOADED)
    validation_status = models.CharField(max_length=20, choices=ValidationStatus.choices,
                                         default=ValidationStatus.VALID)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.original_name} ({self.checksum[:12]})"


def dataset_path(instance, filename):
    # The client's filename is kept in ``original_name`` only, never used as a path.
    return f"projects/{instance.project_id}/datasets/{instance.id}.csv"


class ProjectDataset(UUIDModel):
    """A validated CSV data set: stored as uploaded, with what validation learnt of it. Every
    feature column is numeric; ``target_column`` is what the models learn to predict."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to=dataset_path, max_length=255)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the file as uploaded")
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=list, help_text="Column names in file order")
    column_types = models.JSONField(default=dict, help_text="Column name -> numeric or categorical")
    column_stats = models.JSONField(default=dict, help_text="Numeric column name -> min, max, mean, std")
    target_column = models.CharField(max_length=200)
    task = models.CharField(max_length=20, choices=DatasetTask.choices)
    num_classes = models.PositiveIntegerField(null=True, blank=True)
    class_counts = models.JSONField(default=dict, blank=True, help_text="Class label -> rows (classification)")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "project", name="project_dataset_unique_name"),
        ]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self):
        return f"{self.name} ({self.rows} rows, {self.task})"

    @property
    def training_name(self) -> str:
        """How an execution config names this data set."""
        return f"csv:{self.pk}"
