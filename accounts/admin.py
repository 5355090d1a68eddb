from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, Role, User


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "permission_list", "is_builtin"]
    search_fields = ["name", "description"]
    readonly_fields = ["is_builtin", "created_at", "updated_at"]

    @admin.display(description="Permissions")
    def permission_list(self, obj):
        return ", ".join(obj.permissions)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_builtin:
            return [*self.readonly_fields, "name", "permissions"]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return not (obj is not None and obj.is_builtin) and super().has_delete_permission(request, obj)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "role_list", "is_active", "is_staff", "locked_until", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "roles"]
    filter_horizontal = ["roles", "groups", "user_permissions"]
    readonly_fields = ["failed_login_count", "tokens_valid_after", "last_login", "date_joined"]
    fieldsets = DjangoUserAdmin.fieldsets + (
        ("Pollen access", {"fields": ("roles", "failed_login_count", "locked_until", "tokens_valid_after")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2", "roles")}),
    )
    actions = ["unlock_accounts"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="Roles")
    def role_list(self, obj):
        return ", ".join(r.name for r in obj.roles.all())

    @admin.action(description="Unlock selected accounts")
    def unlock_accounts(self, request, queryset):
        for user in queryset:
            services.user_unlock(user=user)
        self.message_user(request, f"Unlocked {queryset.count()} account(s).")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scope_list", "status", "expires_at", "last_used_at", "created_at"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "key_hash", "scopes", "expires_at", "revoked_at",
                       "last_used_at", "rotated_from", "created_at", "updated_at"]
    actions = ["revoke_keys"]

    @admin.display(description="Scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    def has_add_permission(self, request):
        # A key's secret is shown once to its owner; keys are made through the API.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key)
        self.message_user(request, f"Revoked keys at {timezone.now():%Y-%m-%d %H:%M:%S} UTC.")
