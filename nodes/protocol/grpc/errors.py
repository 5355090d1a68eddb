"""Pollen's errors as gRPC statuses: the REST error envelope, carried in the status and trailers.

Every exception goes through the API's one exception handler (``core.api.exceptions``), so a
gRPC client gets the code, message and details a REST client would get for the same mistake; only
the transport differs. The gRPC status code follows the HTTP status; the seed code, the HTTP status
and the details travel as trailing metadata. Nothing of an unexpected exception but "Unexpected
server error" reaches the client (the traceback is logged with the request id).
"""

import json
from dataclasses import dataclass
from types import SimpleNamespace

import grpc

from core.api.exceptions import exception_handler
from core.context import current_request_id

# HTTP status -> gRPC status (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    406: grpc.StatusCode.INVALID_ARGUMENT,
    # A round that is closed or past its deadline: retrying the same call cannot succeed until the
    # state changes (a new round), which is FAILED_PRECONDITION rather than ABORTED.
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

ERROR_CODE_KEY = "x-error-code"
ERROR_STATUS_KEY = "x-error-status"
ERROR_DETAILS_KEY = "x-error-details"
REQUEST_ID_KEY = "x-request-id"


def grpc_code_for(http_status: int) -> grpc.StatusCode:
    if http_status in HTTP_TO_GRPC:
        return HTTP_TO_GRPC[http_status]
    return grpc.StatusCode.INTERNAL if http_status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


@dataclass(frozen=True)
class RpcFailure:
    """What a client is told about an error: everything of the REST error envelope."""

    code: grpc.StatusCode
    http_status: int
    error_code: str  # the seed code, e.g. INVALID_MODEL_FORMAT
    message: str
    details: object
    headers: dict

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [
            (ERROR_CODE_KEY, self.error_code),
            (ERROR_STATUS_KEY, str(self.http_status)),
            (ERROR_DETAILS_KEY, json.dumps(self.details, default=str, separators=(",", ":"))),
        ]
        if "Retry-After" in self.headers:
            pairs.append(("retry-after", str(self.headers["Retry-After"])))
        request_id = current_request_id()
        if request_id:
            pairs.append((REQUEST_ID_KEY, request_id))
        return tuple(pairs)


def failure_for(exc: BaseException, *, method: str = "?") -> RpcFailure:
    """The failure a client sees for ``exc``, built by the API's exception handler.

    An unexpected exception is logged there (with ``method`` standing for the request path) and
    becomes 500 INTERNAL_ERROR "Unexpected server error".
    """
    request = SimpleNamespace(method="gRPC", path=method)
    response = exception_handler(exc, {"request": request}) if isinstance(exc, Exception) else None
    if response is None:  # not an exception the handler knows: never expected, never shown
        response = exception_handler(RuntimeError(repr(exc)), {"request": request})
    error = response.data["error"]
    return RpcFailure(
        code=grpc_code_for(response.status_code),
        http_status=response.status_code,
        error_code=error["code"],
        message=error["message"],
        details=error.get("details") or {},
        headers=dict(response.headers),
    )


def abort(context: grpc.ServicerContext, failure: RpcFailure, extra_metadata=()):
    """End the call with ``failure`` (raises, as ``context.abort`` does)."""
    context.set_trailing_metadata((*failure.trailing_metadata(), *extra_metadata))
    context.abort(failure.code, failure.message)
