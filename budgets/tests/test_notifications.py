"""Thresholds notify once per rule and threshold, ever: one stored notification, one e-mail through
Django's mail backend, one ``budget.threshold_crossed`` event."""

from decimal import Decimal

import pytest

from budgets import services
from budgets.models import BudgetNotification
from budgets.tests.conftest import IN_PERIOD
from budgets.tests.factories import category
from core.exceptions import ApplicationError
from core.models import Event

pytestmark = pytest.mark.django_db


def _spend(user, budget, amount, value="infrastructure", **kwargs):
    return services.cost_record(user=user, category=category(value), amount=amount, incurred_on=IN_PERIOD,
                                budget=budget, **kwargs)


def test_each_threshold_is_crossed_once(controller, active, mailoutbox, django_capture_on_commit_callbacks):
    services.rule_create(budget=active, recipients=["finance@example.com", "CFO@example.com"])
    steps = [("700.00", [], None), ("50.00", [75], "75"), ("10.00", [], None), ("150.00", [90], "90"),
             ("90.00", [100], "100")]
    for amount, crossed, _ in steps:
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            _spend(controller, active, amount, value="personnel" if Decimal(amount) == Decimal("150.00") else
                   "infrastructure", override=True)
        assert [m.subject for m in mailoutbox[before:]] == [
            f"[Pollen] {active.name} has reached {t} % of its budget" for t in crossed]
    assert list(BudgetNotification.objects.order_by("threshold").values_list("threshold", "status")) == [
        (75, "sent"), (90, "sent"), (100, "sent")]
    assert mailoutbox[0].to == ["finance@example.com", "cfo@example.com"]
    assert "75.00 % utilisation" in mailoutbox[0].body and "Available: 250.00" in mailoutbox[0].body
    events = Event.objects.filter(event="budget.threshold_crossed").order_by("created_at")
    assert [e.data["threshold"] for e in events] == [75, 90, 100]
    assert events[0].data["budget_id"] == str(active.pk) and events[0].data["utilisation"] == "75.00"
    # Spending on past 100 % notifies nobody again.
    with django_capture_on_commit_callbacks(execute=True):
        _spend(controller, active, "500.00", override=True)
    assert len(mailoutbox) == 3 and BudgetNotification.objects.count() == 3


def test_one_big_cost_crosses_several_thresholds_at_once(controller, active, mailoutbox,
                                                         django_capture_on_commit_callbacks):
    services.rule_create(budget=active, recipients=["a@example.com"], thresholds=[90, 75])
    with django_capture_on_commit_callbacks(execute=True):
        _spend(controller, active, "600.00")
        _spend(controller, active, "350.00", value="personnel")
    assert sorted(BudgetNotification.objects.values_list("threshold", flat=True)) == [75, 90]
    assert len(mailoutbox) == 2


def test_each_rule_is_notified_on_its_own(controller, active, mailoutbox, django_capture_on_commit_callbacks):
    services.rule_create(budget=active, recipients=["a@example.com"], thresholds=[50])
    services.rule_create(budget=active, recipients=["b@example.com"], thresholds=[50])
    with django_capture_on_commit_callbacks(execute=True):
        _spend(controller, active, "500.00")
    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]


def test_a_new_rule_notifies_what_is_already_crossed(controller, active, mailoutbox,
                                                     django_capture_on_commit_callbacks):
    _spend(controller, active, "600.00")
    _spend(controller, active, "200.00", value="personnel")
    with django_capture_on_commit_callbacks(execute=True):
        rule = services.rule_create(budget=active, recipients=["late@example.com"])
    assert list(rule.deliveries.values_list("threshold", flat=True)) == [75]
    with django_capture_on_commit_callbacks(execute=True):
        services.rule_update(rule=rule, thresholds=[10, 75])  # 75 stays notified, 10 is new
    assert sorted(rule.deliveries.values_list("threshold", flat=True)) == [10, 75]
    assert len(mailoutbox) == 2


def test_inactive_rules_stay_quiet(controller, active, mailoutbox, django_capture_on_commit_callbacks):
    services.rule_create(budget=active, recipients=["a@example.com"], thresholds=[10], is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        _spend(controller, active, "500.00")
    assert not BudgetNotification.objects.exists() and not mailoutbox


def test_the_sweep_catches_a_lowered_total(controller, active, mailoutbox, django_capture_on_commit_callbacks):
    from budgets.models import Budget

    services.rule_create(budget=active, recipients=["a@example.com"], thresholds=[100])
    _spend(controller, active, "500.00")
    Budget.objects.filter(pk=active.pk).update(total=Decimal("500.00"))  # e.g. a correction by hand
    with django_capture_on_commit_callbacks(execute=True):
        assert services.thresholds_sweep() == 1
        assert services.thresholds_sweep() == 0
    assert len(mailoutbox) == 1


def test_a_failing_mail_server_marks_the_notification_failed(controller, active, settings,
                                                             django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "budgets.tests.test_notifications.BrokenBackend"
    services.rule_create(budget=active, recipients=["a@example.com"], thresholds=[10])
    with django_capture_on_commit_callbacks(execute=True):
        entry = _spend(controller, active, "500.00")
    notification = BudgetNotification.objects.get()
    assert notification.status == "failed" and "relay refused" in notification.error
    assert entry.pk  # the cost itself is booked


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("relay refused")


@pytest.mark.parametrize("kwargs, field", [
    ({"recipients": []}, "recipients"), ({"recipients": ["not-an-address"]}, "recipients[0]"),
    ({"recipients": ["a@example.com"], "thresholds": [0]}, "thresholds[0]"),
    ({"recipients": ["a@example.com"], "thresholds": [75.5]}, "thresholds[0]"),
    ({"recipients": ["a@example.com"], "thresholds": []}, "thresholds"),
    ({"recipients": ["a@example.com"], "method": "sms"}, "method"),
])
def test_bad_rules_are_refused(active, kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        services.rule_create(budget=active, **kwargs)
    assert exc.value.code == "VALIDATION_ERROR" and exc.value.details["field"] == field
    assert not active.notification_rules.exists()
