"""core.realtime.broadcast_on_commit: stored at once, delivered only after the commit."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from core.models import Event
from core.realtime import STAFF_GROUP, broadcast_on_commit, user_group

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_channel_layer")]


async def _receive(layer, channel, timeout):
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout)
    except asyncio.TimeoutError:
        return None


def test_event_is_stored_and_sent_only_after_commit(django_capture_on_commit_callbacks):
    group = user_group(uuid.uuid4())

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)

        def broadcast():
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                stored = broadcast_on_commit("project.created", {"project_id": uuid.UUID(int=7), "n": 1}, [group])
                assert Event.objects.filter(pk=stored.pk).exists()
            return stored, callbacks

        stored, callbacks = await sync_to_async(broadcast)()
        before_commit = await _receive(layer, channel, 0.2)
        await sync_to_async(lambda: [cb() for cb in callbacks])()
        after_commit = await _receive(layer, channel, 2)
        await layer.group_discard(group, channel)
        return stored, callbacks, before_commit, after_commit

    stored, callbacks, before_commit, after_commit = async_to_sync(scenario)()
    assert len(callbacks) == 1
    assert before_commit is None
    assert after_commit["type"] == "pollen.event"
    assert after_commit["id"] == str(stored.pk)
    assert after_commit["event"] == "project.created"
    assert after_commit["data"] == {"project_id": str(uuid.UUID(int=7)), "n": 1}
    assert after_commit["timestamp"].endswith("Z")

    row = Event.objects.get(pk=stored.pk)
    assert row.event == "project.created"
    assert row.data == {"project_id": str(uuid.UUID(int=7)), "n": 1}
    assert row.groups == sorted({group, STAFF_GROUP})


def test_nothing_is_sent_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                broadcast_on_commit("project.created", {"x": 1}, ["user.nobody"])
                raise RuntimeError("roll back")
    assert callbacks == []
    assert not Event.objects.filter(event="project.created").exists()


def test_a_broken_channel_layer_loses_the_message_not_the_event(monkeypatch, django_capture_on_commit_callbacks,
                                                                 caplog):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("layer down")

    monkeypatch.setattr("core.realtime.get_channel_layer", lambda: BrokenLayer())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        stored = broadcast_on_commit("alert.raised", {"level": "high"}, ["user.1"])
    assert len(callbacks) == 1
    assert Event.objects.filter(pk=stored.pk, event="alert.raised").exists()
    assert "Could not deliver alert.raised" in caplog.text


def test_every_event_also_goes_to_staff(django_capture_on_commit_callbacks):
    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(STAFF_GROUP, channel)

        def broadcast():
            with django_capture_on_commit_callbacks(execute=True):
                return broadcast_on_commit("budget.created", {"budget": "b1"}, [])

        stored = await sync_to_async(broadcast)()
        message = None
        for _ in range(50):  # other tests' staff messages may still be queued; find ours
            message = await _receive(layer, channel, 2)
            if message is None or message["id"] == str(stored.pk):
                break
        await layer.group_discard(STAFF_GROUP, channel)
        return stored, message

    stored, message = async_to_sync(scenario)()
    assert message is not None and message["id"] == str(stored.pk)
    assert stored.groups == [STAFF_GROUP]
