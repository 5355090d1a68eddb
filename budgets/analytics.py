"""Spending summary, monthly trends and the end-of-period forecast: reads over the ledger, shared by
the API, the pages and the stored reports. Every figure is a Decimal; ``as_json`` turns a result
into JSON-ready data with money as strings.

The forecast's method is a linear trend on the daily ledger: the actual spending of each day from
the start of the period to the ``as_of`` date (days without costs count as zero) is fitted with an
ordinary least-squares line ``spend(day) = intercept + slope x day``; the days left in the period
are projected from that line (a negative day counts as zero) and added to what is spent. Open
commitments are added on top. The inputs (the daily series, the fitted intercept and slope, the
days elapsed and left) are part of the answer, and so is the plain run rate (spent so far / days
elapsed x days in the period) for comparison.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.functions import TruncMonth
from django.utils import timezone

from budgets.choices import BudgetStatus
from budgets.models import Budget, Category, CostEntry
from budgets.money import ZERO, MoneySum, cents, percent
from budgets.selectors import ACTUAL, COMMITMENT, attach_figures

FORECAST_METHOD = "linear_trend"
FORECAST_DESCRIPTION = (
    "Ordinary least-squares line through the daily actual spending from the period's start to as_of "
    "(days without costs count as zero), projected over the remaining days (negative days count as zero) "
    "and added to the spending so far; open commitments are added on top.")
COEFFICIENT = Decimal("0.0001")


def as_json(value):
    """Decimals as strings (money keeps its two places), dates as ISO strings, UUIDs as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(item) for item in value]
    return value


def _period(budget: Budget) -> dict:
    return {"start": budget.period_start, "end": budget.period_end}


# ---- summary ---------------------------------------------------------------------------------------

def spending_summary(*, budgets: QuerySet[Budget], everything: bool = True) -> dict:
    """Totals, per status and per budget. ``everything``: ``budgets`` is every budget, so the
    ledger is summed in one pass over all entries, and costs no budget carries are reported too.
    Three queries: budgets, their category lines, the ledger grouped by budget."""
    rows = list(budgets.only("id", "name", "status", "period_start", "period_end", "total")
                .prefetch_related("lines").order_by("-period_start", "name", "id"))
    entries = CostEntry.objects.order_by()
    if not everything:
        entries = entries.filter(budget_id__in=[b.pk for b in rows])
    ledger = {budget_id: (spent or ZERO, committed or ZERO) for budget_id, spent, committed in (
        entries.values_list("budget_id").annotate(spent=MoneySum("amount", filter=ACTUAL),
                                                   committed=MoneySum("amount", filter=COMMITMENT)))}
    totals = {"budgets": 0, "total": ZERO, "allocated": ZERO, "spent": ZERO, "committed": ZERO}
    by_status: dict[str, dict] = {}
    listed = []
    for budget in rows:
        spent, committed = ledger.get(budget.pk, (ZERO, ZERO))
        allocated = sum((line.amount for line in budget.lines.all()), ZERO)
        available = budget.total - spent - committed
        listed.append({"id": budget.pk, "name": budget.name, "status": budget.status, "period": _period(budget),
                       "total": budget.total, "allocated": allocated, "spent": spent, "committed": committed,
                       "available": available, "utilisation": percent(spent + committed, budget.total)})
        for bucket in (totals, by_status.setdefault(budget.status, {"status": budget.status, "budgets": 0,
                                                                     "total": ZERO, "allocated": ZERO,
                                                                     "spent": ZERO, "committed": ZERO})):
            bucket["budgets"] += 1
            bucket["total"] += budget.total
            bucket["allocated"] += allocated
            bucket["spent"] += spent
            bucket["committed"] += committed
    for bucket in (totals, *by_status.values()):
        bucket["available"] = bucket["total"] - bucket["spent"] - bucket["committed"]
        bucket["utilisation"] = percent(bucket["spent"] + bucket["committed"], bucket["total"])
    unbudgeted = None
    if everything:
        spent, committed = ledger.get(None, (ZERO, ZERO))
        unbudgeted = {"spent": spent, "committed": committed}
    order = {status: i for i, status in enumerate(BudgetStatus.values)}
    return {"currency": settings.BUDGET_CURRENCY, "totals": totals,
            "by_status": sorted(by_status.values(), key=lambda b: order[b["status"]]),
            "budgets": listed, "unbudgeted": unbudgeted}


