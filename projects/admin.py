from django.contrib import admin, messages

from core.exceptions import ApplicationError
from projects.models import Project, ProjectDataset, ProjectMember, ProjectUpload


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 0
    autocomplete_fields = ["user"]


class ProjectUploadInline(admin.TabularInline):
    model = ProjectUpload
    extra = 0
    can_delete = False
    fields = ["original_name", "checksum", "size", "validation_status", "uploaded_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ProjectDatasetInline(admin.TabularInline):
    model = ProjectDataset
    extra = 0
    can_delete = False
    fields = ["name", "original_name", "rows", "target_column", "task", "sha256", "uploaded_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "status", "created_at", "updated_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    inlines = [ProjectMemberInline, ProjectUploadInline, ProjectDatasetInline]


@admin.register(ProjectUpload)
class ProjectUploadAdmin(admin.ModelAdmin):
    list_display = ["original_name", "project", "app_name", "checksum", "size", "validation_status", "created_at"]
    list_filter = ["validation_status", "created_at"]
    search_fields = ["original_name", "checksum", "project__name", "app_name"]
    list_select_related = ["project"]
    readonly_fields = [f.name for f in ProjectUpload._meta.fields]

    def has_add_permission(self, request):
        # Archives are validated on the way in; the upload form and API are the only doors.
        return False


@admin.register(ProjectMember)
class ProjectMemberAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "access", "created_at"]
    list_filter = ["access"]
    search_fields = ["project__name", "user__username"]
    list_select_related = ["project", "user"]
    autocomplete_fields = ["project", "user"]


@admin.register(ProjectDataset)
class ProjectDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "task", "rows", "target_column", "size", "uploaded_by", "created_at"]
    list_filter = ["task", "created_at"]
    search_fields = ["name", "original_name", "sha256", "project__name"]
    list_select_related = ["project", "uploaded_by"]
    readonly_fields = [f.name for f in ProjectDataset._meta.fields]

    def has_add_permission(self, request):
        # Files are validated on the way in; the upload form and API are the only doors.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        # Through the service: it keeps a data set an unfinished execution trains on, and removes the file.
        from projects.services import project_dataset_delete

        for dataset in queryset:
            try:
                project_dataset_delete(dataset=dataset)
            except ApplicationError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
