"""Shapes of the model registry API (seed 004 Model Management under ``/fl/models`` and Model
Operations under ``/models``; a version carries seed 001's AggregatedModel fields).

Output serializers build their dicts directly, as the execution serializers do; the declared fields
document the shape. Inputs accept seed 001/004 camelCase (``executionId``) next to snake_case.
"""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from training.api.serializers import _iso, validated_input
from training.export import supported_formats
from training.models import ModelEvaluation, ModelVersion, ModelVersionStatus, RegisteredModel

ALIASES = {"executionId": "execution_id"}


def registry_input(serializer_class, data) -> dict:
    """``validated_input`` (422 naming the field) that also takes this API's camelCase names."""
    if isinstance(data, dict):
        data = {ALIASES.get(key, key): value for key, value in data.items()}
    return validated_input(serializer_class, data)


def headline(metrics: dict) -> tuple[float | None, float | None]:
    """(accuracy, loss) of a version's metrics: the server's held-out evaluation, else the clients'."""
    server, evaluate = (metrics or {}).get("server") or {}, (metrics or {}).get("evaluate") or {}
    return (server.get("accuracy", evaluate.get("eval_accuracy")),
            server.get("loss", evaluate.get("eval_loss")))


def download_url(model: RegisteredModel, number: int, fmt: str) -> str:
    return f"{reverse('fl-model-download', kwargs={'pk': str(model.pk)})}?version={number}&format={fmt}"


# ---- versions (seed 001 AggregatedModel) ----------------------------------------------------------

VERSION_STATUS_HELP = "The version's status: " + ", ".join(ModelVersionStatus.values)


class VersionMetricsSerializer(serializers.Serializer):
    server = serializers.DictField(help_text="The server's evaluation of the model on held-out data")
    evaluate = serializers.DictField(help_text="Client evaluation metrics, weighted by examples")
    train = serializers.DictField(help_text="Client training metrics, weighted by examples")


class VersionPerformanceSerializer(serializers.Serializer):
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)


class VersionDownloadSerializer(serializers.Serializer):
    format = serializers.CharField()
    url = serializers.CharField()


class ModelVersionSerializer(serializers.ModelSerializer):
    """Output only. Pass the version's model as ``context["model"]``."""

    model_id = serializers.UUIDField()
    execution_id = serializers.UUIDField()
    version = serializers.IntegerField(help_text="The round number")
    round_number = serializers.IntegerField()
    algorithm = serializers.CharField()
    is_current = serializers.BooleanField()
    checksum_sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    metrics = VersionMetricsSerializer()
    performance = VersionPerformanceSerializer()
    # Text rather than a choice: a second enum named ``status`` would collide in the schema.
    status = serializers.CharField(help_text=VERSION_STATUS_HELP)
    tags = serializers.ListField(child=serializers.CharField())
    downloads = VersionDownloadSerializer(many=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "model_id", "execution_id", "version", "round_number", "algorithm", "status", "is_current",
                  "description", "tags", "checksum_sha256", "size_bytes", "metrics", "performance", "downloads",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: ModelVersion):
        model = self.context.get("model") or obj.model
        accuracy, loss = headline(obj.metrics)
        return {
            "id": str(obj.pk),
            "model_id": str(obj.model_id),
            "execution_id": str(model.execution_id),
            "version": obj.number,
            "round_number": obj.number,
            "algorithm": model.algorithm,
            "status": obj.status,
            "is_current": obj.pk == model.current_version_id,
            "description": obj.description,
            "tags": obj.tags,
            "checksum_sha256": obj.checksum,
            "size_bytes": obj.size,
            "metrics": obj.metrics,
            "performance": {"accuracy": accuracy, "loss": loss},
            "downloads": [{"format": fmt, "url": download_url(model, obj.number, fmt)}
                          for fmt in supported_formats(model.model_type)],
            "created_at": _iso(obj.created_at),
            "updated_at": _iso(obj.updated_at),
        }


class CurrentVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    checksum_sha256 = serializers.CharField()
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


# ---- registered models ----------------------------------------------------------------------------

