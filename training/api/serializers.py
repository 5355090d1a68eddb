"""Shapes of the training API: seed 001/004 executions, rounds and logs, seed 000 training jobs.

Output serializers build their dicts directly (lists of executions and logs are hot); the declared
fields document the shape for the OpenAPI schema. Input serializers accept seed 001's camelCase
names next to snake_case (``projectId``, ``saveCheckpoint``, ``fromRound``, ...); training
parameters themselves are checked by ``training.config`` in the service.
"""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from core.exceptions import ValidationFailed
from training.choices import ExecutionStatus
from training.config import ALIASES as CONFIG_ALIASES
from training.models import Execution, ExecutionLog, Round, RoundClient

# Request keys as seed 001 writes them -> the names used here.
INPUT_ALIASES = {
    "projectId": "project_id", "strategyParams": "strategy_params", "privacyConfig": "privacy_config",
    "privacy": "privacy_config", "saveCheckpoint": "save_checkpoint", "fromRound": "from_round",
    "adjustConfig": "adjust_config",
}

# seed 001 gives ``modelType`` as a family; each family trains the platform's default model for it.
# (Belongs in training.config's parser, next to its other aliases.)
MODEL_FAMILY_DEFAULTS = {"classification": "logistic", "regression": "linear", "clustering": "kmeans"}


