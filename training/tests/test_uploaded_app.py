"""An uploaded Flower app, unmodified, trains in an isolated child process."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import UserFactory
from projects import services as project_services
from projects.management.commands.seed_demo import demo_app_zip
from projects.tests.factories import ProjectFactory
from training import services
from training.choices import ExecutionStatus
from training.models import ExecutionLog

pytestmark = pytest.mark.django_db


def _project_with_app(archive: bytes, name="app.zip"):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    project_services.project_upload(project=project, uploaded_by=owner,
                                    file=SimpleUploadedFile(name, archive, content_type="application/zip"))
    return owner, project


def _run(owner, project, config, callbacks):
    with callbacks(execute=True):
        execution = services.execution_start(project=project, user=owner, config=config)
    execution.refresh_from_db()
    return execution


def test_the_uploaded_app_trains_and_config_rounds_override_its_own(django_capture_on_commit_callbacks):
    owner, project = _project_with_app(demo_app_zip())
    execution = _run(owner, project, {"rounds": 3, "clients": 4}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.upload is not None and execution.config["source"] == "upload"
    rounds = list(execution.rounds.order_by("number"))
    assert [r.number for r in rounds] == [1, 2, 3]  # the app says 5; config.rounds wins
    losses = [r.evaluate_metrics["eval_loss"] for r in rounds]
    assert losses[-1] < losses[0], losses
    assert all(r.participants == 4 for r in rounds)
    assert rounds[-1].checkpoint and rounds[0].checkpoint
    assert ExecutionLog.objects.filter(execution=execution, source="app").exists()  # its prints are kept


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _broken_app(server_body: str) -> bytes:
    return _zip({
        "pyproject.toml": '[project]\nname = "broken"\nversion = "1.0"\n[tool.flwr.app.components]\n'
                          'serverapp = "broken.server_app:app"\nclientapp = "broken.client_app:app"\n',
        "broken/__init__.py": "",
        "broken/task.py": "",
        "broken/client_app.py": "from flwr.clientapp import ClientApp\napp = ClientApp()\n",
        "broken/server_app.py": "from flwr.serverapp import ServerApp\napp = ServerApp()\n\n"
                                "@app.main()\ndef main(grid, context):\n" + server_body,
    })


def test_an_app_that_raises_fails_with_its_error(django_capture_on_commit_callbacks):
    owner, project = _project_with_app(_broken_app("    raise RuntimeError('no data here')\n"))
    execution = _run(owner, project, {"rounds": 2, "clients": 2}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_code == "FL003" and "no data here" in execution.error_message


def test_an_app_over_its_memory_limit_is_stopped(django_capture_on_commit_callbacks, settings):
    settings.TRAINING_UPLOADED_APP_MEMORY_MB = 1024
    owner, project = _project_with_app(_broken_app("    hog = bytearray(4 * 1024 ** 3)\n"))
    execution = _run(owner, project, {"rounds": 1, "clients": 2}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.FAILED
    assert "MemoryError" in execution.error_message or "memory" in execution.error_message


def test_an_app_over_its_time_limit_is_killed(django_capture_on_commit_callbacks, settings):
    settings.TRAINING_UPLOADED_APP_TIMEOUT_SECONDS = 3
    owner, project = _project_with_app(_broken_app("    import time\n    time.sleep(60)\n"))
    execution = _run(owner, project, {"rounds": 1, "clients": 2}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.FAILED
    assert "time limit" in execution.error_message


def test_builtin_source_ignores_the_upload(django_capture_on_commit_callbacks):
    owner, project = _project_with_app(demo_app_zip())
    execution = _run(owner, project, {"source": "builtin", "rounds": 2, "clients": 3, "dataset": "iris",
                                      "model_type": "logistic"}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.COMPLETED and execution.upload is None


def test_a_legacy_flower_app_with_server_fn_and_numpyclient_trains(django_capture_on_commit_callbacks):
    """Flower apps written against the older API (ServerApp(server_fn=...), NumPyClient) run too."""
    from projects.tests.archives import flower_zip

    owner, project = _project_with_app(flower_zip())
    execution = _run(owner, project, {"rounds": 2, "clients": 3}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.rounds.filter(status="completed").count() == 2


def test_an_uploaded_app_resumes_from_a_rounds_checkpoint(django_capture_on_commit_callbacks):
    from training.models import Execution, Round
    from training.runner import npz_to_arrays

    owner, project = _project_with_app(demo_app_zip())
    execution = _run(owner, project, {"rounds": 4, "clients": 3}, django_capture_on_commit_callbacks)
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    with execution.rounds.get(number=2).checkpoint.open("rb") as fh:
        round_two = npz_to_arrays(fh.read()).to_numpy_ndarrays()
    Round.objects.filter(execution=execution, number__gt=2).delete()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.STOPPED, current_round=2)
    execution.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.execution_resume(execution=execution, from_round=2)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    rounds = list(execution.rounds.order_by("number"))
    assert [r.number for r in rounds] == [1, 2, 3, 4]
    # round 3 started from round 2's model: its loss continues the descent instead of restarting
    losses = [r.evaluate_metrics["eval_loss"] for r in rounds]
    assert losses[2] < losses[0] and losses[3] < losses[1], losses
    assert round_two[0].shape == (8,)
