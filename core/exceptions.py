"""The error catalogue: every code a client can receive, with its HTTP status.

Codes come from the seeds: seed 000's generic ones, seed 001's MF/FL codes, seed 002's
INVALID_MODEL_FORMAT and seed 004's BUDGET/SERVICE/TEST codes. A domain error raises
``ApplicationError`` (or a subclass) with one of these codes; the API's exception handler turns it
into the error envelope.
"""

from typing import Any

# code -> (HTTP status, default message)
ERROR_CATALOGUE: dict[str, tuple[int, str]] = {
    # seed 000
    "VALIDATION_ERROR": (400, "Input validation failed"),
    "AUTHENTICATION_FAILED": (401, "Invalid credentials"),
    "AUTHORIZATION_FAILED": (403, "Insufficient permissions"),
    "RESOURCE_NOT_FOUND": (404, "Requested resource not found"),
    "RESOURCE_CONFLICT": (409, "Resource already exists"),
    "RATE_LIMIT_EXCEEDED": (429, "Too many requests"),
    "TRAINING_ERROR": (500, "Federated learning operation failed"),
    "DEPLOYMENT_ERROR": (500, "Ansible deployment failed"),
    "INTERNAL_ERROR": (500, "Unexpected server error"),
    # HTTP-level errors that have no seed code of their own
    "METHOD_NOT_ALLOWED": (405, "Method not allowed"),
    "NOT_ACCEPTABLE": (406, "Cannot satisfy the request's Accept header"),
    "PAYLOAD_TOO_LARGE": (413, "Request body too large"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported media type"),
    "SERVICE_UNAVAILABLE": (503, "Service temporarily unavailable"),
    # seed 001: Module Federation
    "MF001": (404, "Application not found"),
    "MF002": (502, "Module loading failed"),
    "MF003": (409, "Dependency conflict"),
    "MF004": (422, "Invalid configuration"),
    "MF005": (500, "Deployment failed"),
    "MF006": (409, "Version mismatch"),
    "MF007": (504, "Network timeout"),
    "MF008": (422, "Circular dependency"),
    # seed 001: Federated Learning
    "FL001": (404, "Execution not found"),
    "FL002": (409, "Insufficient clients"),
    "FL003": (500, "Training failed"),
    "FL004": (500, "Aggregation error"),
    "FL005": (409, "Client disconnected"),
    "FL006": (422, "Model incompatible"),
    "FL007": (403, "Privacy violation"),
    "FL008": (422, "Convergence failed"),
    # seed 002
    "INVALID_MODEL_FORMAT": (422, "Model update format validation failed"),
    # seed 004: budgets
    "BUDGET_001": (422, "Budget exceeded"),
    "BUDGET_002": (409, "Approval required"),
    "BUDGET_003": (422, "Invalid category"),
    "BUDGET_004": (422, "Insufficient available budget"),
    "BUDGET_005": (403, "Approval limit exceeded"),
    # seed 004: services
    "SERVICE_001": (404, "Service not found"),
    "SERVICE_002": (409, "Service already exists"),
    "SERVICE_003": (409, "Invalid service state"),
    # seed 004: testing
    "TEST_001": (404, "Test suite not found"),
    "TEST_002": (409, "Test execution failed"),
    "TEST_003": (422, "Invalid test configuration"),
}


class ApplicationError(Exception):
    """A domain error with a catalogue code, an HTTP status and structured details."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: Any = None,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        if code not in ERROR_CATALOGUE:
            raise ValueError(f"Unknown error code {code!r}: add it to core.exceptions.ERROR_CATALOGUE")
        default_status, default_message = ERROR_CATALOGUE[code]
        self.code = code
        self.message = message or default_message
        self.details = details if details is not None else {}
        self.http_status = http_status or default_status
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    def __init__(self, message: str, *, field: str | None = None, details: Any = None, http_status: int = 400):
        if details is None and field:
            details = {"field": field, "reason": message}
        super().__init__("VALIDATION_ERROR", message, details=details, http_status=http_status)


class NotFound(ApplicationError):
    def __init__(self, message: str = "Requested resource not found", *, details: Any = None):
        super().__init__("RESOURCE_NOT_FOUND", message, details=details)


class Conflict(ApplicationError):
    def __init__(self, message: str = "Resource already exists", *, details: Any = None):
        super().__init__("RESOURCE_CONFLICT", message, details=details)


class Forbidden(ApplicationError):
    def __init__(self, message: str = "Insufficient permissions", *, details: Any = None):
        super().__init__("AUTHORIZATION_FAILED", message, details=details)


class AuthenticationFailed(ApplicationError):
    def __init__(self, message: str = "Invalid credentials", *, details: Any = None, headers=None):
        super().__init__("AUTHENTICATION_FAILED", message, details=details, headers=headers)
