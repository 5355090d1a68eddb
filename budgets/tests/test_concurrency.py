"""Two approvers acting at the same moment: the budget's row lock lets one decide, the other finds
it decided (409). Needs PostgreSQL, where SELECT ... FOR UPDATE really waits; skipped on SQLite."""

import threading

import pytest
from django.db import close_old_connections, connection

from budgets import services
from budgets.models import ApprovalEvent
from budgets.tests.conftest import approver_at, submitted_budget
from core.exceptions import ApplicationError

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def _race(budget, users, act):
    barrier = threading.Barrier(len(users))
    outcomes = {}

    def run(user):
        try:
            barrier.wait(timeout=10)
            act(budget, user)
            outcomes[user.pk] = "ok"
        except ApplicationError as exc:
            outcomes[user.pk] = exc.code
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes.values())


@pytest.mark.parametrize("repeat", range(3))
def test_two_approvers_at_once_one_wins(builtin_roles, seed_categories, repeat):
    requester = approver_at("cfo", limit=None).user
    approvers = [approver_at("budget_analyst").user, approver_at("finance_director").user]
    budget = submitted_budget(requester, total="1000.00")
    outcomes = _race(budget, approvers, lambda b, user: services.budget_approve(budget=b, user=user))
    assert outcomes == ["RESOURCE_CONFLICT", "ok"]
    budget.refresh_from_db()
    assert budget.status == "approved"
    assert ApprovalEvent.objects.filter(budget=budget, action="approved").count() == 1
    assert budget.approved_by_id == ApprovalEvent.objects.get(budget=budget, action="approved").actor_id


def test_an_approval_and_a_rejection_at_once(builtin_roles, seed_categories):
    requester = approver_at("cfo", limit=None).user
    first, second = approver_at("budget_analyst").user, approver_at("finance_director").user
    budget = submitted_budget(requester, total="1000.00")

    def act(b, user):
        if user == first:
            services.budget_approve(budget=b, user=user)
        else:
            services.budget_reject(budget=b, user=user, reason="No")

    assert _race(budget, [first, second], act) == ["RESOURCE_CONFLICT", "ok"]
    assert ApprovalEvent.objects.filter(budget=budget).exclude(action="requested").count() == 1


def test_two_bookings_at_once_never_overspend(builtin_roles, seed_categories):
    from decimal import Decimal

    from budgets import selectors
    from budgets.tests.conftest import IN_PERIOD, active_budget
    from budgets.tests.factories import category

    owner = approver_at("cfo", limit=None).user
    other = approver_at("budget_analyst").user
    budget = active_budget(owner, other, total="100.00")
    outcomes = _race(budget, [owner, other], lambda b, user: services.cost_record(
        user=user, category=category(), amount="60.00", incurred_on=IN_PERIOD, budget=b))
    assert outcomes == ["BUDGET_004", "ok"]
    assert selectors.budget_figures(budget).spent == Decimal("60.00")
