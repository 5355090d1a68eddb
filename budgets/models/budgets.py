from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from budgets.choices import ApproverLevel, BudgetStatus, required_level
from budgets.money import ZERO, money_field
from core.models import TimeStampedModel, UUIDModel

HEX_COLOR = RegexValidator(r"^#[0-9A-Fa-f]{6}$", "A colour is #RRGGBB")


class Category(TimeStampedModel):
    """A spending category (seed 004's list is installed by a data migration)."""

    name = models.CharField(max_length=100, unique=True)
    value = models.SlugField(max_length=50, unique=True, help_text="The category's key in URLs and inputs")
    color = models.CharField(max_length=7, validators=[HEX_COLOR], default="#6B7280")
    description = models.CharField(max_length=255, blank=True)
    position = models.PositiveSmallIntegerField(default=100)
    is_active = models.BooleanField(default=True, help_text="Inactive categories take no new costs")

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Budget(UUIDModel, TimeStampedModel):
    """Seed 004's Budget. ``spent``, ``committed`` and ``available`` are not columns: they are
    summed from the cost ledger (``budgets.selectors.budget_figures``); ``allocated`` is the sum of
    the category lines."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    status = models.CharField(max_length=20, choices=BudgetStatus.choices, default=BudgetStatus.PLANNING,
                              db_index=True)
    period_start = models.DateField()
    period_end = models.DateField()
    total = money_field()
    department = models.CharField(max_length=100, blank=True, db_index=True)
    project = models.ForeignKey("projects.Project", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="budgets", help_text="Training executions of this project book "
                                                                  "their compute cost here")
    cost_centre = models.CharField(max_length=50, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Further keys of seed 004's metadata")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", help_text="Who asked for the pending approval")
    requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=ZERO), name="budget_total_not_negative"),
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="budget_period_ordered"),
        ]
        indexes = [models.Index(fields=["status", "period_start", "period_end"])]

    def __str__(self):
        return self.name

    @property
    def required_approval_level(self) -> str:
        return required_level(self.total)

    @property
    def required_approval_label(self) -> str:
        return ApproverLevel(self.required_approval_level).label


class PendingBudget(Budget):
    """The approval queue of the Django admin: the budgets waiting for an approver."""

    class Meta:
        proxy = True
        verbose_name = "budget awaiting approval"
        verbose_name_plural = "budgets awaiting approval"


class BudgetLine(models.Model):
    """How much of a budget goes to one category (seed 004's per-category ``budget``)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="lines")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="budget_lines")
    amount = money_field()

    class Meta:
        ordering = ["category__position", "category__name"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "category"], name="budget_line_unique_category"),
            models.CheckConstraint(condition=Q(amount__gte=ZERO), name="budget_line_amount_not_negative"),
        ]

    def __str__(self):
        return f"{self.category_id}: {self.amount}"
