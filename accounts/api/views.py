from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from accounts import selectors, services
from accounts.filters import ApiKeyFilterSet, UserFilterSet
from accounts.models import ApiKey, User
from accounts.api import serializers as s
from accounts.roles import MANAGE_USERS
from core.api.envelope import respond
from core.api.permissions import RequiresPermission, request_permissions
from core.api.throttles import AuthRateThrottle, GeneralRateThrottle




class AuthViewSet(viewsets.GenericViewSet):
    """Registration, login, token refresh and logout (seed 000 Authentication Endpoints)."""

    serializer_class = s.UserSerializer
    public_actions = {"register", "login", "refresh"}

    def get_permissions(self):
        return [AllowAny()] if self.action in self.public_actions else [IsAuthenticated()]

    def get_authenticators(self):
        # Public endpoints must not fail on a stale token the caller happens to send.
        request = getattr(self, "request", None)
        if request is not None and self.action_map.get(request.method.lower()) in self.public_actions:
            return []
        return super().get_authenticators()

    def get_throttles(self):
        if self.action in self.public_actions:
            return [AuthRateThrottle(), GeneralRateThrottle()]
        return super().get_throttles()

    @extend_schema(request=s.RegisterInputSerializer, responses={201: s.UserSerializer})
    @action(detail=False, methods=["post"])
    def register(self, request):
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return respond(s.UserSerializer(user).data, message="Account created", status_code=201)

    @extend_schema(request=s.LoginInputSerializer, responses={200: s.TokenPairSerializer})
    @action(detail=False, methods=["post"])
    def login(self, request):
        data = s.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.auth_login(
            identifier=data.validated_data["identifier"],
            password=data.validated_data["password"],
            address=AuthRateThrottle().get_ident(request),
        )
        return respond(tokens, message="Logged in")

    @extend_schema(request=s.RefreshInputSerializer, responses={200: s.TokenPairSerializer})
    @action(detail=False, methods=["post"])
    def refresh(self, request):
        data = s.RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return respond(services.tokens_refresh(**data.validated_data), message="Tokens refreshed")

    @extend_schema(request=s.LogoutInputSerializer, responses={200: None})
    @action(detail=False, methods=["post"])
    def logout(self, request):
        data = s.LogoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        access = request.auth if getattr(request.auth, "token_type", None) == "access" else None
        services.auth_logout(user=request.user, refresh_token=data.validated_data["refresh_token"], access_token=access)
        return respond({"logged_out": True}, message="Logged out")

    @extend_schema(methods=["GET"], responses={200: s.UserSerializer})
    @extend_schema(methods=["PATCH"], request=s.MeUpdateInputSerializer, responses={200: s.UserSerializer})
    @action(detail=False, methods=["get", "patch"])
    def me(self, request):
        user = request.user
        if request.method == "PATCH":
            data = s.MeUpdateInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            for field, value in data.validated_data.items():
                setattr(user, field, value)
            user.save(update_fields=list(data.validated_data) or None)
        return respond(s.UserSerializer(user).data, message="Current user")

    @extend_schema(request=s.PasswordChangeInputSerializer, responses={200: None})
    @action(detail=False, methods=["post"], url_path="password/change")
    def password_change(self, request):
        data = s.PasswordChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_change_password(user=request.user, **data.validated_data)
        return respond({"password_changed": True}, message="Password changed; log in again")


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                    viewsets.GenericViewSet):
    """The caller's own API keys. The secret is returned once, by create and rotate."""

    serializer_class = s.ApiKeySerializer
    filterset_class = ApiKeyFilterSet
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        return selectors.api_key_list(user=self.request.user)

    def get_object(self):
        return selectors.api_key_get(user=self.request.user, key_id=self.kwargs["pk"])

    @extend_schema(request=s.ApiKeyCreateInputSerializer, responses={201: s.ApiKeyCreatedSerializer})
    def create(self, request):
        data = s.ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = services.api_key_create(user=request.user, granted=request_permissions(request),
                                           **data.validated_data)
        body = dict(s.ApiKeySerializer(key).data, key=raw)
        return respond(body, message="API key created; the key is shown only once", status_code=201)

    @extend_schema(responses={204: None})
    def destroy(self, request, *args, **kwargs):
        services.api_key_revoke(key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: s.ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = services.api_key_revoke(key=self.get_object())
        return respond(s.ApiKeySerializer(key).data, message="API key revoked")

    @extend_schema(request=None, responses={201: s.ApiKeyCreatedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        key, raw = services.api_key_rotate(key=self.get_object(), granted=request_permissions(request))
        body = dict(s.ApiKeySerializer(key).data, key=raw)
        return respond(body, message="API key rotated; the old key no longer works", status_code=201)


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Roles and their permission strings. Reading needs a login; changing needs admin:users:manage."""

    serializer_class = s.RoleSerializer
    lookup_field = "name"
    permission_classes = [RequiresPermission]
    required_permissions = {"create": MANAGE_USERS, "partial_update": MANAGE_USERS}
    pagination_class = None

    def get_queryset(self):
        return selectors.role_list()

    @extend_schema(request=s.RoleSerializer, responses={201: s.RoleSerializer})
    def create(self, request):
        data = s.RoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = services.role_create(**{k: data.validated_data[k] for k in ("name", "permissions")},
                                    description=data.validated_data.get("description", ""))
        return respond(s.RoleSerializer(role).data, message="Role created", status_code=201)

    @extend_schema(request=s.RoleUpdateInputSerializer, responses={200: s.RoleSerializer})
    def partial_update(self, request, name=None):
        data = s.RoleUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        role = services.role_update(role=self.get_object(), **data.validated_data)
        return respond(s.RoleSerializer(role).data, message="Role updated")


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """User administration: list users, assign roles, unlock accounts (admin:users:manage)."""

    serializer_class = s.UserSerializer
    permission_classes = [RequiresPermission]
    required_permissions = {"*": MANAGE_USERS}
    lookup_value_regex = "[0-9a-f-]{36}"
    filterset_class = UserFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return User.objects.none()
        return selectors.user_list()

    @extend_schema(request=s.UserRolesInputSerializer, responses={200: s.UserSerializer})
    @action(detail=True, methods=["put"])
    def roles(self, request, pk=None):
        data = s.UserRolesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_set_roles(actor=request.user, user=self.get_object(), role_names=data.validated_data["roles"])
        return respond(s.UserSerializer(user).data, message="Roles updated")

    @extend_schema(request=None, responses={200: s.UserSerializer})
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        user = self.get_object()
        services.user_unlock(user=user)
        user.refresh_from_db()
        return respond(s.UserSerializer(user).data, message="Account unlocked")
