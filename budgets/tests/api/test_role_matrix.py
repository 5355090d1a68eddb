"""Seed 004's roles against every budgets and costs endpoint (SPEC 3): financial_controller
(budget:*, approval:*, report:*) everything, service_owner (budget:read) the reads, analyst
(report:read) the reports and spending figures, and every other role nothing."""

import pytest

from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import ALL_ROLES, assert_error
from budgets.models import Approver, Budget
from budgets.tests.conftest import IN_PERIOD, active_budget, make_budget, submitted_budget
from budgets.tests.factories import ApproverFactory, ReportFactory
from core.permissions import has_permission

pytestmark = pytest.mark.django_db

API = "/api/v1"
READ, WRITE = ("budget:read",), ("budget:write",)
SPENDING = ("budget:read", "report:read")


def _grants(role, options) -> bool:
    return any(has_permission(BUILTIN_ROLES[role]["permissions"], p) for p in options)


def _endpoints(setup):
    b, active, s1, s2, report, approver = (setup[k] for k in ("planned", "active", "submitted", "submitted2",
                                                              "report", "approver"))
    cost = {"budget": str(active.pk), "category": "infrastructure", "amount": "1.00",
            "incurred_on": IN_PERIOD.isoformat()}
    return [
        ("get", "/budgets", None, 200, READ), ("get", f"/budgets/{b.pk}", None, 200, READ),
        ("get", f"/budgets/{b.pk}/approvals", None, 200, READ),
        ("get", f"/budgets/{b.pk}/approval-history", None, 200, READ),
        ("get", "/budgets/categories", None, 200, READ), ("get", "/budgets/categories/infrastructure", None, 200, READ),
        ("get", "/budgets/categories/infrastructure/spending", None, 200, READ),
        ("get", "/budgets/approvers", None, 200, READ), ("get", f"/budgets/approvers/{approver.pk}", None, 200, READ),
        ("get", f"/budgets/approvers/{approver.pk}/limit", None, 200, READ),
        ("get", "/budgets/notifications", None, 200, READ),
        ("get", "/budgets/notifications/recipients", None, 200, READ),
        ("get", "/costs", None, 200, READ), ("get", "/costs/by-service", None, 200, READ),
        ("get", "/costs/by-category", None, 200, READ), ("get", "/costs/by-period", None, 200, READ),
        ("get", "/budgets/spending/summary", None, 200, SPENDING),
        ("get", "/budgets/spending/trends", None, 200, SPENDING),
        ("get", "/budgets/spending/forecast", None, 200, SPENDING),
        ("get", "/budgets/reports", None, 200, ("report:read",)),
        ("get", f"/budgets/reports/{report.pk}", None, 200, ("report:read",)),
        ("post", "/budgets/reports/generate", {}, 202, ("report:generate",)),
        ("post", "/budgets", {"name": "New", "period": {"start": "2025-01-01", "end": "2025-12-31"},
                              "total": "10.00"}, 201, WRITE),
        ("put", f"/budgets/{b.pk}", {"name": "Renamed", "period": {"start": "2025-01-01", "end": "2025-12-31"},
                                     "total": "20.00"}, 200, WRITE),
        ("patch", f"/budgets/{active.pk}/status", {"status": "monitoring"}, 200, WRITE),
        ("post", "/costs", cost, 201, WRITE),
        ("post", "/costs/allocate", {**cost, "targets": [{"service": "a", "share": "100"}]}, 201, WRITE),
        ("post", "/budgets/categories", {"name": "Research", "value": "research"}, 201, WRITE),
        ("post", "/budgets/notifications", {"budget": str(active.pk), "recipient": "a@example.com"}, 201, WRITE),
        ("post", f"/budgets/{setup['to_request'].pk}/request-approval", {}, 200, ("budget:write", "approval:request")),
        ("post", f"/budgets/{s1.pk}/approve", {}, 200, ("approval:approve",)),
        ("post", f"/budgets/{s2.pk}/reject", {"reason": "No"}, 200, ("approval:reject",)),
        ("post", "/budgets/approvers", {"user_id": str(UserFactory().pk), "level": "budget_analyst"}, 201,
         ("approval:manage",)),
        ("delete", f"/budgets/{setup['to_delete'].pk}", None, 204, WRITE),
    ]


@pytest.fixture
def setup(db):
    owner = UserFactory(roles=["financial_controller"])
    cfo = ApproverFactory(level="cfo", limit=None)
    return {
        "planned": make_budget(owner, name="Planned"), "to_delete": make_budget(owner, name="Doomed"),
        "to_request": make_budget(owner, name="To request"),
        "active": active_budget(owner, cfo.user, name="Active", total="1000.00"),
        "submitted": submitted_budget(owner, name="Submitted", total="10.00"),
        "submitted2": submitted_budget(owner, name="Submitted 2", total="10.00"),
        "report": ReportFactory(), "approver": cfo,
    }


@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_matrix(api_for, setup, role):
    user = UserFactory(roles=[role])
    if _grants(role, ("approval:approve",)):
        Approver.objects.create(user=user, level="cfo", limit=None)
    api = api_for(user)
    for method, path, body, ok, options in _endpoints(setup):
        call = getattr(api, method)
        response = call(API + path, body) if body is not None else call(API + path)
        if _grants(role, options):
            assert response.status_code == ok, (role, method, path, response.content)
        else:
            assert_error(response, 403, "AUTHORIZATION_FAILED")
    if not _grants(role, WRITE):
        assert Budget.objects.filter(name="Doomed").exists()


def test_the_seed_roles_hold_what_the_issue_says():
    assert _grants("financial_controller", ("budget:override",)) and _grants("financial_controller",
                                                                             ("report:generate",))
    assert _grants("service_owner", READ) and not _grants("service_owner", WRITE)
    assert _grants("analyst", ("report:read",)) and not _grants("analyst", READ)
    assert not _grants("test_engineer", ("report:generate",))  # its report:write is for test reports


def test_anonymous_is_401_everywhere(api, setup):
    for method, path, body, _, _ in _endpoints(setup):
        call = getattr(api, method)
        response = call(API + path, body) if body is not None else call(API + path)
        assert_error(response, 401, "AUTHENTICATION_FAILED")


def test_an_api_key_is_narrowed_to_its_scopes(api_for, setup):
    from accounts import services as account_services

    user = UserFactory(roles=["financial_controller"])
    _, raw = account_services.api_key_create(user=user, name="reader", scopes=["budget:read"],
                                             granted=user.permission_strings)
    api = api_for(api_key=raw)
    assert api.get(f"{API}/budgets").status_code == 200
    assert_error(api.post(f"{API}/budgets", {"name": "x"}), 403, "AUTHORIZATION_FAILED")
