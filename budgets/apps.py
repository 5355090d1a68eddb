from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets and costs"
    default_auto_field = "django.db.models.BigAutoField"
