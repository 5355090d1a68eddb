"""Rate limits of heartbeats: counted per node, and per caller with room for a fleet.

Node agents usually share one API key, and every heartbeat used to count against that key's
general limit (100 a minute): a fleet of a hundred agents beating every 30 s would be refused. A
heartbeat is counted instead against its node (``THROTTLE_NODE_HEARTBEAT``, 60 a minute: far above
any sane interval) and against its caller's heartbeat allowance (``THROTTLE_HEARTBEAT_FLEET``, 6,000
a minute: 3,000 agents at 30 s on one key), not against the general limit.
"""

import uuid

from django.conf import settings

from core.api.throttles import CategoryRateThrottle


class _HeartbeatThrottle(CategoryRateThrottle):
    def get_rate(self):
        return settings.NODE_HEARTBEAT_THROTTLE_RATES.get(self.scope)


class NodeHeartbeatThrottle(_HeartbeatThrottle):
    scope = "node_heartbeat"

    def get_cache_key(self, request, view):
        raw = str(view.kwargs.get("pk", ""))[:64]
        try:
            ident = str(uuid.UUID(raw))  # one bucket per node, however its id is spelled
        except ValueError:
            ident = raw
        return self.cache_format % {"scope": self.scope, "ident": f"node:{ident}"}


class HeartbeatFleetThrottle(_HeartbeatThrottle):
    scope = "heartbeat_fleet"