# Shown as text outside ExecutionSerializer: one enum component per choice set keeps the schema clean.
STATUS_HELP = "The execution's status: " + ", ".join(ExecutionStatus.values)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _first_error(errors) -> tuple[list[str], str]:
    """The path to and message of the first error in DRF's nested ``errors``."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            path, message = _first_error(value)
            return ([] if key == "non_field_errors" else [str(key)]) + path, message
    if isinstance(errors, list) and errors:
        return _first_error(errors[0])
    return [], str(errors)


def validated_input(serializer_class, data) -> dict:
    """``data`` checked by ``serializer_class``; a bad value answers 422 naming the field as the
    caller wrote it (``fromRound`` stays ``fromRound``)."""
    if data is None or data == "":
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object", field="body", http_status=422)
    sent_as: dict[str, str] = {}
    normalized: dict = {}
    # Aliases first, so that when both spellings are given the snake_case one wins.
    for key, value in sorted(data.items(), key=lambda item: item[0] not in INPUT_ALIASES):
        name = INPUT_ALIASES.get(key, key)
        normalized[name] = value
        sent_as[name] = key
    serializer = serializer_class(data=normalized)
    if not serializer.is_valid():
        path, message = _first_error(serializer.errors)
        if path:
            path[0] = sent_as.get(path[0], path[0])
        field = ".".join(path) or "body"
        raise ValidationFailed(f"{field}: {message}", http_status=422,
                               details={"field": field, "reason": message, "errors": serializer.errors})
    return serializer.validated_data


def headline_metrics(metrics: dict) -> tuple[float | None, float | None]:
    """(accuracy, loss): the server's evaluation on held-out data if there is one, else the clients'."""
    metrics = metrics or {}
    return metrics.get("accuracy", metrics.get("eval_accuracy")), metrics.get("loss", metrics.get("eval_loss"))


def _config_without_substitutions(execution: Execution) -> dict:
    return {k: v for k, v in (execution.config or {}).items() if k != "substitutions"}


# ---- executions (seed 001 TrainingExecution, seed 004 Execution) ------------------------------------

class ExecutionErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ExecutionSerializer(serializers.ModelSerializer):
    """Output only."""

    project_id = serializers.UUIDField()
    project_name = serializers.CharField()
    config = serializers.JSONField(help_text="The checked training parameters")
    substitutions = serializers.ListField(child=serializers.CharField(),
                                          help_text="What stood in for what was asked (e.g. a dataset)")
    completion_percentage = serializers.IntegerField()
    participating_clients = serializers.IntegerField(allow_null=True)
    control = serializers.CharField(allow_null=True, help_text="A stop or suspend the worker has yet to honour")
    error = ExecutionErrorSerializer(allow_null=True)
    created_by_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Execution
        fields = ["id", "project_id", "project_name", "name", "status", "algorithm", "strategy_params", "model_type",
                  "dataset", "transport", "config", "substitutions", "privacy", "current_round", "total_rounds",
                  "completion_percentage", "min_clients", "participating_clients", "metrics", "control", "error",
                  "created_by_id", "started_at", "finished_at", "created_at", "updated_at"]
        read_only_fields = fields

    def to_representation(self, obj: Execution):
        return {
            "id": str(obj.pk),
            "project_id": str(obj.project_id),
            "project_name": obj.project.name,
            "name": obj.name,
            "status": obj.status,
            "algorithm": obj.algorithm,
            "strategy_params": obj.strategy_params,
            "model_type": obj.model_type,
            "dataset": obj.dataset,
            "transport": obj.transport,
            "config": _config_without_substitutions(obj),
            "substitutions": (obj.config or {}).get("substitutions", []),
            "privacy": obj.privacy,
            "current_round": obj.current_round,
            "total_rounds": obj.total_rounds,
            "completion_percentage": obj.completion_percentage,
            "min_clients": obj.min_clients,
            "participating_clients": (obj.metrics or {}).get("clients_participated"),
            "metrics": obj.metrics,
            "control": obj.control or None,
            "error": {"code": obj.error_code or "FL003", "message": obj.error_message}
            if (obj.error_code or obj.error_message) else None,
            "created_by_id": str(obj.created_by_id) if obj.created_by_id else None,
            "started_at": _iso(obj.started_at),
            "finished_at": _iso(obj.finished_at),
            "created_at": _iso(obj.created_at),
            "updated_at": _iso(obj.updated_at),
        }


class TrainingConfigSerializer(serializers.Serializer):
    """Training parameters (seed 000 ``config``, seed 001 ``config``). Documents the common ones;
    every key is passed on as given and checked by the service, which also takes seed 001's
    camelCase names (``minClients``, ``learningRate``, ``batchSize``, ``localEpochs``, ...)."""

    rounds = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    clients = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="Nodes in the federation")
    min_clients = serializers.IntegerField(required=False, min_value=1)
    model_type = serializers.CharField(required=False, help_text="logistic, linear, kmeans, ... or a seed 001 family")
    dataset = serializers.CharField(required=False, help_text="digits, iris, wine, breast_cancer, diabetes")
    learning_rate = serializers.FloatField(required=False)
    batch_size = serializers.IntegerField(required=False)
    local_epochs = serializers.IntegerField(required=False)
    fraction_fit = serializers.FloatField(required=False)
    fraction_evaluate = serializers.FloatField(required=False)
    partition = serializers.ChoiceField(choices=["iid", "dirichlet", "shards"], required=False)
    alpha = serializers.FloatField(required=False, help_text="Dirichlet concentration (non-IID partitions)")
    seed = serializers.IntegerField(required=False)
    model_params = serializers.DictField(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("config must be a JSON object")
        return dict(data)


class PrivacyConfigSerializer(serializers.Serializer):
    """seed 001 ``privacyConfig``: differential privacy with Flower's clipping strategies. The
    values are checked (and defaults filled) by training.config.parse_privacy."""

    differential_privacy = serializers.BooleanField(required=False, default=False)
    mode = serializers.ChoiceField(choices=["server", "client"], required=False,
                                   help_text="Where updates are clipped: on the server or on each node")
    clipping = serializers.ChoiceField(choices=["fixed", "adaptive"], required=False)
    noise_multiplier = serializers.FloatField(required=False, min_value=0.0)
    epsilon = serializers.FloatField(required=False, min_value=0.0, help_text="Privacy budget: the run stops "
                                                                              "before spending more")
    delta = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    clipping_norm = serializers.FloatField(required=False, min_value=0.0)
    secure_aggregation = serializers.BooleanField(required=False, default=False,
                                                  help_text="Flower's SecAgg+: the server only sees the sum of the updates")
    num_shares = serializers.FloatField(required=False, min_value=0.0,
                                        help_text="SecAgg+ shares per node: a count (>= 3) or a fraction of the nodes")
    reconstruction_threshold = serializers.FloatField(required=False, min_value=0.0,
                                                      help_text="SecAgg+ shares needed to unmask: a count or a fraction")
    clipping_range = serializers.FloatField(required=False, min_value=0.0,
                                            help_text="SecAgg+ clips each weight to +/- this before quantising")
    quantization_range = serializers.IntegerField(required=False, min_value=2)


class ExecutionStartInputSerializer(serializers.Serializer):
    """``POST /fl/executions`` (seed 001) and ``POST /training/start`` (seed 000). Training parameters
    go in ``config``; given at the top level instead (seed 001 ``modelType``), they are merged into it."""

    project_id = serializers.UUIDField(help_text="Also accepted as projectId")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    algorithm = serializers.CharField(max_length=30, required=False,
                                      help_text="fedavg, fedprox, fedopt/fedadam, fedyogi, fedadagrad, fedavgm, "
                                                "fedmedian, fedtrimmedavg, krum, multikrum, bulyan, qfedavg")
    strategy_params = serializers.DictField(required=False, help_text="Also accepted as strategyParams")
    config = TrainingConfigSerializer(required=False)
    privacy_config = PrivacyConfigSerializer(required=False, help_text="Also accepted as privacyConfig")

    def to_internal_value(self, data):
        flat = {k: v for k, v in data.items() if k not in self.fields}
        validated = super().to_internal_value({k: v for k, v in data.items() if k in self.fields})
        config = {**flat, **validated.get("config", {})}
        for key in ("model_type", "modelType"):
            if isinstance(config.get(key), str) and config[key].lower() in MODEL_FAMILY_DEFAULTS:
                config[key] = MODEL_FAMILY_DEFAULTS[config[key].lower()]
        validated["config"] = config
        return validated


class ExecutionUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)


class ExecutionStopInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    save_checkpoint = serializers.BooleanField(required=False, default=True,
                                               help_text="Also accepted as saveCheckpoint; only a running execution "
                                                         "has a round to save")


class ExecutionSuspendInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ExecutionResumeInputSerializer(serializers.Serializer):
    from_round = serializers.IntegerField(required=False, allow_null=True, min_value=0,
                                          help_text="Also accepted as fromRound; default: the last checkpoint")
    adjust_config = serializers.DictField(required=False, help_text="Also accepted as adjustConfig: parameters "
                                                                    "to change, e.g. more rounds")

    def validate_adjust_config(self, value):
        return {CONFIG_ALIASES.get(k, k): v for k, v in value.items()}


class ExecutionStatusInputSerializer(serializers.Serializer):
    """seed 004 ``PATCH /fl/executions/{id}/status``: ``running`` resumes a suspended, stopped or
    failed execution."""

    status = serializers.ChoiceField(choices=[ExecutionStatus.STOPPED, ExecutionStatus.SUSPENDED,
                                              ExecutionStatus.RUNNING])
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    save_checkpoint = serializers.BooleanField(required=False, default=True)
    from_round = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    adjust_config = serializers.DictField(required=False)

    def validate_adjust_config(self, value):
        return {CONFIG_ALIASES.get(k, k): v for k, v in value.items()}


# ---- rounds --------------------------------------------------------------------------------------

class RoundMetricsSerializer(serializers.Serializer):
    train = serializers.DictField(help_text="Client training metrics, weighted by examples")
    evaluate = serializers.DictField(help_text="Client evaluation metrics, weighted by examples")
    server = serializers.DictField(help_text="The server's evaluation of the aggregated model on held-out data")


class CheckpointSerializer(serializers.Serializer):
    url = serializers.CharField()
    checksum_sha256 = serializers.CharField()


def checkpoint_url(execution_id, number: int) -> str:
    return reverse("fl-execution-round-checkpoint", kwargs={"pk": str(execution_id), "number": str(number)})


class RoundSerializer(serializers.ModelSerializer):
    """seed 001 TrainingRound. Output only."""

    execution_id = serializers.UUIDField()
    round_number = serializers.IntegerField()
    metrics = RoundMetricsSerializer()
    checkpoint = CheckpointSerializer(allow_null=True)

    class Meta:
        model = Round
        fields = ["id", "execution_id", "round_number", "status", "participants", "started_at", "completed_at",
                  "duration_seconds", "bytes_sent", "bytes_received", "metrics", "checkpoint"]
        read_only_fields = fields

    def to_representation(self, obj: Round):
        return {
            "id": obj.pk,
            "execution_id": str(obj.execution_id),
            "round_number": obj.number,
            "status": obj.status,
            "participants": obj.participants,
            "started_at": _iso(obj.started_at),
            "completed_at": _iso(obj.completed_at),
            "duration_seconds": obj.duration_seconds,
            "bytes_sent": obj.bytes_sent,
            "bytes_received": obj.bytes_received,
            "metrics": {"train": obj.train_metrics, "evaluate": obj.evaluate_metrics, "server": obj.server_metrics},
            "checkpoint": {"url": checkpoint_url(obj.execution_id, obj.number),
                           "checksum_sha256": obj.checkpoint_checksum} if obj.checkpoint else None,
        }


class RoundClientSerializer(serializers.ModelSerializer):
    """What one node did in one phase (train or evaluate) of a round."""

    class Meta:
        model = RoundClient
        fields = ["node_id", "partition_id", "phase", "num_examples", "metrics", "duration_ms", "bytes_down",
                  "bytes_up", "error"]
        read_only_fields = fields


class RoundClientMetricsSerializer(serializers.Serializer):
    node_id = serializers.IntegerField()
    phase = serializers.CharField()
    num_examples = serializers.IntegerField()
    metrics = serializers.DictField()


class RoundMetricsDetailSerializer(serializers.Serializer):
    """``/rounds/{n}/metrics``: the aggregated metrics of a round and each node's."""

    execution_id = serializers.UUIDField()
    round_number = serializers.IntegerField()
    train = serializers.DictField()
    evaluate = serializers.DictField()
    server = serializers.DictField()
    clients = RoundClientMetricsSerializer(many=True)

    @staticmethod
    def build(round_obj: Round, clients) -> dict:
        return {
            "execution_id": str(round_obj.execution_id),
            "round_number": round_obj.number,
            "train": round_obj.train_metrics,
            "evaluate": round_obj.evaluate_metrics,
            "server": round_obj.server_metrics,
            "clients": [{"node_id": c.node_id, "phase": c.phase, "num_examples": c.num_examples, "metrics": c.metrics}
                        for c in clients],
        }


