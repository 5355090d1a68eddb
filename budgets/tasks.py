"""Thin Celery tasks: each takes an id (or nothing), and calls one service."""

import logging

from celery import shared_task

logger = logging.getLogger("pollen.budgets")


@shared_task(name="budgets.tasks.budget_notification_send")
def budget_notification_send(notification_id: int) -> str | None:
    from budgets import services

    notification = services.notification_send(notification_id=notification_id)
    return notification.status if notification else None


@shared_task(name="budgets.tasks.budget_report_run")
def budget_report_run(report_id: str) -> str | None:
    from budgets import services

    report = services.report_run(report_id=report_id)
    return report.status if report else None


@shared_task(name="budgets.tasks.reports_generate_scheduled")
def reports_generate_scheduled(kind: str = "full") -> str:
    """Celery beat's spending report (the periodic task is created by a data migration)."""
    from budgets import services

    report = services.reports_generate_scheduled(kind=kind)
    logger.info("Scheduled budget report %s: %s", report.pk, report.status)
    return str(report.pk)


@shared_task(name="budgets.tasks.thresholds_sweep")
def thresholds_sweep() -> int:
    """Celery beat's check of every spendable budget's notification thresholds."""
    from budgets import services

    return services.thresholds_sweep()