class RegisteredModelSerializer(serializers.ModelSerializer):
    """Output only. Lists come from ``training.registry.selectors.model_list`` (with its counts)."""

    project_id = serializers.UUIDField()
    project_name = serializers.CharField()
    execution_id = serializers.UUIDField()
    execution_status = serializers.CharField(help_text="The status of the execution that trains this model")
    current_version = CurrentVersionSerializer(allow_null=True)
    latest_version = serializers.IntegerField(allow_null=True)
    versions_count = serializers.IntegerField()
    formats = serializers.ListField(child=serializers.CharField(), help_text="Download formats of its versions")
    rolled_back_at = serializers.DateTimeField(allow_null=True)
    created_by_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "project_id", "project_name", "execution_id", "execution_status",
                  "model_type", "algorithm", "dataset", "current_version", "latest_version", "versions_count",
                  "pinned", "formats", "rolled_back_at", "created_by_id", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: RegisteredModel):
        current = obj.current_version
        current_data = None
        if current is not None:
            accuracy, loss = headline(current.metrics)
            current_data = {"version": current.number, "status": current.status, "checksum_sha256": current.checksum,
                            "accuracy": accuracy, "loss": loss, "created_at": _iso(current.created_at)}
        return {
            "id": str(obj.pk),
            "name": obj.name,
            "description": obj.description,
            "project_id": str(obj.project_id),
            "project_name": obj.project.name,
            "execution_id": str(obj.execution_id),
            "execution_status": obj.execution.status,
            "model_type": obj.model_type,
            "algorithm": obj.algorithm,
            "dataset": obj.dataset,
            "current_version": current_data,
            "latest_version": getattr(obj, "latest_version", None),
            "versions_count": getattr(obj, "versions_count", 0),
            "pinned": obj.pinned,
            "formats": supported_formats(obj.model_type),
            "rolled_back_at": _iso(obj.rolled_back_at),
            "created_by_id": str(obj.created_by_id) if obj.created_by_id else None,
            "created_at": _iso(obj.created_at),
            "updated_at": _iso(obj.updated_at),
        }


class ModelAggregateSerializer(serializers.Serializer):
    """``POST /fl/models/{id}/aggregate``: the model and its versions after publishing."""

    model = RegisteredModelSerializer()
    published = serializers.IntegerField(help_text="Versions that are new")
    versions = ModelVersionSerializer(many=True)


# ---- evaluations -----------------------------------------------------------------------------------

