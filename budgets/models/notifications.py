from django.conf import settings
from django.db import models

from budgets.choices import DeliveryStatus, NotificationMethod
from budgets.money import money_field
from core.models import TimeStampedModel


class NotificationRule(TimeStampedModel):
    """Seed 004's budget notification: who hears when utilisation crosses which thresholds (percent
    of the total consumed by spending and commitments)."""

    budget = models.ForeignKey("budgets.Budget", on_delete=models.CASCADE, related_name="notification_rules")
    recipients = models.JSONField(default=list, help_text="E-mail addresses")
    thresholds = models.JSONField(default=list, help_text="Percentages, e.g. [75, 90, 100]")
    method = models.CharField(max_length=10, choices=NotificationMethod.choices, default=NotificationMethod.EMAIL)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["budget", "id"]

    def __str__(self):
        return f"{', '.join(self.recipients)} at {self.thresholds} %"


class BudgetNotification(models.Model):
    """A threshold a rule's budget crossed: at most one per rule and threshold, ever."""

    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    budget = models.ForeignKey("budgets.Budget", on_delete=models.CASCADE, related_name="notifications")
    threshold = models.PositiveSmallIntegerField()
    utilisation = models.DecimalField(max_digits=9, decimal_places=2, help_text="Percent when it was crossed")
    total = money_field()
    consumed = money_field(help_text="Spent plus committed when it was crossed")
    recipients = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "threshold"], name="budget_notification_once")]

    def __str__(self):
        return f"{self.budget_id} crossed {self.threshold} %"
