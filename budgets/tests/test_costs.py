"""The ledger's booking rules: approved budgets only, within their period, never past what is
available (BUDGET_004) or a category's budget (BUDGET_001) without an override, bad amounts refused
with nothing stored, and allocations that split to the cent or not at all."""

import datetime
from decimal import Decimal

import pytest

from budgets import selectors, services
from budgets.models import CostAllocation, CostEntry
from budgets.tests.conftest import IN_PERIOD, make_budget, submitted_budget
from budgets.tests.factories import category
from core.exceptions import ApplicationError
from core.models import Event

pytestmark = pytest.mark.django_db


def _record(user, budget, amount, value="infrastructure", **kwargs):
    return services.cost_record(user=user, category=category(value), amount=amount,
                                incurred_on=kwargs.pop("incurred_on", IN_PERIOD), budget=budget, **kwargs)


def test_booking_updates_the_derived_figures(controller, active):
    _record(controller, active, "100.00", service="api-gateway")
    _record(controller, active, "50.50", kind="commitment")
    _record(controller, active, Decimal("0.01"), value="personnel")
    figures = selectors.budget_figures(active)
    assert (figures.spent, figures.committed, figures.available) == (
        Decimal("100.01"), Decimal("50.50"), Decimal("849.49"))
    assert figures.utilisation == Decimal("15.05")
    assert figures.by_category[category("infrastructure").pk] == [Decimal("100.00"), Decimal("50.50")]
    assert Event.objects.filter(event="budget.cost_recorded").count() == 3
    entry = CostEntry.objects.get(service="api-gateway")
    assert entry.created_by == controller and entry.source == "manual" and not entry.over_budget


def test_costs_need_an_approved_open_budget(controller, analyst_approver, active):
    planned = make_budget(controller)
    submitted = submitted_budget(controller, name="Submitted")
    for budget in (planned, submitted):
        with pytest.raises(ApplicationError) as exc:
            _record(controller, budget, "1.00")
        assert exc.value.code == "BUDGET_002" and exc.value.http_status == 409
    services.budget_status_set(budget=active, user=controller, status="closed")
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "1.00")
    assert exc.value.code == "RESOURCE_CONFLICT"
    assert not CostEntry.objects.exists()


def test_costs_fall_in_the_budgets_period(controller, active):
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "1.00", incurred_on=datetime.date(2025, 4, 1))
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.details["field"] == "incurred_on"
    assert not CostEntry.objects.exists()


def test_more_than_available_is_budget_004(controller, active):
    _record(controller, active, "600.00")
    _record(controller, active, "399.99", value="personnel")
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "0.02", value="personnel")
    assert exc.value.code == "BUDGET_004" and exc.value.http_status == 422
    assert exc.value.details == {"budget_id": str(active.pk), "amount": "0.02", "available": "0.01",
                                 "shortfall": "0.01"}
    _record(controller, active, "0.01", value="personnel")  # exactly what is left
    assert selectors.budget_figures(active).available == Decimal("0.00")


def test_more_than_a_categorys_budget_is_budget_001(controller, active):
    _record(controller, active, "599.99")
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "0.02")
    assert exc.value.code == "BUDGET_001"
    assert exc.value.details["category_budget"] == "600.00" and exc.value.details["category_available"] == "0.01"
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "1.00", value="marketing")  # no line: nothing planned for it
    assert exc.value.code == "BUDGET_001"
    assert CostEntry.objects.count() == 1


def test_a_budget_without_lines_checks_only_its_total(controller, cfo_approver):
    from budgets.tests.conftest import active_budget

    budget = active_budget(controller, cfo_approver.user, total="10.00")
    _record(controller, budget, "10.00", value="marketing")
    with pytest.raises(ApplicationError) as exc:
        _record(controller, budget, "0.01", value="marketing")
    assert exc.value.code == "BUDGET_004"


def test_an_override_books_past_the_limits_and_flags_it(controller, active):
    entry = _record(controller, active, "1500.00", override=True)
    assert entry.over_budget is True
    assert selectors.budget_figures(active).available == Decimal("-500.00")
    assert _record(controller, active, "0.01", value="personnel", override=True).over_budget is True


@pytest.mark.parametrize("amount", ["0.001", "10.555", "-1.00", "-0.01", "0", "0.00", 12.5, "NaN", "1e400",
                                    "twelve", "1000000000000.00"])
def test_bad_amounts_are_validation_errors_and_nothing_is_stored(controller, active, amount):
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, amount)
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.http_status == 400
    assert exc.value.details["field"] == "amount"
    assert not CostEntry.objects.exists() and not Event.objects.filter(event="budget.cost_recorded").exists()


