"""/budgets: seed 004's Budget entity in and out, the status endpoint, and the approval workflow."""

from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from budgets.models import ApprovalEvent, Budget, BudgetLine, NotificationRule
from budgets.tests.conftest import make_budget, submitted_budget
from budgets.tests.factories import CostEntryFactory
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/budgets"
SEED_BUDGET = {
    "name": "Q1 2024 Infrastructure Budget",
    "period": {"start": "2024-01-01", "end": "2024-03-31"},
    "total": "500000.00",
    "categories": [{"value": "infrastructure", "budget": "200000.00"}, {"value": "personnel", "budget": 150000},
                   {"value": "software", "budget": "100000"}],
    "metadata": {"department": "Engineering", "cost_center": "CC-001", "initiative": "Platform Modernization"},
    "notifications": [{"recipient": "finance@company.com", "triggers": [75, 90, 100], "method": "email",
                       "budget": "00000000-0000-0000-0000-000000000000"}],
}


def test_create_and_read_seed_004s_budget(controller_api, controller):
    project = ProjectFactory()
    body = assert_success(controller_api.post(API, {**SEED_BUDGET, "metadata": {**SEED_BUDGET["metadata"],
                                                                               "project": str(project.pk)}}), 201)
    data = body["data"]
    assert body["message"] == "Budget created"
    assert data["status"] == "planning" and data["period"] == {"start": "2024-01-01", "end": "2024-03-31"}
    assert (data["total"], data["allocated"], data["spent"], data["committed"], data["available"]) == (
        "500000.00", "450000.00", "0.00", "0.00", "500000.00")
    assert [c["value"] for c in data["categories"]] == ["personnel", "infrastructure", "software"]  # seed order
    assert data["categories"][1] == {"name": "Infrastructure", "value": "infrastructure", "color": "#10B981",
                                     "budget": "200000.00", "spent": "0.00", "committed": "0.00",
                                     "utilisation": "0.00"}
    assert data["notifications"][0]["recipient"] == "finance@company.com"
    assert data["notifications"][0]["triggers"] == [75, 90, 100]
    assert data["metadata"] == {"initiative": "Platform Modernization", "department": "Engineering",
                                "project": project.name, "project_id": str(project.pk), "cost_center": "CC-001"}
    assert data["required_approval_level"] == "vp_finance" and data["approvers"] == []
    assert data["created_by"]["username"] == controller.username
    again = assert_success(controller_api.get(f"{API}/{data['id']}"))["data"]
    assert again == data


def test_money_read_from_the_ledger(controller_api, active):
    CostEntryFactory(budget=active, amount=Decimal("0.10"))
    CostEntryFactory(budget=active, amount=Decimal("0.20"), kind="commitment")
    data = assert_success(controller_api.get(f"{API}/{active.pk}"))["data"]
    assert (data["spent"], data["committed"], data["available"], data["utilisation"]) == (
        "0.10", "0.20", "999.70", "0.03")


@pytest.mark.parametrize("change, field", [
    ({"total": "100.001"}, "total"), ({"total": "-1"}, "total"), ({"total": 0}, "total"), ({"total": "NaN"}, "total"),
    ({"total": "1e30"}, "total"), ({"total": True}, "total"), ({"total": None}, "total"),
    ({"period": {"start": "2024-03-01", "end": "2024-01-01"}}, "period"), ({"period": "Q1"}, "period"),
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
    ({"categories": [{"value": "infrastructure", "budget": "1.234"}]}, "categories"),
    ({"categories": "all"}, "categories"), ({"metadata": ["a"]}, "metadata"),
    ({"metadata": {"project": "not-a-uuid"}}, "metadata"),
    ({"notifications": [{"recipient": "nobody", "triggers": [75]}]}, "notifications"),
    ({"notifications": [{"recipient": "a@b.co", "triggers": [0]}]}, "notifications"),
])
def test_hostile_budget_input_is_a_validation_error(controller_api, change, field):
    response = controller_api.post(API, {**SEED_BUDGET, **change})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in body["error"]["details"], body
    assert not Budget.objects.exists() and not NotificationRule.objects.exists()


def test_more_decimals_are_refused_not_rounded(controller_api):
    body = assert_error(controller_api.post(API, {**SEED_BUDGET, "total": 100000.001}), 400, "VALIDATION_ERROR")
    assert "2 decimal places" in body["error"]["message"]


