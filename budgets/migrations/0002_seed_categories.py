from django.db import migrations

# Frozen copy of seed 004's categories: a migration must not change when budgets.choices does.
CATEGORIES = [
    ("personnel", "Personnel", "#3B82F6", "Salaries, benefits"),
    ("infrastructure", "Infrastructure", "#10B981", "Cloud, hardware"),
    ("software", "Software & Licenses", "#8B5CF6", "Software and licences"),
    ("consulting", "Consulting", "#F59E0B", "External consultants"),
    ("training", "Training", "#EC4899", "Courses and certification"),
    ("operations", "Operations", "#06B6D4", "Running costs"),
    ("marketing", "Marketing", "#EF4444", "Campaigns and events"),
    ("contingency", "Contingency", "#6B7280", "Reserve for the unforeseen"),
]


def create_categories(apps, schema_editor):
    Category = apps.get_model("budgets", "Category")
    for position, (value, name, color, description) in enumerate(CATEGORIES, start=1):
        Category.objects.update_or_create(value=value, defaults={"name": name, "color": color,
                                                                 "description": description, "position": position})


def remove_categories(apps, schema_editor):
    Category = apps.get_model("budgets", "Category")
    Category.objects.filter(value__in=[c[0] for c in CATEGORIES], budget_lines__isnull=True,
                            cost_entries__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("budgets", "0001_initial")]
    operations = [migrations.RunPython(create_categories, remove_categories)]
