"""The budget lifecycle, declared once (budgets.choices.TRANSITIONS): every allowed move through the
services, every other refused with a coded error and nothing changed."""

import datetime
from decimal import Decimal

import pytest

from budgets import services
from budgets.choices import TRANSITIONS, BudgetStatus
from budgets.models import ApprovalEvent, Budget, BudgetLine
from budgets.tests.conftest import make_budget, submitted_budget
from budgets.tests.factories import category
from core.exceptions import ApplicationError
from core.models import Event

pytestmark = pytest.mark.django_db
S = BudgetStatus


def _at(status, controller, approver_user):
    """A budget brought to ``status`` through the services."""
    budget = make_budget(controller)
    path = {S.PLANNING: [], S.SUBMITTED: ["submit"], S.APPROVED: ["submit", "approve"],
            S.ACTIVE: ["submit", "approve", S.ACTIVE], S.MONITORING: ["submit", "approve", S.ACTIVE, S.MONITORING],
            S.CLOSED: ["submit", "approve", S.CLOSED]}[status]
    for step in path:
        if step == "submit":
            services.budget_request_approval(budget=budget, user=controller)
        elif step == "approve":
            services.budget_approve(budget=budget, user=approver_user)
        else:
            services.budget_status_set(budget=budget, user=controller, status=step)
    budget.refresh_from_db()
    assert budget.status == status
    return budget


def test_the_lifecycle_is_seed_004s():
    assert list(TRANSITIONS) == [S.PLANNING, S.SUBMITTED, S.APPROVED, S.ACTIVE, S.MONITORING, S.CLOSED]
    assert TRANSITIONS[S.CLOSED] == set()


PLAIN_MOVES = [(a, b) for a, targets in TRANSITIONS.items() for b in targets
               if (a, b) not in {(S.PLANNING, S.SUBMITTED), (S.SUBMITTED, S.APPROVED), (S.SUBMITTED, S.PLANNING)}]


@pytest.mark.parametrize("source, target", PLAIN_MOVES)
def test_every_plain_move_through_status_set(controller, analyst_approver, source, target):
    budget = _at(source, controller, analyst_approver.user)
    budget = services.budget_status_set(budget=budget, user=controller, status=target)
    budget.refresh_from_db()
    assert budget.status == target
    assert (budget.closed_at is not None) == (target == S.CLOSED)
    assert Event.objects.filter(event="budget.status_changed", data__budget_id=str(budget.pk)).exists()


REFUSED = [(a, b) for a in TRANSITIONS for b in S.values if b not in TRANSITIONS[a] and b != a]


@pytest.mark.parametrize("source, target", REFUSED)
def test_every_other_move_is_refused(controller, analyst_approver, source, target):
    budget = _at(source, controller, analyst_approver.user)
    with pytest.raises(ApplicationError) as exc:
        services.budget_status_set(budget=budget, user=controller, status=target)
    assert exc.value.code == "RESOURCE_CONFLICT" and exc.value.http_status == 409
    assert exc.value.details == {"field": "status", "budget_id": str(budget.pk), "from": source, "to": target}
    budget.refresh_from_db()
    assert budget.status == source


def test_status_set_to_submitted_requests_approval(controller):
    budget = make_budget(controller)
    services.budget_status_set(budget=budget, user=controller, status=S.SUBMITTED, reason="please")
    budget.refresh_from_db()
    assert budget.status == S.SUBMITTED and budget.requested_by == controller
    event = ApprovalEvent.objects.get(budget=budget)
    assert (event.action, event.reason, event.from_status, event.to_status) == ("requested", "please", S.PLANNING,
                                                                                S.SUBMITTED)


def test_status_set_never_approves_or_rejects(controller):
    budget = submitted_budget(controller)
    with pytest.raises(ApplicationError) as exc:
        services.budget_status_set(budget=budget, user=controller, status=S.APPROVED)
    assert exc.value.code == "BUDGET_002" and exc.value.http_status == 409
    with pytest.raises(ApplicationError) as exc:
        services.budget_status_set(budget=budget, user=controller, status=S.PLANNING)
    assert exc.value.code == "RESOURCE_CONFLICT"
    budget.refresh_from_db()
    assert budget.status == S.SUBMITTED


def test_unknown_status_is_a_validation_error(controller, budget):
    with pytest.raises(ApplicationError) as exc:
        services.budget_status_set(budget=budget, user=controller, status="approvedish")
    assert exc.value.code == "VALIDATION_ERROR"


