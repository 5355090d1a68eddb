import datetime
from decimal import Decimal

import factory

from accounts.tests.factories import UserFactory
from budgets.choices import BudgetStatus, CostKind
from budgets.models import ApprovalEvent, Approver, Budget, BudgetLine, Category, CostEntry, NotificationRule, Report

PERIOD_START = datetime.date(2025, 1, 1)
PERIOD_END = datetime.date(2025, 3, 31)


def category(value: str = "infrastructure") -> Category:
    """One of seed 004's categories (installed by the data migration)."""
    return Category.objects.get(value=value)


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    value = factory.Sequence(lambda n: f"category-{n}")
    color = "#123456"


class BudgetFactory(factory.django.DjangoModelFactory):
    """A budget as the services leave it; ``status`` set directly is for reads and lists only."""

    class Meta:
        model = Budget

    name = factory.Sequence(lambda n: f"Budget {n}")
    period_start = PERIOD_START
    period_end = PERIOD_END
    total = Decimal("50000.00")
    status = BudgetStatus.PLANNING
    department = "Engineering"
    cost_centre = "CC-001"
    created_by = factory.SubFactory(UserFactory, roles=["financial_controller"])


class BudgetLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BudgetLine

    budget = factory.SubFactory(BudgetFactory)
    category = factory.LazyFunction(lambda: category("infrastructure"))
    amount = Decimal("10000.00")


class ApproverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Approver

    user = factory.SubFactory(UserFactory, roles=["financial_controller"])
    level = "budget_analyst"
    limit = Decimal("100000.00")


class ApprovalEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApprovalEvent

    budget = factory.SubFactory(BudgetFactory)
    action = "approved"
    actor = factory.SubFactory(UserFactory)
    actor_name = factory.LazyAttribute(lambda o: o.actor.username)
    amount = factory.LazyAttribute(lambda o: o.budget.total)
    from_status = "submitted"
    to_status = "approved"


class CostEntryFactory(factory.django.DjangoModelFactory):
    """A ledger row written directly: for lists and figures, not for the booking rules."""

    class Meta:
        model = CostEntry

    budget = factory.SubFactory(BudgetFactory, status=BudgetStatus.ACTIVE)
    category = factory.LazyFunction(lambda: category("infrastructure"))
    service = "api-gateway"
    kind = CostKind.ACTUAL
    amount = Decimal("100.00")
    incurred_on = datetime.date(2025, 1, 15)


class NotificationRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationRule

    budget = factory.SubFactory(BudgetFactory)
    recipients = factory.LazyFunction(lambda: ["finance@example.com"])
    thresholds = factory.LazyFunction(lambda: [75, 90, 100])


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Report

    title = factory.Sequence(lambda n: f"Report {n}")
    status = "completed"
    content = factory.LazyFunction(lambda: {"kind": "full", "summary": None})
