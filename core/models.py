import uuid

from django.db import models


class UUIDModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Event(UUIDModel):
    """Every live event, stored before it is broadcast: the history behind the WebSocket stream."""

    event = models.CharField(max_length=100, db_index=True)
    data = models.JSONField(default=dict)
    groups = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["event", "-created_at"])]

    def __str__(self):
        return f"{self.event} @ {self.created_at:%Y-%m-%d %H:%M:%S}"