class RoundMetricsPointSerializer(serializers.Serializer):
    round_number = serializers.IntegerField()
    participants = serializers.IntegerField()
    duration_seconds = serializers.FloatField(allow_null=True)
    train = serializers.DictField()
    evaluate = serializers.DictField()
    server = serializers.DictField()


class ExecutionMetricsSerializer(serializers.Serializer):
    """seed 004 ``/fl/executions/{id}/metrics``: the latest metrics and their curve round by round."""

    execution_id = serializers.UUIDField()
    status = serializers.CharField(help_text=STATUS_HELP)
    current_round = serializers.IntegerField()
    total_rounds = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    latest = serializers.DictField()
    rounds = RoundMetricsPointSerializer(many=True)

    @staticmethod
    def build(execution: Execution, rounds) -> dict:
        accuracy, loss = headline_metrics(execution.metrics)
        return {
            "execution_id": str(execution.pk),
            "status": execution.status,
            "current_round": execution.current_round,
            "total_rounds": execution.total_rounds,
            "accuracy": accuracy,
            "loss": loss,
            "latest": execution.metrics,
            "rounds": [{"round_number": r.number, "participants": r.participants,
                        "duration_seconds": r.duration_seconds, "train": r.train_metrics,
                        "evaluate": r.evaluate_metrics, "server": r.server_metrics} for r in rounds],
        }


