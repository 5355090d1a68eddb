"""The cost ledger: record a cost, split one across budgets or services, and book the compute of
finished training executions.

Booking money against a budget holds the budget's row lock, so the available amount it checks is
the one it leaves: spending past it is refused with ``BUDGET_004`` (the whole budget) or
``BUDGET_001`` (the category's line) unless the caller holds an override, in which case the entry
is kept and flagged ``over_budget``. Crossing a notification threshold is checked in the same
transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from budgets import events
from budgets.choices import SEED_CATEGORIES, SPENDABLE_STATUSES, BudgetStatus, CostKind, CostSource
from budgets.models import Budget, Category, CostAllocation, CostEntry
from budgets.money import HUNDRED, ZERO, MoneySum, cents, fmt, to_money
from budgets.selectors import attach_figures
from core.exceptions import ApplicationError, Conflict, ValidationFailed

logger = logging.getLogger("pollen.budgets")

MAX_TARGETS = 100
SHARE_PLACES = 4


@dataclass
class Part:
    """One entry to book: which budget (or none) and service carry how much."""

    budget: Budget | None
    service: str
    amount: Decimal


def _spendable(budget: Budget, incurred_on: date) -> None:
    if budget.status in (BudgetStatus.PLANNING, BudgetStatus.SUBMITTED):
        raise ApplicationError("BUDGET_002", f"The budget {budget.name!r} is {budget.status}: costs are booked "
                                             "against approved budgets only",
                               details={"budget_id": str(budget.pk), "status": budget.status})
    if budget.status not in SPENDABLE_STATUSES:
        raise Conflict(f"The budget {budget.name!r} is {budget.status} and takes no more costs",
                       details={"budget_id": str(budget.pk), "status": budget.status})
    if not budget.period_start <= incurred_on <= budget.period_end:
        raise ValidationFailed(f"incurred_on: {incurred_on} is outside the budget's period "
                               f"{budget.period_start} - {budget.period_end}",
                               details={"field": "incurred_on", "budget_id": str(budget.pk)})


def _check_funds(budget: Budget, category: Category, amount: Decimal, *, override: bool) -> bool:
    """True when ``amount`` fits the budget and its category line; False when it does not but
    ``override`` lets it through; ``BUDGET_004`` / ``BUDGET_001`` otherwise. Call holding the
    budget's lock, with ``budget.figures`` attached."""
    figures = budget.figures
    if amount > figures.available:
        if not override:
            raise ApplicationError("BUDGET_004", f"{amount} is more than the {figures.available} still available "
                                                 f"in {budget.name!r}",
                                   details={"budget_id": str(budget.pk), "amount": fmt(amount),
                                            "available": fmt(figures.available),
                                            "shortfall": fmt(amount - figures.available)})
        return False
    lines = {line.category_id: line.amount for line in budget.lines.all()}
    if lines:
        line = lines.get(category.pk, ZERO)
        consumed = figures.category_consumed(category.pk)
        if consumed + amount > line:
            if not override:
                raise ApplicationError(
                    "BUDGET_001", f"{amount} would take {category.name} past its budget of {line} in {budget.name!r} "
                                  f"({consumed} consumed)",
                    details={"budget_id": str(budget.pk), "category": category.value, "amount": fmt(amount),
                             "category_budget": fmt(line), "category_consumed": fmt(consumed),
                             "category_available": fmt(line - consumed)})
            return False
    return True


