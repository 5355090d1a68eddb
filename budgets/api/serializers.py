"""Shapes of the budgets API (seed 004's Budget entity and its budget and cost blocks).

Money is a string with two decimal places in every answer, and is read as a decimal (a string or
a JSON number) with at most two places: ``0.001`` or ``-5`` is a 400 ``VALIDATION_ERROR``. Output
serializers build their dicts directly (the declared fields document the shape for the schema).
"""

from __future__ import annotations

import json
from decimal import Decimal

from rest_framework import serializers

from budgets.choices import (LEVEL_CEILINGS, ApprovalAction, ApproverLevel, BudgetStatus, Channel, CostKind,
                             CostSource, Granularity, NotificationMethod, ReportFormat, ReportKind, ReportStatus)
from budgets.money import fmt, percent
from budgets.selectors import Figures
from core.api.fields import MAX_JSON_BYTES, BoundedJSONField, TextChoiceField

MAX_AMOUNT = Decimal("999999999999.99")


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _user(user):
    return {"id": str(user.pk), "username": user.get_username()} if user else None


class MoneyField(serializers.DecimalField):
    """A non-negative amount with at most two decimal places (``positive``: more than zero)."""

    def __init__(self, *, positive: bool = True, **kwargs):
        kwargs.setdefault("min_value", Decimal("0.01") if positive else Decimal("0"))
        super().__init__(max_digits=14, decimal_places=2, max_value=MAX_AMOUNT, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


# ---- budgets ---------------------------------------------------------------------------------------

class PeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()

    def validate(self, attrs):
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "The end is before the start"})
        return attrs


class BudgetLineInputSerializer(serializers.Serializer):
    value = serializers.CharField(max_length=50, help_text="The category's value (e.g. infrastructure)")
    budget = MoneyField(positive=False, help_text="The category's share of the total")


class MetadataInputSerializer(serializers.Serializer):
    """seed 004's metadata: department, project (a Pollen project id here), cost centre, and any
    further keys (kept as given, within 16 KiB)."""

    department = serializers.CharField(max_length=100, required=False, allow_blank=True)
    project = serializers.UUIDField(required=False, allow_null=True, help_text="Pollen project id")
    cost_center = serializers.CharField(max_length=50, required=False, allow_blank=True)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("metadata must be a JSON object")
        if len(json.dumps(data, default=str)) > MAX_JSON_BYTES:
            raise serializers.ValidationError(f"metadata is larger than {MAX_JSON_BYTES} bytes")
        validated = super().to_internal_value(data)
        extra = {k: v for k, v in data.items() if k not in self.fields and k != "project_id"}
        if "project_id" in data and "project" not in data:
            validated["project"] = serializers.UUIDField(allow_null=True).run_validation(data["project_id"])
        return {**validated, "extra": extra}


class RuleInputSerializer(serializers.Serializer):
    """seed 004's notification: ``recipient`` (or ``recipients``), ``triggers`` (or ``thresholds``)
    in percent, ``method``."""

    budget = serializers.UUIDField(required=False, help_text="Required when creating through /budgets/notifications")
    recipient = serializers.EmailField(required=False)
    recipients = serializers.ListField(child=serializers.EmailField(), required=False, max_length=50,
                                       allow_empty=False)
    triggers = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=1000), required=False,
                                     max_length=10, allow_empty=False)
    thresholds = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=1000), required=False,
                                       max_length=10, allow_empty=False)
    method = TextChoiceField(choices=NotificationMethod.values, required=False)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        recipients = list(attrs.pop("recipients", []))
        if "recipient" in attrs:
            recipients.insert(0, attrs.pop("recipient"))
        if recipients:
            attrs["recipients"] = recipients
        elif not self.partial:
            raise serializers.ValidationError({"recipients": "At least one recipient"})
        thresholds = attrs.pop("triggers", None) or attrs.pop("thresholds", None)
        attrs.pop("thresholds", None)
        if thresholds is not None:
            attrs["thresholds"] = thresholds
        return attrs


class BudgetInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    period = PeriodSerializer()
    total = MoneyField()
    categories = BudgetLineInputSerializer(many=True, required=False, max_length=50)
    metadata = MetadataInputSerializer(required=False)
    notifications = RuleInputSerializer(many=True, required=False, max_length=20,
                                        help_text="Notification rules to create with the budget")


