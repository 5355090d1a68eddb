import django_filters
from django.db.models import Q

from training.choices import ExecutionStatus
from training.filters import MODEL_FAMILIES
from training.models import RegisteredModel


class RegisteredModelFilterSet(django_filters.FilterSet):
    """Shared by ``GET /api/v1/fl/models`` and ``GET /api/v1/models``."""

    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Matches the name or the description")
    model_type = django_filters.CharFilter(
        method="filter_model_type", max_length=50,
        help_text="A model (logistic, linear, kmeans, mlp, cnn, flower_app) or a seed 001 family: "
                  "classification, regression, clustering")
    modelType = django_filters.CharFilter(method="filter_model_type", max_length=50,  # noqa: N815 (seed name)
                                          help_text="Same as model_type")
    algorithm = django_filters.CharFilter(field_name="algorithm", lookup_expr="iexact", max_length=30)
    dataset = django_filters.CharFilter(field_name="dataset", lookup_expr="iexact", max_length=100)
    project = django_filters.UUIDFilter(field_name="project_id")
    execution = django_filters.UUIDFilter(field_name="execution_id")
    execution_status = django_filters.ChoiceFilter(field_name="execution__status", choices=ExecutionStatus.choices,
                                                   help_text="The status of the model's execution")
    pinned = django_filters.BooleanFilter(help_text="Rolled back and held at an older version")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    sort = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name"),
                ("model_type", "model_type"), ("latest_version", "latest_version")),
        help_text="created_at, updated_at, name, model_type or latest_version; prefix with - to reverse",
    )

    class Meta:
        model = RegisteredModel
        fields = ["search", "model_type", "modelType", "algorithm", "dataset", "project", "execution",
                  "execution_status", "pinned", "created_after", "created_before", "sort"]

    def filter_search(self, queryset, name, value):
        value = (value or "").strip()
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value)) if value else queryset

    def filter_model_type(self, queryset, name, value):
        value = (value or "").strip().lower()
        if not value:
            return queryset
        if value in MODEL_FAMILIES:
            return queryset.filter(model_type__in=MODEL_FAMILIES[value])
        if value == "classification":
            return queryset.filter(model_type__in=("logistic", "mlp", "cnn"))
        return queryset.filter(model_type__iexact=value)