def _book(parts: list[Part], *, category: Category, kind: str, incurred_on: date, description: str,
          user: User | None, override: bool, source: str, execution=None, project=None,
          allocation: CostAllocation | None = None, metadata: dict | None = None) -> list[CostEntry]:
    """Book ``parts`` as ledger entries. Call inside a transaction: the budgets are locked here, in
    id order (so that two bookings never wait on each other crosswise), before anything is read."""
    from budgets.services.notifications import thresholds_check

    if not category.is_active:
        raise ApplicationError("BUDGET_003", f"The category {category.value!r} is inactive",
                               details={"field": "category", "category": category.value})
    if kind not in CostKind.values:
        raise ValidationFailed(f"kind must be one of {CostKind.values}", field="kind")
    budget_ids = sorted({part.budget.pk for part in parts if part.budget is not None})
    budgets = {b.pk: b for b in attach_figures(
        Budget.objects.select_for_update(of=("self",)).filter(pk__in=budget_ids).order_by("pk")
        .prefetch_related("lines"))}
    per_budget: dict = defaultdict(lambda: ZERO)
    for part in parts:
        if part.budget is not None:
            per_budget[part.budget.pk] += part.amount
    fits: dict = {}
    for pk in budget_ids:
        budget = budgets[pk]
        _spendable(budget, incurred_on)
        fits[pk] = _check_funds(budget, category, per_budget[pk], override=override)
    entries = [CostEntry(
        budget=budgets.get(part.budget.pk) if part.budget else None, category=category, service=part.service,
        kind=kind, amount=part.amount, incurred_on=incurred_on, description=description, source=source,
        execution=execution, project_id=project.pk if project else (budgets[part.budget.pk].project_id
                                                                    if part.budget else None),
        allocation=allocation, over_budget=not fits.get(part.budget.pk, True) if part.budget else False,
        metadata=metadata or {}, created_by=user) for part in parts]
    CostEntry.objects.bulk_create(entries)
    for pk in budget_ids:
        budget = budgets[pk]
        budget.figures.add(category_id=category.pk, kind=kind, amount=per_budget[pk])
        thresholds_check(budget=budget, figures=budget.figures)
        events.broadcast("budget.cost_recorded", budget, amount=fmt(per_budget[pk]), kind=kind,
                         category=category.value, over_budget=not fits[pk], spent=fmt(budget.figures.spent),
                         committed=fmt(budget.figures.committed), available=fmt(budget.figures.available))
    return entries


@transaction.atomic
def cost_record(*, user: User | None, category: Category, amount, incurred_on: date, budget: Budget | None = None,
                service: str = "", kind: str = CostKind.ACTUAL, description: str = "", project=None,
                override: bool = False, metadata: dict | None = None) -> CostEntry:
    """Record one cost (``POST /costs``)."""
    amount = to_money(amount)
    return _book([Part(budget, service.strip(), amount)], category=category, kind=kind, incurred_on=incurred_on,
                 description=description, user=user, override=override, source=CostSource.MANUAL, project=project,
                 metadata=metadata)[0]


def _share(value, index: int) -> Decimal:
    field = f"targets[{index}].share"
    if isinstance(value, (bool, float)):
        raise ValidationFailed(f"{field} must be a decimal string or a Decimal", field=field)
    try:
        share = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a number", field=field)
    if not share.is_finite() or share <= 0 or share > HUNDRED:
        raise ValidationFailed(f"{field} must be more than 0 and at most 100 (percent)", field=field)
    if share.as_tuple().exponent < -SHARE_PLACES:
        raise ValidationFailed(f"{field} has more than {SHARE_PLACES} decimal places", field=field)
    return share


def split(amount: Decimal, shares: list[Decimal]) -> list[Decimal]:
    """``amount`` split by ``shares`` (percent, adding up to 100) into cents that add up to exactly
    ``amount``: each part is rounded down, and the cents left go one by one to the parts that lost
    the most in rounding (the first of equals first)."""
    total_cents = int(amount * HUNDRED)
    exact = [Decimal(total_cents) * share / HUNDRED for share in shares]
    floors = [int(value.to_integral_value(rounding=ROUND_FLOOR)) for value in exact]
    left = total_cents - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(c).scaleb(-2) for c in floors]


