"""Rate limits per category (seed 000): auth, general, upload, training.

Counted in fixed windows in the default cache (Redis in production): one atomic ``incr`` per
request. DRF's ``SimpleRateThrottle`` keeps a list of every request's timestamp and rewrites the
whole list on each request, which grows with the limit and races between processes; we keep its
rate parsing, settings and client identification. Each throttle records ``(limit, remaining,
reset)`` on the request so that the middleware can send ``X-RateLimit-*`` headers on every response;
``reset`` is the epoch second at which the current window ends.
"""


from django.core.cache import cache as default_cache
from django.utils.functional import SimpleLazyObject, empty
from rest_framework.throttling import SimpleRateThrottle


class CategoryRateThrottle(SimpleRateThrottle):
    scope = "general"
    cache = default_cache

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ident(request)}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.reset_at = (window + 1) * self.duration
        count = _increment(self.cache, f"{self.key}:{window}", self.duration + 1)
        self._record(request, (self.num_requests, self.num_requests - count, self.reset_at))
        return count <= self.num_requests

    def wait(self):
        return max(0.0, self.reset_at - self.now)

    def _record(self, request, state):
        # The tightest throttle that judged the request is the one the caller needs to know about.
        django_request = getattr(request, "_request", request)
        current = getattr(django_request, "_ratelimit_state", None)
        if current is None or state[1] < current[1]:
            django_request._ratelimit_state = state


class GeneralRateThrottle(CategoryRateThrottle):
    scope = "general"


class AuthRateThrottle(CategoryRateThrottle):
    """Authentication endpoints: counted per client address, whoever the caller claims to be."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": f"ip:{self.get_ident(request)}"}


class UploadRateThrottle(CategoryRateThrottle):
    scope = "upload"


class TrainingRateThrottle(CategoryRateThrottle):
    scope = "training"


def client_ident(request, *, resolve_user: bool = True) -> str:
    """Who the caller is for rate limiting: its API key, its user, or its address.

    ``resolve_user=False`` uses the user only if authentication already ran, so that code on the
    event loop never triggers a database read.
    """
    auth = getattr(request, "auth", None)
    api_key_id = getattr(auth, "api_key_id", None)
    if api_key_id:
        return f"key:{api_key_id}"
    user = getattr(request, "user", None)
    if not resolve_user and isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{GeneralRateThrottle().get_ident(request)}"


def _increment(cache, key: str, timeout: int) -> int:
    cache.add(key, 0, timeout)  # atomic: only the first request of a window creates the counter
    try:
        return cache.incr(key)
    except ValueError:  # the counter expired between add and incr
        cache.set(key, 1, timeout)
        return 1


def general_bucket_key(request):
    """``(cache key, limit, reset)`` of the caller's current general window, or ``(None, 0, 0)``."""
    throttle = GeneralRateThrottle()
    if throttle.rate is None:
        return None, 0, 0
    window = int(throttle.timer() // throttle.duration)  # the throttles' own clock
    ident = client_ident(request, resolve_user=False)
    key = throttle.cache_format % {"scope": "general", "ident": ident}
    return f"{key}:{window}", throttle.num_requests, (window + 1) * throttle.duration

