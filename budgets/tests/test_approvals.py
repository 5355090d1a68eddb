"""Seed 004's approval hierarchy through the services: limits at their exact boundaries, nobody
approving their own request, a budget decided once, and every step in the history."""

from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from budgets import services
from budgets.choices import ApproverLevel, BudgetStatus, required_level
from budgets.models import ApprovalEvent, Approver
from budgets.tests.conftest import approver_at, make_budget, submitted_budget
from core.exceptions import ApplicationError
from core.models import Event

pytestmark = pytest.mark.django_db

BOUNDARIES = [
    ("budget_analyst", "100000.00", "100000.01"),
    ("finance_director", "250000.00", "250000.01"),
    ("vp_finance", "500000.00", "500000.01"),
]


@pytest.mark.parametrize("amount, level", [
    ("0.01", "budget_analyst"), ("100000.00", "budget_analyst"), ("100000.01", "finance_director"),
    ("250000.00", "finance_director"), ("250000.01", "vp_finance"), ("500000.00", "vp_finance"),
    ("500000.01", "cfo"), ("999999999999.99", "cfo"),
])
def test_the_level_an_amount_needs(amount, level):
    assert required_level(Decimal(amount)) == level


@pytest.mark.parametrize("level, within, over", BOUNDARIES)
def test_each_level_approves_up_to_its_limit_exactly(controller, level, within, over):
    approver = approver_at(level)
    budget = submitted_budget(controller, total=within)
    services.budget_approve(budget=budget, user=approver.user, reason="within the limit")
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.APPROVED and budget.approved_by == approver.user


@pytest.mark.parametrize("level, within, over", BOUNDARIES)
def test_one_cent_over_the_limit_is_budget_005(controller, level, within, over):
    approver = approver_at(level)
    budget = submitted_budget(controller, total=over)
    with pytest.raises(ApplicationError) as exc:
        services.budget_approve(budget=budget, user=approver.user)
    assert exc.value.code == "BUDGET_005" and exc.value.http_status == 403
    assert exc.value.details["amount"] == over and exc.value.details["approver_limit"] == within
    assert exc.value.details["required_level"] == required_level(Decimal(over))
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.SUBMITTED and budget.approved_by is None
    assert list(budget.approval_events.values_list("action", flat=True)) == ["requested"]


def test_the_cfo_has_no_ceiling(controller, cfo_approver):
    budget = submitted_budget(controller, total="999999999999.99")
    services.budget_approve(budget=budget, user=cfo_approver.user)
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.APPROVED


def test_a_personal_limit_below_the_level_counts(controller):
    approver = approver_at("finance_director", limit=Decimal("150000.00"))
    budget = submitted_budget(controller, total="150000.01")
    with pytest.raises(ApplicationError) as exc:
        services.budget_approve(budget=budget, user=approver.user)
    assert exc.value.code == "BUDGET_005"


def test_nobody_approves_their_own_request(controller, cfo_approver):
    budget = submitted_budget(cfo_approver.user, total="10.00")
    for decide in (lambda: services.budget_approve(budget=budget, user=cfo_approver.user),
                   lambda: services.budget_reject(budget=budget, user=cfo_approver.user, reason="mine")):
        with pytest.raises(ApplicationError) as exc:
            decide()
        assert exc.value.code == "AUTHORIZATION_FAILED" and exc.value.details["reason"] == "self_approval"
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.SUBMITTED


def test_only_an_active_approver_decides(controller, analyst_approver):
    budget = submitted_budget(controller, total="10.00")
    with pytest.raises(ApplicationError) as exc:
        services.budget_approve(budget=budget, user=UserFactory(roles=["financial_controller"]))
    assert exc.value.code == "AUTHORIZATION_FAILED"
    analyst_approver.is_active = False
    analyst_approver.save()
    with pytest.raises(ApplicationError):
        services.budget_approve(budget=budget, user=analyst_approver.user)
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.SUBMITTED


def test_a_budget_is_approved_once(controller, analyst_approver, director_approver):
    budget = submitted_budget(controller, total="10.00")
    services.budget_approve(budget=budget, user=analyst_approver.user)
    for user in (director_approver.user, analyst_approver.user):
        with pytest.raises(ApplicationError) as exc:
            services.budget_approve(budget=budget, user=user)
        assert exc.value.code == "RESOURCE_CONFLICT" and exc.value.http_status == 409
    with pytest.raises(ApplicationError):
        services.budget_reject(budget=budget, user=director_approver.user, reason="too late")
    assert ApprovalEvent.objects.filter(budget=budget, action="approved").count() == 1
    budget.refresh_from_db()
    assert budget.approved_by == analyst_approver.user