@pytest.mark.parametrize("bad, code, status", [
    ({"categories": [{"value": "astrology", "budget": "1.00"}]}, "BUDGET_003", 422),
    ({"metadata": {"project": "00000000-0000-0000-0000-000000000000"}}, "VALIDATION_ERROR", 400),
    ({"categories": [{"value": "infrastructure", "budget": "600000.00"}]}, "VALIDATION_ERROR", 400),
])
def test_input_checked_by_the_service(controller_api, bad, code, status):
    assert_error(controller_api.post(API, {**SEED_BUDGET, **bad}), status, code)
    assert not Budget.objects.exists()


def test_non_json_bodies_are_refused(controller_api):
    assert_error(controller_api.client.post(API, "{not json", content_type="application/json",
                                            headers=controller_api.headers), 400, "VALIDATION_ERROR")
    assert_error(controller_api.post(API, ["a", "list"]), 400, "VALIDATION_ERROR")


def test_put_patch_and_delete(controller_api, controller, budget):
    url = f"{API}/{budget.pk}"
    data = assert_success(controller_api.put(url, {**SEED_BUDGET, "total": "600000.00"}))["data"]
    assert data["total"] == "600000.00" and len(data["categories"]) == 3
    data = assert_success(controller_api.patch(url, {"description": "Cloud and hardware"}))["data"]
    assert data["description"] == "Cloud and hardware" and data["total"] == "600000.00"
    assert controller_api.delete(url).status_code == 204
    assert not Budget.objects.exists() and not BudgetLine.objects.exists()


def test_unknown_and_malformed_ids_are_404(controller_api):
    assert_error(controller_api.get(f"{API}/00000000-0000-0000-0000-000000000000"), 404, "RESOURCE_NOT_FOUND")
    assert_error(controller_api.get(f"{API}/not-an-id"), 404, "RESOURCE_NOT_FOUND")
    assert_error(controller_api.get(f"{API}/1' OR '1'='1"), 404, "RESOURCE_NOT_FOUND")


def test_list_filters_and_paginates(controller_api, controller):
    for i in range(3):
        make_budget(controller, name=f"Budget {i}", total=f"{i + 1}000.00", department="Ops" if i else "Eng")
    body = assert_success(controller_api.get(API, {"limit": 2, "sort": "-total"}))
    assert [b["total"] for b in body["data"]] == ["3000.00", "2000.00"]
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 3, "pages": 2, "has_next": True, "has_prev": False}
    assert [b["name"] for b in assert_success(controller_api.get(API, {"department": "eng"}))["data"]] == ["Budget 0"]
    assert assert_success(controller_api.get(API, {"search": "'; DROP TABLE budgets_budget; --"}))["data"] == []
    assert_error(controller_api.get(API, {"status": "bogus"}), 400, "VALIDATION_ERROR")
    assert_error(controller_api.get(API, {"active_on": "yesterday"}), 400, "VALIDATION_ERROR")


# ---- status and approvals ----------------------------------------------------------------------------

def test_the_workflow_through_the_api(api_for, controller_api, controller, analyst_approver, director_approver):
    budget = make_budget(controller, total="100000.01")
    url = f"{API}/{budget.pk}"
    data = assert_success(controller_api.post(f"{url}/request-approval", {"reason": "Q1"}))["data"]
    assert data["status"] == "submitted" and data["requested_by"]["username"] == controller.username
    approvals = assert_success(controller_api.get(f"{url}/approvals"))["data"]
    assert approvals["required_level"] == "finance_director"
    assert [a["id"] for a in approvals["eligible_approvers"]] == [director_approver.pk]
    analyst = api_for(analyst_approver.user)
    body = assert_error(analyst.post(f"{url}/approve", {}), 403, "BUDGET_005")
    assert body["error"]["details"]["required_level"] == "finance_director"
    assert_error(controller_api.post(f"{url}/approve", {}), 403, "AUTHORIZATION_FAILED")  # not an approver
    director = api_for(director_approver.user)
    data = assert_success(director.post(f"{url}/approve", {"reason": "ok"}))["data"]
    assert data["status"] == "approved" and data["approvers"][0]["approved"] is True
    assert data["approvers"][0]["role"] == "Finance Director" and data["approvers"][0]["limit"] == "250000.00"
    assert_error(director.post(f"{url}/approve", {}), 409, "RESOURCE_CONFLICT")  # double approval
    data = assert_success(controller_api.patch(f"{url}/status", {"status": "active"}))["data"]
    assert data["status"] == "active"
    assert_error(controller_api.patch(f"{url}/status", {"status": "planning"}), 409, "RESOURCE_CONFLICT")
    assert_error(controller_api.patch(f"{url}/status", {"status": "nope"}), 400, "VALIDATION_ERROR")
    history = assert_success(controller_api.get(f"{url}/approval-history"))["data"]
    assert [(h["action"], h["actor"]["name"], h["reason"]) for h in history] == [
        ("requested", controller.username, "Q1"), ("approved", director_approver.user.username, "ok")]
    assert history[1]["approver"] == {"id": director_approver.pk, "level": "finance_director", "limit": "250000.00"}