class BudgetStatusInputSerializer(serializers.Serializer):
    status = TextChoiceField(choices=BudgetStatus.values)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class RejectInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class BudgetCategorySerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField()
    color = serializers.CharField()
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    committed = serializers.DecimalField(max_digits=14, decimal_places=2)
    utilisation = serializers.DecimalField(max_digits=9, decimal_places=2, allow_null=True)


class BudgetApproverSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    role = serializers.CharField()
    email = serializers.EmailField()
    limit = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    approved = serializers.BooleanField()
    approvedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815 - seed 004's name
    decidedAt = serializers.DateTimeField()  # noqa: N815
    reason = serializers.CharField()


class BudgetNotificationRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    recipient = serializers.EmailField()
    recipients = serializers.ListField(child=serializers.EmailField())
    triggers = serializers.ListField(child=serializers.IntegerField())
    method = serializers.CharField()
    is_active = serializers.BooleanField()


def _categories(budget, figures: Figures, categories: dict) -> list[dict]:
    """The budget's category lines, then any category it has costs in without a line (``budget``
    null). ``categories`` maps ids to every category (loaded once per request)."""
    rows = []
    lined = set()
    zero = (Decimal("0.00"), Decimal("0.00"))
    for line in budget.lines.all():
        lined.add(line.category_id)
        spent, committed = figures.by_category.get(line.category_id, zero)
        rows.append({"name": line.category.name, "value": line.category.value, "color": line.category.color,
                     "budget": fmt(line.amount), "spent": fmt(spent), "committed": fmt(committed),
                     "utilisation": fmt(percent(spent + committed, line.amount))})
    for category_id, (spent, committed) in figures.by_category.items():
        category = categories.get(category_id)
        if category_id not in lined and category is not None:
            rows.append({"name": category.name, "value": category.value, "color": category.color, "budget": None,
                         "spent": fmt(spent), "committed": fmt(committed), "utilisation": None})
    return rows


def _approvers(budget) -> list[dict]:
    return [{"id": e.approver_id, "name": e.actor_name, "role": ApproverLevel(e.approver_level).label
             if e.approver_level else "", "email": e.actor_email, "limit": fmt(e.approver_limit),
             "approved": e.action == ApprovalAction.APPROVED,
             "approvedAt": _iso(e.created_at) if e.action == ApprovalAction.APPROVED else None,
             "decidedAt": _iso(e.created_at), "reason": e.reason}
            for e in getattr(budget, "decisions", [])]


def rule_ref(rule) -> dict:
    return {"id": rule.pk, "recipient": rule.recipients[0] if rule.recipients else None,
            "recipients": rule.recipients, "triggers": rule.thresholds, "method": rule.method,
            "is_active": rule.is_active}


