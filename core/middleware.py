import re
import uuid

from django.core.cache import cache

from core.context import request_id_var

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Gives every request an id: the caller's ``X-Request-ID`` when it is sane, else a new uuid4.

    The id is echoed in the ``X-Request-ID`` response header, put in every envelope and every
    log line written while the request is served.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class RateLimitHeadersMiddleware:
    """Puts ``X-RateLimit-*`` on every response.

    API views record the state of the throttle that judged them; any other response (pages,
    /health) reports the caller's general bucket without spending from it. Sync-only: see its place
    in ``MIDDLEWARE``.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from core.api.throttles import general_bucket_key

        response = self.get_response(request)
        state = getattr(request, "_ratelimit_state", None)
        if state is None:
            key, limit, reset = general_bucket_key(request)
            state = (limit, limit - (cache.get(key) or 0), reset) if key else None
        if state is not None:
            limit, remaining, reset = state
            response["X-RateLimit-Limit"] = str(limit)
            response["X-RateLimit-Remaining"] = str(max(remaining, 0))
            response["X-RateLimit-Reset"] = str(int(reset))
        return response
