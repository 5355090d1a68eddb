"""seed 002's REST endpoints: register, current round, model download, update upload; and the
revocation of a device's token by its owner.

The device endpoints take only a device's registration token (``Authorization: Bearer <jwt>``), are
limited per device (seed 002 section 5) and answer errors in the error envelope. The model download
answers the binary body itself (no envelope); the update upload reads the raw body in chunks from
the request stream, never through a DRF parser, so that its size limit holds without reading it all
(under ASGI, ``nodes.protocol.asgi`` receives it ahead of Django, spooled and hashed as it arrives).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.api.envelope import respond
from core.api.permissions import RequiresPermission
from core.api.throttles import GeneralRateThrottle
from core.exceptions import AuthenticationFailed, ValidationFailed
from nodes import selectors as node_selectors
from nodes.api.serializers import validated_input
from nodes.protocol import downloads, services
from nodes.protocol import serializers as s
from nodes.protocol.asgi import SCOPE_KEY
from nodes.protocol.auth import (DeviceTokenAuthentication, DeviceUploadAuthentication, check_acting_for,
                                 device_identity)
from nodes.protocol.throttles import DeviceModelsThrottle, DeviceRoundsThrottle, DeviceUpdatesThrottle

REGISTER = ("client:register", "client:write", "client:create")
REVOKE = ("client:write", "client:update", "write:projects")
_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(_ERROR, description=description)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class DeviceScope(BasePermission):
    """The caller is a device whose token carries the view's ``device_scope``."""

    message = "This endpoint is for devices with a registration token"

    def has_permission(self, request, view):
        identity = device_identity(request)
        return identity is not None and view.device_scope in identity.scopes


class DeviceScopeOrUser(DeviceScope):
    """A device with the view's scope, or a signed-in person (who then sees what they may see)."""

    def has_permission(self, request, view):
        if device_identity(request) is not None:
            return super().has_permission(request, view)
        return bool(request.user and request.user.is_authenticated)