# ---- logs (seed 004 Log Entry) -------------------------------------------------------------------

class ExecutionLogSerializer(serializers.ModelSerializer):
    """Output only."""

    execution_id = serializers.UUIDField()

    class Meta:
        model = ExecutionLog
        fields = ["id", "execution_id", "timestamp", "level", "round_number", "source", "message", "data"]
        read_only_fields = fields

    def to_representation(self, obj: ExecutionLog):
        return {
            "id": obj.pk,
            "execution_id": str(obj.execution_id),
            "timestamp": _iso(obj.timestamp),
            "level": obj.level,
            "round_number": obj.round_number,
            "source": obj.source,
            "message": obj.message,
            "data": obj.data,
        }


# ---- seed 000 training jobs ----------------------------------------------------------------------

class TrainingJobStartSerializer(serializers.Serializer):
    """seed 000 ``POST /training/start`` response."""

    job_id = serializers.UUIDField()
    status = serializers.CharField(help_text=STATUS_HELP)
    created_at = serializers.DateTimeField()
    config = serializers.JSONField()
    substitutions = serializers.ListField(child=serializers.CharField(), required=False,
                                          help_text="Present when something stood in for what was asked")

    def to_representation(self, obj: Execution):
        body = {"job_id": str(obj.pk), "status": obj.status, "created_at": _iso(obj.created_at),
                "config": _config_without_substitutions(obj)}
        substitutions = (obj.config or {}).get("substitutions")
        if substitutions:
            body["substitutions"] = substitutions
        return body


