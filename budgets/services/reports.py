"""Spending reports: generated on demand (saved first, built by a Celery task after the commit) or
on a schedule by Celery beat (built at once and e-mailed)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from budgets.analytics import build_report
from budgets.choices import ReportFormat, ReportKind, ReportStatus
from budgets.exports import report_csv
from budgets.models import NotificationRule, Report
from core.exceptions import ValidationFailed

logger = logging.getLogger("pollen.budgets")

TITLES = {ReportKind.FULL: "Spending report", ReportKind.SUMMARY: "Spending summary",
          ReportKind.TRENDS: "Spending trends", ReportKind.FORECAST: "Spending forecast"}


@transaction.atomic
def report_generate(*, user: User | None, kind: str = ReportKind.FULL, fmt: str = ReportFormat.JSON,
                    parameters: dict | None = None, title: str = "") -> Report:
    """Save a pending report and build it in a worker once this transaction commits (202)."""
    from budgets.tasks import budget_report_run

    if kind not in ReportKind.values:
        raise ValidationFailed(f"kind must be one of {ReportKind.values}", field="kind")
    if fmt not in ReportFormat.values:
        raise ValidationFailed(f"format must be one of {ReportFormat.values}", field="format")
    parameters = parameters or {}
    report = Report.objects.create(title=title or f"{TITLES[kind]} {timezone.localdate():%Y-%m-%d}", kind=kind,
                                   format=fmt, parameters=parameters, requested_by=user)
    transaction.on_commit(lambda: budget_report_run.delay(str(report.pk)))
    return report


def report_run(*, report_id) -> Report | None:
    """Build a pending report; one that is already built (or failed) is left as it is."""
    with transaction.atomic():
        report = Report.objects.select_for_update().filter(pk=report_id).first()
        if report is None or report.status != ReportStatus.PENDING:
            return report
        try:
            with transaction.atomic():
                report.content = build_report(kind=report.kind, parameters=report.parameters)
        except Exception as exc:
            logger.exception("Budget report %s failed", report.pk)
            report.status, report.error = ReportStatus.FAILED, str(exc)[:500]
        else:
            report.status = ReportStatus.COMPLETED
        report.completed_at = timezone.now()
        report.save(update_fields=["content", "status", "error", "completed_at"])
    return report


def _scheduled_recipients() -> list[str]:
    if settings.BUDGET_REPORT_RECIPIENTS:
        return list(settings.BUDGET_REPORT_RECIPIENTS)
    addresses = set()
    for recipients in NotificationRule.objects.filter(is_active=True).values_list("recipients", flat=True):
        addresses.update(recipients or [])
    return sorted(addresses)


def reports_generate_scheduled(*, kind: str = ReportKind.FULL) -> Report:
    """Celery beat's report: built now, stored, and e-mailed with its CSV to
    ``BUDGET_REPORT_RECIPIENTS`` (or every active notification rule's recipients)."""
    report = Report.objects.create(title=f"Scheduled {TITLES[kind].lower()} {timezone.localdate():%Y-%m-%d}",
                                   kind=kind, format=ReportFormat.CSV, scheduled=True)
    report = report_run(report_id=report.pk)
    recipients = _scheduled_recipients()
    if report.status == ReportStatus.COMPLETED and recipients:
        totals = (report.content.get("summary") or {}).get("totals") or {}
        body = (f"{report.title}\n\nBudgets: {totals.get('budgets', '-')}\nTotal: {totals.get('total', '-')}\n"
                f"Spent: {totals.get('spent', '-')}\nCommitted: {totals.get('committed', '-')}\n"
                f"Available: {totals.get('available', '-')}\n\nThe full report is attached as CSV.\n")
        message = EmailMessage(f"[Pollen] {report.title}", body, settings.DEFAULT_FROM_EMAIL, recipients)
        message.attach(f"budget-report-{report.pk}.csv", report_csv(report.content), "text/csv")
        try:
            message.send()
        except Exception:
            logger.warning("Could not e-mail scheduled report %s", report.pk, exc_info=True)
    return report
