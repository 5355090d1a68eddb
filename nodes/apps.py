from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"
    verbose_name = "Federated nodes"
    default_auto_field = "django.db.models.BigAutoField"