class ModelEvaluationSerializer(serializers.ModelSerializer):
    """Output only."""

    model_id = serializers.UUIDField()
    version = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, running, completed or failed")
    metrics = serializers.DictField(help_text="accuracy, precision, recall, f1, loss (classification); mse, mae, "
                                              "rmse, r2 (regression); inertia (k-means); num_examples")
    requested_by_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = ModelEvaluation
        fields = ["id", "model_id", "version", "dataset", "status", "metrics", "error", "requested_by_id",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def to_representation(self, obj: ModelEvaluation):
        return {
            "id": str(obj.pk),
            "model_id": str(obj.model_id),
            "version": obj.version.number,
            "dataset": obj.dataset,
            "status": obj.status,
            "metrics": obj.metrics,
            "error": obj.error,
            "requested_by_id": str(obj.requested_by_id) if obj.requested_by_id else None,
            "created_at": _iso(obj.created_at),
            "started_at": _iso(obj.started_at),
            "finished_at": _iso(obj.finished_at),
        }


# ---- training and performance ----------------------------------------------------------------------

class ModelTrainingStatusSerializer(serializers.Serializer):
    """The execution a model's training endpoints act on: the latest one started from it, else its own."""

    model_id = serializers.UUIDField()
    execution_id = serializers.UUIDField()
    status = serializers.CharField()
    current_round = serializers.IntegerField()
    total_rounds = serializers.IntegerField()
    completion_percentage = serializers.IntegerField()
    metrics = serializers.DictField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.DictField(allow_null=True)

    @staticmethod
    def build(model: RegisteredModel, execution) -> dict:
        return {
            "model_id": str(model.pk),
            "execution_id": str(execution.pk),
            "status": execution.status,
            "current_round": execution.current_round,
            "total_rounds": execution.total_rounds,
            "completion_percentage": execution.completion_percentage,
            "metrics": execution.metrics,
            "started_at": _iso(execution.started_at),
            "finished_at": _iso(execution.finished_at),
            "error": {"code": execution.error_code or "FL003", "message": execution.error_message}
            if (execution.error_code or execution.error_message) else None,
        }


class PerformancePointSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    server = serializers.DictField()


class ModelPerformanceSerializer(serializers.Serializer):
    """``GET /models/{id}/performance``: the current version's metrics and the trend over versions."""

    model_id = serializers.UUIDField()
    current_version = serializers.IntegerField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    metrics = VersionMetricsSerializer(allow_null=True)
    change = serializers.DictField(help_text="Current minus the version before it, per server metric")
    best_version = serializers.IntegerField(allow_null=True, help_text="Highest accuracy (lowest loss without one)")
    trend = PerformancePointSerializer(many=True)
    evaluations = ModelEvaluationSerializer(many=True, help_text="The latest completed evaluations")

    @staticmethod
    def build(model: RegisteredModel, versions: list[ModelVersion], evaluations) -> dict:
        points = []
        for v in sorted(versions, key=lambda v: v.number):
            accuracy, loss = headline(v.metrics)
            points.append({"version": v.number, "status": v.status, "accuracy": accuracy, "loss": loss,
                           "server": (v.metrics or {}).get("server") or {}})
        current = next((v for v in versions if v.pk == model.current_version_id), None)
        accuracy, loss = headline(current.metrics) if current else (None, None)
        change = {}
        if current is not None:
            before = [p for p in points if p["version"] < current.number]
            now = (current.metrics or {}).get("server") or {}
            if before:
                change = {k: now[k] - before[-1]["server"][k] for k in now
                          if isinstance(now[k], (int, float)) and isinstance(before[-1]["server"].get(k), (int, float))}
        scored = [p for p in points if p["accuracy"] is not None]
        if scored:
            best = max(scored, key=lambda p: p["accuracy"])["version"]
        else:
            with_loss = [p for p in points if p["loss"] is not None]
            best = min(with_loss, key=lambda p: p["loss"])["version"] if with_loss else None
        return {
            "model_id": str(model.pk),
            "current_version": current.number if current else None,
            "accuracy": accuracy,
            "loss": loss,
            "metrics": current.metrics if current else None,
            "change": change,
            "best_version": best,
            "trend": points,
            "evaluations": ModelEvaluationSerializer(evaluations, many=True).data,
        }


class ModelReportSerializer(serializers.Serializer):
    """``/models/{id}/validation`` and ``/models/{id}/bias``: ``report`` is what
    ``training.metrics`` computes for the version's round."""

    model_id = serializers.UUIDField()
    execution_id = serializers.UUIDField()
    version = serializers.IntegerField(allow_null=True)
    report = serializers.DictField()


# ---- inputs ----------------------------------------------------------------------------------------

class ModelRegisterInputSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField(help_text="Also accepted as executionId")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ModelUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("name must not be blank")
        return value


class ModelPatchInputSerializer(ModelUpdateInputSerializer):
    name = serializers.CharField(max_length=200, required=False)


# Versions are round numbers; rounds stop at 1000, and nothing larger may reach the database.
MAX_VERSION = 1_000_000


class VersionCreateInputSerializer(serializers.Serializer):
    round = serializers.IntegerField(min_value=1, max_value=MAX_VERSION,
                                     help_text="The round of the model's execution to publish")


class VersionUpdateInputSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), max_length=20, required=False)
    status = serializers.ChoiceField(choices=ModelVersionStatus.choices, required=False)


class ModelRollbackInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ModelTrainInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = serializers.DictField(required=False, default=dict,
                                   help_text="Training parameters to change (rounds, learning_rate, ...); the "
                                             "model and data set stay")


class ModelStopInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    save_checkpoint = serializers.BooleanField(required=False, default=True)


class ModelEvaluateInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION, required=False, allow_null=True,
                                       help_text="Default: the current version")
    dataset = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                    help_text="digits, iris, wine, breast_cancer or diabetes; default: the "
                                              "execution's own")
