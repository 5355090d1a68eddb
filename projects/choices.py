from django.db import models


class ProjectStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class MemberAccess(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class UploadStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"


class ValidationStatus(models.TextChoices):
    VALID = "valid", "Valid"


class DatasetTask(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"


class ColumnType(models.TextChoices):
    NUMERIC = "numeric", "Numeric"
    CATEGORICAL = "categorical", "Categorical"
