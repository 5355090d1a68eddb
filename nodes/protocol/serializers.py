"""Shapes of seed 002's REST endpoints (inside the success envelope's ``data``)."""

from rest_framework import serializers


class CapabilitiesSerializer(serializers.Serializer):
    max_model_size_mb = serializers.FloatField(required=False, min_value=0)
    supported_frameworks = serializers.ListField(child=serializers.CharField(max_length=50), required=False,
                                                 max_length=50)
    compute_capability = serializers.ChoiceField(["low", "medium", "high"], required=False)


class ClientRegisterInputSerializer(serializers.Serializer):
    device_id = serializers.CharField(max_length=255, help_text="A (hashed) identifier of the device")
    platform = serializers.CharField(max_length=50, help_text="android, ios, linux, ...")
    capabilities = serializers.DictField(required=False, default=dict,
                                         help_text="max_model_size_mb, supported_frameworks, compute_capability")
    public_key = serializers.CharField(max_length=100, required=False,
                                       help_text="ed25519 public key: 32 raw bytes, base64 (needed to sign updates)")
    project_id = serializers.UUIDField(required=False, allow_null=True,
                                       help_text="Serve only this project's executions")


class ClientRegisterSerializer(serializers.Serializer):
    client_id = serializers.UUIDField()
    registration_token = serializers.CharField(help_text="JWT: sub, iat, exp, jti, scope, type \"device\"")
    expires_at = serializers.DateTimeField()


class TokenRevokedSerializer(serializers.Serializer):
    client_id = serializers.UUIDField()
    revoked_at = serializers.DateTimeField()


class TrainingRoundSerializer(serializers.Serializer):
    round_id = serializers.UUIDField(allow_null=True)
    round_number = serializers.IntegerField()
    status = serializers.ChoiceField(["active", "pending", "completed"])
    global_model_url = serializers.CharField(allow_null=True)
    model_version = serializers.CharField(allow_null=True)
    model_checksum = serializers.CharField(allow_null=True, help_text="sha256 hex of the model body")
    model_size = serializers.IntegerField(allow_null=True)
    training_config = serializers.DictField()
    deadline = serializers.DateTimeField(allow_null=True)
    execution_id = serializers.UUIDField(allow_null=True)
    execution_status = serializers.CharField(allow_null=True, help_text="The execution's own status: pending, "
                                             "running, suspended, completed, failed or stopped")
    update_submitted = serializers.BooleanField(help_text="This device's update for the round is in")


class UpdateReceiptSerializer(serializers.Serializer):
    update_id = serializers.UUIDField()
    status = serializers.CharField()
    estimated_aggregation_time = serializers.DateTimeField()
