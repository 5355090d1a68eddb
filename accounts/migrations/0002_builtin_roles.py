from django.db import migrations

# Frozen copy: a migration must not change when accounts.roles does.
BUILTIN_ROLES = {
    "admin": (["*"], "All permissions"),
    "user": (["read:projects", "write:projects", "start:training", "view:metrics"],
             "Works on their own projects and starts training"),
    "viewer": (["read:projects", "view:metrics"], "Reads projects and metrics"),
    "platform_admin": (["*"], "Full platform administration"),
    "service_owner": (["service:*", "budget:read", "monitoring:*"], "Service management and monitoring"),
    "financial_controller": (["budget:*", "approval:*", "report:*"], "Financial management and approvals"),
    "ml_engineer": (["client:*", "execution:*", "model:*", "test:write"], "ML operations and training"),
    "test_engineer": (["test:*", "report:write", "monitoring:read"], "Testing and quality assurance"),
    "operator": (["service:read", "monitoring:*", "alert:*", "log:read"], "Operations and monitoring"),
    "analyst": (["report:read", "chart:read", "metric:read", "log:read"], "Analytics and reporting"),
}


def create_roles(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    for name, (permissions, description) in BUILTIN_ROLES.items():
        Role.objects.update_or_create(
            name=name, defaults={"permissions": permissions, "description": description, "is_builtin": True}
        )


def remove_roles(apps, schema_editor):
    apps.get_model("accounts", "Role").objects.filter(name__in=BUILTIN_ROLES, is_builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_roles, remove_roles)]
