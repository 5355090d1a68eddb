"""The budget pages: list and detail with utilisation bars and the spending chart (Chart.js from
static/, no inline script), the lifecycle moves on a budget's page, the approval queue and the
reports."""

import datetime
import html as html_lib
import json
import re
from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.tests.factories import UserFactory
from budgets import services
from budgets.models import ApprovalEvent, Budget, Report
from budgets.tests.conftest import active_budget, approver_at, make_budget, submitted_budget
from budgets.tests.factories import BudgetFactory, CostEntryFactory, ReportFactory, category

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, controller):
    client.force_login(controller)
    return client


def test_the_budget_pages(web, controller, active):
    CostEntryFactory(budget=active, amount=Decimal("300.00"), incurred_on=datetime.date(2025, 1, 10))
    CostEntryFactory(budget=active, amount=Decimal("200.00"), incurred_on=datetime.date(2025, 2, 10),
                     category=category("personnel"))
    listing = web.get("/budgets/").content.decode()
    assert active.name in listing and 'class="utilisation"' in listing and 'value="50.00"' in listing
    page = web.get(f"/budgets/{active.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-category="infrastructure"' in html and 'value="50.00"' in html  # 300 of 600
    assert '<canvas id="spending-trend"' in html
    chart = json.loads(re.search(r'<script id="budget-chart-data" type="application/json">(.*?)</script>', html,
                                 re.S).group(1))
    assert chart["labels"] == ["2025-01", "2025-02"] and chart["cumulative"] == ["300.00", "500.00"]
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all("src=" in s or 'type="application/json"' in s for s in scripts)  # no inline script (CSP)
    assert "/static/vendor/chartjs/chart.umd.min.js" in html and "/static/js/budgets.js" in html
    assert "cdn" not in html.lower()
    assert "style=" not in html
    assert "linear_trend" not in html and "Forecast" in html
    assert finders.find("vendor/chartjs/chart.umd.min.js") and finders.find("js/budgets.js")
    assert "default-src 'self'" in page["Content-Security-Policy"]


def test_the_nav_links_to_the_budget_pages(web):
    html = web.get("/budgets/").content.decode()
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    assert 'href="/budgets/"' in nav and 'href="/budgets/approvals/"' in nav and 'href="/budgets/reports/"' in nav


def test_decide_from_the_approval_queue(client, controller):
    approver = approver_at("budget_analyst", username="ann")
    client.force_login(approver.user)
    budget = submitted_budget(controller, total="100.00")
    over = submitted_budget(controller, name="Big", total="100000.01")
    html = client.get("/budgets/approvals/").content.decode()
    assert budget.name in html and "Over your limit" in html
    response = client.post(f"/budgets/{budget.pk}/decide/", {"decision": "approve", "reason": "ok",
                                                             "next": "/budgets/approvals/"})
    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.status == "approved" and budget.approval_events.get(action="approved").channel == "page"
    client.post(f"/budgets/{over.pk}/decide/", {"decision": "approve"})
    over.refresh_from_db()
    assert over.status == "submitted"
    client.post(f"/budgets/{over.pk}/decide/", {"decision": "reject", "reason": ""})
    over.refresh_from_db()
    assert over.status == "submitted"
    client.post(f"/budgets/{over.pk}/decide/", {"decision": "reject", "reason": "Too big for Q1"})
    over.refresh_from_db()
    assert over.status == "planning"


def test_reports_page_generates_and_prints(web, active, django_capture_on_commit_callbacks):
    CostEntryFactory(budget=active, amount=Decimal("12.34"))
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post("/budgets/reports/", {"kind": "full", "format": "html", "as_of": "2025-02-01"})
    assert response.status_code == 302
    report = Report.objects.get()
    assert report.status == "completed" and report.parameters == {"as_of": "2025-02-01"}
    html = web.get("/budgets/reports/").content.decode()
    assert f"/budgets/reports/{report.pk}/print/" in html and f"/api/v1/budgets/reports/{report.pk}/csv" in html
    printable = web.get(f"/budgets/reports/{report.pk}/print/").content.decode()
    assert "12.34" in printable and "Monthly trends" in printable and "data-print" in printable


def test_pages_follow_the_roles(client):
    budget = BudgetFactory()
    report = ReportFactory()
    cases = {"service_owner": {"/budgets/": 200, f"/budgets/{budget.pk}/": 200, "/budgets/approvals/": 200,
                               "/budgets/reports/": 403},
             "analyst": {"/budgets/": 403, "/budgets/reports/": 200, f"/budgets/reports/{report.pk}/print/": 200},
             "ml_engineer": {"/budgets/": 403, f"/budgets/{budget.pk}/": 403, "/budgets/approvals/": 403,
                             "/budgets/reports/": 403}}
    for role, pages in cases.items():
        client.force_login(UserFactory(roles=[role]))
        for url, status in pages.items():
            assert client.get(url).status_code == status, (role, url)
    client.force_login(UserFactory(roles=["analyst"]))
    assert client.post("/budgets/reports/", {"kind": "full", "format": "json"}).status_code == 403
    client.logout()
    assert client.get("/budgets/").status_code == 302


def test_unknown_budget_page_is_404(web):
    assert web.get("/budgets/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_the_list_page_has_a_constant_query_count(web, controller, cfo_approver):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert web.get("/budgets/").status_code == 200
        return len(ctx.captured_queries)

    for i in range(2):
        active_budget(controller, cfo_approver.user, name=f"A{i}", total="10.00", lines={"infrastructure": "5.00"})
    small = count()
    for i in range(6):
        active_budget(controller, cfo_approver.user, name=f"B{i}", total="10.00", lines={"infrastructure": "5.00"})
    assert count() == small


# ---- the lifecycle on a budget's page -------------------------------------------------------------

MOVE_BUTTONS = {"submitted": "Request approval", "active": "Activate", "monitoring": "Monitor", "closed": "Close"}


def budget_at(status: str, controller, approver_user, **kwargs) -> Budget:
    """A budget brought to ``status`` through the real services."""
    budget = make_budget(controller, **kwargs)
    steps = {"submitted": ["submitted"], "approved": ["submitted", "approved"],
             "active": ["submitted", "approved", "active"],
             "monitoring": ["submitted", "approved", "active", "monitoring"],
             "closed": ["submitted", "approved", "active", "closed"]}.get(status, [])
    for step in steps:
        if step == "submitted":
            services.budget_request_approval(budget=budget, user=controller)
        elif step == "approved":
            services.budget_approve(budget=budget, user=approver_user)
        else:
            services.budget_status_set(budget=budget, user=controller, status=step)
    budget.refresh_from_db()
    assert budget.status == status
    return budget


def lifecycle(html: str) -> list[tuple[str, str]]:
    """The (status, label) of each move the page's lifecycle form offers."""
    section = re.search(r'<section class="card" id="lifecycle">(.*?)</section>', html, re.S)
    if section is None:
        return []
    return re.findall(r'<button type="submit" name="status" value="(\w+)"[^>]*>([^<]+)</button>', section.group(1))


def shown_messages(response) -> list[tuple[str, str]]:
    return [(level, html_lib.unescape(text)) for level, text in
            re.findall(r'<li class="msg (\w+)" role="status">(.*?)</li>', response.content.decode(), re.S)]


@pytest.fixture
def requester(db):
    """Someone who may ask for approval (``approval:request``) and read budgets, nothing more."""
    role = Role.objects.create(name="budget-requester", permissions=["budget:read", "approval:request"])
    return UserFactory(username="rita", roles=[role.name])


def test_the_page_offers_the_moves_the_lifecycle_and_the_user_allow(client, controller, cfo_approver, requester):
    expected = {"planning": ["submitted"], "submitted": [], "approved": ["active", "closed"],
                "active": ["monitoring", "closed"], "monitoring": ["active", "closed"], "closed": []}
    budgets = {status: budget_at(status, controller, cfo_approver.user, name=f"B {status}") for status in expected}
    client.force_login(controller)
    for status, moves in expected.items():
        html = client.get(f"/budgets/{budgets[status].pk}/").content.decode()
        assert lifecycle(html) == [(m, MOVE_BUTTONS[m]) for m in moves], status
        assert ('id="lifecycle"' in html) == bool(moves)
    # Closing asks first (budgets.js reads data-confirm); the form posts with its CSRF token.
    html = client.get(f"/budgets/{budgets['active'].pk}/").content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" class="lifecycle">(.*?)</form>', html, re.S)
    assert form.group(1) == f"/budgets/{budgets['active'].pk}/status/"
    assert 'name="csrfmiddlewaretoken"' in form.group(2) and 'name="reason"' not in form.group(2)
    assert re.search(r'value="closed" class="danger" data-confirm="Close this budget\?', form.group(2))
    assert 'name="reason"' in client.get(f"/budgets/{budgets['planning'].pk}/").content.decode()
    # approval:request alone: the request, never the plain moves (budget:write's).
    client.force_login(requester)
    for status, moves in expected.items():
        html = client.get(f"/budgets/{budgets[status].pk}/").content.decode()
        assert lifecycle(html) == ([("submitted", "Request approval")] if status == "planning" else []), status
    # budget:read alone: no move at all.
    client.force_login(UserFactory(roles=["service_owner"]))
    for status in expected:
        assert lifecycle(client.get(f"/budgets/{budgets[status].pk}/").content.decode()) == [], status


def test_each_move_from_the_page(client, controller, cfo_approver):
    budget = make_budget(controller, name="Q1 2025 Infrastructure")
    client.force_login(controller)
    url = f"/budgets/{budget.pk}/status/"

    response = client.post(url, {"status": "submitted", "reason": "Q1 plan agreed"}, follow=True)
    assert response.redirect_chain == [(f"/budgets/{budget.pk}/", 302)]
    assert shown_messages(response) == [("success", "Q1 2025 Infrastructure: approval requested.")]
    budget.refresh_from_db()
    assert budget.status == "submitted" and budget.requested_by == controller and budget.requested_at
    event = ApprovalEvent.objects.get(budget=budget)
    assert (event.action, event.channel, event.reason, event.actor) == ("requested", "page", "Q1 plan agreed",
                                                                        controller)
    assert "via Dashboard page" in response.content.decode() and lifecycle(response.content.decode()) == []

    services.budget_approve(budget=budget, user=cfo_approver.user)
    for target, message in (("active", "active."), ("monitoring", "in monitoring."), ("active", "active."),
                            ("closed", "closed.")):
        response = client.post(url, {"status": target}, follow=True)
        assert shown_messages(response) == [("success", f"Q1 2025 Infrastructure: {message}")], target
        budget.refresh_from_db()
        assert budget.status == target
    assert budget.closed_at is not None
    assert lifecycle(response.content.decode()) == []
    # The plain moves are not approval steps: the history holds the request and the approval only.
    assert list(budget.approval_events.order_by("created_at").values_list("action", flat=True)) == \
        ["requested", "approved"]


def test_a_stale_form_shows_the_error_and_changes_nothing(client, controller, cfo_approver):
    client.force_login(controller)
    planned = make_budget(controller, name="Planned")
    assert lifecycle(client.get(f"/budgets/{planned.pk}/").content.decode()) == [("submitted", "Request approval")]
    services.budget_request_approval(budget=planned, user=controller, reason="from another tab")
    response = client.post(f"/budgets/{planned.pk}/status/", {"status": "submitted", "reason": "again"}, follow=True)
    assert response.status_code == 200
    assert shown_messages(response) == [
        ("error", "Planned: A budget that is submitted cannot become submitted (RESOURCE_CONFLICT)")]
    assert "Traceback" not in response.content.decode()
    planned.refresh_from_db()
    assert planned.status == "submitted"
    assert list(planned.approval_events.values_list("reason", flat=True)) == ["from another tab"]

    active = budget_at("active", controller, cfo_approver.user, name="Running")
    assert [m for m, _ in lifecycle(client.get(f"/budgets/{active.pk}/").content.decode())] == ["monitoring", "closed"]
    services.budget_status_set(budget=active, user=controller, status="closed")
    closed_at = Budget.objects.get(pk=active.pk).closed_at
    for target in ("monitoring", "closed", "active"):
        response = client.post(f"/budgets/{active.pk}/status/", {"status": target}, follow=True)
        assert shown_messages(response) == [
            ("error", f"Running: A budget that is closed cannot become {target} (RESOURCE_CONFLICT)")], target
        active.refresh_from_db()
        assert active.status == "closed" and active.closed_at == closed_at

    # A submitted budget moves only through an approver's decision; the form offers no other move.
    submitted = submitted_budget(controller, name="Waiting")
    response = client.post(f"/budgets/{submitted.pk}/status/", {"status": "active"}, follow=True)
    assert shown_messages(response) == [
        ("error", "Waiting: A budget that is submitted cannot become active (RESOURCE_CONFLICT)")]
    for posted in ({"status": "approved"}, {"status": "planning"}, {}, {"status": "submitted", "reason": "x" * 2001}):
        response = client.post(f"/budgets/{submitted.pk}/status/", posted, follow=True)
        [(level, text)] = shown_messages(response)
        assert level == "error" and text.startswith("Waiting: ") and "Traceback" not in text, posted
    submitted.refresh_from_db()
    assert submitted.status == "submitted" and submitted.approval_events.count() == 1


def test_moves_are_permission_checked_like_the_api(client, api_for, controller, cfo_approver, requester):
    """For each person and each move, the page refuses (403) exactly when the API does, and then
    nothing changes; where both allow it, both make the move."""
    people = {"controller": controller, "requester": requester,
              "service_owner": UserFactory(roles=["service_owner"]), "ml_engineer": UserFactory(roles=["ml_engineer"])}
    moves = {"submitted": "planning", "active": "approved", "monitoring": "active", "closed": "active"}
    refused = set()
    for who, user in people.items():
        client.force_login(user)
        api = api_for(user)
        for target, source in moves.items():
            on_page = budget_at(source, controller, cfo_approver.user, name=f"page {who} {target}")
            on_api = budget_at(source, controller, cfo_approver.user, name=f"api {who} {target}")
            page = client.post(f"/budgets/{on_page.pk}/status/", {"status": target})
            if target == "submitted":
                answer = api.post(f"/api/v1/budgets/{on_api.pk}/request-approval", {})
            else:
                answer = api.patch(f"/api/v1/budgets/{on_api.pk}/status", {"status": target})
            assert (page.status_code == 403) == (answer.status_code == 403), (who, target, page, answer.content)
            assert page.status_code in (302, 403) and answer.status_code in (200, 403)
            on_page.refresh_from_db()
            on_api.refresh_from_db()
            assert on_page.status == on_api.status == (source if page.status_code == 403 else target), (who, target)
            if page.status_code == 403:
                refused.add((who, target))
                assert not ApprovalEvent.objects.filter(budget=on_page, channel="page").exists()
    assert refused == {("service_owner", t) for t in moves} | {("ml_engineer", t) for t in moves} | \
        {("requester", t) for t in ("active", "monitoring", "closed")}


def test_moves_refuse_the_anonymous_unknown_budgets_gets_and_missing_csrf(client, controller, cfo_approver):
    budget = make_budget(controller)
    url = f"/budgets/{budget.pk}/status/"
    response = client.post(url, {"status": "submitted"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(controller)
    assert client.post("/budgets/00000000-0000-0000-0000-000000000000/status/",
                       {"status": "submitted"}).status_code == 404
    assert client.get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(controller)
    assert strict.post(url, {"status": "submitted"}).status_code == 403
    budget.refresh_from_db()
    assert budget.status == "planning" and not budget.approval_events.exists()
