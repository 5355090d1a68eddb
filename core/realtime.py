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
    payload = _jsonable(data)
    all_groups = sorted(set(groups) | {STAFF_GROUP})
    stored = Event.objects.create(event=event, data=payload, groups=all_groups)
    message = {
        "type": "pollen.event",
        "id": str(stored.id),
        "event": event,
        "timestamp": stored.created_at.isoformat().replace("+00:00", "Z") if stored.created_at else now_iso(),
        "data": payload,
    }
    transaction.on_commit(lambda: _send(all_groups, message))
    return stored


def _send(groups: list[str], message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all():
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:  # a broken layer loses live messages, never data
                logger.warning("Could not deliver %s to %s", message["event"], group, exc_info=True)

    # One trip to the event loop for all groups, not one per group.
    async_to_sync(send_all)()
