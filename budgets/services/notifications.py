"""Notification rules and the threshold notifications they produce.

When a budget's utilisation (spent plus committed, as a percentage of its total) reaches one of a
rule's thresholds, one ``BudgetNotification`` is stored for that rule and threshold, never a second
one (a unique constraint, and the budget's row lock around the check), its e-mail is sent by a
Celery task after the commit, and ``budget.threshold_crossed`` is broadcast.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from budgets import events
from budgets.choices import SPENDABLE_STATUSES, DeliveryStatus, NotificationMethod
from budgets.models import Budget, BudgetNotification, NotificationRule
from budgets.money import fmt
from budgets.selectors import Figures, attach_figures
from core.exceptions import ValidationFailed

logger = logging.getLogger("pollen.budgets")

MAX_RECIPIENTS = 50
MAX_THRESHOLDS = 10
MAX_THRESHOLD = 1000


def _recipients(recipients) -> list[str]:
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, (list, tuple)) or not recipients:
        raise ValidationFailed("recipients: at least one e-mail address", field="recipients")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValidationFailed(f"recipients: at most {MAX_RECIPIENTS}", field="recipients")
    cleaned = []
    for index, address in enumerate(recipients):
        address = str(address).strip().lower()
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationFailed(f"recipients[{index}]: not an e-mail address", field=f"recipients[{index}]")
        if address not in cleaned:
            cleaned.append(address)
    return cleaned


def _thresholds(thresholds) -> list[int]:
    if thresholds is None:
        return list(settings.BUDGET_DEFAULT_THRESHOLDS)
    if not isinstance(thresholds, (list, tuple)) or not thresholds or len(thresholds) > MAX_THRESHOLDS:
        raise ValidationFailed(f"thresholds: one to {MAX_THRESHOLDS} percentages", field="thresholds")
    cleaned = set()
    for index, value in enumerate(thresholds):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THRESHOLD:
            raise ValidationFailed(f"thresholds[{index}]: a whole percentage from 1 to {MAX_THRESHOLD}",
                                   field=f"thresholds[{index}]")
        cleaned.add(value)
    return sorted(cleaned)


@transaction.atomic
def rule_create(*, budget: Budget, recipients, thresholds=None, method: str = NotificationMethod.EMAIL,
                is_active: bool = True, user: User | None = None) -> NotificationRule:
    """A rule on ``budget``; thresholds it has already passed notify at once."""
    if method not in NotificationMethod.values:
        raise ValidationFailed(f"method must be one of {NotificationMethod.values}", field="method")
    rule = NotificationRule.objects.create(budget=budget, recipients=_recipients(recipients),
                                           thresholds=_thresholds(thresholds), method=method, is_active=is_active,
                                           created_by=user)
    _check_now(budget)
    return rule


@transaction.atomic
def rule_update(*, rule: NotificationRule, **fields) -> NotificationRule:
    """Change a rule. Thresholds already notified stay notified (never twice), also when removed and
    added again."""
    rule = NotificationRule.objects.select_for_update().get(pk=rule.pk)
    if "recipients" in fields:
        rule.recipients = _recipients(fields["recipients"])
    if "thresholds" in fields:
        rule.thresholds = _thresholds(fields["thresholds"])
    if "method" in fields:
        if fields["method"] not in NotificationMethod.values:
            raise ValidationFailed(f"method must be one of {NotificationMethod.values}", field="method")
        rule.method = fields["method"]
    if "is_active" in fields:
        rule.is_active = bool(fields["is_active"])
    rule.save()
    _check_now(rule.budget)
    return rule


def rule_delete(*, rule: NotificationRule) -> None:
    rule.delete()


def _check_now(budget: Budget) -> None:
    budget = attach_figures(Budget.objects.select_for_update(of=("self",)).filter(pk=budget.pk)
                            .prefetch_related("lines"))[0]
    if budget.status in SPENDABLE_STATUSES:
        thresholds_check(budget=budget, figures=budget.figures)


def thresholds_check(*, budget: Budget, figures: Figures) -> list[BudgetNotification]:
    """Store, mail and broadcast the thresholds ``budget`` has reached and not yet notified. Call
    holding the budget's row lock, inside the transaction that changed its figures."""
    utilisation = figures.utilisation
    if utilisation is None:
        return []
    rules = [rule for rule in budget.notification_rules.filter(is_active=True)
             if any(utilisation >= t for t in rule.thresholds)]
    if not rules:
        return []
    done = set(BudgetNotification.objects.filter(rule__in=rules).values_list("rule_id", "threshold"))
    new = [BudgetNotification(rule=rule, budget=budget, threshold=threshold, utilisation=utilisation,
                              total=figures.total, consumed=figures.consumed, recipients=rule.recipients)
           for rule in rules for threshold in sorted(rule.thresholds)
           if utilisation >= threshold and (rule.pk, threshold) not in done]
    if not new:
        return []
    BudgetNotification.objects.bulk_create(new)
    from budgets.tasks import budget_notification_send

    for notification in new:
        notification_id = notification.pk
        transaction.on_commit(lambda nid=notification_id: budget_notification_send.delay(nid), robust=True)
        events.broadcast("budget.threshold_crossed", budget, threshold=notification.threshold,
                         utilisation=str(utilisation), spent=fmt(figures.spent), committed=fmt(figures.committed),
                         available=fmt(figures.available), rule_id=notification.rule_id,
                         notification_id=notification_id)
    return new


