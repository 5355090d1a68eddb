"""Budgets and categories: create, change, delete, and the lifecycle's plain moves.

The moves of the approval workflow (planning -> submitted -> approved, or back to planning) live in
``budgets.services.approvals``; ``budget_status_set`` hands a request for approval over to it and
refuses to approve (``BUDGET_002``: an approver must).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from budgets import events
from budgets.choices import EDITABLE_STATUSES, TRANSITIONS, WORKFLOW_TARGETS, BudgetStatus, Channel
from budgets.models import Budget, BudgetLine, Category
from budgets.money import ZERO, to_money
from core.exceptions import ApplicationError, Conflict, ValidationFailed
from core.lifecycle import move

MONEY_FIELDS = {"total", "period_start", "period_end", "lines"}
TEXT_FIELDS = {"name", "description", "department", "project", "cost_centre", "metadata"}
MAX_PERIOD_DAYS = 3660


def budget_transition(budget: Budget, new_status: str) -> None:
    """Move ``budget`` to ``new_status`` or raise 409. Call holding the row lock; the caller saves."""
    move(budget, TRANSITIONS, new_status, noun="A budget", details={"field": "status", "budget_id": str(budget.pk)})


def locked(budget: Budget | str) -> Budget:
    """The budget row, locked until the surrounding transaction ends. Call inside one."""
    pk = budget.pk if isinstance(budget, Budget) else budget
    return Budget.objects.select_for_update().get(pk=pk)


def _period(start: date, end: date) -> None:
    if end < start:
        raise ValidationFailed("period: the end is before the start", field="period.end")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise ValidationFailed(f"period: at most {MAX_PERIOD_DAYS} days", field="period.end")


def _lines(lines, total: Decimal) -> list[tuple[Category, Decimal]]:
    """Checked category lines: known active categories, each once, amounts that add up to at most
    the total."""
    checked: list[tuple[Category, Decimal]] = []
    seen = set()
    for index, (category, amount) in enumerate(lines):
        if not isinstance(category, Category) or not category.is_active:
            raise ApplicationError("BUDGET_003", f"categories[{index}]: not an active category",
                                   details={"field": f"categories[{index}].value"})
        if category.pk in seen:
            raise ValidationFailed(f"categories: {category.value!r} is listed twice", field=f"categories[{index}]")
        seen.add(category.pk)
        checked.append((category, to_money(amount, field=f"categories[{index}].budget", allow_zero=True)))
    allocated = sum((amount for _, amount in checked), ZERO)
    if allocated > total:
        raise ValidationFailed(f"categories: the category budgets add up to {allocated}, more than the total {total}",
                               details={"field": "categories", "allocated": str(allocated), "total": str(total)})
    return checked


def _unchanged(budget: Budget, key: str, value) -> bool:
    """True when ``value`` is what ``budget`` already has (a PUT repeating the approved figures)."""
    try:
        if key == "lines":
            return {(c.pk, Decimal(str(a))) for c, a in value} == {(line.category_id, line.amount)
                                                                   for line in budget.lines.all()}
        if key == "total":
            return Decimal(str(value)) == budget.total
    except (ArithmeticError, ValueError, AttributeError, TypeError):
        return False
    return value == getattr(budget, key)


def _write_lines(budget: Budget, lines: list[tuple[Category, Decimal]]) -> None:
    budget.lines.all().delete()
    BudgetLine.objects.bulk_create([BudgetLine(budget=budget, category=c, amount=a) for c, a in lines])


@transaction.atomic
def budget_create(*, user: User | None, name: str, period_start: date, period_end: date, total, description: str = "",
                  lines=(), department: str = "", project=None, cost_centre: str = "", metadata: dict | None = None,
                  notifications: list[dict] | None = None) -> Budget:
    """A new budget, in planning. ``lines`` are ``(category, amount)`` pairs; ``notifications`` are
    ``rule_create`` keyword sets (``recipients``, ``thresholds``, ``method``)."""
    from budgets.services.notifications import rule_create

    if not name or not name.strip():
        raise ValidationFailed("name must not be blank", field="name")
    total = to_money(total, field="total")
    _period(period_start, period_end)
    checked = _lines(lines, total)
    budget = Budget(name=name.strip(), description=description, period_start=period_start, period_end=period_end,
                    total=total, department=department, project=project, cost_centre=cost_centre,
                    metadata=metadata or {}, created_by=user, status=BudgetStatus.PLANNING)
    budget.save(force_insert=True)
    _write_lines(budget, checked)
    for rule in notifications or []:
        rule_create(budget=budget, user=user, **rule)
    events.broadcast("budget.created", budget)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, user: User | None = None, **fields) -> Budget:
    """Change a budget. Amounts, period and category lines change only while it is planned (409
    otherwise: they are what was approved); nothing changes once it is closed."""
    budget = locked(budget)
    if budget.status == BudgetStatus.CLOSED:
        raise Conflict("A closed budget does not change", details={"status": budget.status})
    money = {key for key in MONEY_FIELDS & set(fields) if not _unchanged(budget, key, fields[key])}
    if money and budget.status not in EDITABLE_STATUSES:
        raise Conflict(f"The total, period and category budgets of a {budget.status} budget are those approved; "
                       "they change only while it is planning", details={"status": budget.status,
                                                                         "fields": sorted(money)})
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationFailed("name must not be blank", field="name")
    if "total" in fields:
        fields["total"] = to_money(fields["total"], field="total")
    for key in (TEXT_FIELDS | {"total", "period_start", "period_end"}) & set(fields):
        setattr(budget, key, fields[key].strip() if key == "name" else fields[key])
    _period(budget.period_start, budget.period_end)
    if "lines" in fields and budget.status in EDITABLE_STATUSES:
        _write_lines(budget, _lines(fields["lines"], budget.total))
    elif "total" in fields:
        _lines([(line.category, line.amount) for line in budget.lines.select_related("category")], budget.total)
    budget.save()
    events.broadcast("budget.updated", budget)
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget) -> None:
    """Delete a budget that is still planning (409 otherwise: the history of an approved one stays)."""
    budget = locked(budget)
    if budget.status != BudgetStatus.PLANNING or budget.cost_entries.exists():
        raise Conflict(f"Only a budget in planning without costs can be deleted; this one is {budget.status}",
                       details={"status": budget.status})
    events.broadcast("budget.deleted", budget)
    budget.delete()


@transaction.atomic
def budget_status_set(*, budget: Budget, user: User, status: str, reason: str = "",
                      channel: str = Channel.API) -> Budget:
    """``PATCH /budgets/{id}/status``: the lifecycle's plain moves (approved -> active ->
    monitoring -> closed). Asking for ``submitted`` requests approval; ``approved`` is refused
    with ``BUDGET_002`` (an approver approves), and a submitted budget returns to planning only
    through a rejection."""
    from budgets.services.approvals import budget_request_approval

    if status not in BudgetStatus.values:
        raise ValidationFailed(f"status must be one of {BudgetStatus.values}", field="status")
    if status == BudgetStatus.SUBMITTED:
        return budget_request_approval(budget=budget, user=user, reason=reason, channel=channel)
    budget = locked(budget)
    if status == BudgetStatus.APPROVED and budget.status == BudgetStatus.SUBMITTED:
        raise ApplicationError("BUDGET_002", "An approver approves a budget: POST /budgets/{id}/approve",
                               details={"field": "status", "action": WORKFLOW_TARGETS[BudgetStatus.APPROVED]})
    if budget.status == BudgetStatus.SUBMITTED and status == BudgetStatus.PLANNING:
        raise Conflict("A submitted budget goes back to planning through a rejection with its reason: "
                       "POST /budgets/{id}/reject", details={"field": "status", "from": budget.status, "to": status})
    previous = budget.status
    budget_transition(budget, status)
    if status == BudgetStatus.CLOSED:
        budget.closed_at = timezone.now()
    budget.save(update_fields=["status", "closed_at", "updated_at"])
    events.broadcast("budget.status_changed", budget, previous_status=previous, reason=reason)
    return budget


# ---- categories ------------------------------------------------------------------------------------

def category_create(*, name: str, value: str, color: str = "#6B7280", description: str = "",
                    position: int = 100) -> Category:
    if Category.objects.filter(value=value).exists() or Category.objects.filter(name__iexact=name).exists():
        raise Conflict("A category with this name or value exists", details={"field": "value"})
    category = Category(name=name, value=value, color=color.upper(), description=description, position=position)
    category.full_clean()
    category.save()
    return category


@transaction.atomic
def category_update(*, category: Category, **fields) -> Category:
    category = Category.objects.select_for_update().get(pk=category.pk)
    if "name" in fields and Category.objects.filter(name__iexact=fields["name"]).exclude(pk=category.pk).exists():
        raise Conflict("A category with this name exists", details={"field": "name"})
    for key, value in fields.items():
        setattr(category, key, value.upper() if key == "color" else value)
    category.full_clean()
    category.save()
    return category
