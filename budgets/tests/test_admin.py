"""Financial controllers approve in the Django admin: actions with a reason page and the change
page's buttons, under the API's rules (the same services)."""

import pytest

from accounts.tests.factories import UserFactory
from budgets.models import ApprovalEvent, CostEntry
from budgets.tests.conftest import approver_at, make_budget, submitted_budget
from budgets.tests.factories import CostEntryFactory, NotificationRuleFactory, ReportFactory

pytestmark = pytest.mark.django_db


def _admin_client(client, user):
    user.is_staff = True
    user.is_superuser = False
    user.save()
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(content_type__app_label="budgets"))
    client.force_login(user)
    return client


@pytest.fixture
def analyst(db):
    """A financial controller who approves as a Budget Analyst (up to 100,000)."""
    return approver_at("budget_analyst", username="ann").user


@pytest.fixture
def web(client, analyst):
    return _admin_client(client, analyst)


def _action(web, url, action, budgets, **extra):
    return web.post(url, {"action": action, "_selected_action": [str(b.pk) for b in budgets], **extra})


def test_every_budgets_admin_page_opens(web, controller):
    budget = submitted_budget(controller, total="10.00")
    CostEntryFactory()
    NotificationRuleFactory(budget=budget)
    report = ReportFactory()
    pages = ["/admin/budgets/budget/", f"/admin/budgets/budget/{budget.pk}/change/", "/admin/budgets/pendingbudget/",
             f"/admin/budgets/pendingbudget/{budget.pk}/change/", "/admin/budgets/category/",
             "/admin/budgets/approver/", "/admin/budgets/costentry/", "/admin/budgets/budgetnotification/",
             "/admin/budgets/report/", f"/admin/budgets/report/{report.pk}/change/", "/admin/budgets/budget/add/"]
    for page in pages:
        assert web.get(page).status_code == 200, page
    queue = web.get("/admin/budgets/pendingbudget/").content.decode()
    assert budget.name in queue and "Budget Analyst" in queue


def test_approve_with_the_action_and_its_reason_page(web, controller, analyst):
    budgets = [submitted_budget(controller, name=f"B{i}", total="100000.00") for i in range(2)]
    url = "/admin/budgets/pendingbudget/"
    page = _action(web, url, "approve_selected", budgets)
    assert page.status_code == 200 and b"Approve these budgets" in page.content
    response = _action(web, url, "approve_selected", budgets, confirm="yes", reason="Within plan")
    assert response.status_code == 302
    for budget in budgets:
        budget.refresh_from_db()
        assert budget.status == "approved" and budget.approved_by == analyst
        event = ApprovalEvent.objects.get(budget=budget, action="approved")
        assert (event.channel, event.reason, event.actor) == ("admin", "Within plan", analyst)


def test_the_admin_keeps_the_limits_and_self_approval_rule(web, controller, analyst):
    over = submitted_budget(controller, name="Over", total="100000.01")
    own = submitted_budget(analyst, name="Own", total="10.00")
    response = _action(web, "/admin/budgets/budget/", "approve_selected", [over, own], confirm="yes", reason="")
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("BUDGET_005" in m for m in messages) and any("own approval request" in m for m in messages)
    for budget in (over, own):
        budget.refresh_from_db()
        assert budget.status == "submitted"


def test_reject_needs_a_reason(web, controller):
    budget = submitted_budget(controller, total="10.00")
    page = _action(web, "/admin/budgets/pendingbudget/", "reject_selected", [budget], confirm="yes", reason=" ")
    assert page.status_code == 200 and b"A rejection says why" in page.content
    budget.refresh_from_db()
    assert budget.status == "submitted"
    _action(web, "/admin/budgets/pendingbudget/", "reject_selected", [budget], confirm="yes", reason="Too big")
    budget.refresh_from_db()
    assert budget.status == "planning"
    assert ApprovalEvent.objects.get(budget=budget, action="rejected").reason == "Too big"


def test_the_change_page_buttons(web, controller, analyst):
    budget = submitted_budget(controller, total="500.00")
    change = web.get(f"/admin/budgets/budget/{budget.pk}/change/").content.decode()
    decide = f"/admin/budgets/budget/{budget.pk}/decide/approve/"
    assert decide in change and f"/admin/budgets/budget/{budget.pk}/decide/reject/" in change
    assert web.get(decide).status_code == 200
    response = web.post(decide, {"reason": "Looks right"})
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/budgets/budget/{budget.pk}/change/")
    budget.refresh_from_db()
    assert budget.status == "approved"
    assert "decide/approve" not in web.get(f"/admin/budgets/budget/{budget.pk}/change/").content.decode()
    # Approving again from the page: the service's 409, shown as a message, nothing changes.
    web.post(decide, {"reason": "again"})
    assert ApprovalEvent.objects.filter(budget=budget, action="approved").count() == 1


def test_staff_without_the_approval_permission_cannot_decide(client, controller):
    clerk = UserFactory(roles=["service_owner"])
    web = _admin_client(client, clerk)
    budget = submitted_budget(controller, total="10.00")
    assert web.get(f"/admin/budgets/budget/{budget.pk}/decide/approve/").status_code == 403
    _action(web, "/admin/budgets/budget/", "approve_selected", [budget], confirm="yes", reason="")
    budget.refresh_from_db()
    assert budget.status == "submitted"


def test_the_ledger_is_read_only_and_approved_money_is_frozen(web, controller, analyst):
    entry = CostEntryFactory()
    assert web.get("/admin/budgets/costentry/add/").status_code == 403
    web.post(f"/admin/budgets/costentry/{entry.pk}/change/", {"amount": "1.00"})
    entry.refresh_from_db()
    assert str(entry.amount) == "100.00" and CostEntry.objects.count() == 1
    budget = submitted_budget(controller, total="10.00")
    page = web.get(f"/admin/budgets/budget/{budget.pk}/change/").content.decode()
    assert 'name="total"' not in page  # read-only once submitted
    planned = make_budget(controller)
    assert 'name="total"' in web.get(f"/admin/budgets/budget/{planned.pk}/change/").content.decode()
