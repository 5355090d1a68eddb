"""Reads for budgets, categories, approvers, notification rules, the cost ledger and reports.

Budgets are an organisation's, not a user's: whoever holds ``budget:read`` sees them all (the API
and pages check the permission). A budget's ``spent``, ``committed`` and ``available`` are summed
from the ledger here, for a whole page of budgets in one grouped query.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDay, TruncMonth, TruncQuarter, TruncWeek, TruncYear

from budgets.choices import ApprovalAction, CostKind, Granularity
from budgets.models import (ApprovalEvent, Approver, Budget, BudgetLine, BudgetNotification, Category, CostEntry,
                            NotificationRule, Report)
from budgets.money import ZERO, MoneySum, percent
from core.exceptions import ApplicationError, NotFound

ACTUAL = Q(kind=CostKind.ACTUAL)
COMMITMENT = Q(kind=CostKind.COMMITMENT)


# ---- figures ---------------------------------------------------------------------------------------

@dataclass
class Figures:
    """What a budget's ledger says about it. ``by_category`` maps a category id to
    ``[spent, committed]``."""

    total: Decimal
    allocated: Decimal = ZERO
    spent: Decimal = ZERO
    committed: Decimal = ZERO
    by_category: dict[int, list[Decimal]] = field(default_factory=dict)

    @property
    def consumed(self) -> Decimal:
        return self.spent + self.committed

    @property
    def available(self) -> Decimal:
        return self.total - self.spent - self.committed

    @property
    def utilisation(self) -> Decimal | None:
        """Percent of the total consumed by spending and commitments."""
        return percent(self.consumed, self.total)

    def category_consumed(self, category_id: int) -> Decimal:
        spent, committed = self.by_category.get(category_id, (ZERO, ZERO))
        return spent + committed

    def add(self, *, category_id: int, kind: str, amount: Decimal) -> None:
        row = self.by_category.setdefault(category_id, [ZERO, ZERO])
        if kind == CostKind.ACTUAL:
            self.spent += amount
            row[0] += amount
        else:
            self.committed += amount
            row[1] += amount


def ledger_by_budget_and_category(budget_ids) -> dict:
    """``{budget_id: {category_id: [spent, committed]}}`` in one grouped query."""
    result: dict = defaultdict(dict)
    rows = (CostEntry.objects.filter(budget_id__in=list(budget_ids)).order_by()
            .values_list("budget_id", "category_id")
            .annotate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT)))
    for budget_id, category_id, spent, committed in rows:
        result[budget_id][category_id] = [spent or ZERO, committed or ZERO]
    return result


def attach_figures(budgets) -> list[Budget]:
    """Set ``budget.figures`` on each budget (lines prefetched), with one query for all of them."""
    budgets = list(budgets)
    ledger = ledger_by_budget_and_category(b.pk for b in budgets) if budgets else {}
    for budget in budgets:
        figures = Figures(total=budget.total, allocated=sum((line.amount for line in budget.lines.all()), ZERO))
        for category_id, (spent, committed) in ledger.get(budget.pk, {}).items():
            figures.by_category[category_id] = [spent, committed]
            figures.spent += spent
            figures.committed += committed
        budget.figures = figures
    return budgets


def budget_figures(budget: Budget) -> Figures:
    return attach_figures([budget])[0].figures


# ---- budgets ---------------------------------------------------------------------------------------

def _lines() -> Prefetch:
    return Prefetch("lines", queryset=BudgetLine.objects.select_related("category"))


def budget_list() -> QuerySet[Budget]:
    decisions = (ApprovalEvent.objects.filter(action__in=[ApprovalAction.APPROVED, ApprovalAction.REJECTED])
                 .select_related("approver"))
    return (Budget.objects.select_related("project", "created_by", "requested_by", "approved_by")
            .prefetch_related(_lines(), Prefetch("notification_rules", queryset=NotificationRule.objects.all()),
                              Prefetch("approval_events", queryset=decisions, to_attr="decisions")))


def _uuid(value, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(message, details={"id": str(value)[:100]})


def budget_get(*, budget_id) -> Budget:
    """The budget with its figures, or 404 (also for a malformed id)."""
    budget = budget_list().filter(pk=_uuid(budget_id, "Budget not found")).first()
    if budget is None:
        raise NotFound("Budget not found", details={"id": str(budget_id)})
    return attach_figures([budget])[0]


def budget_by_id(budget_id, *, field: str = "budget") -> Budget:
    """A budget named in an input (not the URL): an unknown one is a 400 naming the field."""
    from core.exceptions import ValidationFailed

    try:
        pk = uuid.UUID(str(budget_id))
    except ValueError:
        raise ValidationFailed(f"{field}: not a budget id", field=field)
    budget = Budget.objects.filter(pk=pk).first()
    if budget is None:
        raise ValidationFailed(f"{field}: there is no budget {pk}", field=field)
    return budget


def approval_history(*, budget: Budget) -> QuerySet[ApprovalEvent]:
    return budget.approval_events.select_related("actor", "approver").order_by("created_at", "id")


def eligible_approvers(*, budget: Budget) -> QuerySet[Approver]:
    """Active approvers whose limit covers the budget, except whoever asked for the approval."""
    qs = Approver.objects.filter(is_active=True).filter(Q(limit__isnull=True) | Q(limit__gte=budget.total))
    if budget.requested_by_id:
        qs = qs.exclude(user_id=budget.requested_by_id)
    return qs.select_related("user")


def pending_budgets() -> QuerySet[Budget]:
    from budgets.choices import BudgetStatus

    return budget_list().filter(status=BudgetStatus.SUBMITTED).order_by("requested_at", "id")


# ---- categories ------------------------------------------------------------------------------------

def category_list() -> QuerySet[Category]:
    return Category.objects.all()


def category_get(*, value) -> Category:
    category = Category.objects.filter(value=str(value)[:50]).first()
    if category is None:
        raise NotFound("Category not found", details={"category": str(value)[:50]})
    return category


def category_for_input(value, *, field: str = "category", active: bool = True) -> Category:
    """A category named in an input by its value (or id): ``BUDGET_003`` if unknown or inactive."""
    text = str(value).strip()[:50]
    category = Category.objects.filter(Q(value=text) | (Q(pk=int(text)) if text.isdigit() and len(text) < 10
                                                         else Q(pk__in=[]))).first()
    if category is None:
        raise ApplicationError("BUDGET_003", f"There is no category {text!r}", details={"field": field,
                                                                                    "category": text})
    if active and not category.is_active:
        raise ApplicationError("BUDGET_003", f"The category {category.value!r} is inactive",
                               details={"field": field, "category": category.value})
    return category


def category_spending(*, category: Category, entries: QuerySet[CostEntry]) -> dict:
    """One category's spending: totals, per budget and per month (three grouped queries)."""
    entries = entries.filter(category=category).order_by()
    totals = entries.aggregate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT),
                               entries=Count("id"))
    per_budget = list(entries.values_list("budget_id", "budget__name").annotate(
        spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT)))
    allocated = {line.budget_id: line.amount for line in BudgetLine.objects.filter(
        category=category, budget_id__in=[row[0] for row in per_budget if row[0]])}
    per_month = list(entries.annotate(period=TruncMonth("incurred_on")).values_list("period").annotate(
        spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT)).order_by("period"))
    return {
        "spent": totals["spent"] or ZERO, "committed": totals["committed"] or ZERO, "entries": totals["entries"],
        "budgets": [{"budget_id": b, "name": name, "budget": allocated.get(b), "spent": s or ZERO,
                     "committed": c or ZERO} for b, name, s, c in sorted(per_budget, key=lambda r: (r[1] or "", str(r[0])))],
        "months": [{"period": p, "spent": s or ZERO, "committed": c or ZERO} for p, s, c in per_month],
    }


