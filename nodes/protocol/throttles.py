"""seed 002 section 5's per-endpoint limits, counted per device: model downloads 10/min, update
uploads 5/min, round queries 20/min (DEVICE_THROTTLE_RATES). They come on top of the general limit."""

from django.conf import settings

from core.api.throttles import CategoryRateThrottle
from nodes.protocol.auth import device_identity


class _DeviceThrottle(CategoryRateThrottle):
    def get_rate(self):
        return settings.DEVICE_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        identity = device_identity(request)
        if identity is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"device:{identity.node.pk}"}


class DeviceModelsThrottle(_DeviceThrottle):
    scope = "device_models"


class DeviceUpdatesThrottle(_DeviceThrottle):
    scope = "device_updates"


class DeviceRoundsThrottle(_DeviceThrottle):
    scope = "device_rounds"
