from celery import shared_task
from django.core.management import call_command


@shared_task(name="accounts.tasks.tokens_flush_expired")
def tokens_flush_expired() -> None:
    """Drop expired refresh tokens (and their blacklist rows) that can no longer be presented."""
    call_command("flushexpiredtokens")
