from django.contrib import admin

from training.models import (Execution, ExecutionLog, ModelEvaluation, ModelVersion, RegisteredModel, Round,
                             RoundClient)

# What the engine writes while it runs; an operator reads these but does not edit them.
ENGINE_FIELDS = ["status", "current_round", "metrics", "control", "control_reason", "resume_from_round",
                 "error_code", "error_message", "started_at", "finished_at", "heartbeat_at", "worker", "attempt",
                 "cpu_seconds", "created_by", "created_at", "updated_at"]
ROUND_FIELDS = ["number", "status", "participants", "started_at", "completed_at", "duration_seconds", "bytes_sent",
                "bytes_received", "train_metrics", "evaluate_metrics", "server_metrics", "checkpoint",
                "checkpoint_checksum"]


class RoundInline(admin.TabularInline):
    model = Round
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["number", "status", "participants", "duration_seconds", "server_metrics", "checkpoint_checksum",
              "completed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "algorithm", "model_type", "dataset", "current_round",
                    "total_rounds", "created_at"]
    list_filter = ["status", "algorithm", "model_type", "dataset", "transport", "created_at"]
    search_fields = ["id", "name", "project__name", "created_by__username"]
    list_select_related = ["project"]
    autocomplete_fields = ["project"]
    raw_id_fields = ["upload"]
    readonly_fields = ENGINE_FIELDS
    date_hierarchy = "created_at"
    inlines = [RoundInline]


class RoundClientInline(admin.TabularInline):
    model = RoundClient
    extra = 0
    can_delete = False
    fields = ["node_id", "partition_id", "phase", "num_examples", "duration_ms", "bytes_down", "bytes_up", "error",
              "metrics"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["execution", "number", "status", "participants", "duration_seconds", "completed_at"]
    list_filter = ["status", "completed_at"]
    search_fields = ["execution__id", "execution__name"]
    list_select_related = ["execution"]
    readonly_fields = ["execution", *ROUND_FIELDS]
    inlines = [RoundClientInline]

    def has_add_permission(self, request):
        return False  # rounds are what a run did


@admin.register(RoundClient)
class RoundClientAdmin(admin.ModelAdmin):
    list_display = ["round", "node_id", "partition_id", "phase", "num_examples", "duration_ms", "error"]
    list_filter = ["phase"]
    search_fields = ["round__execution__id", "round__execution__name", "error"]
    list_select_related = ["round"]
    readonly_fields = [f.name for f in RoundClient._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ExecutionLog)
class ExecutionLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "execution", "level", "round_number", "source", "short_message"]
    list_filter = ["level", "source", "timestamp"]
    search_fields = ["message"]
    list_select_related = ["execution"]
    readonly_fields = [f.name for f in ExecutionLog._meta.fields]
    date_hierarchy = "timestamp"

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message if len(obj.message) <= 120 else obj.message[:117] + "..."

    def has_add_permission(self, request):
        return False


# ---- model registry --------------------------------------------------------------------------------

class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fk_name = "model"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["number", "status", "checksum", "size", "tags", "created_at"]
    readonly_fields = ["number", "checksum", "size", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False  # versions are published from rounds


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "execution", "model_type", "algorithm", "dataset", "current_version", "pinned",
                    "created_at"]
    list_filter = ["model_type", "algorithm", "dataset", "pinned", "created_at"]
    search_fields = ["id", "name", "description", "project__name", "execution__id"]
    list_select_related = ["project", "execution", "current_version__model"]
    raw_id_fields = ["project", "execution", "current_version", "last_training", "created_by", "rolled_back_by"]
    readonly_fields = ["model_type", "algorithm", "dataset", "rolled_back_at", "rolled_back_by", "created_at",
                       "updated_at"]
    inlines = [ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "number", "status", "checksum", "size", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["model__name", "model__id", "checksum"]
    list_select_related = ["model"]
    readonly_fields = ["model", "number", "round", "file", "checksum", "size", "metrics", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False


@admin.register(ModelEvaluation)
class ModelEvaluationAdmin(admin.ModelAdmin):
    list_display = ["model", "version", "dataset", "status", "created_at", "finished_at"]
    list_filter = ["status", "dataset", "created_at"]
    search_fields = ["model__name", "model__id", "error"]
    list_select_related = ["model", "version__model"]
    readonly_fields = [f.name for f in ModelEvaluation._meta.fields]

    def has_add_permission(self, request):
        return False
