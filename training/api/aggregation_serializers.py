"""Shapes of ``/fl/aggregation`` (seed 001 Model Aggregation) and of the validation and bias reads
under ``/fl/metrics`` (seed 004). Outputs are built by ``training.aggregation`` and
``training.metrics``; the output serializers here document them for the schema."""

from __future__ import annotations

from rest_framework import serializers

from training.aggregation import VALIDATION_METRICS, WEIGHTINGS
from training.api.serializers import validated_input
from training.choices import RoundStatus

# The seed's camelCase names and their snake_case spellings, both accepted.
SNAKE_ALIASES = {"custom_strategy": "customStrategy", "wait_for_all": "waitForAll"}
MAX_CLIENTS = 100


def aggregation_input(serializer_class, data) -> dict:
    if isinstance(data, dict):
        data = {SNAKE_ALIASES.get(k, k): v for k, v in data.items()}
    return validated_input(serializer_class, data)


class StrictFloatField(serializers.FloatField):
    """A float that is not a boolean (``true`` is not a threshold)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class BoundedListField(serializers.ListField):
    """Refuses an over-long list before looking at its items."""

    def to_internal_value(self, data):
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


# ---- input ----------------------------------------------------------------------------------------

class AggregationValidationSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(default=False)
    threshold = StrictFloatField(required=False, allow_null=True, min_value=0.0, max_value=1e12,
                                 help_text="accuracy must reach it, loss must not exceed it")
    metrics = BoundedListField(child=serializers.ChoiceField(choices=VALIDATION_METRICS), required=False,
                               max_length=len(VALIDATION_METRICS),
                               help_text="Checked on the held-out split after each aggregation (default: accuracy "
                                         "for classification, loss otherwise)")


class AggregationConfigureInputSerializer(serializers.Serializer):
    """seed 001 ``POST /fl/aggregation/{executionId}/configure``. Give at least one setting."""

    strategy = serializers.CharField(max_length=30, required=False,
                                     help_text="fedavg, fedprox, fedopt, ... any strategy the engine knows, or "
                                               "custom with customStrategy naming one")
    customStrategy = serializers.CharField(max_length=30, required=False,
                                           help_text="With strategy custom: the engine's strategy to use")
    strategy_params = serializers.DictField(required=False, help_text="Also accepted as strategyParams; checked "
                                                                      "as at execution start")
    weights = serializers.ChoiceField(choices=WEIGHTINGS, required=False,
                                      help_text="uniform: every node counts the same; proportional: by examples; "
                                                "performance: by the node's local validation score")
    validation = AggregationValidationSerializer(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give strategy, strategyParams, weights or validation")
        return attrs


class AggregationTriggerInputSerializer(serializers.Serializer):
    """seed 001 ``POST /fl/aggregation/{executionId}/trigger``."""

    round = serializers.IntegerField(min_value=1, max_value=1_000_000, help_text="The next round: completed + 1")
    clients = BoundedListField(child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_CLIENTS,
                               help_text="Node ids that take part (default: the strategy samples all nodes)")
    waitForAll = serializers.BooleanField(required=False, default=True,
                                          help_text="Every listed node trains (the strategy's fraction is ignored)")


# ---- output: aggregation status -------------------------------------------------------------------

class AggregationStrategySerializer(serializers.Serializer):
    name = serializers.CharField()
    params = serializers.DictField()
    description = serializers.CharField()


class AggregationValidationOutSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    threshold = serializers.FloatField(allow_null=True)
    metrics = serializers.ListField(child=serializers.CharField())


class AggregationRoundProgressSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RoundStatus.values)
    updates_received = serializers.IntegerField()
    updates_failed = serializers.IntegerField()
    updates_expected = serializers.IntegerField()


class AggregatedRoundSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    completed_at = serializers.DateTimeField(allow_null=True)
    participants = serializers.IntegerField()
    metrics = serializers.DictField(help_text="train, evaluate and server metrics of the round")
    checksum = serializers.CharField(allow_null=True, help_text="SHA-256 of the round's checkpoint")
    checkpoint_url = serializers.CharField(allow_null=True)
    validation_passed = serializers.BooleanField(allow_null=True)


class NextAggregationSerializer(serializers.Serializer):
    expected = serializers.BooleanField()
    round = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class ManualStepSerializer(serializers.Serializer):
    round = serializers.IntegerField()
    clients = serializers.ListField(child=serializers.IntegerField())
    wait_for_all = serializers.BooleanField()
    requested_at = serializers.DateTimeField()


class AggregationStatusSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    status = serializers.CharField(help_text="The execution's status")
    strategy = AggregationStrategySerializer()
    weights = serializers.ChoiceField(choices=WEIGHTINGS)
    validation = AggregationValidationOutSerializer()
    differential_privacy = serializers.BooleanField(help_text="When on, every update weighs the same")
    total_rounds = serializers.IntegerField()
    completed_rounds = serializers.IntegerField()
    current_round = AggregationRoundProgressSerializer()
    last_aggregated_round = AggregatedRoundSerializer(allow_null=True)
    next_aggregation = NextAggregationSerializer()
    manual_step = ManualStepSerializer(allow_null=True, help_text="A manual step queued or under way")


# ---- output: validation scores and bias -----------------------------------------------------------

class LocalScoreSerializer(serializers.Serializer):
    weighted_mean = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()
    nodes = serializers.IntegerField()


class ValidationRoundSerializer(serializers.Serializer):
    round = serializers.IntegerField()
    status = serializers.CharField()
    held_out = serializers.DictField(child=serializers.FloatField(), help_text="Server metrics on the test split")
    local = serializers.DictField(child=LocalScoreSerializer(), help_text="Nodes' local validation metrics")
    generalisation_gap = serializers.DictField(child=serializers.FloatField(),
                                               help_text="Positive: the model does worse on held-out data")
    validation_passed = serializers.BooleanField(allow_null=True)


class ValidationSummarySerializer(serializers.Serializer):
    rounds = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()


class ValidationScoresSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    task = serializers.CharField()
    validation = AggregationValidationOutSerializer()
    rounds = ValidationRoundSerializer(many=True)
    latest = ValidationRoundSerializer(allow_null=True)
    summary = ValidationSummarySerializer()


class ClassGapSerializer(serializers.Serializer):
    label = serializers.IntegerField()
    accuracy = serializers.FloatField()
    support = serializers.IntegerField()
    gap = serializers.FloatField(help_text="Class accuracy - overall accuracy")
    flagged = serializers.BooleanField()


class WorstClassSerializer(serializers.Serializer):
    label = serializers.IntegerField()
    accuracy = serializers.FloatField()
    gap = serializers.FloatField()


class ClassSummarySerializer(serializers.Serializer):
    overall_accuracy = serializers.FloatField()
    worst = WorstClassSerializer()
    max_gap = serializers.FloatField()
    flagged = serializers.ListField(child=serializers.IntegerField())


class NodeGapSerializer(serializers.Serializer):
    node_id = serializers.IntegerField()
    partition_id = serializers.IntegerField(allow_null=True)
    num_examples = serializers.IntegerField()
    value = serializers.FloatField()
    metrics = serializers.DictField(child=serializers.FloatField())
    gap = serializers.FloatField(help_text="value - weighted mean")
    relative_gap = serializers.FloatField(allow_null=True)
    flagged = serializers.BooleanField()


class WorstNodeSerializer(serializers.Serializer):
    node_id = serializers.IntegerField()
    value = serializers.FloatField()
    gap = serializers.FloatField()


class NodeSummarySerializer(serializers.Serializer):
    metric = serializers.CharField()
    higher_is_better = serializers.BooleanField()
    weighted_mean = serializers.FloatField()
    std = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()
    max_min_gap = serializers.FloatField()
    relative_max_min_gap = serializers.FloatField(allow_null=True)
    flag_basis = serializers.ChoiceField(choices=["absolute", "relative"])
    worst = WorstNodeSerializer()
    flagged = serializers.ListField(child=serializers.IntegerField())


class FairnessSerializer(serializers.Serializer):
    metric = serializers.CharField()
    max_min_gap = serializers.FloatField(allow_null=True, help_text="Best node - worst node")
    class_max_gap = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True)
    flagged = serializers.BooleanField()
    fair = serializers.BooleanField(allow_null=True, help_text="Nothing flagged (null: no round yet)")


class BiasReportSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    task = serializers.CharField()
    round = serializers.IntegerField(allow_null=True)
    threshold = serializers.FloatField()
    classes = ClassGapSerializer(many=True)
    class_summary = ClassSummarySerializer(allow_null=True)
    nodes = NodeGapSerializer(many=True)
    node_summary = NodeSummarySerializer(allow_null=True)
    fairness = FairnessSerializer()
