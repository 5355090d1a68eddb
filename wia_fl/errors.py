"""What the SDK raises: one exception type carrying the server's error envelope.

The server answers every error with ``{"success": false, "error": {"code", "message", "details"},
"request_id", "timestamp"}``; ``FederatedLearningError`` keeps each of those fields, so a caller can
branch on ``code`` (``INVALID_MODEL_FORMAT``, ``RESOURCE_CONFLICT``...) and read ``details``
(for a format error: ``{"field", "expected", "received"}``).
"""

from __future__ import annotations

from typing import Any


class FederatedLearningError(Exception):
    """An error answered by the server (or found by the SDK before asking it).

    ``status`` is the HTTP status (``None`` for errors found locally), ``code`` the envelope's
    code, ``details`` its details and ``request_id`` the id to quote to the server's operators.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "CLIENT_ERROR",
                 details: Any = None, request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [f"{self.code}: {self.message}"]
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.details:
            parts.append(f"details={self.details}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)

    @classmethod
    def from_response(cls, status: int, payload: Any, fallback: str = "") -> FederatedLearningError:
        """Build the error from a decoded error envelope (or whatever the body was)."""
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            kind = _BY_STATUS.get(status, cls)
            if status == 422 and error.get("code") != "INVALID_MODEL_FORMAT":
                kind = cls
            return kind(str(error.get("message") or fallback or f"HTTP {status}"), status=status,
                        code=str(error.get("code") or f"HTTP_{status}"), details=error.get("details"),
                        request_id=payload.get("request_id") or error.get("request_id"))
        kind = _BY_STATUS.get(status, cls) if status != 422 else cls
        return kind(fallback or f"The server answered HTTP {status}", status=status, code=f"HTTP_{status}")


class AuthenticationError(FederatedLearningError):
    """401: a missing, wrong, expired or revoked credential, or a bad update signature."""


class PermissionDeniedError(FederatedLearningError):
    """403: the credential is valid but may not do this (an API key without ``client:register``)."""


class NotFoundError(FederatedLearningError):
    """404: an unknown round or model version."""


class ConflictError(FederatedLearningError):
    """409: the round is not open any more (aggregating, completed or past its deadline)."""


class InvalidModelFormatError(FederatedLearningError):
    """422 ``INVALID_MODEL_FORMAT``: wrong tensor names, shapes or dtype (see ``details``)."""


class RateLimitError(FederatedLearningError):
    """429 after the SDK's own retries ran out."""


class ChecksumMismatchError(FederatedLearningError):
    """A downloaded model whose bytes do not hash to the server's ``X-Model-Checksum``."""


class NotRegisteredError(FederatedLearningError):
    """A call that needs a device token before ``register()`` was called."""


_BY_STATUS: dict[int, type[FederatedLearningError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidModelFormatError,
    429: RateLimitError,
}