# ---- trends ----------------------------------------------------------------------------------------

def _months(first: date, last: date) -> list[date]:
    months, current = [], first.replace(day=1)
    while current <= last:
        months.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return months


def spending_trends(*, entries: QuerySet[CostEntry]) -> dict:
    """Spending per month (every month from the first to the last with costs), overall and per
    category, with the cumulative spend: one grouped query."""
    rows = list(entries.order_by().annotate(month=TruncMonth("incurred_on")).values_list("month", "category_id")
                .annotate(spent=MoneySum("amount", filter=ACTUAL), committed=MoneySum("amount", filter=COMMITMENT)))
    if not rows:
        return {"currency": settings.BUDGET_CURRENCY, "granularity": "month", "months": [], "categories": []}
    to_date = [(m.date() if isinstance(m, datetime) else m) for m, *_ in rows]
    months = _months(min(to_date), max(to_date))
    index = {m: i for i, m in enumerate(months)}
    spent, committed = [ZERO] * len(months), [ZERO] * len(months)
    per_category: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO] * len(months))
    for month, (_, category_id, s, c) in zip(to_date, rows):
        i = index[month]
        spent[i] += s or ZERO
        committed[i] += c or ZERO
        per_category[category_id][i] += s or ZERO
    series, cumulative = [], ZERO
    for i, month in enumerate(months):
        cumulative += spent[i]
        series.append({"period": month.strftime("%Y-%m"), "spent": spent[i], "committed": committed[i],
                       "cumulative_spent": cumulative})
    categories = [{"value": c.value, "name": c.name, "color": c.color, "spent": per_category[c.pk]}
                  for c in Category.objects.filter(pk__in=list(per_category))]
    return {"currency": settings.BUDGET_CURRENCY, "granularity": "month", "months": series, "categories": categories}


# ---- forecast --------------------------------------------------------------------------------------

def linear_trend(daily: list[Decimal], days_total: int) -> dict:
    """Fit ``daily`` (spend of days 0..n-1) with a least-squares line and project days n..N-1."""
    n = len(daily)
    if n == 0:
        return {"intercept": ZERO, "slope": ZERO, "projected_remaining": ZERO}
    mean_x = Decimal(n - 1) / 2
    mean_y = sum(daily, ZERO) / n
    if n == 1:
        slope = Decimal(0)
    else:
        sxx = Decimal(n * (n * n - 1)) / 12
        sxy = sum(((Decimal(t) - mean_x) * (y - mean_y) for t, y in enumerate(daily)), Decimal(0))
        slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    projected = sum((max(Decimal(0), intercept + slope * t) for t in range(n, days_total)), Decimal(0))
    return {"intercept": intercept.quantize(COEFFICIENT), "slope": slope.quantize(COEFFICIENT),
            "projected_remaining": cents(projected)}


def spending_forecasts(*, budgets, as_of: date | None = None) -> list[dict]:
    """The forecast of each budget (see the module's docstring). Two queries: the figures and the
    daily actual spend of all of them."""
    budgets = attach_figures(budgets)
    as_of = as_of or timezone.localdate()
    daily: dict = defaultdict(dict)
    if budgets:
        for budget_id, day, amount in (CostEntry.objects.filter(budget_id__in=[b.pk for b in budgets], kind="actual")
                                       .order_by().values_list("budget_id", "incurred_on")
                                       .annotate(total=MoneySum("amount"))):
            daily[budget_id][day] = amount or ZERO
    return [_forecast(budget, daily[budget.pk], as_of) for budget in budgets]


