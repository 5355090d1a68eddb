"""Rate limits per category (seed 000): auth, general, upload, training.

DRF's ``SimpleRateThrottle`` keeps the history in the default cache (Redis in production). Each
throttle records ``(limit, remaining, reset)`` on the request so that the middleware can send
``X-RateLimit-*`` headers on every response.
"""

import time

from django.core.cache import cache as default_cache
from rest_framework.throttling import SimpleRateThrottle


class CategoryRateThrottle(SimpleRateThrottle):
    scope = "general"
    cache = default_cache

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ident(request)}

    def allow_request(self, request, view):
        allowed = super().allow_request(request, view)
        if self.rate is None or self.key is None:
            return allowed
        reset = (self.history[-1] + self.duration) if self.history else (self.now + self.duration)
        remaining = self.num_requests - len(self.history)
        self._record(request, (self.num_requests, remaining, reset))
        return allowed

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


def client_ident(request) -> str:
    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    api_key_id = getattr(auth, "api_key_id", None)
    if api_key_id:
        return f"key:{api_key_id}"
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{GeneralRateThrottle().get_ident(request)}"


def peek_general_state(request):
    """The caller's general bucket as ``(limit, remaining, reset)``, without spending from it."""
    throttle = GeneralRateThrottle()
    if throttle.rate is None:
        return None
    key = throttle.cache_format % {"scope": "general", "ident": client_ident(request)}
    now = time.time()
    history = [t for t in (throttle.cache.get(key) or []) if t > now - throttle.duration]
    reset = (history[-1] + throttle.duration) if history else now + throttle.duration
    return throttle.num_requests, throttle.num_requests - len(history), reset
