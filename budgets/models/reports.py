from django.conf import settings
from django.db import models

from budgets.choices import ReportFormat, ReportKind, ReportStatus
from core.models import UUIDModel


class Report(UUIDModel):
    """A generated spending report: its content is kept as JSON (money as strings) and rendered as
    CSV or a printable page when asked."""

    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=ReportKind.choices, default=ReportKind.FULL)
    format = models.CharField(max_length=10, choices=ReportFormat.choices, default=ReportFormat.JSON,
                              help_text="The format asked for; every report can be read in each")
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=ReportStatus.choices, default=ReportStatus.PENDING,
                              db_index=True)
    content = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)
    scheduled = models.BooleanField(default=False, help_text="Made by Celery beat rather than asked for")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.title