def _forecast(budget: Budget, by_day: dict, as_of: date) -> dict:
    figures = budget.figures
    start, end = budget.period_start, budget.period_end
    days_total = (end - start).days + 1
    days_elapsed = max(0, min(days_total, (as_of - start).days + 1))
    series = [by_day.get(start + timedelta(days=t), ZERO) for t in range(days_elapsed)]
    spent_to_date = sum(series, ZERO)
    spent_after = figures.spent - spent_to_date
    fit = linear_trend(series, days_total)
    forecast_spent = figures.spent + fit["projected_remaining"]
    forecast_consumed = forecast_spent + figures.committed
    run_rate = (spent_to_date / days_elapsed) if days_elapsed else ZERO
    return {
        "budget_id": budget.pk, "name": budget.name, "status": budget.status, "period": _period(budget),
        "as_of": as_of, "total": budget.total, "spent": figures.spent, "committed": figures.committed,
        "forecast_spent": forecast_spent, "forecast_consumed": forecast_consumed,
        "forecast_available": budget.total - forecast_consumed,
        "forecast_utilisation": percent(forecast_consumed, budget.total),
        "projected_overrun": forecast_consumed > budget.total,
        "method": {
            "name": FORECAST_METHOD, "description": FORECAST_DESCRIPTION,
            "inputs": {
                "period_start": start, "period_end": end, "as_of": as_of, "days_total": days_total,
                "days_elapsed": days_elapsed, "days_remaining": days_total - days_elapsed,
                "spent_to_date": spent_to_date, "spent_dated_after_as_of": spent_after,
                "committed": figures.committed, "intercept": fit["intercept"], "slope_per_day": fit["slope"],
                "projected_remaining": fit["projected_remaining"],
                "run_rate_per_day": run_rate.quantize(COEFFICIENT),
                "run_rate_forecast_spent": cents(run_rate * days_total + spent_after) if days_elapsed else figures.spent,
                "daily_spend": series,
            },
        },
    }


# ---- stored reports --------------------------------------------------------------------------------

def build_report(*, kind: str, parameters: dict) -> dict:
    """The content of a report of ``kind`` (full, summary, trends or forecast): ``parameters`` may
    name a ``budget`` (id), a ``date_from``/``date_to`` range for the trends and an ``as_of`` date."""
    budget_id = parameters.get("budget")
    budgets = Budget.objects.all()
    entries = CostEntry.objects.all()
    if budget_id:
        budgets = budgets.filter(pk=budget_id)
        entries = entries.filter(budget_id=budget_id)
    if parameters.get("date_from"):
        entries = entries.filter(incurred_on__gte=parameters["date_from"])
    if parameters.get("date_to"):
        entries = entries.filter(incurred_on__lte=parameters["date_to"])
    as_of = date.fromisoformat(parameters["as_of"]) if parameters.get("as_of") else timezone.localdate()
    content: dict = {"generated_at": timezone.now(), "currency": settings.BUDGET_CURRENCY, "kind": kind,
                     "parameters": parameters}
    if kind in ("full", "summary"):
        content["summary"] = spending_summary(budgets=budgets, everything=not budget_id)
    if kind in ("full", "trends"):
        content["trends"] = spending_trends(entries=entries)
    if kind in ("full", "forecast"):
        open_budgets = budgets.filter(status__in=[BudgetStatus.APPROVED, BudgetStatus.ACTIVE,
                                                  BudgetStatus.MONITORING]).prefetch_related("lines")
        content["forecast"] = spending_forecasts(budgets=open_budgets, as_of=as_of)
    return as_json(content)


__all__ = ["as_json", "build_report", "linear_trend", "spending_forecasts", "spending_summary",
           "spending_trends"]
