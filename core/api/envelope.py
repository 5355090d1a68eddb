"""The shapes of seed 000's success and error envelopes, built in one place."""

from typing import Any

from django.utils import timezone

from core.context import current_request_id

DEFAULT_MESSAGE = "Operation completed successfully"


def now_iso() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


def success_envelope(data: Any, message: str = DEFAULT_MESSAGE, **extra: Any) -> dict:
    body = {"success": True, "data": data, "message": message}
    body.update(extra)
    body["timestamp"] = now_iso()
    body["request_id"] = current_request_id()
    return body


def error_envelope(code: str, message: str, details: Any = None) -> dict:
    return {
        "success": False,
        "error": {"code": code, "message": message, "details": details if details is not None else {}},
        "timestamp": now_iso(),
        "request_id": current_request_id(),
    }


def respond(data: Any, *, message: str, status_code: int = 200):
    """A DRF Response whose envelope carries ``message`` (the renderer wraps ``data``)."""
    from rest_framework.response import Response

    response = Response(data, status=status_code)
    response.message = message
    return response
