from django.conf import settings
from django.db import models
from django.db.models import Q

from budgets.choices import CostKind, CostSource
from budgets.money import ZERO, money_field


class CostAllocation(models.Model):
    """One cost split across budgets or services by shares (``POST /costs/allocate``); its parts
    are the cost entries that point here."""

    amount = money_field()
    category = models.ForeignKey("budgets.Category", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=CostKind.choices, default=CostKind.ACTUAL)
    description = models.CharField(max_length=500, blank=True)
    incurred_on = models.DateField()
    shares = models.JSONField(default=list, help_text="The targets and their shares in percent, as given")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"allocation {self.pk} of {self.amount}"


class CostEntry(models.Model):
    """One line of the cost ledger. Append-only: the figures of every budget are sums of these."""

    budget = models.ForeignKey("budgets.Budget", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="cost_entries", help_text="Empty: a cost no budget carries")
    category = models.ForeignKey("budgets.Category", on_delete=models.PROTECT, related_name="cost_entries")
    service = models.CharField(max_length=100, blank=True, db_index=True)
    kind = models.CharField(max_length=20, choices=CostKind.choices, default=CostKind.ACTUAL)
    amount = money_field()
    incurred_on = models.DateField(db_index=True)
    description = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=20, choices=CostSource.choices, default=CostSource.MANUAL)
    execution = models.ForeignKey("training.Execution", on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="cost_entries")
    project = models.ForeignKey("projects.Project", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="cost_entries")
    allocation = models.ForeignKey(CostAllocation, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="entries")
    over_budget = models.BooleanField(default=False, help_text="Booked past the available amount under an override")
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-incurred_on", "-id"]
        verbose_name_plural = "cost entries"
        constraints = [models.CheckConstraint(condition=Q(amount__gt=ZERO), name="cost_entry_amount_positive")]
        indexes = [
            models.Index(fields=["budget", "kind"]),
            models.Index(fields=["category", "incurred_on"]),
            models.Index(fields=["budget", "incurred_on"]),
        ]

    def __str__(self):
        return f"{self.amount} {self.category_id} on {self.incurred_on}"
