from django.contrib import admin

from nodes.models import Cluster, Node, NodeDataset, NodeMetric, Zone


class NodeDatasetInline(admin.TabularInline):
    model = NodeDataset
    extra = 0


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "status", "host", "region", "zone", "cluster", "last_seen", "current_execution"]
    list_filter = ["type", "status", "region", "zone"]
    search_fields = ["id", "name", "host"]
    list_select_related = ["zone", "cluster", "current_execution"]
    raw_id_fields = ["current_execution", "registered_by", "project"]
    readonly_fields = ["last_seen", "stale_at", "latest_metrics", "created_at", "updated_at"]
    inlines = [NodeDatasetInline]


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "region"]
    search_fields = ["name", "code", "region"]


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "zone"]
    list_filter = ["zone"]
    search_fields = ["name"]
    list_select_related = ["zone"]


@admin.register(NodeMetric)
class NodeMetricAdmin(admin.ModelAdmin):
    """Written by heartbeats; read here, never edited."""

    list_display = ["node", "timestamp", "cpu_percent", "memory_percent", "disk_percent", "rounds_completed"]
    list_select_related = ["node"]
    raw_id_fields = ["node"]
    date_hierarchy = "timestamp"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
