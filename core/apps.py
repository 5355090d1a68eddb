from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Pollen core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import metrics  # noqa: F401  registers Pollen's own Prometheus collector
