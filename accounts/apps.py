from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Identity and access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import schema  # noqa: F401  registers the OpenAPI auth schemes
        from accounts import signals  # noqa: F401  keeps token permission claims honest