@transaction.atomic
def cost_allocate(*, user: User | None, amount, category: Category, targets: list[dict], incurred_on: date,
                  kind: str = CostKind.ACTUAL, description: str = "", budget: Budget | None = None,
                  service: str = "", override: bool = False) -> CostAllocation:
    """Split one cost across budgets or services (``POST /costs/allocate``). Each target is a dict
    with ``share`` (percent) and a ``budget`` and/or ``service`` (the call's own are the defaults).
    The shares must add up to exactly 100 and every part carry at least a cent; all parts are booked
    or none (the first refusal rolls everything back)."""
    amount = to_money(amount)
    if not targets:
        raise ValidationFailed("targets: at least one target", field="targets")
    if len(targets) > MAX_TARGETS:
        raise ValidationFailed(f"targets: at most {MAX_TARGETS}", field="targets")
    shares = [_share(target.get("share"), i) for i, target in enumerate(targets)]
    if sum(shares) != HUNDRED:
        raise ValidationFailed(f"targets: the shares add up to {sum(shares)}, not 100",
                               details={"field": "targets", "sum": str(sum(shares))})
    keys = set()
    resolved = []
    for i, target in enumerate(targets):
        target_budget = target.get("budget") or budget
        target_service = (target.get("service") or service or "").strip()
        key = (target_budget.pk if target_budget else None, target_service)
        if key in keys:
            raise ValidationFailed(f"targets[{i}]: the same budget and service appear twice", field=f"targets[{i}]")
        keys.add(key)
        resolved.append((target_budget, target_service))
    amounts = split(amount, shares)
    if any(part <= 0 for part in amounts):
        raise ValidationFailed(f"amount: {amount} is too small to give every share at least 0.01",
                               details={"field": "amount", "parts": [fmt(a) for a in amounts]})
    allocation = CostAllocation.objects.create(
        amount=amount, category=category, kind=kind, description=description, incurred_on=incurred_on,
        created_by=user, shares=[{"budget": str(b.pk) if b else None, "service": s, "share": str(sh),
                                  "amount": fmt(a)} for (b, s), sh, a in zip(resolved, shares, amounts)])
    _book([Part(b, s, a) for (b, s), a in zip(resolved, amounts)], category=category, kind=kind,
          incurred_on=incurred_on, description=description, user=user, override=override,
          source=CostSource.ALLOCATION, allocation=allocation)
    return allocation


# ---- compute of training executions ---------------------------------------------------------------

def compute_category() -> Category:
    """The category compute is booked in (Infrastructure), recreated from the seed if it is gone."""
    value = settings.BUDGET_COMPUTE_CATEGORY
    seed = next((c for c in SEED_CATEGORIES if c["value"] == value), {"value": value, "name": value.title()})
    category, _ = Category.objects.get_or_create(value=value, defaults={k: v for k, v in seed.items() if k != "value"})
    return category


@transaction.atomic
def execution_cost_book(*, execution_id) -> CostEntry | None:
    """Book what a training execution's compute cost and is not booked yet: its CPU-seconds (as
    the worker measured them, summed over every run of it) times
    ``BUDGET_COMPUTE_RATE_PER_CPU_SECOND``, less what earlier runs booked. Charged to the project's
    approved or active budget whose period holds the day it finished (or to no budget), category
    Infrastructure. The compute is already spent, so the booking cannot be refused: past the
    available amount it is flagged ``over_budget`` and still crosses thresholds."""
    from training.models import Execution

    rate: Decimal = settings.BUDGET_COMPUTE_RATE_PER_CPU_SECOND
    if rate <= 0:
        return None
    execution = (Execution.objects.select_for_update(of=("self",)).select_related("project")
                 .filter(pk=execution_id).first())
    if execution is None:
        return None
    cpu_seconds = Decimal(repr(float(execution.cpu_seconds or 0.0)))
    cost = cents(cpu_seconds * rate)
    booked = CostEntry.objects.filter(execution=execution, source=CostSource.EXECUTION).aggregate(
        total=MoneySum("amount"))["total"] or ZERO
    due = cost - booked
    if due <= 0:
        return None
    day = timezone.localdate(execution.finished_at or timezone.now())
    budget = (Budget.objects.filter(project_id=execution.project_id, status__in=SPENDABLE_STATUSES,
                                    period_start__lte=day, period_end__gte=day)
              .order_by("-period_start", "created_at").first())
    entry = _book([Part(budget, settings.BUDGET_COMPUTE_SERVICE, due)], category=compute_category(),
                  kind=CostKind.ACTUAL, incurred_on=day,
                  description=f"Compute of {execution}: {cpu_seconds} CPU-seconds at {rate} per CPU-second",
                  user=None, override=True, source=CostSource.EXECUTION, execution=execution,
                  project=execution.project,
                  metadata={"cpu_seconds": str(cpu_seconds), "rate_per_cpu_second": str(rate),
                            "execution_cost": fmt(cost), "booked_before": fmt(booked)})[0]
    logger.info("Booked %s of compute for execution %s", entry.amount, execution.pk)
    return entry


def execution_cost_book_on_commit(*, execution_id) -> None:
    """Book the execution's compute once the surrounding transaction (the one that finished it)
    commits. A failure here is logged and never undoes the finish."""
    transaction.on_commit(lambda: execution_cost_book(execution_id=execution_id), robust=True)
