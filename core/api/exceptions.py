"""One exception handler: every error a client can see leaves as the error envelope."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from core.api.envelope import error_envelope
from core.exceptions import ERROR_CATALOGUE, ApplicationError

logger = logging.getLogger("pollen.api")

_DRF_CODES = {
    drf.NotAuthenticated: "AUTHENTICATION_FAILED",
    drf.AuthenticationFailed: "AUTHENTICATION_FAILED",
    drf.PermissionDenied: "AUTHORIZATION_FAILED",
    drf.NotFound: "RESOURCE_NOT_FOUND",
    drf.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf.NotAcceptable: "NOT_ACCEPTABLE",
    drf.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf.Throttled: "RATE_LIMIT_EXCEEDED",
    drf.ParseError: "VALIDATION_ERROR",
    drf.ValidationError: "VALIDATION_ERROR",
}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            msg = _first_message(value)
            return msg if key == "non_field_errors" else f"{key}: {msg}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _build(code: str, message: str, details, status: int, headers=None) -> Response:
    response = Response(error_envelope(code, message, details), status=status, headers=headers)
    return response


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return _build(exc.code, exc.message, exc.details, exc.http_status, exc.headers)

    if isinstance(exc, (InvalidToken, TokenError)):
        return _build("AUTHENTICATION_FAILED", "Token is invalid, expired or revoked", {}, 401,
                      {"WWW-Authenticate": 'Bearer realm="api"'})

    if isinstance(exc, RequestDataTooBig):
        return _build("PAYLOAD_TOO_LARGE", "The request body is larger than this endpoint accepts", {}, 413)
    if isinstance(exc, SuspiciousOperation):
        return _build("VALIDATION_ERROR", "The request was refused as malformed", {}, 400)

    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, (ProtectedError, RestrictedError)):
        return _build("RESOURCE_CONFLICT", "The resource is still referenced by other records", {}, 409)
    elif isinstance(exc, IntegrityError):
        return _build("RESOURCE_CONFLICT", "The change conflicts with an existing record", {}, 409)

    if isinstance(exc, drf.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        if code is None:
            code = "INTERNAL_ERROR" if exc.status_code >= 500 else "VALIDATION_ERROR"
        headers = {}
        details = {}
        if isinstance(exc, drf.ValidationError):
            details = exc.detail
            message = _first_message(exc.detail)
        elif isinstance(exc, drf.Throttled):
            wait = int(exc.wait or 0) + (1 if exc.wait and exc.wait % 1 else 0)
            message = f"Rate limit exceeded; retry in {wait} seconds"
            details = {"retry_after": wait}
            headers["Retry-After"] = str(wait)
        elif isinstance(exc, drf.ParseError):
            message = f"Malformed request body: {exc.detail}"
        else:
            message = str(exc.detail) if code not in ERROR_CATALOGUE or exc.detail else ERROR_CATALOGUE[code][1]
        if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return _build(code, message, details, exc.status_code, headers)

    request = context.get("request")
    logger.exception(
        "Unhandled error serving %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
    )
    return _build("INTERNAL_ERROR", "Unexpected server error", {}, 500)
