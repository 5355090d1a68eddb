"""Celery beat's budget work: the periodic tasks a data migration creates, the scheduled report
(stored and e-mailed with its CSV) and the threshold sweep."""

import json
from decimal import Decimal

import pytest
from django_celery_beat.models import PeriodicTask

from budgets import tasks
from budgets.models import Report
from budgets.tests.factories import CostEntryFactory, NotificationRuleFactory

pytestmark = pytest.mark.django_db


def test_the_data_migration_schedules_the_budget_tasks():
    report = PeriodicTask.objects.get(name="budgets: monthly spending report")
    assert report.task == "budgets.tasks.reports_generate_scheduled" and report.enabled
    assert json.loads(report.kwargs) == {"kind": "full"}
    assert (report.crontab.minute, report.crontab.hour, report.crontab.day_of_month) == ("0", "6", "1")
    assert str(report.crontab.timezone) == "UTC"
    sweep = PeriodicTask.objects.get(name="budgets: threshold sweep")
    assert sweep.task == "budgets.tasks.thresholds_sweep" and sweep.crontab.minute == "15"
    from celery import current_app

    current_app.loader.import_default_modules()
    assert {"budgets.tasks.reports_generate_scheduled", "budgets.tasks.thresholds_sweep"} <= set(current_app.tasks)


def test_the_scheduled_report_is_stored_and_mailed(active, mailoutbox):
    NotificationRuleFactory(budget=active, recipients=["finance@example.com"])
    CostEntryFactory(budget=active, amount=Decimal("42.00"))
    report_id = tasks.reports_generate_scheduled.delay(kind="full").get()
    report = Report.objects.get(pk=report_id)
    assert report.scheduled and report.status == "completed" and report.requested_by is None
    assert report.content["summary"]["totals"]["spent"] == "42.00"
    (mail,) = mailoutbox
    assert mail.to == ["finance@example.com"] and "Spent: 42.00" in mail.body
    (name, body, mimetype), = mail.attachments
    assert name == f"budget-report-{report.pk}.csv" and mimetype == "text/csv" and "42.00" in body


def test_configured_recipients_win(active, mailoutbox, settings):
    settings.BUDGET_REPORT_RECIPIENTS = ["board@example.com"]
    NotificationRuleFactory(budget=active, recipients=["finance@example.com"])
    tasks.reports_generate_scheduled.delay().get()
    assert mailoutbox[0].to == ["board@example.com"]


def test_a_report_is_built_once(controller):
    report = Report.objects.create(title="Once", requested_by=controller)
    assert tasks.budget_report_run.delay(str(report.pk)).get() == "completed"
    report.refresh_from_db()
    built_at = report.completed_at
    assert tasks.budget_report_run.delay(str(report.pk)).get() == "completed"
    report.refresh_from_db()
    assert report.completed_at == built_at


def test_a_failing_report_is_marked_failed(controller, monkeypatch):
    def broken(**kwargs):
        raise ValueError("no figures today")

    monkeypatch.setattr("budgets.services.reports.build_report", broken)
    report = Report.objects.create(title="Broken", requested_by=controller)
    assert tasks.budget_report_run.delay(str(report.pk)).get() == "failed"
    report.refresh_from_db()
    assert report.error == "no figures today"


def test_the_sweep_task(active):
    assert tasks.thresholds_sweep.delay().get() == 0
