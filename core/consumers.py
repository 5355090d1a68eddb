"""The one live-event socket, ``/api/v1/ws/``.

Subscribe with seed 001's ``{"action": "subscribe", "events": [...], "filters": {...}}`` or seed
002's ``{"type": "subscribe", "topics": [...]}``. Events are delivered as
``{"event", "timestamp", "data"}`` when their name matches a subscribed pattern (``project.*``
works) and their data matches every filter.
"""

import asyncio
import re

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.api.envelope import now_iso
from core.realtime import STAFF_GROUP, user_group

# Seed 002's topic names, mapped to the event patterns they stand for.
TOPIC_PATTERNS = {
    "round_updates": ["round.*"],
    "model_updates": ["model.*"],
    "training_updates": ["execution.*", "round.*", "model.*", "metrics.updated"],
    "client_updates": ["client.*"],
    "node_status": ["node.*"],
    "deployment_status": ["deployment.*"],
    "project_updates": ["project.*"],
    "budget_updates": ["budget.*"],
    "system_alert": ["alert.*"],
}
_EVENT_NAME = re.compile(r"^(\*|[a-z_]+(\.([a-z_]+|\*))*)$")
MAX_PATTERNS = 100


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_matches(patterns: set[str], event: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event:
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def data_matches(filters: dict, data: dict) -> bool:
    for key, wanted in filters.items():
        value = data.get(key, data.get(_snake(key)))
        if value is None or str(value) != str(wanted):
            return False
    return True


class EventConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.patterns: set[str] = set()
        self.filters: dict = {}
        self.groups_joined = [user_group(user.pk)]
        if await database_sync_to_async(user.has_wildcard_permission)():
            self.groups_joined.append(STAFF_GROUP)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.seen: list[str] = []
        self.poller = None
        await self.accept()
        if settings.EVENT_POLL_SECONDS > 0:
            self.poller = asyncio.ensure_future(self._poll_stored_events(timezone.now()))
        await self.send_json({"event": "connection.established", "timestamp": now_iso(),
                              "data": {"user_id": str(user.pk)}})

    async def disconnect(self, code):
        if getattr(self, "poller", None) is not None:
            self.poller.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return await self._error("Messages must be JSON objects")
        verb = content.get("action") or content.get("type")
        if verb == "subscribe":
            return await self._subscribe(content)
        if verb == "unsubscribe":
            names = self._patterns_from(content)
            if names is None:
                return
            self.patterns -= set(names) if names else set(self.patterns)
            return await self.send_json({"event": "unsubscribed", "timestamp": now_iso(),
                                         "data": {"events": sorted(self.patterns)}})
        if verb == "ping":
            return await self.send_json({"event": "pong", "timestamp": now_iso(), "data": {}})
        return await self._error(f"Unknown action {verb!r}; use subscribe, unsubscribe or ping")

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    def _patterns_from(self, content) -> list[str] | None:
        names = content.get("events")
        if names is None:
            topics = content.get("topics") or []
            if not isinstance(topics, list):
                return None
            names = []
            for topic in topics:
                if isinstance(topic, str):
                    names.extend(TOPIC_PATTERNS.get(topic, [topic]))
        if not isinstance(names, list) or not all(isinstance(n, str) and _EVENT_NAME.match(n) for n in names):
            return None
        return names

    async def _subscribe(self, content):
        names = self._patterns_from(content)
        filters = content.get("filters") or {}
        if names is None or not isinstance(filters, dict) or len(names) > MAX_PATTERNS:
            return await self._error("subscribe needs 'events' (or 'topics'): a list of event names")
        if not all(isinstance(v, (str, int)) for v in filters.values()):
            return await self._error("filter values must be strings or numbers")
        since = content.get("since")
        since_at = parse_datetime(since) if isinstance(since, str) else None
        if since is not None and (since_at is None or since_at.tzinfo is None):
            return await self._error("since must be an ISO-8601 timestamp with a time zone")
        self.patterns |= set(names or ["*"])
        self.filters = filters
        await self.send_json({"event": "subscribed", "timestamp": now_iso(),
                              "data": {"events": sorted(self.patterns), "filters": self.filters}})
        if since_at is not None:
            # Replay what was stored since then: a page that rendered a moment before it
            # subscribed misses nothing in between.
            groups = set(self.groups_joined)
            for row in await database_sync_to_async(_events_since)(since_at):
                if groups.intersection(row.groups):
                    await self.pollen_event(_stored_message(row))

    async def _error(self, message: str):
        await self.send_json({"event": "error", "timestamp": now_iso(),
                              "data": {"code": "VALIDATION_ERROR", "message": message}})

    async def _poll_stored_events(self, since):
        """Deliver events stored by other processes (a Celery worker) when the channel layer is
        in-process memory and cannot carry them: the database is the source of truth."""
        groups = set(self.groups_joined)
        while True:
            await asyncio.sleep(settings.EVENT_POLL_SECONDS)
            rows = await database_sync_to_async(_events_since)(since)
            for row in rows:
                since = max(since, row.created_at)
                if groups.intersection(row.groups):
                    await self.pollen_event(_stored_message(row))

    async def pollen_event(self, message):
        # A staff user is in both its own group and the staff group: deliver each event once.
        if message["id"] in self.seen:
            return
        self.seen = (self.seen + [message["id"]])[-200:]
        if not event_matches(self.patterns, message["event"]):
            return
        if not data_matches(self.filters, message["data"]):
            return
        await self.send_json({"event": message["event"], "timestamp": message["timestamp"], "data": message["data"]})


def _events_since(since):
    from core.models import Event

    return list(Event.objects.filter(created_at__gte=since).order_by("created_at")[:500])


def _stored_message(row) -> dict:
    return {"id": str(row.id), "event": row.event, "data": row.data,
            "timestamp": row.created_at.isoformat().replace("+00:00", "Z")}