def test_an_inactive_category_is_budget_003(controller, active):
    marketing = category("marketing")
    marketing.is_active = False
    marketing.save()
    with pytest.raises(ApplicationError) as exc:
        _record(controller, active, "1.00", value="marketing")
    assert exc.value.code == "BUDGET_003"


def test_costs_without_a_budget(controller):
    entry = _record(controller, None, "12.34", service="gpu-pool")
    assert entry.budget is None
    assert selectors.costs_by_service(CostEntry.objects.all())[0]["spent"] == Decimal("12.34")


# ---- allocation ------------------------------------------------------------------------------------

def test_allocate_across_budgets_to_the_cent(controller, cfo_approver, active):
    from budgets.tests.conftest import active_budget

    other = active_budget(controller, cfo_approver.user, name="Other", total="1000.00")
    allocation = services.cost_allocate(
        user=controller, amount="100.00", category=category("infrastructure"), incurred_on=IN_PERIOD,
        targets=[{"budget": active, "share": Decimal("33.3333")}, {"budget": other, "share": Decimal("66.6667")}],
        description="Shared cluster")
    parts = {e.budget_id: e.amount for e in allocation.entries.all()}
    assert parts == {active.pk: Decimal("33.33"), other.pk: Decimal("66.67")}
    assert sum(parts.values()) == allocation.amount == Decimal("100.00")
    assert {e.source for e in allocation.entries.all()} == {"allocation"}
    assert allocation.shares[0]["amount"] == "33.33"


def test_allocate_across_services(controller, active):
    services.cost_allocate(user=controller, amount="10.00", category=category("infrastructure"), budget=active,
                           incurred_on=IN_PERIOD, targets=[{"service": "auth", "share": Decimal("25")},
                                                           {"service": "users", "share": Decimal("75")}])
    assert dict(CostEntry.objects.values_list("service", "amount")) == {"auth": Decimal("2.50"),
                                                                       "users": Decimal("7.50")}


@pytest.mark.parametrize("shares", [["50", "49.9999"], ["60", "60"], ["100", "0.0001"], ["50"]])
def test_shares_that_do_not_add_up_store_nothing(controller, active, shares):
    with pytest.raises(ApplicationError) as exc:
        services.cost_allocate(user=controller, amount="100.00", category=category("infrastructure"),
                               budget=active, incurred_on=IN_PERIOD,
                               targets=[{"service": f"s{i}", "share": Decimal(s)} for i, s in enumerate(shares)])
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.details["field"] == "targets"
    assert not CostEntry.objects.exists() and not CostAllocation.objects.exists()


@pytest.mark.parametrize("targets, field", [
    ([{"service": "a", "share": "-10"}, {"service": "b", "share": "110"}], "targets[0].share"),
    ([{"service": "a", "share": "50.00001"}, {"service": "b", "share": "49.99999"}], "targets[0].share"),
    ([{"service": "a", "share": 50.0}, {"service": "b", "share": "50"}], "targets[0].share"),
    ([{"service": "a", "share": "50"}, {"service": "a", "share": "50"}], "targets[1]"),
    ([], "targets"),
])
def test_bad_targets_store_nothing(controller, active, targets, field):
    with pytest.raises(ApplicationError) as exc:
        services.cost_allocate(user=controller, amount="100.00", category=category("infrastructure"),
                               budget=active, incurred_on=IN_PERIOD, targets=targets)
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.details["field"] == field
    assert not CostEntry.objects.exists() and not CostAllocation.objects.exists()


def test_too_small_to_split_stores_nothing(controller, active):
    with pytest.raises(ApplicationError) as exc:
        services.cost_allocate(user=controller, amount="0.01", category=category("infrastructure"), budget=active,
                               incurred_on=IN_PERIOD, targets=[{"service": "a", "share": Decimal("50")},
                                                               {"service": "b", "share": Decimal("50")}])
    assert exc.value.code == "VALIDATION_ERROR"
    assert not CostAllocation.objects.exists()


def test_one_refused_part_refuses_the_whole_allocation(controller, cfo_approver, active):
    from budgets.tests.conftest import active_budget

    small = active_budget(controller, cfo_approver.user, name="Small", total="10.00")
    with pytest.raises(ApplicationError) as exc:
        services.cost_allocate(user=controller, amount="100.00", category=category("infrastructure"),
                               incurred_on=IN_PERIOD, targets=[{"budget": active, "share": Decimal("50")},
                                                               {"budget": small, "share": Decimal("50")}])
    assert exc.value.code == "BUDGET_004" and exc.value.details["budget_id"] == str(small.pk)
    assert not CostEntry.objects.exists() and not CostAllocation.objects.exists()
