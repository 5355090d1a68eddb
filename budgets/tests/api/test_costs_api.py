"""/costs, /budgets/categories, /budgets/notifications, /budgets/reports and /budgets/spending."""

import datetime
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from budgets.models import CostAllocation, CostEntry, NotificationRule, Report
from budgets.tests.conftest import IN_PERIOD
from budgets.tests.factories import CostEntryFactory, NotificationRuleFactory, category

pytestmark = pytest.mark.django_db

COSTS = "/api/v1/costs"
BUDGETS = "/api/v1/budgets"


def _cost(budget_row, **extra):
    return {"budget": str(budget_row.pk), "category": "infrastructure", "service": "api-gateway", "amount": "125.50",
            "incurred_on": IN_PERIOD.isoformat(), "description": "Load balancer", **extra}


def test_record_and_list_costs(controller_api, active):
    data = assert_success(controller_api.post(COSTS, _cost(active)), 201)["data"]
    assert data["amount"] == "125.50" and data["budget"] == {"id": str(active.pk), "name": active.name}
    assert data["category"] == {"value": "infrastructure", "name": "Infrastructure", "color": "#10B981"}
    assert data["over_budget"] is False and data["source"] == "manual"
    assert_success(controller_api.post(COSTS, _cost(active, amount=10, kind="commitment", service="auth")), 201)
    body = assert_success(controller_api.get(COSTS, {"kind": "commitment"}))
    assert [e["amount"] for e in body["data"]] == ["10.00"]
    assert assert_success(controller_api.get(COSTS, {"budget": str(active.pk), "sort": "amount"}))["pagination"][
        "total"] == 2
    assert_error(controller_api.get(COSTS, {"min_amount": "lots"}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("change, code, status", [
    ({"amount": "0.001"}, "VALIDATION_ERROR", 400), ({"amount": "-10"}, "VALIDATION_ERROR", 400),
    ({"amount": -0.01}, "VALIDATION_ERROR", 400), ({"amount": "1e3x"}, "VALIDATION_ERROR", 400),
    ({"amount": 12.345}, "VALIDATION_ERROR", 400), ({"kind": "bribe"}, "VALIDATION_ERROR", 400),
    ({"incurred_on": "2025-13-01"}, "VALIDATION_ERROR", 400), ({"budget": "nope"}, "VALIDATION_ERROR", 400),
    ({"budget": "00000000-0000-0000-0000-000000000000"}, "VALIDATION_ERROR", 400),
    ({"category": "astrology"}, "BUDGET_003", 422), ({"service": "s" * 101}, "VALIDATION_ERROR", 400),
    ({"incurred_on": "2025-05-01"}, "VALIDATION_ERROR", 400), ({"amount": "900.00"}, "BUDGET_001", 422),
    ({"amount": "1000.01"}, "BUDGET_004", 422), ({"metadata": {"x": "y" * 20000}}, "VALIDATION_ERROR", 400),
])
def test_bad_costs_store_nothing(controller_api, active, change, code, status):
    assert_error(controller_api.post(COSTS, _cost(active, **change)), status, code)
    assert not CostEntry.objects.exists()


def test_override_needs_its_permission(api_for, controller_api, active):
    from accounts.models import Role

    writer_role = Role.objects.create(name="budget-writer", permissions=["budget:read", "budget:write"])
    writer = UserFactory(roles=[writer_role.name])
    body = assert_error(api_for(writer).post(COSTS, _cost(active, amount="1000.01", override=True)), 403,
                        "AUTHORIZATION_FAILED")
    assert body["error"]["details"]["field"] == "override"
    assert_error(api_for(writer).post(COSTS, _cost(active, amount="1000.01")), 422, "BUDGET_004")
    data = assert_success(controller_api.post(COSTS, _cost(active, amount="1000.01", override=True)), 201)["data"]
    assert data["over_budget"] is True


def test_allocate(controller_api, active):
    body = {"amount": "100.00", "category": "infrastructure", "incurred_on": IN_PERIOD.isoformat(),
            "budget": str(active.pk), "description": "Shared GPU pool",
            "targets": [{"service": "train", "share": "33.3333"}, {"service": "serve", "share": "33.3333"},
                        {"service": "eval", "share": "33.3334"}]}
    data = assert_success(controller_api.post(f"{COSTS}/allocate", body), 201)["data"]
    assert [(e["service"], e["amount"]) for e in data["entries"]] == [("train", "33.33"), ("serve", "33.33"),
                                                                       ("eval", "33.34")]
    assert data["amount"] == "100.00" and {e["source"] for e in data["entries"]} == {"allocation"}
    for targets in ([{"service": "a", "share": "50"}, {"service": "b", "share": "49.99"}],
                    [{"service": "a", "share": "50.00001"}, {"service": "b", "share": "49.99999"}],
                    [{"service": "a", "share": "-50"}, {"service": "b", "share": "150"}], [], "all"):
        assert_error(controller_api.post(f"{COSTS}/allocate", {**body, "targets": targets}), 400, "VALIDATION_ERROR")
    assert CostAllocation.objects.count() == 1 and CostEntry.objects.count() == 3


def test_groupings(controller_api, active):
    CostEntryFactory(budget=active, service="auth", amount=Decimal("0.10"), incurred_on=datetime.date(2025, 1, 5))
    CostEntryFactory(budget=active, service="auth", amount=Decimal("0.20"), incurred_on=datetime.date(2025, 2, 5),
                     category=category("personnel"))
    CostEntryFactory(budget=active, service="", amount=Decimal("5.00"), kind="commitment",
                     incurred_on=datetime.date(2025, 2, 6))
    by_service = assert_success(controller_api.get(f"{COSTS}/by-service"))["data"]
    assert by_service == [{"key": None, "service": None, "spent": "0.00", "committed": "5.00", "entries": 1},
                          {"key": "auth", "service": "auth", "spent": "0.30", "committed": "0.00", "entries": 2}]
    by_category = {r["key"]: r for r in assert_success(controller_api.get(f"{COSTS}/by-category"))["data"]}
    assert len(by_category) == 8 and by_category["personnel"]["spent"] == "0.20"
    assert by_category["infrastructure"]["committed"] == "5.00" and by_category["marketing"]["entries"] == 0
    by_period = assert_success(controller_api.get(f"{COSTS}/by-period", {"granularity": "month"}))["data"]
    assert [(p["period"], p["spent"], p["cumulative_spent"]) for p in by_period["periods"]] == [
        ("2025-01-01", "0.10", "0.10"), ("2025-02-01", "0.20", "0.30")]
    days = assert_success(controller_api.get(f"{COSTS}/by-period", {"granularity": "day", "service": "auth"}))["data"]
    assert [p["period"] for p in days["periods"]] == ["2025-01-05", "2025-02-05"]
    assert_error(controller_api.get(f"{COSTS}/by-period", {"granularity": "fortnight"}), 400, "VALIDATION_ERROR")
    only_feb = assert_success(controller_api.get(f"{COSTS}/by-service", {"date_from": "2025-02-01"}))["data"]
    assert sum(r["entries"] for r in only_feb) == 2


# ---- categories --------------------------------------------------------------------------------------

def test_seed_004s_categories_and_spending(controller_api, active):
    data = assert_success(controller_api.get(f"{BUDGETS}/categories"))["data"]
    assert [c["name"] for c in data] == ["Personnel", "Infrastructure", "Software & Licenses", "Consulting",
                                         "Training", "Operations", "Marketing", "Contingency"]
    assert_success(controller_api.get(f"{BUDGETS}/categories/infrastructure"))
    CostEntryFactory(budget=active, amount=Decimal("12.00"), incurred_on=datetime.date(2025, 1, 2))
    spending = assert_success(controller_api.get(f"{BUDGETS}/categories/infrastructure/spending"))["data"]
    assert spending["spent"] == "12.00" and spending["budgets"][0]["budget"] == "600.00"
    assert spending["months"] == [{"period": "2025-01-01", "spent": "12.00", "committed": "0.00"}]
    created = assert_success(controller_api.post(f"{BUDGETS}/categories", {"name": "Research", "value": "research",
                                                                           "color": "#abcdef"}), 201)["data"]
    assert created["color"] == "#ABCDEF"
    assert_success(controller_api.put(f"{BUDGETS}/categories/research", {"name": "R&D", "value": "research"}))
    assert_error(controller_api.patch(f"{BUDGETS}/categories/research", {"value": "rd"}), 400, "VALIDATION_ERROR")
    assert_error(controller_api.post(f"{BUDGETS}/categories", {"name": "X", "value": "x", "color": "red"}), 400,
                 "VALIDATION_ERROR")
    assert_error(controller_api.post(f"{BUDGETS}/categories", {"name": "Dup", "value": "research"}), 409,
                 "RESOURCE_CONFLICT")
    assert_error(controller_api.get(f"{BUDGETS}/categories/nope"), 404, "RESOURCE_NOT_FOUND")


# ---- notification rules ------------------------------------------------------------------------------

def test_notification_rules_and_recipients(controller_api, active):
    data = assert_success(controller_api.post(f"{BUDGETS}/notifications", {
        "budget": str(active.pk), "recipient": "Finance@Company.com", "triggers": [100, 75, 90]}), 201)["data"]
    assert data["recipients"] == ["finance@company.com"] and data["triggers"] == [75, 90, 100]
    assert data["budget"] == {"id": str(active.pk), "name": active.name} and data["notified"] == []
    url = f"{BUDGETS}/notifications/{data['id']}"
    data = assert_success(controller_api.put(url, {"recipients": ["a@example.com", "b@example.com"],
                                                   "triggers": [50]}))["data"]
    assert data["recipients"] == ["a@example.com", "b@example.com"]
    assert_success(controller_api.patch(url, {"is_active": False}))
    NotificationRuleFactory(budget=active, recipients=["a@example.com"])
    recipients = assert_success(controller_api.get(f"{BUDGETS}/notifications/recipients"))["data"]
    assert recipients == [{"email": "a@example.com", "rules": 2, "active_rules": 1},
                          {"email": "b@example.com", "rules": 1, "active_rules": 0}]
    assert [r["id"] for r in assert_success(controller_api.get(f"{BUDGETS}/notifications",
                                                               {"recipient": "b@example.com"}))["data"]] == [data["id"]]
    assert_error(controller_api.post(f"{BUDGETS}/notifications", {"recipient": "a@example.com"}), 400,
                 "VALIDATION_ERROR")
    assert_error(controller_api.post(f"{BUDGETS}/notifications", {"budget": str(active.pk), "recipient": "x",
                                                                 "triggers": [75]}), 400, "VALIDATION_ERROR")
    assert controller_api.delete(url).status_code == 204
    assert NotificationRule.objects.count() == 1


# ---- reports and spending ----------------------------------------------------------------------------

def test_generate_read_and_download_a_report(controller_api, active, django_capture_on_commit_callbacks):
    CostEntryFactory(budget=active, amount=Decimal("12.34"), incurred_on=datetime.date(2025, 1, 2))
    with django_capture_on_commit_callbacks(execute=True):
        response = controller_api.post(f"{BUDGETS}/reports/generate", {"kind": "full", "format": "csv",
                                                                       "as_of": "2025-02-01"})
    data = assert_success(response, 202)["data"]
    assert data["status"] == "pending" and data["format"] == "csv"
    assert data["links"]["csv"].endswith(f"/api/v1/budgets/reports/{data['id']}/csv")
    report = assert_success(controller_api.get(f"{BUDGETS}/reports/{data['id']}"))["data"]
    assert report["status"] == "completed" and report["content"]["summary"]["totals"]["spent"] == "12.34"
    csv_response = controller_api.get(f"{BUDGETS}/reports/{data['id']}/csv")
    assert csv_response.status_code == 200 and csv_response["Content-Type"].startswith("text/csv")
    assert b"summary" in csv_response.content and b"12.34" in csv_response.content
    json_response = controller_api.get(f"{BUDGETS}/reports/{data['id']}/json")
    assert json_response.json()["summary"]["totals"]["spent"] == "12.34"
    listed = assert_success(controller_api.get(f"{BUDGETS}/reports"))["data"]
    assert [r["id"] for r in listed] == [data["id"]] and "content" not in listed[0]
    assert_error(controller_api.post(f"{BUDGETS}/reports/generate", {"kind": "everything"}), 400, "VALIDATION_ERROR")
    assert_error(controller_api.post(f"{BUDGETS}/reports/generate", {"date_from": "2025-02-01",
                                                                     "date_to": "2025-01-01"}), 400, "VALIDATION_ERROR")


def test_a_pending_report_is_not_downloadable(controller_api):
    report = Report.objects.create(title="Pending")
    assert_error(controller_api.get(f"{BUDGETS}/reports/{report.pk}/csv"), 409, "RESOURCE_CONFLICT")


def test_spending_endpoints(controller_api, active):
    CostEntryFactory(budget=active, amount=Decimal("100.00"), incurred_on=datetime.date(2025, 1, 1))
    summary = assert_success(controller_api.get(f"{BUDGETS}/spending/summary"))["data"]
    assert summary["totals"]["spent"] == "100.00" and summary["budgets"][0]["available"] == "900.00"
    filtered = assert_success(controller_api.get(f"{BUDGETS}/spending/summary", {"status": "planning"}))["data"]
    assert filtered["totals"]["budgets"] == 0 and filtered["unbudgeted"] is None
    trends = assert_success(controller_api.get(f"{BUDGETS}/spending/trends"))["data"]
    assert trends["months"] == [{"period": "2025-01", "spent": "100.00", "committed": "0.00",
                                 "cumulative_spent": "100.00"}]
    forecast = assert_success(controller_api.get(f"{BUDGETS}/spending/forecast",
                                                 {"budget": str(active.pk), "as_of": "2025-01-10"}))["data"]
    assert forecast["method"]["name"] == "linear_trend" and forecast["method"]["inputs"]["days_elapsed"] == 10
    assert len(forecast["method"]["inputs"]["daily_spend"]) == 10
    everything = assert_success(controller_api.get(f"{BUDGETS}/spending/forecast", {"as_of": "2025-01-10"}))["data"]
    assert [f["budget_id"] for f in everything["forecasts"]] == [str(active.pk)]
    assert_error(controller_api.get(f"{BUDGETS}/spending/forecast", {"as_of": "soon"}), 400, "VALIDATION_ERROR")
    assert_error(controller_api.get(f"{BUDGETS}/spending/forecast", {"budget": "x"}), 400, "VALIDATION_ERROR")
