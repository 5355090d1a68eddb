"""Celery tasks of core, run eagerly as in the test settings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core import tasks
from core.models import Event

pytestmark = pytest.mark.django_db


def test_events_prune_drops_only_events_past_retention(settings):
    settings.EVENT_RETENTION_DAYS = 30
    old = Event.objects.create(event="project.created", data={}, groups=["staff"])
    edge = Event.objects.create(event="project.updated", data={}, groups=["staff"])
    fresh = Event.objects.create(event="project.deleted", data={}, groups=["staff"])
    now = timezone.now()
    Event.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=31))
    Event.objects.filter(pk=edge.pk).update(created_at=now - timedelta(days=29, hours=23))

    result = tasks.events_prune.delay()

    assert result.successful() and result.get() == 1
    assert set(Event.objects.values_list("pk", flat=True)) == {edge.pk, fresh.pk}


def test_events_prune_follows_the_retention_setting(settings):
    settings.EVENT_RETENTION_DAYS = 1
    event = Event.objects.create(event="alert.raised", data={}, groups=[])
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=2))
    assert tasks.events_prune.delay().get() == 1
    assert not Event.objects.exists()