class JobProgressSerializer(serializers.Serializer):
    current_round = serializers.IntegerField()
    total_rounds = serializers.IntegerField()
    completion_percentage = serializers.IntegerField()


class JobMetricsSerializer(serializers.Serializer):
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    clients_participated = serializers.IntegerField(allow_null=True)


class TrainingJobSerializer(serializers.Serializer):
    """seed 000 ``GET /training/jobs/{job_id}``; pass ``estimated_completion`` in the context."""

    job_id = serializers.UUIDField()
    status = serializers.CharField(help_text=STATUS_HELP)
    progress = JobProgressSerializer()
    metrics = JobMetricsSerializer()
    started_at = serializers.DateTimeField(allow_null=True)
    estimated_completion = serializers.DateTimeField(allow_null=True,
                                                     help_text="While running: start + mean round time x rounds")
    finished_at = serializers.DateTimeField(allow_null=True)
    error = ExecutionErrorSerializer(allow_null=True)

    def to_representation(self, obj: Execution):
        accuracy, loss = headline_metrics(obj.metrics)
        return {
            "job_id": str(obj.pk),
            "status": obj.status,
            "progress": {"current_round": obj.current_round, "total_rounds": obj.total_rounds,
                         "completion_percentage": obj.completion_percentage},
            "metrics": {"accuracy": accuracy, "loss": loss,
                        "clients_participated": (obj.metrics or {}).get("clients_participated")},
            "started_at": _iso(obj.started_at),
            "estimated_completion": _iso(self.context.get("estimated_completion")),
            "finished_at": _iso(obj.finished_at),
            "error": {"code": obj.error_code or "FL003", "message": obj.error_message}
            if (obj.error_code or obj.error_message) else None,
        }


class JobFinalMetricsSerializer(serializers.Serializer):
    accuracy = serializers.FloatField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    rounds_completed = serializers.IntegerField()


class TrainingJobStopSerializer(serializers.Serializer):
    """seed 000 ``POST /training/stop/{job_id}`` response. While the worker has still to stop the
    run (202), ``status`` is the current one and ``stopped_at`` is null."""

    job_id = serializers.UUIDField()
    status = serializers.CharField(help_text=STATUS_HELP)
    stopped_at = serializers.DateTimeField(allow_null=True)
    final_metrics = JobFinalMetricsSerializer()

    def to_representation(self, obj: Execution):
        accuracy, loss = headline_metrics(obj.metrics)
        stopped = obj.status == ExecutionStatus.STOPPED
        return {
            "job_id": str(obj.pk),
            "status": obj.status,
            "stopped_at": _iso(obj.finished_at) if stopped else None,
            "final_metrics": {"accuracy": accuracy, "loss": loss, "rounds_completed": obj.current_round},
        }
