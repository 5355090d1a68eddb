"""The round reports of a deployed execution's ServerApp (``training.engine.callback``).

Not for people: the caller is Pollen's ServerApp shim on a Flower SuperLink, authenticated by an
HMAC signature over the body with the callback secret, never by a user's credentials.
"""

import json

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from core.api.envelope import respond
from core.exceptions import ApplicationError, AuthenticationFailed, ValidationFailed
from training.choices import Transport
from training.deployed import apply_callback, callback_secret
from training.engine.callback import SIGNATURE_HEADER, fresh, verify
from training.models import Execution


def _read_body(request) -> bytes:
    """The body, up to FLOWER_CALLBACK_MAX_BYTES (a round report carries the model, which can be far
    larger than Django's form-data limit); over it, 413 without reading the rest."""
    limit = settings.FLOWER_CALLBACK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ApplicationError("PAYLOAD_TOO_LARGE", f"A round report may be at most {limit} bytes", http_status=413)
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise ApplicationError("PAYLOAD_TOO_LARGE", f"A round report may be at most {limit} bytes", http_status=413)
    return body


class ExecutionCallbackView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="fl_executions_callback",
        description="Round reports of a deployed execution's ServerApp, signed with the callback secret "
                    f"(`{SIGNATURE_HEADER}: t=<unix time>,v1=<hex HMAC-SHA256 of 't.executionId.' + body>`).",
        request=inline_serializer("ExecutionCallback", {
            "type": serializers.ChoiceField(["hello", "round_started", "round_completed", "checkpoint",
                                             "interrupted", "finished", "failed"]),
            "round": serializers.IntegerField(required=False),
        }),
        responses={200: inline_serializer("ExecutionCallbackReply", {
            "action": serializers.CharField(required=False),
            "round_offset": serializers.IntegerField(required=False),
        }), 401: OpenApiResponse(description="Missing or bad signature"),
            404: OpenApiResponse(description="No deployed execution with this id (FL001)"),
            409: OpenApiResponse(description="The execution is not running")},
    )
    def post(self, request, pk):
        header = request.headers.get(SIGNATURE_HEADER, "")
        if not fresh(header):  # before reading a body that may be large
            raise AuthenticationFailed("The callback signature is missing, wrong or stale")
        body = _read_body(request)
        if not verify(callback_secret(), str(pk), body, header):
            raise AuthenticationFailed("The callback signature is missing, wrong or stale")
        execution = Execution.objects.select_related("project").filter(pk=pk, transport=Transport.DEPLOYED).first()
        if execution is None:
            raise ApplicationError("FL001", "Execution not found", http_status=404)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed("The body is not JSON", field="body", http_status=400)
        if not isinstance(payload, dict):
            raise ValidationFailed("The body must be a JSON object", field="body", http_status=400)
        try:
            reply = apply_callback(execution, payload)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"Malformed report: {exc}"[:300], field="body", http_status=422)
        return respond(reply, message="Report applied")
