from django.contrib import admin, messages

from nodes.models import (Cluster, DeviceCredential, DeviceModel, DeviceRound, DeviceUpdate, Node, NodeDataset,
                          NodeMetric, Zone)


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


# ---- seed 002's device protocol (nodes.protocol) -------------------------------------------------------
# Rounds, updates and models are produced by the protocol: shown, never added, edited or deleted here.
# A device's credential is made by its registration; the one thing done here is revoking its token.


class _ProducedByTheProtocol(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DeviceCredential)
class DeviceCredentialAdmin(admin.ModelAdmin):
    list_display = ["device_id", "node", "owner", "platform", "token_expires_at", "revoked_at", "created_at"]
    list_filter = ["platform", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["device_id", "node__id", "node__name", "owner__email"]
    list_select_related = ["node", "owner"]
    readonly_fields = ["node", "owner", "device_id", "platform", "capabilities", "public_key", "token_jti",
                       "token_issued_at", "token_expires_at", "revoked_at", "created_at", "updated_at"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False  # a device registers itself with its registrant's API key

    def has_delete_permission(self, request, obj=None):
        return False  # revoke the token, or delete the node to forget the device

    @admin.action(description="Revoke the selected devices' tokens (they must register again)",
                  permissions=["change"])
    def revoke_tokens(self, request, queryset):
        from nodes.protocol.services import device_token_revoke

        revoked = 0
        for credential in queryset.select_related("node").filter(revoked_at__isnull=True):
            device_token_revoke(node=credential.node)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} device token(s).", messages.SUCCESS)


@admin.register(DeviceModel)
class DeviceModelAdmin(_ProducedByTheProtocol):
    list_display = ["version", "execution", "number", "size", "checksum", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["version", "checksum", "execution__id"]
    list_select_related = ["execution"]


@admin.register(DeviceRound)
class DeviceRoundAdmin(_ProducedByTheProtocol):
    list_display = ["id", "execution", "number", "status", "updates_received", "target_updates", "total_weight",
                    "global_model", "deadline", "closed_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["id", "execution__id"]
    list_select_related = ["execution", "global_model"]
    date_hierarchy = "created_at"


@admin.register(DeviceUpdate)
class DeviceUpdateAdmin(_ProducedByTheProtocol):
    list_display = ["id", "node", "round", "num_examples", "weight", "size", "received_at"]
    list_filter = ["round__status", "received_at"]
    search_fields = ["id", "node__id", "node__name", "round__id", "checksum"]
    list_select_related = ["node", "round"]
    date_hierarchy = "received_at"