# ---- create, update, delete ------------------------------------------------------------------------

def test_create_checks_money_period_and_lines(controller):
    budget = make_budget(controller, total="1000.00", lines={"infrastructure": "600.00", "personnel": "400.00"})
    assert budget.status == S.PLANNING and budget.total == Decimal("1000.00")
    assert {(l.category.value, l.amount) for l in budget.lines.select_related("category")} == {
        ("infrastructure", Decimal("600.00")), ("personnel", Decimal("400.00"))}
    bad = [
        (dict(total="1000.001"), "VALIDATION_ERROR"), (dict(total="-5"), "VALIDATION_ERROR"),
        (dict(total="0"), "VALIDATION_ERROR"),
        (dict(total="100.00", lines={"infrastructure": "60.00", "personnel": "40.01"}), "VALIDATION_ERROR"),
        (dict(lines={"infrastructure": "-1"}), "VALIDATION_ERROR"),
        (dict(lines={"infrastructure": "1.005"}), "VALIDATION_ERROR"),
        (dict(period_start=datetime.date(2025, 2, 1), period_end=datetime.date(2025, 1, 1)), "VALIDATION_ERROR"),
        (dict(name="   "), "VALIDATION_ERROR"),
    ]
    for kwargs, code in bad:
        with pytest.raises(ApplicationError) as exc:
            make_budget(controller, **kwargs)
        assert exc.value.code == code, kwargs
    assert Budget.objects.count() == 1 and BudgetLine.objects.count() == 2


def test_an_inactive_category_is_budget_003(controller):
    infra = category("infrastructure")
    infra.is_active = False
    infra.save()
    with pytest.raises(ApplicationError) as exc:
        make_budget(controller, lines={"infrastructure": "1.00"})
    assert exc.value.code == "BUDGET_003" and exc.value.http_status == 422
    assert not Budget.objects.exists()


def test_update_money_only_while_planning(controller, analyst_approver):
    budget = make_budget(controller, total="1000.00", lines={"infrastructure": "600.00"})
    services.budget_update(budget=budget, total=Decimal("2000.00"), name="Renamed",
                           lines=[(category("personnel"), Decimal("2000.00"))])
    budget.refresh_from_db()
    assert (budget.name, budget.total) == ("Renamed", Decimal("2000.00"))
    assert [l.category.value for l in budget.lines.all()] == ["personnel"]
    with pytest.raises(ApplicationError):
        services.budget_update(budget=budget, total=Decimal("1999.99"))  # below its lines
    services.budget_request_approval(budget=budget, user=controller)
    with pytest.raises(ApplicationError) as exc:
        services.budget_update(budget=budget, total=Decimal("1.00"))
    assert exc.value.code == "RESOURCE_CONFLICT" and exc.value.details["fields"] == ["total"]
    services.budget_update(budget=budget, description="Still describable")
    budget.refresh_from_db()
    assert budget.total == Decimal("2000.00") and budget.description == "Still describable"


def test_nothing_changes_once_closed(controller, analyst_approver):
    budget = _at(S.CLOSED, controller, analyst_approver.user)
    with pytest.raises(ApplicationError) as exc:
        services.budget_update(budget=budget, name="Again")
    assert exc.value.code == "RESOURCE_CONFLICT"


def test_delete_only_a_planned_budget(controller, analyst_approver):
    planned = make_budget(controller)
    services.budget_delete(budget=planned)
    assert not Budget.objects.filter(pk=planned.pk).exists()
    approved = _at(S.APPROVED, controller, analyst_approver.user)
    with pytest.raises(ApplicationError) as exc:
        services.budget_delete(budget=approved)
    assert exc.value.code == "RESOURCE_CONFLICT"
    assert Budget.objects.filter(pk=approved.pk).exists()


def test_repeating_the_approved_figures_is_not_a_change(controller, analyst_approver):
    budget = _at(S.ACTIVE, controller, analyst_approver.user)
    services.budget_update(budget=budget, name="Same money", total=Decimal("50000.00"),
                           period_start=budget.period_start, period_end=budget.period_end, lines=[])
    budget.refresh_from_db()
    assert budget.name == "Same money" and budget.total == Decimal("50000.00")
    with pytest.raises(ApplicationError) as exc:
        services.budget_update(budget=budget, lines=[(category("personnel"), Decimal("1.00"))])
    assert exc.value.code == "RESOURCE_CONFLICT" and exc.value.details["fields"] == ["lines"]