class BudgetSerializer(serializers.Serializer):
    """seed 004's Budget entity. ``spent``, ``committed`` and ``available`` come from the ledger;
    ``allocated`` is the sum of the category budgets; ``utilisation`` is (spent + committed) / total
    in percent."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField(help_text="One of: " + ", ".join(BudgetStatus.values))
    period = PeriodSerializer()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    allocated = serializers.DecimalField(max_digits=14, decimal_places=2)
    spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    committed = serializers.DecimalField(max_digits=14, decimal_places=2)
    available = serializers.DecimalField(max_digits=15, decimal_places=2)
    utilisation = serializers.DecimalField(max_digits=9, decimal_places=2, allow_null=True)
    categories = BudgetCategorySerializer(many=True)
    approvers = BudgetApproverSerializer(many=True)
    notifications = BudgetNotificationRefSerializer(many=True)
    metadata = serializers.DictField()
    required_approval_level = serializers.CharField()
    requested_by = serializers.DictField(allow_null=True)
    requested_at = serializers.DateTimeField(allow_null=True)
    approved_by = serializers.DictField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, budget):
        figures: Figures = budget.figures
        project = budget.project
        if "categories" not in self.context:
            from budgets.models import Category

            self.context["categories"] = Category.objects.in_bulk()
        return {
            "id": str(budget.pk), "name": budget.name, "description": budget.description, "status": budget.status,
            "period": {"start": budget.period_start.isoformat(), "end": budget.period_end.isoformat()},
            "total": fmt(budget.total), "allocated": fmt(figures.allocated), "spent": fmt(figures.spent),
            "committed": fmt(figures.committed), "available": fmt(figures.available),
            "utilisation": fmt(figures.utilisation),
            "categories": _categories(budget, figures, self.context["categories"]),
            "approvers": _approvers(budget),
            "notifications": [rule_ref(rule) for rule in budget.notification_rules.all()],
            "metadata": {**budget.metadata, "department": budget.department,
                         "project": project.name if project else None,
                         "project_id": str(project.pk) if project else None, "cost_center": budget.cost_centre},
            "required_approval_level": budget.required_approval_level,
            "requested_by": _user(budget.requested_by), "requested_at": _iso(budget.requested_at),
            "approved_by": _user(budget.approved_by), "approved_at": _iso(budget.approved_at),
            "created_by": _user(budget.created_by), "created_at": _iso(budget.created_at),
            "updated_at": _iso(budget.updated_at),
        }


# ---- categories ------------------------------------------------------------------------------------

class CategorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    value = serializers.SlugField()
    color = serializers.CharField()
    description = serializers.CharField()
    position = serializers.IntegerField()
    is_active = serializers.BooleanField()

    def to_representation(self, c):
        return {"id": c.pk, "name": c.name, "value": c.value, "color": c.color, "description": c.description,
                "position": c.position, "is_active": c.is_active}


class CategoryInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    value = serializers.SlugField(max_length=50)
    color = serializers.RegexField(r"^#[0-9A-Fa-f]{6}$", required=False,
                                   error_messages={"invalid": "A colour is #RRGGBB"})
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    position = serializers.IntegerField(min_value=0, max_value=32767, required=False)
    is_active = serializers.BooleanField(required=False)


class CategorySpendingSerializer(serializers.Serializer):
    category = CategorySerializer()
    spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    committed = serializers.DecimalField(max_digits=14, decimal_places=2)
    entries = serializers.IntegerField()
    budgets = serializers.ListField(child=serializers.DictField())
    months = serializers.ListField(child=serializers.DictField())


# ---- approvers and approvals ----------------------------------------------------------------------

class ApproverSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.UUIDField()
    name = serializers.CharField()
    email = serializers.EmailField()
    level = serializers.CharField(help_text="One of: " + ", ".join(ApproverLevel.values))
    role = serializers.CharField()
    limit = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True,
                                     help_text="null: no limit (CFO only)")
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    def to_representation(self, a):
        return {"id": a.pk, "user_id": str(a.user_id), "name": a.user.get_full_name() or a.user.get_username(),
                "email": a.user.email, "level": a.level, "role": a.get_level_display(), "limit": fmt(a.limit),
                "is_active": a.is_active, "created_at": _iso(a.created_at)}


class ApproverInputSerializer(serializers.Serializer):
    user_id = serializers.UUIDField()
    level = TextChoiceField(choices=ApproverLevel.values)
    limit = MoneyField(required=False, allow_null=True, help_text="Default: the level's ceiling")
    is_active = serializers.BooleanField(required=False)


class ApproverUpdateInputSerializer(serializers.Serializer):
    level = TextChoiceField(choices=ApproverLevel.values, required=False)
    limit = MoneyField(required=False, allow_null=True)
    is_active = serializers.BooleanField(required=False)


class ApproverLimitSerializer(serializers.Serializer):
    approver_id = serializers.IntegerField()
    level = serializers.CharField()
    role = serializers.CharField()
    limit = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    level_ceiling = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    unlimited = serializers.BooleanField()
    is_active = serializers.BooleanField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
    covers = serializers.BooleanField(required=False, help_text="With ?amount=: may this approver approve it")
    required_level = serializers.CharField(required=False)


def approver_limit(approver, amount: Decimal | None) -> dict:
    from budgets.choices import required_level

    data = {"approver_id": approver.pk, "level": approver.level, "role": approver.get_level_display(),
            "limit": fmt(approver.limit), "level_ceiling": fmt(LEVEL_CEILINGS[approver.level]),
            "unlimited": approver.limit is None, "is_active": approver.is_active}
    if amount is not None:
        data.update({"amount": fmt(amount), "covers": approver.is_active and approver.covers(amount),
                     "required_level": required_level(amount)})
    return data


class ApprovalEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField(help_text="One of: " + ", ".join(ApprovalAction.values))
    actor = serializers.DictField()
    approver = serializers.DictField(allow_null=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    reason = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    channel = serializers.CharField(help_text="One of: " + ", ".join(Channel.values))
    created_at = serializers.DateTimeField()

    def to_representation(self, e):
        return {"id": e.pk, "action": e.action,
                "actor": {"id": str(e.actor_id) if e.actor_id else None, "name": e.actor_name,
                          "email": e.actor_email},
                "approver": {"id": e.approver_id, "level": e.approver_level, "limit": fmt(e.approver_limit)}
                if e.approver_level else None,
                "amount": fmt(e.amount), "reason": e.reason, "from_status": e.from_status, "to_status": e.to_status,
                "channel": e.channel, "created_at": _iso(e.created_at)}


class ApprovalsSerializer(serializers.Serializer):
    budget_id = serializers.UUIDField()
    status = serializers.CharField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    required_level = serializers.CharField()
    requested_by = serializers.DictField(allow_null=True)
    requested_at = serializers.DateTimeField(allow_null=True)
    decisions = ApprovalEventSerializer(many=True)
    eligible_approvers = ApproverSerializer(many=True, help_text="Who may approve it now (while submitted)")


# ---- notification rules ----------------------------------------------------------------------------

class RuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    budget = serializers.DictField()
    recipient = serializers.EmailField()
    recipients = serializers.ListField(child=serializers.EmailField())
    triggers = serializers.ListField(child=serializers.IntegerField())
    method = serializers.CharField()
    is_active = serializers.BooleanField()
    notified = serializers.ListField(child=serializers.DictField(), help_text="Thresholds crossed, once each")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, rule):
        return {**rule_ref(rule), "budget": {"id": str(rule.budget_id), "name": rule.budget.name},
                "notified": [{"threshold": n.threshold, "utilisation": str(n.utilisation), "status": n.status,
                              "sent_at": _iso(n.sent_at), "created_at": _iso(n.created_at)}
                             for n in rule.deliveries.all()],
                "created_at": _iso(rule.created_at), "updated_at": _iso(rule.updated_at)}


class RecipientSerializer(serializers.Serializer):
    email = serializers.EmailField()
    rules = serializers.IntegerField()
    active_rules = serializers.IntegerField()


# ---- costs -----------------------------------------------------------------------------------------

class CostEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    budget = serializers.DictField(allow_null=True)
    category = serializers.DictField()
    service = serializers.CharField()
    kind = serializers.CharField(help_text="One of: " + ", ".join(CostKind.values))
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    incurred_on = serializers.DateField()
    description = serializers.CharField()
    source = serializers.CharField(help_text="One of: " + ", ".join(CostSource.values))
    execution_id = serializers.UUIDField(allow_null=True)
    project_id = serializers.UUIDField(allow_null=True)
    allocation_id = serializers.IntegerField(allow_null=True)
    over_budget = serializers.BooleanField()
    metadata = serializers.DictField()
    created_by = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, e):
        return {"id": e.pk, "budget": {"id": str(e.budget_id), "name": e.budget.name} if e.budget_id else None,
                "category": {"value": e.category.value, "name": e.category.name, "color": e.category.color},
                "service": e.service, "kind": e.kind, "amount": fmt(e.amount), "incurred_on": e.incurred_on.isoformat(),
                "description": e.description, "source": e.source,
                "execution_id": str(e.execution_id) if e.execution_id else None,
                "project_id": str(e.project_id) if e.project_id else None, "allocation_id": e.allocation_id,
                "over_budget": e.over_budget, "metadata": e.metadata, "created_by": _user(e.created_by),
                "created_at": _iso(e.created_at)}


class CostInputSerializer(serializers.Serializer):
    budget = serializers.UUIDField(required=False, allow_null=True)
    category = serializers.CharField(max_length=50, help_text="A category's value")
    service = serializers.CharField(max_length=100, required=False, allow_blank=True)
    kind = TextChoiceField(choices=CostKind.values, required=False)
    amount = MoneyField()
    incurred_on = serializers.DateField(required=False, help_text="Default: today")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    override = serializers.BooleanField(required=False, default=False,
                                        help_text="Book past the available amount (needs budget:override)")
    metadata = BoundedJSONField(required=False)


class AllocationTargetSerializer(serializers.Serializer):
    budget = serializers.UUIDField(required=False, allow_null=True)
    service = serializers.CharField(max_length=100, required=False, allow_blank=True)
    share = serializers.DecimalField(max_digits=7, decimal_places=4, min_value=Decimal("0.0001"),
                                     max_value=Decimal("100"), help_text="Percent; the shares add up to 100")


class AllocateInputSerializer(serializers.Serializer):
    amount = MoneyField()
    category = serializers.CharField(max_length=50)
    kind = TextChoiceField(choices=CostKind.values, required=False)
    incurred_on = serializers.DateField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    budget = serializers.UUIDField(required=False, allow_null=True, help_text="Default budget of the targets")
    service = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                    help_text="Default service of the targets")
    override = serializers.BooleanField(required=False, default=False)
    targets = AllocationTargetSerializer(many=True, allow_empty=False, max_length=100)


class AllocationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    category = serializers.CharField()
    kind = serializers.CharField()
    incurred_on = serializers.DateField()
    description = serializers.CharField()
    shares = serializers.ListField(child=serializers.DictField())
    entries = CostEntrySerializer(many=True)
    created_at = serializers.DateTimeField()


class CostGroupSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    spent = serializers.DecimalField(max_digits=16, decimal_places=2)
    committed = serializers.DecimalField(max_digits=16, decimal_places=2)
    entries = serializers.IntegerField()


class PeriodQuerySerializer(serializers.Serializer):
    granularity = TextChoiceField(choices=Granularity.values, required=False, default=Granularity.MONTH)


# ---- spending and reports --------------------------------------------------------------------------

class ForecastQuerySerializer(serializers.Serializer):
    budget = serializers.UUIDField(required=False)
    as_of = serializers.DateField(required=False, help_text="The forecast's reference day (default: today)")


class SpendingSerializer(serializers.Serializer):
    """Spending figures; every amount is a decimal string."""

    currency = serializers.CharField()


class ReportSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    kind = serializers.CharField(help_text="One of: " + ", ".join(ReportKind.values))
    format = serializers.CharField(help_text="One of: " + ", ".join(ReportFormat.values))
    parameters = serializers.DictField()
    status = serializers.CharField(help_text="One of: " + ", ".join(ReportStatus.values))
    error = serializers.CharField()
    scheduled = serializers.BooleanField()
    requested_by = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    links = serializers.DictField()
    content = serializers.DictField(required=False, help_text="Only on GET /budgets/reports/{id}")

    def to_representation(self, r):
        request = self.context.get("request")
        base = f"/api/v1/budgets/reports/{r.pk}"

        def absolute(path):
            return request.build_absolute_uri(path) if request else path

        data = {"id": str(r.pk), "title": r.title, "kind": r.kind, "format": r.format, "parameters": r.parameters,
                "status": r.status, "error": r.error, "scheduled": r.scheduled,
                "requested_by": _user(r.requested_by), "created_at": _iso(r.created_at),
                "completed_at": _iso(r.completed_at),
                "links": {"self": absolute(base), "json": absolute(f"{base}/json"), "csv": absolute(f"{base}/csv"),
                          "html": absolute(f"/budgets/reports/{r.pk}/print/")}}
        if self.context.get("with_content"):
            data["content"] = r.content
        return data


class ReportGenerateInputSerializer(serializers.Serializer):
    kind = TextChoiceField(choices=ReportKind.values, required=False, default=ReportKind.FULL)
    format = TextChoiceField(choices=ReportFormat.values, required=False, default=ReportFormat.JSON)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    budget = serializers.UUIDField(required=False)
    date_from = serializers.DateField(required=False, help_text="Trends from this day")
    date_to = serializers.DateField(required=False, help_text="Trends up to this day")
    as_of = serializers.DateField(required=False, help_text="The forecast's reference day")

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": "Before date_from"})
        return attrs
