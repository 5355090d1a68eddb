"""Fixtures of the budgets suites: people in seed 004's roles, approvers at each level, and budgets
brought to a status through the real services."""

import datetime
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import *  # noqa: F401,F403
from budgets import services
from budgets.tests.factories import PERIOD_END, PERIOD_START, ApproverFactory, category

IN_PERIOD = datetime.date(2025, 2, 1)


@pytest.fixture
def controller(db):
    return UserFactory(username="controller", roles=["financial_controller"])


@pytest.fixture
def controller_api(api_for, controller):
    return api_for(controller)


def approver_at(level: str, limit=None, **user):
    from budgets.choices import LEVEL_CEILINGS

    return ApproverFactory(level=level, limit=limit if limit is not None else LEVEL_CEILINGS[level],
                           user=UserFactory(roles=["financial_controller"], **user))


@pytest.fixture
def analyst_approver(db):
    return approver_at("budget_analyst")


@pytest.fixture
def director_approver(db):
    return approver_at("finance_director")


@pytest.fixture
def cfo_approver(db):
    return ApproverFactory(level="cfo", limit=None, user=UserFactory(roles=["financial_controller"]))


def make_budget(user, *, total="50000.00", lines=None, **fields):
    lines = [(category(value), Decimal(amount)) for value, amount in (lines or {}).items()]
    return services.budget_create(user=user, name=fields.pop("name", "Q1 2025 Infrastructure"),
                                  period_start=fields.pop("period_start", PERIOD_START),
                                  period_end=fields.pop("period_end", PERIOD_END), total=Decimal(total), lines=lines,
                                  **fields)


def submitted_budget(user, **kwargs):
    budget = make_budget(user, **kwargs)
    return services.budget_request_approval(budget=budget, user=user)


def active_budget(user, approver_user, **kwargs):
    budget = submitted_budget(user, **kwargs)
    services.budget_approve(budget=budget, user=approver_user)
    return services.budget_status_set(budget=budget, user=user, status="active")


@pytest.fixture
def budget(controller):
    return make_budget(controller)


@pytest.fixture
def active(controller, cfo_approver):
    """An active budget of 1,000.00 with a line of 600.00 for Infrastructure and 400.00 for Personnel."""
    return active_budget(controller, cfo_approver.user, total="1000.00",
                         lines={"infrastructure": "600.00", "personnel": "400.00"})


@pytest.fixture
def seed_categories(db):
    """Seed 004's categories, for transactional tests (a flush between them removes the migration's rows)."""
    from budgets.choices import SEED_CATEGORIES
    from budgets.models import Category

    for position, spec in enumerate(SEED_CATEGORIES, start=1):
        Category.objects.update_or_create(value=spec["value"], defaults={**spec, "position": position})
