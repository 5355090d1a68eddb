"""Every finished training execution books its compute: CPU-seconds x the configured rate, category
Infrastructure, linked to the execution and its project's budget (hooked in finish_execution)."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from budgets import services
from budgets.models import CostEntry
from budgets.tests.conftest import active_budget
from training.runner import finish_execution
from training.tests.api.factories import ExecutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rate(settings):
    settings.BUDGET_COMPUTE_RATE_PER_CPU_SECOND = Decimal("0.0125")
    return settings.BUDGET_COMPUTE_RATE_PER_CPU_SECOND


@pytest.fixture
def today_budget(controller, cfo_approver):
    """An active budget of the execution's project whose period holds today."""
    from projects.tests.factories import ProjectFactory

    today = timezone.localdate()
    project = ProjectFactory(configuration={})
    return active_budget(controller, cfo_approver.user, total="10.00", project=project,
                         period_start=today - datetime.timedelta(days=10),
                         period_end=today + datetime.timedelta(days=10), lines={"infrastructure": "5.00"})


def _finish(execution, outcome, cpu_seconds, capture):
    with capture(execute=True):
        finish_execution(execution.pk, outcome, cpu_seconds=cpu_seconds)


def test_a_finished_execution_books_its_compute(rate, today_budget, django_capture_on_commit_callbacks):
    execution = ExecutionFactory(project=today_budget.project, status="running")
    _finish(execution, "completed", 100.4, django_capture_on_commit_callbacks)
    entry = CostEntry.objects.get()
    assert entry.amount == Decimal("1.26")  # 100.4 x 0.0125 = 1.255, half up
    assert (entry.budget, entry.execution, entry.project_id, entry.category.value, entry.source, entry.kind) == (
        today_budget, execution, today_budget.project_id, "infrastructure", "execution", "actual")
    assert entry.metadata["cpu_seconds"] == "100.4" and entry.metadata["rate_per_cpu_second"] == "0.0125"
    assert entry.incurred_on == timezone.localdate()


def test_a_resumed_execution_books_only_what_is_new(rate, today_budget, django_capture_on_commit_callbacks):
    execution = ExecutionFactory(project=today_budget.project, status="running")
    _finish(execution, "failed", 40.0, django_capture_on_commit_callbacks)
    execution.refresh_from_db()
    execution.status = "running"  # resumed and running again
    execution.save(update_fields=["status"])
    _finish(execution, "completed", 40.0, django_capture_on_commit_callbacks)
    assert list(CostEntry.objects.order_by("id").values_list("amount", flat=True)) == [Decimal("0.50"),
                                                                                       Decimal("0.50")]
    assert services.execution_cost_book(execution_id=execution.pk) is None  # nothing more is due


def test_compute_past_the_budget_is_booked_and_flagged(rate, today_budget, django_capture_on_commit_callbacks):
    execution = ExecutionFactory(project=today_budget.project, status="running")
    _finish(execution, "completed", 1000.0, django_capture_on_commit_callbacks)  # 12.50 on a budget of 10.00
    entry = CostEntry.objects.get()
    assert entry.amount == Decimal("12.50") and entry.over_budget and entry.budget == today_budget


def test_without_a_budget_the_cost_is_still_in_the_ledger(rate, django_capture_on_commit_callbacks):
    execution = ExecutionFactory(status="running")
    _finish(execution, "stopped", 8.0, django_capture_on_commit_callbacks)
    entry = CostEntry.objects.get()
    assert entry.budget is None and entry.amount == Decimal("0.10") and entry.project_id == execution.project_id


def test_a_zero_rate_books_nothing(settings, django_capture_on_commit_callbacks):
    settings.BUDGET_COMPUTE_RATE_PER_CPU_SECOND = Decimal("0")
    execution = ExecutionFactory(status="running")
    _finish(execution, "completed", 8.0, django_capture_on_commit_callbacks)
    assert not CostEntry.objects.exists()


def test_a_failed_booking_never_undoes_the_finish(rate, monkeypatch, django_capture_on_commit_callbacks):
    def broken(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr("budgets.services.costs.execution_cost_book", broken)
    execution = ExecutionFactory(status="running")
    _finish(execution, "completed", 8.0, django_capture_on_commit_callbacks)
    execution.refresh_from_db()
    assert execution.status == "completed" and not CostEntry.objects.exists()
