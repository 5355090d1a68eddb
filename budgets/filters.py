"""One FilterSet per listed model, shared by the API and the pages."""

import django_filters
from django.db.models import Q

from budgets.choices import ApproverLevel, BudgetStatus, CostKind, CostSource, ReportKind, ReportStatus
from budgets.models import Approver, Budget, CostEntry, NotificationRule, Report


class BudgetFilterSet(django_filters.FilterSet):
    """``/budgets``, ``/budgets/spending/summary`` and the budget list page."""

    status = django_filters.ChoiceFilter(choices=BudgetStatus.choices)
    department = django_filters.CharFilter(field_name="department", lookup_expr="iexact", max_length=100)
    cost_center = django_filters.CharFilter(field_name="cost_centre", lookup_expr="iexact", max_length=50)
    project = django_filters.UUIDFilter(field_name="project_id")
    active_on = django_filters.DateFilter(method="filter_active_on", help_text="Budgets whose period holds this day")
    period_from = django_filters.DateFilter(field_name="period_end", lookup_expr="gte",
                                            help_text="Budgets whose period ends on or after this day")
    period_to = django_filters.DateFilter(field_name="period_start", lookup_expr="lte",
                                          help_text="Budgets whose period starts on or before this day")
    min_total = django_filters.NumberFilter(field_name="total", lookup_expr="gte", min_value=0)
    max_total = django_filters.NumberFilter(field_name="total", lookup_expr="lte", min_value=0)
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Matches name or description")
    sort = django_filters.OrderingFilter(
        fields=(("name", "name"), ("total", "total"), ("period_start", "period_start"),
                ("period_end", "period_end"), ("status", "status"), ("created_at", "created_at")),
        help_text="name, total, period_start, period_end, status or created_at; prefix with - to reverse")

    class Meta:
        model = Budget
        fields = ["status", "department", "cost_center", "project", "active_on", "period_from", "period_to",
                  "min_total", "max_total", "search", "sort"]

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(period_start__lte=value, period_end__gte=value)

    def filter_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value)) if value else queryset


class CostEntryFilterSet(django_filters.FilterSet):
    """``/costs`` and its groupings, ``/budgets/spending/trends``."""

    budget = django_filters.UUIDFilter(field_name="budget_id")
    unbudgeted = django_filters.BooleanFilter(field_name="budget", lookup_expr="isnull",
                                              help_text="true: only costs no budget carries")
    category = django_filters.CharFilter(field_name="category__value", max_length=50)
    service = django_filters.CharFilter(field_name="service", max_length=100)
    kind = django_filters.ChoiceFilter(choices=CostKind.choices)
    source = django_filters.ChoiceFilter(choices=CostSource.choices)
    execution = django_filters.UUIDFilter(field_name="execution_id")
    project = django_filters.UUIDFilter(field_name="project_id")
    over_budget = django_filters.BooleanFilter()
    date_from = django_filters.DateFilter(field_name="incurred_on", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="incurred_on", lookup_expr="lte")
    min_amount = django_filters.NumberFilter(field_name="amount", lookup_expr="gte", min_value=0)
    max_amount = django_filters.NumberFilter(field_name="amount", lookup_expr="lte", min_value=0)
    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Matches description or service")
    sort = django_filters.OrderingFilter(
        fields=(("incurred_on", "incurred_on"), ("amount", "amount"), ("created_at", "created_at"),
                ("service", "service")),
        help_text="incurred_on, amount, created_at or service; prefix with - to reverse")

    class Meta:
        model = CostEntry
        fields = ["budget", "unbudgeted", "category", "service", "kind", "source", "execution", "project",
                  "over_budget", "date_from", "date_to", "min_amount", "max_amount", "search", "sort"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(description__icontains=value) | Q(service__icontains=value)) if value else queryset


class ApproverFilterSet(django_filters.FilterSet):
    level = django_filters.ChoiceFilter(choices=ApproverLevel.choices)
    is_active = django_filters.BooleanFilter()
    search = django_filters.CharFilter(method="filter_search", max_length=200)
    sort = django_filters.OrderingFilter(fields=(("user__username", "name"), ("limit", "limit"), ("level", "level")))

    class Meta:
        model = Approver
        fields = ["level", "is_active", "search", "sort"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(user__username__icontains=value) | Q(user__email__icontains=value)
                               | Q(user__first_name__icontains=value) | Q(user__last_name__icontains=value))


class NotificationRuleFilterSet(django_filters.FilterSet):
    budget = django_filters.UUIDFilter(field_name="budget_id")
    is_active = django_filters.BooleanFilter()
    recipient = django_filters.CharFilter(method="filter_recipient", max_length=254)

    class Meta:
        model = NotificationRule
        fields = ["budget", "is_active", "recipient"]

    def filter_recipient(self, queryset, name, value):
        # JSON containment is not portable to SQLite: match the serialized list instead.
        value = value.strip().lower()
        return queryset.filter(recipients__icontains=f'"{value}"') if value else queryset


class ReportFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ReportKind.choices)
    status = django_filters.ChoiceFilter(choices=ReportStatus.choices)
    scheduled = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    search = django_filters.CharFilter(field_name="title", lookup_expr="icontains", max_length=200)

    class Meta:
        model = Report
        fields = ["kind", "status", "scheduled", "created_after", "created_before", "search"]


def has_filter_parameters(filterset_class, query_params) -> bool:
    return any(name in query_params for name in filterset_class.base_filters)
