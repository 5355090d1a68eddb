"""Spending summary, monthly trends and the linear-trend forecast, with their inputs; stored reports
and their CSV."""

import csv
import datetime
import io
from decimal import Decimal

import pytest

from budgets import analytics, services
from budgets.exports import report_csv
from budgets.models import Budget, CostEntry
from budgets.tests.conftest import active_budget, make_budget
from budgets.tests.factories import CostEntryFactory, category

pytestmark = pytest.mark.django_db
D = Decimal


def test_linear_trend_fits_and_projects_exactly():
    # Spend grows by 1.00 a day from 10.00: the line is exact, the rest of a 10-day period projected.
    fit = analytics.linear_trend([D("10.00"), D("11.00"), D("12.00"), D("13.00")], 10)
    assert (fit["intercept"], fit["slope"]) == (D("10.0000"), D("1.0000"))
    assert fit["projected_remaining"] == sum((D(10 + t) for t in range(4, 10)), D(0))
    flat = analytics.linear_trend([D("5.00")], 3)
    assert (flat["slope"], flat["projected_remaining"]) == (D("0.0000"), D("10.00"))
    falling = analytics.linear_trend([D("30.00"), D("20.00"), D("10.00")], 6)  # negative days count as zero
    assert falling["slope"] == D("-10.0000") and falling["projected_remaining"] == D("0.00")
    assert analytics.linear_trend([], 5)["projected_remaining"] == D("0.00")


def test_forecast_states_its_method_and_inputs(controller, cfo_approver):
    budget = active_budget(controller, cfo_approver.user, total="1000.00", period_start=datetime.date(2025, 1, 1),
                           period_end=datetime.date(2025, 1, 10))
    for day, amount in ((1, "10.00"), (2, "20.00"), (4, "40.00")):
        services.cost_record(user=controller, category=category(), amount=amount,
                             incurred_on=datetime.date(2025, 1, day), budget=budget)
    services.cost_record(user=controller, category=category(), amount="100.00", kind="commitment",
                         incurred_on=datetime.date(2025, 1, 2), budget=budget)
    forecast = analytics.spending_forecasts(budgets=Budget.objects.filter(pk=budget.pk).prefetch_related("lines"),
                                            as_of=datetime.date(2025, 1, 4))[0]
    inputs = forecast["method"]["inputs"]
    assert forecast["method"]["name"] == "linear_trend"
    assert inputs["daily_spend"] == [D("10.00"), D("20.00"), D("0.00"), D("40.00")]
    assert (inputs["days_elapsed"], inputs["days_remaining"], inputs["days_total"]) == (4, 6, 10)
    # Least squares through (0,10) (1,20) (2,0) (3,40): slope 7, intercept 7.
    assert (inputs["slope_per_day"], inputs["intercept"]) == (D("7.0000"), D("7.0000"))
    projected = sum((D(7 + 7 * t) for t in range(4, 10)), D(0))
    assert inputs["projected_remaining"] == projected
    assert forecast["forecast_spent"] == D("70.00") + projected
    assert forecast["forecast_consumed"] == D("170.00") + projected
    assert forecast["forecast_available"] == D("1000.00") - D("170.00") - projected
    assert forecast["projected_overrun"] is False
    assert inputs["run_rate_per_day"] == D("17.5000") and inputs["run_rate_forecast_spent"] == D("175.00")
    ended = analytics.spending_forecasts(budgets=Budget.objects.filter(pk=budget.pk).prefetch_related("lines"),
                                         as_of=datetime.date(2025, 2, 1))[0]
    assert ended["forecast_spent"] == D("70.00") and ended["method"]["inputs"]["days_remaining"] == 0


def test_summary_totals_by_status_and_budget(controller, cfo_approver):
    first = active_budget(controller, cfo_approver.user, total="1000.00", name="A")
    second = active_budget(controller, cfo_approver.user, total="500.00", name="B", lines={"personnel": "200.00"})
    make_budget(controller, total="300.00", name="C")
    services.cost_record(user=controller, category=category(), amount="0.10", incurred_on=first.period_start,
                         budget=first)
    services.cost_record(user=controller, category=category(), amount="0.20", incurred_on=first.period_start,
                         budget=first, kind="commitment")
    services.cost_record(user=controller, category=category("personnel"), amount="200.00",
                         incurred_on=first.period_start, budget=second)
    services.cost_record(user=controller, category=category(), amount="9.99", incurred_on=first.period_start)
    summary = analytics.spending_summary(budgets=Budget.objects.all())
    assert summary["totals"] == {"budgets": 3, "total": D("1800.00"), "allocated": D("200.00"),
                                 "spent": D("200.10"), "committed": D("0.20"), "available": D("1599.70"),
                                 "utilisation": D("11.13")}
    assert [(s["status"], s["budgets"], s["spent"]) for s in summary["by_status"]] == [
        ("planning", 1, D("0.00")), ("active", 2, D("200.10"))]
    assert {b["name"]: b["available"] for b in summary["budgets"]} == {"A": D("999.70"), "B": D("300.00"),
                                                                     "C": D("300.00")}
    assert summary["unbudgeted"] == {"spent": D("9.99"), "committed": D("0.00")}
    only_b = analytics.spending_summary(budgets=Budget.objects.filter(name="B"), everything=False)
    assert only_b["totals"]["spent"] == D("200.00") and only_b["unbudgeted"] is None


def test_trends_fill_the_months_between(db):
    CostEntryFactory(incurred_on=datetime.date(2025, 1, 31), amount=D("1.10"))
    CostEntryFactory(incurred_on=datetime.date(2025, 3, 1), amount=D("2.20"), category=category("personnel"))
    CostEntryFactory(incurred_on=datetime.date(2025, 3, 2), amount=D("5.00"), kind="commitment")
    trends = analytics.spending_trends(entries=CostEntry.objects.all())
    assert [(m["period"], m["spent"], m["committed"], m["cumulative_spent"]) for m in trends["months"]] == [
        ("2025-01", D("1.10"), D("0.00"), D("1.10")), ("2025-02", D("0.00"), D("0.00"), D("1.10")),
        ("2025-03", D("2.20"), D("5.00"), D("3.30"))]
    assert {c["value"]: c["spent"] for c in trends["categories"]} == {
        "infrastructure": [D("1.10"), D("0.00"), D("0.00")], "personnel": [D("0.00"), D("0.00"), D("2.20")]}


def test_a_report_as_json_and_csv(controller, cfo_approver):
    budget = active_budget(controller, cfo_approver.user, total="1000.00", name="=HYPERLINK(\"x\")")
    services.cost_record(user=controller, category=category(), amount="12.34", incurred_on=budget.period_start,
                         budget=budget)
    content = analytics.build_report(kind="full", parameters={"as_of": "2025-02-01"})
    assert content["summary"]["totals"]["spent"] == "12.34"  # money as strings, never floats
    assert content["trends"]["months"][0] == {"period": "2025-01", "spent": "12.34", "committed": "0.00",
                                              "cumulative_spent": "12.34"}
    assert content["forecast"][0]["method"]["inputs"]["as_of"] == "2025-02-01"
    rows = list(csv.DictReader(io.StringIO(report_csv(content))))
    sections = {row["section"] for row in rows}
    assert sections == {"summary", "trend", "trend_by_category", "forecast"}
    budget_row = next(r for r in rows if r["section"] == "summary" and r["budget_id"])
    assert budget_row["budget"].startswith("'=")  # a formula is defused
    assert budget_row["spent"] == "12.34" and budget_row["available"] == "987.66"
