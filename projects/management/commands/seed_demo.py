"""Create the demo administrator, a demo user and a demo project with an uploaded Flower app.

Idempotent: running it again changes nothing that exists. The logins are printed and are the ones
the README gives; never run this against a production database.
"""

import io
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Role, User
from projects import services
from projects.models import Project

DEMO_APP_DIR = Path(__file__).resolve().parents[2] / "demo_app"
ADMIN = ("admin", "admin@pollen.local", "pollen-admin")
DEMO = ("demo", "demo@pollen.local", "pollen-demo")


def demo_app_zip() -> bytes:
    """The bundled Flower app (projects/demo_app) as a ZIP, the way a user would upload it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(DEMO_APP_DIR.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, f"pollen-demo/{path.relative_to(DEMO_APP_DIR).as_posix()}")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Create demo logins and a demo project (embedded/development use only)."

    def handle(self, *args, **options):
        if settings.POLLEN_ENVIRONMENT == "production":
            raise CommandError("seed_demo creates well-known passwords; it refuses to run in production")
        self._user(*ADMIN, roles=["admin"], staff=True)
        demo = self._user(*DEMO, roles=["user"], staff=False)
        project, created = Project.objects.get_or_create(
            owner=demo, name="Digits federation",
            defaults={
                "description": "Demo project: a NumPy logistic-regression Flower app on synthetic partitions.",
                "configuration": {"model_type": "logistic", "dataset": "synthetic",
                                  "privacy_settings": {"differential_privacy": False, "secure_aggregation": False}},
            },
        )
        if created or not project.uploads.exists():
            upload = services.project_upload(
                project=project, uploaded_by=demo,
                file=SimpleUploadedFile("pollen-demo.zip", demo_app_zip(), content_type="application/zip"),
            )
            self.stdout.write(f"uploaded the demo Flower app ({len(upload.files)} files, sha256 {upload.checksum[:12]}…)")
        if not project.executions.exists():
            from training.services import execution_start

            # Queued now, trained by the worker the run command starts.
            execution_start(project=project, user=demo, name="Digits, logistic regression, 5 nodes",
                            config={"source": "builtin", "model_type": "logistic", "dataset": "digits",
                                    "rounds": 10, "clients": 5, "partition": "dirichlet", "alpha": 1.0})
            execution_start(project=project, user=demo, name="The uploaded pollen-demo app",
                            config={"source": "upload", "rounds": 5, "clients": 4})
            self.stdout.write("queued two demo trainings")
        self.stdout.write(self.style.SUCCESS(
            f"demo logins: {ADMIN[0]} / {ADMIN[2]} (administrator), {DEMO[0]} / {DEMO[2]} (user)"))

    def _user(self, username, email, password, *, roles, staff):
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, email=email, password=password,
                                            is_staff=staff, is_superuser=staff)
            self.stdout.write(f"created {username}")
        user.roles.add(*Role.objects.filter(name__in=roles))
        return user
