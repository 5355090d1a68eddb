from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiKey, Role, User


class RegisterInputSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{3,150}$", max_length=150,
                                      error_messages={"invalid": "3-150 letters, digits and @/./+/-/_ only."})
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class LoginInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, required=False)
    email = serializers.CharField(max_length=254, required=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False)

    def validate(self, attrs):
        identifier = attrs.get("username") or attrs.get("email")
        if not identifier:
            raise serializers.ValidationError({"username": "Give a username or an email."})
        attrs["identifier"] = identifier
        return attrs


class RefreshInputSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(required=False, max_length=4096)
    refresh = serializers.CharField(required=False, max_length=4096, help_text="Alias of refresh_token.")

    def validate(self, attrs):
        token = attrs.get("refresh_token") or attrs.get("refresh")
        if not token:
            raise serializers.ValidationError({"refresh_token": "This field is required."})
        return {"refresh_token": token}


class LogoutInputSerializer(RefreshInputSerializer):
    def validate(self, attrs):
        return {"refresh_token": attrs.get("refresh_token") or attrs.get("refresh")}


class PasswordChangeInputSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class UserSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    email = serializers.EmailField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    refresh_expires_in = serializers.IntegerField()
    user = UserSummarySerializer()


class UserSerializer(serializers.ModelSerializer):
    roles = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    permissions = serializers.ListField(source="permission_strings", child=serializers.CharField(), read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "roles", "permissions",
                  "is_active", "date_joined", "last_login", "locked_until"]
        read_only_fields = ["id", "username", "email", "is_active", "date_joined", "last_login", "locked_until"]


class MeUpdateInputSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class UserRolesInputSerializer(serializers.Serializer):
    roles = serializers.ListField(child=serializers.SlugField(max_length=64), allow_empty=True, max_length=50)


class RoleSerializer(serializers.ModelSerializer):
    # Declared so that no UniqueValidator answers 400: a taken name is role_create's 409 conflict.
    name = serializers.SlugField(max_length=64)
    permissions = serializers.ListField(child=serializers.CharField(max_length=100), max_length=200)

    class Meta:
        model = Role
        fields = ["id", "name", "description", "permissions", "is_builtin", "created_at", "updated_at"]
        read_only_fields = ["id", "is_builtin", "created_at", "updated_at"]


class RoleUpdateInputSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    permissions = serializers.ListField(child=serializers.CharField(max_length=100), max_length=200, required=False)


class ApiKeySerializer(serializers.ModelSerializer):
    key_prefix = serializers.SerializerMethodField()
    status = serializers.CharField(read_only=True)
    rotated_from = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "key_prefix", "scopes", "status", "expires_at", "revoked_at", "last_used_at",
                  "created_at", "rotated_from"]

    def get_key_prefix(self, obj) -> str:
        return f"pk_{obj.prefix}_"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The secret. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["key"]


class ApiKeyCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.CharField(max_length=100), allow_empty=False, max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650)

    def validate(self, attrs):
        if attrs.get("expires_at") and attrs.get("expires_in_days"):
            raise serializers.ValidationError({"expires_at": "Give expires_at or expires_in_days, not both."})
        if attrs.get("expires_in_days"):
            attrs["expires_at"] = timezone.now() + timezone.timedelta(days=attrs.pop("expires_in_days"))
        return attrs