class _DeviceView(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [DeviceScope]
    device_scope = "training:participate"

    def permission_denied(self, request, message=None, code=None):
        if device_identity(request) is None:  # no bearer, or a user's token or API key
            raise AuthenticationFailed("This endpoint takes a device's registration token "
                                       "(POST /api/v1/clients/register)",
                                       headers={"WWW-Authenticate": 'Bearer realm="api"'})
        super().permission_denied(request, message=message, code=code)

    def perform_content_negotiation(self, request, force=False):
        # Devices ask for binary bodies (Accept: application/octet-stream); errors still leave as JSON.
        return super().perform_content_negotiation(request, force=True)


class ClientRegisterView(APIView):
    """``POST /api/v1/clients/register`` (seed 002): an API key (Bearer or X-API-Key) or a user with
    ``client:register``."""

    permission_classes = [RequiresPermission]
    required_permissions = {"post": REGISTER}

    @extend_schema(operation_id="clients_register", request=s.ClientRegisterInputSerializer,
                   responses={201: s.ClientRegisterSerializer, 400: _error("Bad input (VALIDATION_ERROR)"),
                              401: _error("No or bad API key"), 403: _error("Without client:register")},
                   description="Register a device (or register it again: a new token, the old one revoked). "
                               "The token authenticates the device on /rounds, /models and /rounds/{id}/updates.")
    def post(self, request):
        data = validated_input(s.ClientRegisterInputSerializer, request.data)
        registration = services.device_register(
            user=request.user, device_id=data["device_id"], platform=data["platform"],
            capabilities=dict(data.get("capabilities") or {}), public_key=data.get("public_key"),
            project_id=data.get("project_id"))
        return respond({"client_id": str(registration.node.pk), "registration_token": registration.token,
                        "expires_at": _iso(registration.expires_at)},
                       message="Client registered", status_code=status.HTTP_201_CREATED)


class ClientTokenRevokeView(APIView):
    """``POST /api/v1/fl/clients/{id}/revoke-token``: its registrant, a writer of its project or an
    administrator revokes a device's token."""

    permission_classes = [RequiresPermission]
    required_permissions = {"post": REVOKE}

    @extend_schema(operation_id="fl_clients_revoke_token", request=None,
                   parameters=[OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
                   responses={200: s.TokenRevokedSerializer, 403: _error("Not allowed to change this client"),
                              404: _error("No such client, or not a device")})
    def post(self, request, pk):
        check_acting_for(request, pk)
        node = node_selectors.node_get(user=request.user, node_id=pk, for_write=True)
        credential = services.device_token_revoke(node=node)
        return respond({"client_id": str(node.pk), "revoked_at": _iso(credential.revoked_at)},
                       message="Device token revoked")


class CurrentRoundView(_DeviceView):
    throttle_classes = [GeneralRateThrottle, DeviceRoundsThrottle]

    @extend_schema(operation_id="rounds_current", responses={200: s.TrainingRoundSerializer,
                                                             401: _error("No, bad, expired or revoked token")},
                   description="The round this device should work on (seed 002 Get Training Round).")
    def get(self, request):
        data = services.device_current_round(node=request.auth.node)
        if data.get("global_model_url", "") and data["global_model_url"].startswith("/"):
            data["global_model_url"] = request.build_absolute_uri(data["global_model_url"])
        return respond(data, message=f"Round {data['status']}")


class ModelDownloadView(_DeviceView):
    """Devices download the versions they serve; people the versions of executions they can see
    (another execution's version is 404 to them, as for any object)."""

    authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    permission_classes = [DeviceScopeOrUser]
    device_scope = "model:download"
    throttle_classes = [GeneralRateThrottle, DeviceModelsThrottle]

    @extend_schema(operation_id="models_download", parameters=[
        OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH,
                         description="A model version string from the round info (never a UUID)"),
        OpenApiParameter("Accept-Encoding", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
        OpenApiParameter("Range", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
        OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY,
                   (206, "application/octet-stream"): OpenApiTypes.BINARY, 304: None,
                   404: _error("No such version for this device"), 416: _error("Range outside the model")},
        description="The model in pollen-tensors/1 (see the README). Headers: X-Model-Checksum (sha256 of "
                    "the uncompressed body), X-Model-Version, ETag; gzip/br by Accept-Encoding.")
    def get(self, request, version):
        identity = device_identity(request)
        blob = (services.device_model(node=identity.node, version=version) if identity is not None
                else services.device_model(user=request.user, version=version))
        return downloads.model_response(request._request, path=blob.path, checksum=blob.checksum,
                                        version=blob.version, size=blob.size)


class UpdateSubmitView(_DeviceView):
    authentication_classes = [DeviceUploadAuthentication]
    throttle_classes = [GeneralRateThrottle, DeviceUpdatesThrottle]
    parser_classes: list = []

    @extend_schema(operation_id="rounds_updates_submit", request={"application/octet-stream": OpenApiTypes.BINARY},
                   parameters=[
                       OpenApiParameter("round_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
                       OpenApiParameter("X-Update-Checksum", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                        description="sha256 hex of the body"),
                       OpenApiParameter("X-Client-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                        description="base64 ed25519 signature of the body"),
                       OpenApiParameter("X-Client-Id", OpenApiTypes.UUID, OpenApiParameter.HEADER, required=False,
                                        description="If sent, must be this device's client_id (403 otherwise)")],
                   responses={202: s.UpdateReceiptSerializer, 400: _error("Wrong checksum (VALIDATION_ERROR)"),
                              401: _error("Missing or bad signature or token"),
                              403: _error("Acting for another node"), 404: _error("Unknown round"),
                              409: _error("Round not open, past its deadline, or another update already sent"),
                              413: _error("Body over DEVICE_UPDATE_MAX_BYTES"),
                              422: _error("Tensors do not fit the round's model (INVALID_MODEL_FORMAT)")})
    def post(self, request, round_id):
        node = request.auth.node
        check_acting_for(request, request.headers.get("X-Client-Id"))
        raw_length = request.META.get("CONTENT_LENGTH")
        try:
            content_length = int(raw_length) if raw_length not in (None, "") else None
        except ValueError:
            raise ValidationFailed("Content-Length must be a number", field="Content-Length")
        # Under ASGI the front (nodes.protocol.asgi) has received, spooled and hashed the body;
        # under WSGI the service reads the request stream.
        body = getattr(request._request, "scope", {}).get(SCOPE_KEY) or request._request
        update, created = services.device_update_submit(
            node=node, round_id=round_id, body=body, content_length=content_length,
            checksum=request.headers.get("X-Update-Checksum", ""),
            signature=request.headers.get("X-Client-Signature", ""), public_key=request.auth.public_key)
        eta = services.estimated_aggregation_time(update.round)
        return respond({"update_id": str(update.pk), "status": "accepted", "estimated_aggregation_time": _iso(eta)},
                       message="Update accepted" if created else "Update already received",
                       status_code=status.HTTP_202_ACCEPTED)