def test_approve_by_status_is_budget_002_and_reject_needs_a_reason(api_for, controller_api, controller,
                                                                   analyst_approver):
    budget = submitted_budget(controller, total="10.00")
    url = f"{API}/{budget.pk}"
    assert_error(controller_api.patch(f"{url}/status", {"status": "approved"}), 409, "BUDGET_002")
    analyst = api_for(analyst_approver.user)
    assert_error(analyst.post(f"{url}/reject", {}), 400, "VALIDATION_ERROR")
    assert_error(analyst.post(f"{url}/reject", {"reason": ""}), 400, "VALIDATION_ERROR")
    data = assert_success(analyst.post(f"{url}/reject", {"reason": "Too vague"}))["data"]
    assert data["status"] == "planning" and data["approvers"][0]["approved"] is False
    assert ApprovalEvent.objects.filter(budget=budget, action="rejected", reason="Too vague").exists()


def test_self_approval_through_the_api(api_for, cfo_approver):
    budget = submitted_budget(cfo_approver.user, total="10.00")
    body = assert_error(api_for(cfo_approver.user).post(f"{API}/{budget.pk}/approve", {}), 403,
                        "AUTHORIZATION_FAILED")
    assert body["error"]["details"]["reason"] == "self_approval"


# ---- approvers ---------------------------------------------------------------------------------------

def test_approvers_and_their_limits(controller_api):
    user = UserFactory(first_name="Michael", last_name="Chen", email="michael.chen@company.com")
    data = assert_success(controller_api.post(f"{API}/approvers", {"user_id": str(user.pk), "level": "cfo",
                                                                   "limit": "1000000"}), 201)["data"]
    assert data == {**data, "name": "Michael Chen", "role": "CFO", "limit": "1000000.00", "is_active": True}
    url = f"{API}/approvers/{data['id']}"
    limit = assert_success(controller_api.get(f"{url}/limit", {"amount": "1000000.01"}))["data"]
    assert limit == {"approver_id": data["id"], "level": "cfo", "role": "CFO", "limit": "1000000.00",
                     "level_ceiling": None, "unlimited": False, "is_active": True, "amount": "1000000.01",
                     "covers": False, "required_level": "cfo"}
    assert assert_success(controller_api.get(f"{url}/limit"))["data"].get("covers") is None
    assert_error(controller_api.get(f"{url}/limit", {"amount": "1.001"}), 400, "VALIDATION_ERROR")
    data = assert_success(controller_api.put(url, {"level": "budget_analyst"}))["data"]
    assert data["limit"] == "100000.00"
    body = assert_error(controller_api.patch(url, {"limit": "100000.01"}), 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["ceiling"] == "100000.00"
    assert_error(controller_api.post(f"{API}/approvers", {"user_id": str(user.pk), "level": "cfo"}), 409,
                 "RESOURCE_CONFLICT")
    assert_error(controller_api.post(f"{API}/approvers", {"user_id": str(UserFactory().pk), "level": "boss"}), 400,
                 "VALIDATION_ERROR")
    assert [a["id"] for a in assert_success(controller_api.get(f"{API}/approvers", {"level": "budget_analyst"}))
            ["data"]] == [data["id"]]
    assert controller_api.delete(url).status_code == 204
    assert_error(controller_api.get(url), 404, "RESOURCE_NOT_FOUND")


def test_an_analyst_approver_added_without_a_limit_gets_the_ceiling(controller_api):
    data = assert_success(controller_api.post(f"{API}/approvers", {"user_id": str(UserFactory().pk),
                                                                   "level": "vp_finance"}), 201)["data"]
    assert data["limit"] == "500000.00"
