"""The one live-event socket, ``/api/v1/ws/``.

Subscribe with seed 001's ``{"action": "subscribe", "events": [...], "filters": {...}}`` or seed
002's ``{"type": "subscribe", "topics": [...]}``. Events are delivered as
``{"event", "timestamp", "data"}`` when their name matches a subscribed pattern (``project.*``
works) and their data matches every filter.

Seed 002 subscribers also get the device protocol's own messages: a device round's
``round.started`` arrives as ``{"type": "training_invitation", ...}`` and a device model's
``model.aggregated`` as ``{"type": "model_ready", ...}``. A device (connected with its
registration token) joins only its node's group ``node.<uuid>``, where the server sends the rounds
it takes part in, and may send ``{"type": "training_progress", ...}``.
"""

import asyncio
import re
import time

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
# A device's training_progress is advisory and written to the database: at most one a second.
PROGRESS_MIN_SECONDS = 1.0


def node_group(node_id) -> str:
    """The group of one node: the device rounds it takes part in are sent there."""
    return f"node.{node_id}"


def render_seed_002(event: str, data: dict, origin: str = "") -> dict | None:
    """Seed 002's message for an event, or None when the event has no seed 002 form.

    Only the device protocol's rounds and models have one: the embedded engine's ``round.started``
    and ``model.aggregated`` carry no model URL a device could use. A model path is made absolute
    with ``origin`` (the socket's own host), as the REST answers do with the request's host.
    """
    def absolute(url):
        return f"{origin}{url}" if origin and isinstance(url, str) and url.startswith("/") else url

    if event == "round.started" and data.get("transport") == "device" and data.get("round_id"):
        return {"type": "training_invitation", "round_number": data.get("round_number", data.get("round")),
                "round_id": data["round_id"], "global_model_url": absolute(data.get("global_model_url")),
                "model_version": data.get("model_version"), "training_config": data.get("training_config") or {},
                "deadline": data.get("deadline"), "execution_id": data.get("execution_id")}
    if event == "model.aggregated" and data.get("download_url"):
        return {"type": "model_ready", "version": data.get("version"), "download_url": absolute(data["download_url"]),
                "checksum": data.get("checksum"), "round_number": data.get("round_number", data.get("round")),
                "execution_id": data.get("execution_id")}
    return None


def _http_origin(scope) -> str:
    """``http(s)://host`` of the socket's request, when it named a host this server serves."""
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin1")
    if not host:
        return ""
    from django.http.request import split_domain_port, validate_host

    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return ""
    return ("https://" if scope.get("scheme") == "wss" else "http://") + host


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
        self.device = self.scope.get("device")
        if self.device is None and (user is None or not user.is_authenticated):
            await self.close(code=4401)
            return
        self.patterns: set[str] = set()
        self.filters: dict = {}
        self.seed_002 = False
        self.last_progress = 0.0
        if self.device is not None:
            # A device sees its own node's events, never its registrant's.
            self.groups_joined = [node_group(self.device.node.pk)]
            hello = {"client_id": str(self.device.node.pk)}
        else:
            self.groups_joined = [user_group(user.pk)]
            if await database_sync_to_async(user.has_wildcard_permission)():
                self.groups_joined.append(STAFF_GROUP)
            hello = {"user_id": str(user.pk)}
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.seen: list[str] = []
        self.poller = None
        await self.accept()
        if settings.EVENT_POLL_SECONDS > 0:
            self.poller = asyncio.ensure_future(self._poll_stored_events(timezone.now()))
        await self.send_json({"event": "connection.established", "timestamp": now_iso(), "data": hello})

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
        if verb == "training_progress":
            return await self._training_progress(content)
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
        self.seed_002 = self.seed_002 or ("topics" in content and "events" not in content)
        await self.send_json({"event": "subscribed", "timestamp": now_iso(),
                              "data": {"events": sorted(self.patterns), "filters": self.filters}})
        if since_at is not None:
            # Replay what was stored since then: a page that rendered a moment before it
            # subscribed misses nothing in between.
            groups = set(self.groups_joined)
            for row in await database_sync_to_async(_events_since)(since_at):
                if groups.intersection(row.groups):
                    await self.pollen_event(_stored_message(row))

    async def _error(self, message: str, code: str = "VALIDATION_ERROR", details=None):
        data = {"code": code, "message": message}
        if details is not None:
            data["details"] = details
        await self.send_json({"event": "error", "timestamp": now_iso(), "data": data})

    async def _training_progress(self, content):
        """Seed 002's ``training_progress`` from a device: recorded by the device protocol's
        service (this consumer writes nothing itself), at most once a second per connection."""
        if self.device is None:
            return await self._error("training_progress is sent by devices (connect with a device token)",
                                     code="AUTHORIZATION_FAILED")
        round_number, percent = content.get("round_number"), content.get("progress_percent")
        estimated = content.get("estimated_completion")
        if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 1:
            return await self._error("training_progress needs round_number: an integer >= 1")
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            return await self._error("training_progress needs progress_percent: a number from 0 to 100")
        estimated_at = None
        if estimated is not None:
            estimated_at = parse_datetime(estimated) if isinstance(estimated, str) else None
            if estimated_at is None or estimated_at.tzinfo is None:
                return await self._error("estimated_completion must be an ISO-8601 timestamp with a time zone")
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_MIN_SECONDS and percent < 100:
            return None
        self.last_progress = now
        from core.exceptions import ApplicationError

        try:
            await database_sync_to_async(_record_progress)(self.scope.get("device_token"), self.device, round_number,
                                                           float(percent), estimated_at)
        except ApplicationError as exc:
            if exc.http_status == 401:
                # The token was revoked or expired since the socket opened.
                await self._error(exc.message, code=exc.code)
                return await self.close(code=4401)
            return await self._error(exc.message, code=exc.code, details=exc.details)
        return None

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
        rendered = render_seed_002(message["event"], message["data"], _http_origin(self.scope)) \
            if self.seed_002 else None
        if rendered is not None:
            await self.send_json(rendered)
            return
        await self.send_json({"event": message["event"], "timestamp": message["timestamp"], "data": message["data"]})


def _record_progress(token: str | None, device, round_number: int, percent: float, estimated_at) -> None:
    from nodes.protocol.services import device_authenticate, device_progress_report

    identity = device_authenticate(token=token) if token else device
    device_progress_report(node=identity.node, round_number=round_number, progress_percent=percent,
                           estimated_completion=estimated_at)


def _events_since(since):
    from core.models import Event

    return list(Event.objects.filter(created_at__gte=since).order_by("created_at")[:500])


def _stored_message(row) -> dict:
    return {"id": str(row.id), "event": row.event, "data": row.data,
            "timestamp": row.created_at.isoformat().replace("+00:00", "Z")}
