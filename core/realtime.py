"""Live events: stored first, sent to the channel layer after the transaction commits.

``broadcast_on_commit`` is the only way any part of Pollen emits an event. Groups name who may
see it (``user.<id>`` for each user with access, ``staff`` for platform operators); consumers join
only groups their user belongs to, so delivery never needs a per-message access check.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from core.api.envelope import now_iso
from core.models import Event

logger = logging.getLogger("pollen.realtime")

STAFF_GROUP = "staff"


def user_group(user_id) -> str:
    return f"user.{user_id}"


def _jsonable(data: dict) -> dict:
    import json

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def broadcast_on_commit(event: str, data: dict[str, Any], groups: list[str]) -> Event:
    """Store ``event`` and send it to ``groups`` once the surrounding transaction commits.

    Safe to call inside or outside a transaction. If the channel layer is down the event is still
    stored (the database is the source of truth) and the failure is logged.
    """
    return broadcast_many_on_commit([(event, data)], groups)[0]


def broadcast_many_on_commit(events: list[tuple[str, dict[str, Any]]], groups: list[str]) -> list[Event]:
    """``broadcast_on_commit`` for several events to the same groups, in order: one insert and one
    trip to the channel layer for all of them (a training round emits a handful at once)."""
    if not events:
        return []
    all_groups = sorted(set(groups) | {STAFF_GROUP})
    stored = [Event(event=event, data=_jsonable(data), groups=all_groups) for event, data in events]
    if len(stored) == 1:
        stored[0].save(force_insert=True)
    else:
        Event.objects.bulk_create(stored)
    messages = [{
        "type": "pollen.event",
        "id": str(row.id),
        "event": row.event,
        "timestamp": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else now_iso(),
        "data": row.data,
    } for row in stored]
    transaction.on_commit(lambda: _send(all_groups, messages))
    return stored


def _send(groups: list[str], messages: list[dict]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all():
        for message in messages:
            for group in groups:
                try:
                    await layer.group_send(group, message)
                except Exception:  # a broken layer loses live messages, never data
                    logger.warning("Could not deliver %s to %s", message["event"], group, exc_info=True)

    # One trip to the event loop for all groups and events, not one per message.
    async_to_sync(send_all)()
