import django_filters

from training.choices import ExecutionStatus, LogLevel
from training.models import Execution, ExecutionLog

# seed 001 names model families (``modelType: classification|regression|clustering``); executions
# store the model itself. Regression and clustering have one model each; everything else classifies.
MODEL_FAMILIES = {"regression": ("linear",), "clustering": ("kmeans",)}


def _text(value: str) -> str:
    return (value or "").strip()


class ExecutionFilterSet(django_filters.FilterSet):
    """Shared by ``GET /api/v1/fl/executions`` and the execution list page.

    Date ranges answer to seed 001's ``dateFrom``/``dateTo``, seed 004's ``startDate``/``endDate``
    and the ``created_after``/``created_before`` of the rest of the API.
    """

    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Matches the name")
    status = django_filters.ChoiceFilter(choices=ExecutionStatus.choices)
    model_type = django_filters.CharFilter(
        method="filter_model_type", max_length=50,
        help_text="A model (logistic, linear, kmeans, ...) or a seed 001 family: classification, regression, "
                  "clustering")
    modelType = django_filters.CharFilter(method="filter_model_type", max_length=50,  # noqa: N815 (seed name)
                                          help_text="Same as model_type")
    algorithm = django_filters.CharFilter(field_name="algorithm", lookup_expr="iexact", max_length=30)
    dataset = django_filters.CharFilter(field_name="dataset", lookup_expr="iexact", max_length=100)
    project = django_filters.UUIDFilter(field_name="project_id")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    dateFrom = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",  # noqa: N815
                                                help_text="Same as created_after")
    dateTo = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte",  # noqa: N815
                                              help_text="Same as created_before")
    startDate = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",  # noqa: N815
                                                 help_text="Same as created_after")
    endDate = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte",  # noqa: N815
                                               help_text="Same as created_before")
    sort = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("name", "name"), ("status", "status"), ("started_at", "started_at"),
                ("finished_at", "finished_at"), ("current_round", "current_round"),
                ("total_rounds", "total_rounds")),
        help_text="created_at, name, status, started_at, finished_at, current_round or total_rounds; "
                  "prefix with - to reverse",
    )

    class Meta:
        model = Execution
        fields = ["search", "status", "model_type", "modelType", "algorithm", "dataset", "project",
                  "created_after", "created_before", "dateFrom", "dateTo", "startDate", "endDate", "sort"]

    def filter_search(self, queryset, name, value):
        value = _text(value)
        return queryset.filter(name__icontains=value) if value else queryset

    def filter_model_type(self, queryset, name, value):
        value = _text(value).lower()
        if not value:
            return queryset
        if value in MODEL_FAMILIES:
            return queryset.filter(model_type__in=MODEL_FAMILIES[value])
        if value == "classification":
            families = [m for models in MODEL_FAMILIES.values() for m in models]
            return queryset.exclude(model_type__in=families)
        return queryset.filter(model_type__iexact=value)


class ExecutionLogFilterSet(django_filters.FilterSet):
    """Shared by ``/fl/executions/{id}/logs``, ``/fl/logs`` and ``/fl/logs/search``."""

    level = django_filters.ChoiceFilter(
        choices=[(v, v) for level in LogLevel.values for v in (level, level.lower())], method="filter_level",
        help_text="DEBUG, INFO, WARNING or ERROR (any case)")
    round = django_filters.NumberFilter(field_name="round_number", help_text="Round number")
    execution = django_filters.UUIDFilter(field_name="execution_id")
    source = django_filters.CharFilter(field_name="source", max_length=50)
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Matches the message")
    q = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Same as search")
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")
    sort = django_filters.OrderingFilter(fields=(("timestamp", "timestamp"), ("level", "level")),
                                         help_text="timestamp or level; prefix with - to reverse")

    class Meta:
        model = ExecutionLog
        fields = ["level", "round", "execution", "source", "search", "q", "since", "until", "sort"]

    def filter_level(self, queryset, name, value):
        return queryset.filter(level=value.upper())

    def filter_search(self, queryset, name, value):
        value = _text(value)
        return queryset.filter(message__icontains=value) if value else queryset


def has_filter_parameters(filterset_class, query_params) -> bool:
    """Building a FilterSet costs more than a small query; without any of its parameters skip it."""
    return any(name in query_params for name in filterset_class.base_filters)