# ---- approvers, rules, notifications -------------------------------------------------------------

def approver_list() -> QuerySet[Approver]:
    return Approver.objects.select_related("user")


def approver_get(*, approver_id) -> Approver:
    text = str(approver_id)
    approver = approver_list().filter(pk=int(text)).first() if text.isdigit() and len(text) < 19 else None
    if approver is None:
        raise NotFound("Approver not found", details={"id": text[:50]})
    return approver


def rule_list() -> QuerySet[NotificationRule]:
    sent = BudgetNotification.objects.order_by("threshold")
    return (NotificationRule.objects.select_related("budget")
            .prefetch_related(Prefetch("deliveries", queryset=sent)).order_by("budget__name", "id"))


def rule_get(*, rule_id) -> NotificationRule:
    text = str(rule_id)
    rule = rule_list().filter(pk=int(text)).first() if text.isdigit() and len(text) < 19 else None
    if rule is None:
        raise NotFound("Notification rule not found", details={"id": text[:50]})
    return rule


def recipients() -> list[dict]:
    """Every address some rule notifies, with how many rules (and active ones) name it."""
    counts: dict[str, dict] = {}
    for rule_recipients, active in NotificationRule.objects.values_list("recipients", "is_active"):
        for address in rule_recipients or []:
            row = counts.setdefault(address.lower(), {"email": address.lower(), "rules": 0, "active_rules": 0})
            row["rules"] += 1
            row["active_rules"] += bool(active)
    return sorted(counts.values(), key=lambda r: r["email"])


