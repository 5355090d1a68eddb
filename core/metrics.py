"""Pollen's own Prometheus gauges, read from the database at scrape time.

django-prometheus supplies the request, database and cache metrics; this collector adds what
the platform holds. Later parts (training, nodes) add their ``fl_*`` families here.
"""

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY


class PollenCollector:
    def describe(self):
        # Without this the registry would call collect() (and query) at import time.
        return []

    def collect(self):
        from django.apps import apps
        from django.utils import timezone

        User = apps.get_model("accounts", "User")
        ApiKey = apps.get_model("accounts", "ApiKey")
        Project = apps.get_model("projects", "Project")
        ProjectUpload = apps.get_model("projects", "ProjectUpload")
        try:
            users = GaugeMetricFamily("pollen_users", "Registered users", labels=["active"])
            for row in User.objects.values("is_active").annotate(n=Count("id")):
                users.add_metric([str(row["is_active"]).lower()], row["n"])
            yield users

            projects = GaugeMetricFamily("pollen_projects", "Projects by status", labels=["status"])
            for row in Project.objects.values("status").annotate(n=Count("id")):
                projects.add_metric([row["status"]], row["n"])
            yield projects

            yield GaugeMetricFamily("pollen_project_uploads", "Stored Flower app archives",
                                    value=ProjectUpload.objects.count())
            yield GaugeMetricFamily(
                "pollen_api_keys_active", "API keys neither revoked nor expired",
                value=ApiKey.objects.active(now=timezone.now()).count(),
            )
        except Exception:  # a scrape during migrations or with the database down yields nothing
            return


_collector = PollenCollector()
try:
    REGISTRY.register(_collector)
except ValueError:  # already registered (autoreload)
    pass
