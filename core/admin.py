from django.contrib import admin

from core.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["event", "created_at"]
    list_filter = ["event"]
    search_fields = ["event"]
    readonly_fields = ["id", "event", "data", "groups", "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
