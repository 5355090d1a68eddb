import django_filters
from django.db.models import Q

from projects.choices import DatasetTask, ProjectStatus
from projects.models import Project, ProjectDataset


class ProjectFilterSet(django_filters.FilterSet):
    """Shared by ``GET /api/v1/projects`` and the project list page."""

    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Matches name or description")
    status = django_filters.ChoiceFilter(choices=ProjectStatus.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    sort = django_filters.OrderingFilter(
        fields=(("name", "name"), ("created_at", "created_at"), ("updated_at", "updated_at"), ("status", "status")),
        help_text="name, created_at, updated_at or status; prefix with - to reverse",
    )

    class Meta:
        model = Project
        fields = ["search", "status", "created_after", "created_before", "sort"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class ProjectDatasetFilterSet(django_filters.FilterSet):
    """Shared by ``GET /api/v1/projects/{id}/datasets`` and the project page."""

    search = django_filters.CharFilter(method="filter_search", max_length=200,
                                       help_text="Matches name, file name or target column")
    task = django_filters.ChoiceFilter(choices=DatasetTask.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    sort = django_filters.OrderingFilter(
        fields=(("name", "name"), ("created_at", "created_at"), ("rows", "rows"), ("size", "size")),
        help_text="name, created_at, rows or size; prefix with - to reverse",
    )

    class Meta:
        model = ProjectDataset
        fields = ["search", "task", "created_after", "created_before", "sort"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(original_name__icontains=value)
                               | Q(target_column__icontains=value))
