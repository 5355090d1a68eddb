import json

from rest_framework import serializers

from projects.choices import ColumnType, DatasetTask, MemberAccess, ProjectStatus
from projects.models import Project, ProjectDataset, ProjectMember, ProjectUpload

MAX_CONFIGURATION_BYTES = 32 * 1024


class PrivacySettingsSerializer(serializers.Serializer):
    differential_privacy = serializers.BooleanField(required=False)
    secure_aggregation = serializers.BooleanField(required=False)


class ProjectConfigurationSerializer(serializers.Serializer):
    """seed 000 ``configuration``; further keys are kept as given (within a size limit)."""

    model_type = serializers.CharField(max_length=100, required=False)
    dataset = serializers.CharField(max_length=200, required=False)
    privacy_settings = PrivacySettingsSerializer(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("configuration must be a JSON object")
        if len(json.dumps(data)) > MAX_CONFIGURATION_BYTES:
            raise serializers.ValidationError(f"configuration is larger than {MAX_CONFIGURATION_BYTES} bytes")
        validated = super().to_internal_value(data)
        return {**data, **validated}


class ProjectOwnerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()


def _iso(value) -> str:
    # What DRF's DateTimeField prints for an aware UTC datetime, without its per-call timezone work.
    return value.isoformat().replace("+00:00", "Z")


class ProjectSerializer(serializers.ModelSerializer):
    """Output only: input goes through ProjectCreate/UpdateInputSerializer.

    ``to_representation`` builds the dict directly: this is the hottest list in the API and DRF's
    field-by-field machinery was a third of its time. The declared fields still document the shape.
    """

    training_jobs_count = serializers.IntegerField(read_only=True, default=0)
    owner = ProjectOwnerSerializer(read_only=True)
    # Stored validated; shown whole, including keys beyond seed 000's.
    configuration = serializers.JSONField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "status", "configuration", "owner", "training_jobs_count",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj):
        return {
            "id": str(obj.id),
            "name": obj.name,
            "description": obj.description,
            "status": obj.status,
            "configuration": obj.configuration,
            "owner": {"id": str(obj.owner_id), "username": obj.owner.username},
            "training_jobs_count": getattr(obj, "training_jobs_count", 0),
            "created_at": _iso(obj.created_at),
            "updated_at": _iso(obj.updated_at),
        }


class ProjectCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    configuration = ProjectConfigurationSerializer(required=False, default=dict)

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("The name cannot be blank.")
        return value


class ProjectUpdateInputSerializer(ProjectCreateInputSerializer):
    status = serializers.ChoiceField(choices=ProjectStatus.choices, required=False)


class ProjectMemberSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ProjectMember
        fields = ["user_id", "username", "access", "created_at"]


class ProjectMemberInputSerializer(serializers.Serializer):
    user_id = serializers.UUIDField(required=False)
    username = serializers.CharField(required=False, max_length=150)
    access = serializers.ChoiceField(choices=MemberAccess.choices, default=MemberAccess.READ)

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("username"):
            raise serializers.ValidationError({"user_id": "Give user_id or username."})
        return attrs


class ProjectUploadSerializer(serializers.ModelSerializer):
    """seed 000 upload response, plus what validation found."""

    project_id = serializers.UUIDField(read_only=True)
    upload_id = serializers.UUIDField(source="id", read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None, read_only=True)

    class Meta:
        model = ProjectUpload
        fields = ["project_id", "upload_id", "status", "files", "validation_status", "checksum", "size",
                  "unpacked_size", "original_name", "app_root", "app_name", "app_version", "components",
                  "app_config", "uploaded_by", "created_at"]


class ProjectUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="A ZIP of a Flower app")


class ColumnStatsSerializer(serializers.Serializer):
    min = serializers.FloatField()
    max = serializers.FloatField()
    mean = serializers.FloatField()
    std = serializers.FloatField()


class ProjectDatasetSerializer(serializers.ModelSerializer):
    """A validated CSV data set. ``training_name`` is how an execution's config names it
    (``"dataset": "csv:<id>"``)."""

    project_id = serializers.UUIDField(read_only=True)
    columns = serializers.ListField(child=serializers.CharField(), read_only=True)
    column_types = serializers.DictField(child=serializers.ChoiceField(choices=ColumnType.choices), read_only=True)
    column_stats = serializers.DictField(child=ColumnStatsSerializer(), read_only=True,
                                         help_text="Numeric columns: min, max, mean and standard deviation")
    class_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True,
                                         help_text="Rows per class of a classification target")
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None, read_only=True)
    training_name = serializers.CharField(read_only=True)

    class Meta:
        model = ProjectDataset
        fields = ["id", "project_id", "name", "original_name", "size", "sha256", "rows", "columns", "column_types",
                  "column_stats", "target_column", "task", "num_classes", "class_counts", "training_name",
                  "uploaded_by", "created_at"]
        read_only_fields = fields


class ProjectDatasetUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="A UTF-8 CSV file with a header row")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                 help_text="Unique in the project; default: the file's name without extension")
    target_column = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                          help_text="The column to predict; default: the last column")
    task = serializers.ChoiceField(choices=DatasetTask.choices, required=False, allow_blank=True,
                                   help_text="Default: classification for an integer target with at most 50 "
                                             "distinct values or a text target, else regression")


class DatasetColumnSummarySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ColumnType.choices)
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    mean = serializers.FloatField(required=False)
    std = serializers.FloatField(required=False)
    class_counts = serializers.DictField(child=serializers.IntegerField(), required=False,
                                         help_text="The target of a classification data set")


class ProjectDatasetPreviewSerializer(serializers.Serializer):
    dataset_id = serializers.UUIDField()
    columns = serializers.ListField(child=serializers.CharField())
    target_column = serializers.CharField()
    task = serializers.ChoiceField(choices=DatasetTask.choices)
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField()),
                                 help_text="The first 20 data rows: numbers, or text for a categorical target")
    total_rows = serializers.IntegerField()
    summary = serializers.DictField(child=DatasetColumnSummarySerializer(), help_text="Per column")
