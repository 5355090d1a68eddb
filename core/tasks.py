from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.models import Event


@shared_task(name="core.tasks.events_prune")
def events_prune() -> int:
    """Drop stored events older than EVENT_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS)
    deleted, _ = Event.objects.filter(created_at__lt=cutoff).delete()
    return deleted