# ---- the ledger ------------------------------------------------------------------------------------

def cost_list() -> QuerySet[CostEntry]:
    return CostEntry.objects.select_related("budget", "category", "project", "created_by").defer(
        "budget__description", "budget__metadata", "project__description", "project__configuration")


def costs_by_service(entries: QuerySet[CostEntry]) -> list[dict]:
    rows = (entries.order_by().values_list("service")
            .annotate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT),
                      entries=Count("id")))
    return sorted(({"service": service, "spent": s or ZERO, "committed": c or ZERO, "entries": n}
                   for service, s, c, n in rows), key=lambda r: (-(r["spent"] + r["committed"]), r["service"]))


def costs_by_category(entries: QuerySet[CostEntry]) -> list[dict]:
    """Every category with its spending in ``entries`` (zero where it has none)."""
    rows = {category_id: (s or ZERO, c or ZERO, n) for category_id, s, c, n in (
        entries.order_by().values_list("category_id")
        .annotate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT),
                  entries=Count("id")))}
    result = []
    for category in Category.objects.all():
        spent, committed, n = rows.get(category.pk, (ZERO, ZERO, 0))
        result.append({"category": category, "spent": spent, "committed": committed, "entries": n})
    return result


TRUNC = {Granularity.DAY: TruncDay, Granularity.WEEK: TruncWeek, Granularity.MONTH: TruncMonth,
         Granularity.QUARTER: TruncQuarter, Granularity.YEAR: TruncYear}


def costs_by_period(entries: QuerySet[CostEntry], *, granularity: str) -> list[dict]:
    rows = (entries.order_by().annotate(period=TRUNC[granularity]("incurred_on")).values_list("period")
            .annotate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT),
                      entries=Count("id")).order_by("period"))
    result, cumulative = [], ZERO
    for period, spent, committed, n in rows:
        cumulative += spent or ZERO
        result.append({"period": period, "spent": spent or ZERO, "committed": committed or ZERO, "entries": n,
                       "cumulative_spent": cumulative})
    return result


# ---- reports ---------------------------------------------------------------------------------------

def report_list() -> QuerySet[Report]:
    return Report.objects.select_related("requested_by").defer("content")


def report_get(*, report_id) -> Report:
    report = Report.objects.select_related("requested_by").filter(pk=_uuid(report_id, "Report not found")).first()
    if report is None:
        raise NotFound("Report not found", details={"id": str(report_id)})
    return report