def test_a_planned_budget_is_not_approved(controller, analyst_approver, budget):
    with pytest.raises(ApplicationError) as exc:
        services.budget_approve(budget=budget, user=analyst_approver.user)
    assert exc.value.code == "RESOURCE_CONFLICT"


def test_reject_needs_a_reason_and_any_approver_may_reject(controller, analyst_approver):
    budget = submitted_budget(controller, total="900000.00")
    with pytest.raises(ApplicationError) as exc:
        services.budget_reject(budget=budget, user=analyst_approver.user, reason="  ")
    assert exc.value.code == "VALIDATION_ERROR"
    services.budget_reject(budget=budget, user=analyst_approver.user, reason="Over the quarter's envelope")
    budget.refresh_from_db()
    assert budget.status == BudgetStatus.PLANNING and budget.requested_by is None


def test_the_history_says_who_when_why(controller, analyst_approver, director_approver):
    budget = make_budget(controller, total="120000.00")
    services.budget_request_approval(budget=budget, user=controller, reason="Q1 plan")
    services.budget_reject(budget=budget, user=analyst_approver.user, reason="Split the consulting line")
    services.budget_request_approval(budget=budget, user=controller, reason="Split as asked")
    with pytest.raises(ApplicationError):
        services.budget_approve(budget=budget, user=analyst_approver.user)  # 120,000 > 100,000
    services.budget_approve(budget=budget, user=director_approver.user, reason="Fine")
    history = list(budget.approval_events.order_by("created_at", "id"))
    assert [(e.action, e.actor, e.reason, e.from_status, e.to_status) for e in history] == [
        ("requested", controller, "Q1 plan", "planning", "submitted"),
        ("rejected", analyst_approver.user, "Split the consulting line", "submitted", "planning"),
        ("requested", controller, "Split as asked", "planning", "submitted"),
        ("approved", director_approver.user, "Fine", "submitted", "approved"),
    ]
    approval = history[-1]
    assert approval.approver_level == "finance_director" and approval.approver_limit == Decimal("250000.00")
    assert approval.amount == Decimal("120000.00") and approval.created_at is not None
    assert approval.actor_name == director_approver.user.username and approval.channel == "api"
    assert Event.objects.filter(event="budget.approved", data__budget_id=str(budget.pk)).count() == 1
    assert Event.objects.filter(event="budget.rejected").count() == 1


def test_history_outlives_the_approver(controller, analyst_approver):
    budget = submitted_budget(controller, total="10.00")
    services.budget_approve(budget=budget, user=analyst_approver.user)
    name = analyst_approver.user.username
    services.approver_delete(approver=analyst_approver)
    event = budget.approval_events.get(action="approved")
    assert event.approver is None and event.actor_name == name and event.approver_level == "budget_analyst"


# ---- approvers -------------------------------------------------------------------------------------

def test_approver_limits_stay_within_their_level():
    user = UserFactory()
    approver = services.approver_create(user=user, level=ApproverLevel.FINANCE_DIRECTOR)
    assert approver.limit == Decimal("250000.00")
    with pytest.raises(ApplicationError) as exc:
        services.approver_update(approver=approver, limit=Decimal("250000.01"))
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.details["ceiling"] == "250000.00"
    services.approver_update(approver=approver, limit=Decimal("200000.00"))
    approver.refresh_from_db()
    assert approver.limit == Decimal("200000.00")
    services.approver_update(approver=approver, level=ApproverLevel.CFO)
    approver.refresh_from_db()
    assert approver.limit is None and approver.covers(Decimal("999999999999.99"))
    services.approver_update(approver=approver, limit=Decimal("1000000.00"))
    approver.refresh_from_db()
    assert approver.limit == Decimal("1000000.00")
    with pytest.raises(ApplicationError):
        services.approver_create(user=user, level="cfo")  # already one
    with pytest.raises(ApplicationError):
        services.approver_create(user=UserFactory(), level="intern")
    with pytest.raises(ApplicationError):
        services.approver_create(user=UserFactory(), level="budget_analyst", limit="100000.001")
    assert Approver.objects.count() == 1


def test_the_admin_form_keeps_limits_within_the_level():
    from django.core.exceptions import ValidationError

    for level, limit in (("budget_analyst", None), ("budget_analyst", Decimal("100000.01")),
                         ("vp_finance", Decimal("500000.01"))):
        with pytest.raises(ValidationError):
            Approver(level=level, limit=limit).clean()
    Approver(level="cfo", limit=None).clean()
    Approver(level="budget_analyst", limit=Decimal("100000.00")).clean()
