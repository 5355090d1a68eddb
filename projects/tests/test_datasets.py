"""CSV data sets: the validator against the training engine's loader, the service, the pages and
the admin. The API has its own suite (``projects/tests/api/test_datasets.py``)."""

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from core.exceptions import ApplicationError
from core.models import Event
from projects import services
from projects.datasets import validate_csv_dataset
from projects.models import ProjectDataset
from projects.tests.conftest import media_files
from projects.tests.csvdata import BAD_FILES, GOOD_ROWS, HEADER, csv_bytes, sklearn_csv, with_row
from projects.tests.factories import ProjectDatasetFactory, ProjectFactory, ProjectMemberFactory
from training.engine.datasets import load_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, name="Cohorts", configuration={})


def _file(content: bytes, name: str = "data.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def _html(response) -> str:
    return response.content.decode()


# ---- one parser: what validates is what trains ---------------------------------------------------

GOOD_FILES = {
    "wine": (sklearn_csv("wine"), {}),
    "diabetes": (sklearn_csv("diabetes"), {}),
    "text labels first": (csv_bytes(["kind", "x1", "x2"], [[["spam", "ham"][i % 2], i, -i] for i in range(20)]),
                          {"target_column": "kind"}),
    "forced regression": (csv_bytes(["x", "score"], [[i, i % 5] for i in range(30)]), {"task": "regression"}),
    "forced classes": (csv_bytes(["x", "y"], [[i, (i % 4) * 0.5] for i in range(30)]), {"task": "classification"}),
    "bom, crlf, blank lines": (b"\xef\xbb\xbf" + csv_bytes(HEADER, GOOD_ROWS, newline="\r\n\r\n"), {}),
}


@pytest.mark.parametrize("case", list(GOOD_FILES))
def test_the_training_loader_reads_a_validated_file_as_the_validator_did(project, owner, case):
    content, options = GOOD_FILES[case]
    dataset = services.project_dataset_create(project=project, uploaded_by=owner, file=_file(content), **options)

    loaded = load_dataset("csv", csv_path=dataset.file.path, target_column=dataset.target_column,
                          task=dataset.task)
    inferred = load_dataset(f"csv:{dataset.pk}:{dataset.task}", csv_path=dataset.file.path,
                            target_column=dataset.target_column)
    for data in (loaded, inferred):
        assert data.task == dataset.task
        assert len(data.y_train) + len(data.y_test) == dataset.rows
        assert data.feature_names == [c for c in dataset.columns if c != dataset.target_column]
        assert data.n_classes == dataset.num_classes
    assert inferred.y_train.tolist() == loaded.y_train.tolist()


@pytest.mark.parametrize("case", [c for c in BAD_FILES if BAD_FILES[c][2] != "empty_file"])
def test_the_training_loader_refuses_a_bad_file_with_the_validators_words(tmp_path, case):
    content, _, _, _ = BAD_FILES[case]
    with pytest.raises(ApplicationError) as refused:
        validate_csv_dataset(io.BytesIO(content))
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    last = content.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")[-1].strip()
    with pytest.raises(ValueError) as failed:
        load_dataset("csv", csv_path=str(path), target_column=last or "y")
    assert str(failed.value) == refused.value.message


# ---- the service ------------------------------------------------------------------------------------

def test_create_stores_the_file_and_announces_it(project, owner):
    dataset = services.project_dataset_create(project=project, uploaded_by=owner, file=_file(sklearn_csv("iris")),
                                              name="Iris")
    assert dataset.rows == 150 and dataset.num_classes == 3 and dataset.uploaded_by == owner
    assert [p.name for p in media_files()] == [f"{dataset.pk}.csv"]
    event = Event.objects.get(event="project.dataset_uploaded")
    assert event.data["dataset_id"] == str(dataset.pk) and event.data["task"] == "classification"


def test_a_failure_after_storing_removes_the_file(project, owner, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ProjectDataset, "save", broken)
    with pytest.raises(RuntimeError):
        services.project_dataset_create(project=project, uploaded_by=owner, file=_file(csv_bytes(HEADER, GOOD_ROWS)))
    assert media_files() == []


def test_an_invalid_file_stores_nothing(project, owner):
    with pytest.raises(ApplicationError) as exc:
        services.project_dataset_create(project=project, uploaded_by=owner,
                                        file=_file(csv_bytes(HEADER, with_row(4, [4, "x", 1]))))
    assert exc.value.http_status == 422
    assert exc.value.details == {"field": "file", "reason": "not_numeric", "row": 5, "line": 6, "column": "b"}
    assert not ProjectDataset.objects.exists() and media_files() == []
    assert not Event.objects.filter(event="project.dataset_uploaded").exists()


def test_delete_announces_and_removes_the_file(project, owner, django_capture_on_commit_callbacks):
    dataset = services.project_dataset_create(project=project, uploaded_by=owner,
                                              file=_file(csv_bytes(HEADER, GOOD_ROWS)))
    with django_capture_on_commit_callbacks(execute=True):
        services.project_dataset_delete(dataset=dataset)
    assert not ProjectDataset.objects.exists() and media_files() == []
    assert Event.objects.filter(event="project.dataset_deleted").exists()


# ---- pages ------------------------------------------------------------------------------------------

@pytest.fixture
def web(client, owner):
    client.force_login(owner)
    return client


def test_project_page_lists_data_sets_with_an_upload_form(web, project):
    ProjectDatasetFactory(project=project, name="Cohort A", original_name="cohort-a.csv")
    html = _html(web.get(f"/projects/{project.pk}/"))
    assert 'id="datasets"' in html and "Cohort A" in html and "cohort-a.csv" in html
    form = re.search(r'<form[^>]*id="dataset-form".*?</form>', html, re.S).group(0)
    assert 'enctype="multipart/form-data"' in form and "csrfmiddlewaretoken" in form
    for name in ("file", "name", "target_column", "task"):
        assert f'name="{name}"' in form


def test_upload_through_the_page_then_preview(web, project):
    r = web.post(f"/projects/{project.pk}/datasets/", {"file": _file(sklearn_csv("iris"), "iris.csv"),
                                                        "name": "", "target_column": "", "task": ""})
    dataset = ProjectDataset.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/projects/{project.pk}/datasets/{dataset.pk}/"
    page = web.get(r["Location"])
    html = _html(page)
    assert page.status_code == 200
    assert "iris" in html and f"csv:{dataset.pk}" in html
    assert len(page.context["preview"]["rows"]) == 20
    preview = re.search(r'<table class="table" id="dataset-preview">.*?</table>', html, re.S).group(0)
    assert preview.count("<tr>") == 21 and "5.1" in preview
    summary = re.search(r'<table class="table" id="dataset-summary">.*?</table>', html, re.S).group(0)
    assert "4.3000" in summary and "7.9000" in summary and "<code>0</code>: 50" in summary


def test_a_bad_upload_shows_the_error_next_to_its_field(web, project):
    r = web.post(f"/projects/{project.pk}/datasets/", {"file": _file(csv_bytes(HEADER, with_row(2, [2, "x", 0])))})
    assert r.status_code == 200
    html = _html(r)
    error = re.search(r'<p class="error" id="id_file-error">(.*?)</p>', html, re.S).group(1)
    assert "Column &#x27;b&#x27;, row 3" in error
    r = web.post(f"/projects/{project.pk}/datasets/", {"file": _file(csv_bytes(HEADER, GOOD_ROWS)),
                                                        "target_column": "label"})
    assert 'id="id_target_column-error"' in _html(r)
    r = web.post(f"/projects/{project.pk}/datasets/", {"name": "no file"})
    assert "Choose a CSV file." in _html(r)
    assert not ProjectDataset.objects.exists() and media_files() == []


def test_a_page_upload_past_the_size_limit_is_cut_off(web, project, settings):
    settings.PROJECT_DATASET_MAX_BYTES = 1000
    r = web.post(f"/projects/{project.pk}/datasets/",
                 {"file": _file(csv_bytes(HEADER, [[i, i, i % 2] for i in range(500)]))})
    assert r.status_code == 200
    assert "larger than the limit of 1000 bytes" in _html(r)
    assert not ProjectDataset.objects.exists() and media_files() == []


def test_page_upload_needs_the_csrf_token(owner, project):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    r = browser.post(f"/projects/{project.pk}/datasets/", {"file": _file(csv_bytes(HEADER, GOOD_ROWS))})
    assert r.status_code == 403
    assert not ProjectDataset.objects.exists() and media_files() == []


def test_readers_see_data_sets_but_no_upload_form(client, owner, project):
    dataset = ProjectDatasetFactory(project=project, name="Shared cohort")
    reader = UserFactory()
    ProjectMemberFactory(project=project, user=reader, access="read")
    client.force_login(reader)
    html = _html(client.get(f"/projects/{project.pk}/"))
    assert "Shared cohort" in html and 'id="dataset-form"' not in html
    r = client.post(f"/projects/{project.pk}/datasets/", {"file": _file(csv_bytes(HEADER, GOOD_ROWS))})
    assert r.status_code == 403
    assert client.post(f"/projects/{project.pk}/datasets/{dataset.pk}/delete/").status_code == 403
    assert ProjectDataset.objects.count() == 1


def test_someone_elses_data_set_page_is_404(web):
    dataset = ProjectDatasetFactory(project=ProjectFactory(configuration={}))
    assert web.get(f"/projects/{dataset.project_id}/datasets/{dataset.pk}/").status_code == 404


def test_delete_through_the_page(web, owner, project, django_capture_on_commit_callbacks):
    dataset = services.project_dataset_create(project=project, uploaded_by=owner,
                                              file=_file(csv_bytes(HEADER, GOOD_ROWS)))
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post(f"/projects/{project.pk}/datasets/{dataset.pk}/delete/")
    assert r.status_code == 302 and r["Location"] == f"/projects/{project.pk}/"
    assert not ProjectDataset.objects.exists() and media_files() == []


def test_project_page_queries_do_not_grow_with_data_sets(web, project):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert web.get(f"/projects/{project.pk}/").status_code == 200
        return len(ctx.captured_queries)

    ProjectDatasetFactory.create_batch(2, project=project, uploaded_by=UserFactory())
    count()
    small = count()
    ProjectDatasetFactory.create_batch(13, project=project, uploaded_by=UserFactory())
    assert count() == small


# ---- admin ------------------------------------------------------------------------------------------

def test_admin_lists_data_sets_and_deletes_through_the_service(project, owner, django_capture_on_commit_callbacks):
    root = UserFactory(username="root", is_superuser=True, is_staff=True, roles=[])
    admin = Client()
    admin.force_login(root)
    dataset = services.project_dataset_create(project=project, uploaded_by=owner,
                                              file=_file(csv_bytes(HEADER, GOOD_ROWS)), name="Admin visible")
    assert "Admin visible" in _html(admin.get("/admin/projects/projectdataset/"))
    assert admin.get(f"/admin/projects/projectdataset/{dataset.pk}/change/").status_code == 200
    assert admin.get("/admin/projects/projectdataset/add/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        r = admin.post(f"/admin/projects/projectdataset/{dataset.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not ProjectDataset.objects.exists() and media_files() == []
