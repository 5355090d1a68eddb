from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from budgets.choices import LEVEL_CEILINGS, ApprovalAction, ApproverLevel, BudgetStatus, Channel
from budgets.money import ZERO, money_field
from core.models import TimeStampedModel


class Approver(TimeStampedModel):
    """A user who may approve budgets up to a personal limit, itself at most their level's ceiling
    (seed 004's hierarchy). A CFO's limit may be left empty: no ceiling."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approver")
    level = models.CharField(max_length=20, choices=ApproverLevel.choices)
    limit = money_field(null=True, blank=True, help_text="Empty: no limit (CFO only)")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["user__username"]
        constraints = [models.CheckConstraint(condition=Q(limit__isnull=True) | Q(limit__gte=ZERO),
                                              name="approver_limit_not_negative")]

    def __str__(self):
        return f"{self.user} ({self.get_level_display()})"

    @property
    def ceiling(self):
        return LEVEL_CEILINGS[self.level]

    def covers(self, amount) -> bool:
        return self.limit is None or amount <= self.limit

    def clean(self):
        ceiling = LEVEL_CEILINGS.get(self.level)
        if self.limit is None and ceiling is not None:
            raise ValidationError({"limit": f"Only a CFO approves without a limit; a {self.get_level_display()} "
                                            f"approves at most {ceiling}"})
        if self.limit is not None and ceiling is not None and self.limit > ceiling:
            raise ValidationError({"limit": f"A {self.get_level_display()} approves at most {ceiling}"})


class ApprovalEvent(models.Model):
    """One line of a budget's approval history: a request, an approval or a rejection, with who,
    when, why and the amount at stake. Who is also kept as text, so the history outlives the user."""

    budget = models.ForeignKey("budgets.Budget", on_delete=models.CASCADE, related_name="approval_events")
    action = models.CharField(max_length=20, choices=ApprovalAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_name = models.CharField(max_length=200)
    actor_email = models.EmailField(blank=True)
    approver = models.ForeignKey(Approver, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    approver_level = models.CharField(max_length=20, choices=ApproverLevel.choices, blank=True)
    approver_limit = money_field(null=True, blank=True)
    amount = money_field(help_text="The budget's total when this happened")
    reason = models.TextField(blank=True, max_length=2000)
    from_status = models.CharField(max_length=20, choices=BudgetStatus.choices)
    to_status = models.CharField(max_length=20, choices=BudgetStatus.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.API)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["budget", "created_at"])]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_name}"
