import json
import zoneinfo

from django.db import migrations

# Celery beat's budget work (django-celery-beat's DatabaseScheduler reads these rows). Operators
# change the schedules in the Django admin; this only creates them.
TASKS = [
    {"name": "budgets: monthly spending report", "task": "budgets.tasks.reports_generate_scheduled",
     "kwargs": {"kind": "full"}, "crontab": {"minute": "0", "hour": "6", "day_of_month": "1"},
     "description": "Builds the spending report (summary, monthly trends, forecast), stores it and e-mails "
                    "its CSV to BUDGET_REPORT_RECIPIENTS or the notification rules' recipients."},
    {"name": "budgets: threshold sweep", "task": "budgets.tasks.thresholds_sweep", "kwargs": {},
     "crontab": {"minute": "15", "hour": "*", "day_of_month": "*"},
     "description": "Checks every spendable budget's notification thresholds (a lowered total or a new "
                    "rule); bookings check their own at once."},
]


def create_tasks(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for spec in TASKS:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=spec["crontab"]["minute"], hour=spec["crontab"]["hour"], day_of_week="*",
            day_of_month=spec["crontab"]["day_of_month"], month_of_year="*", timezone=zoneinfo.ZoneInfo("UTC"))
        PeriodicTask.objects.update_or_create(name=spec["name"], defaults={
            "task": spec["task"], "crontab": schedule, "kwargs": json.dumps(spec["kwargs"]), "enabled": True,
            "description": spec["description"]})


def remove_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[spec["name"] for spec in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("budgets", "0002_seed_categories"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_tasks, remove_tasks)]
