"""Lists answer in a number of queries that does not grow with their rows (STYLE item 10)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from budgets.tests.factories import (ApprovalEventFactory, ApproverFactory, BudgetFactory, BudgetLineFactory,
                                     CategoryFactory, CostEntryFactory, NotificationRuleFactory, ReportFactory,
                                     category)

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _count(fetch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = fetch()
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def _same_count_for_2_and_8(fetch, add_rows, size=lambda body: len(body["data"])):
    add_rows(2)
    fetch()
    small = _count(fetch)
    assert size(fetch().json()) == 2
    add_rows(6)
    large = _count(fetch)
    assert size(fetch().json()) == 8
    assert small == large, f"{small} queries for 2 rows, {large} for 8"
    return small


def _budgets(n):
    for i in range(n):
        budget = BudgetFactory(status="active", project=None)
        BudgetLineFactory(budget=budget, category=category("infrastructure"))
        BudgetLineFactory(budget=budget, category=category("personnel"))
        CostEntryFactory(budget=budget, amount=Decimal("1.00"))
        CostEntryFactory(budget=budget, amount=Decimal("2.00"), category=category("marketing"))
        NotificationRuleFactory(budget=budget)
        ApprovalEventFactory(budget=budget, approver=ApproverFactory())


def test_budget_list(controller_api):
    queries = _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets"), _budgets)
    assert queries <= 12


def test_budget_list_with_filters(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets", {"status": "active", "sort": "-total",
                                                                          "active_on": "2025-02-01"}), _budgets)


def test_cost_list(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/costs"),
                            lambda n: CostEntryFactory.create_batch(n, created_by=UserFactory()))


@pytest.mark.parametrize("path, key", [("/costs/by-service", "service"), ("/costs/by-period", None)])
def test_cost_groupings(controller_api, path, key):
    day = iter(range(1, 29))

    def add(n):
        for _ in range(n):
            d = next(day)
            CostEntryFactory(service=f"svc-{d}", incurred_on=datetime.date(2025, 1, d))

    size = (lambda body: len(body["data"])) if key else (lambda body: len(body["data"]["periods"]))
    params = {} if key else {"granularity": "day"}
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}{path}", params), add, size)


def test_by_category(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/costs/by-category"),
                            lambda n: CategoryFactory.create_batch(n),
                            size=lambda body: len(body["data"]) - 8)


def test_summary_and_forecast(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/spending/summary"), _budgets,
                            size=lambda body: len(body["data"]["budgets"]))


def test_forecasts(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/spending/forecast", {"as_of": "2025-02-01"}),
                            _budgets, size=lambda body: len(body["data"]["forecasts"]))


def test_other_lists(controller_api):
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/approvers"),
                            lambda n: ApproverFactory.create_batch(n))
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/notifications"),
                            lambda n: NotificationRuleFactory.create_batch(n))
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/reports"),
                            lambda n: ReportFactory.create_batch(n))


def test_approval_history(controller_api):
    budget = BudgetFactory()
    _same_count_for_2_and_8(lambda: controller_api.get(f"{API}/budgets/{budget.pk}/approval-history"),
                            lambda n: ApprovalEventFactory.create_batch(n, budget=budget))
