"""The round reports of a deployed execution's ServerApp (``training.engine.callback``).

Not for people: the caller is Pollen's ServerApp shim on a Flower SuperLink, authenticated by an
HMAC signature over the body with the callback secret, never by a user's credentials.
"""

import json

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from core.api.envelope import respond
from core.exceptions import ApplicationError, AuthenticationFailed, ValidationFailed
from training.choices import Transport
from training.deployed import apply_callback, callback_secret
from training.engine.callback import SIGNATURE_HEADER, verify
from training.models import Execution


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
        body = request.body
        if not verify(callback_secret(), str(pk), body, request.headers.get(SIGNATURE_HEADER, "")):
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
