import django_filters
from django.db.models import Q

from nodes.choices import Compute, NodeRole, NodeStatus, NodeType
from nodes.models import Node, NodeDataset


class NodeFilterSet(django_filters.FilterSet):
    """Shared by ``/nodes``, ``/fl/clients`` and its by-location and by-zone groupings."""

    status = django_filters.ChoiceFilter(choices=NodeStatus.choices)
    type = django_filters.ChoiceFilter(choices=NodeType.choices)
    capability = django_filters.ChoiceFilter(choices=Compute.choices, method="filter_capability",
                                             help_text="gpu, cpu or mobile (seed 001); gpu also matches nodes "
                                                       "reporting a GPU")
    gpu = django_filters.BooleanFilter(field_name="capability__gpu", help_text="Nodes with (true) or without a GPU")
    min_memory_gb = django_filters.NumberFilter(field_name="capability__memory_gb", method="filter_at_least",
                                                min_value=0)
    min_bandwidth_mbps = django_filters.NumberFilter(field_name="capability__bandwidth_mbps",
                                                     method="filter_at_least", min_value=0)
    region = django_filters.CharFilter(field_name="region", lookup_expr="iexact", max_length=100)
    zone = django_filters.CharFilter(method="filter_zone", max_length=50, help_text="Zone id or code")
    cluster = django_filters.NumberFilter(field_name="cluster_id", min_value=1, max_value=2**63 - 1)
    project = django_filters.UUIDFilter(field_name="project_id")
    execution = django_filters.UUIDFilter(field_name="current_execution_id")
    role = django_filters.ChoiceFilter(choices=NodeRole.choices)
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Matches name or host")
    sort = django_filters.OrderingFilter(
        fields=(("name", "name"), ("status", "status"), ("type", "type"), ("last_seen", "last_seen"),
                ("created_at", "created_at"), ("region", "region")),
        help_text="name, status, type, last_seen, created_at or region; prefix with - to reverse")

    class Meta:
        model = Node
        fields = ["status", "type", "capability", "gpu", "min_memory_gb", "min_bandwidth_mbps", "region", "zone",
                  "cluster", "project", "execution", "role", "search", "sort"]

    def filter_capability(self, queryset, name, value):
        if value == Compute.GPU:
            return queryset.filter(Q(capability__compute=value) | Q(capability__gpu=True))
        return queryset.filter(capability__compute=value)

    def filter_at_least(self, queryset, name, value):
        # JSON values compare as JSON numbers: a float, not the form's Decimal.
        return queryset.filter(**{f"{name}__gte": float(value)})

    def filter_zone(self, queryset, name, value):
        value = value.strip()
        if value.isdigit():
            return queryset.filter(zone_id=int(value)) if len(value) < 19 else queryset.none()
        return queryset.filter(zone__code=value)

    def filter_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(name__icontains=value) | Q(host__icontains=value)) if value else queryset


class NodeDatasetFilterSet(django_filters.FilterSet):
    node = django_filters.UUIDFilter(field_name="node_id")
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=200)

    class Meta:
        model = NodeDataset
        fields = ["node", "search"]


def has_filter_parameters(filterset_class, query_params) -> bool:
    return any(name in query_params for name in filterset_class.base_filters)