def _message(notification: BudgetNotification) -> tuple[str, str]:
    budget = notification.budget
    currency = settings.BUDGET_CURRENCY
    subject = f"[Pollen] {budget.name} has reached {notification.threshold} % of its budget"
    body = (f"The budget {budget.name!r} ({budget.period_start} - {budget.period_end}) has reached "
            f"{notification.utilisation} % utilisation, crossing the {notification.threshold} % threshold.\n\n"
            f"Total:     {fmt(notification.total)} {currency}\n"
            f"Consumed:  {fmt(notification.consumed)} {currency} (spent and committed)\n"
            f"Available: {fmt(notification.total - notification.consumed)} {currency}\n\n"
            f"You receive this because a notification rule of this budget names you.\n")
    return subject, body


def notification_send(*, notification_id) -> BudgetNotification | None:
    """E-mail a stored notification through Django's mail backend, once (a sent or failed one is
    left alone)."""
    with transaction.atomic():
        notification = (BudgetNotification.objects.select_for_update(of=("self",)).select_related("budget")
                        .filter(pk=notification_id).first())
        if notification is None or notification.status != DeliveryStatus.PENDING:
            return notification
        subject, body = _message(notification)
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, notification.recipients, fail_silently=False)
        except Exception as exc:  # the mail server's failure is the notification's, not the caller's
            logger.warning("Could not send budget notification %s", notification.pk, exc_info=True)
            notification.status, notification.error = DeliveryStatus.FAILED, str(exc)[:500]
        else:
            notification.status, notification.sent_at = DeliveryStatus.SENT, timezone.now()
        notification.save(update_fields=["status", "error", "sent_at"])
    return notification


def thresholds_sweep() -> int:
    """Check every spendable budget's thresholds (a total lowered or a rule added since the last
    booking); Celery beat runs it. Returns how many notifications it made."""
    made = 0
    for budget_id in Budget.objects.filter(status__in=SPENDABLE_STATUSES, notification_rules__is_active=True) \
            .values_list("pk", flat=True).distinct():
        with transaction.atomic():
            budget = attach_figures(Budget.objects.select_for_update(of=("self",)).filter(pk=budget_id)
                                    .prefetch_related("lines"))[0]
            made += len(thresholds_check(budget=budget, figures=budget.figures))
    return made
