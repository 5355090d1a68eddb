"""``/api/v1/projects/{id}/datasets``: CSV data sets, validated as hostile input, and who may touch them."""

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.tests.factories import UserFactory
from projects.models import ProjectDataset
from accounts.tests.fixtures import assert_error
from projects.tests.conftest import API, Api, media_files
from projects.tests.csvdata import BAD_FILES, GOOD_ROWS, HEADER, csv_bytes, sklearn_csv, with_row
from projects.tests.factories import ProjectDatasetFactory, ProjectFactory, ProjectMemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, name="Clinics", configuration={})


def base(project) -> str:
    return f"{API}/{project.pk}/datasets"


def upload(api, project, content: bytes, filename: str = "data.csv", **fields):
    body = {"file": SimpleUploadedFile(filename, content, content_type="text/csv"), **fields}
    return api.client.post(base(project), body, **api.headers)


def assert_nothing_stored():
    assert ProjectDataset.objects.count() == 0
    assert media_files() == []


def assert_rejected(response, field: str, reason: str) -> dict:
    body = assert_error(response, 422, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert details["field"] == field and details["reason"] == reason, details
    assert_nothing_stored()
    return body["error"]


# ---- the happy path ------------------------------------------------------------------------------

def test_upload_a_classification_csv(api, owner, project):
    content = sklearn_csv("wine")
    r = upload(api, project, content, "wine.csv")

    assert r.status_code == 201, r.content
    body = r.json()
    assert body["success"] is True and body["message"]
    data = body["data"]
    dataset = ProjectDataset.objects.get()
    assert data["id"] == str(dataset.pk) and data["project_id"] == str(project.pk)
    assert data["name"] == "wine" and data["original_name"] == "wine.csv"
    assert data["size"] == len(content) and data["sha256"] == hashlib.sha256(content).hexdigest()
    assert data["rows"] == 178 and len(data["columns"]) == 14 and data["columns"][-1] == "target"
    assert data["target_column"] == "target" and data["task"] == "classification"
    assert data["num_classes"] == 3 and data["class_counts"] == {"0": 59, "1": 71, "2": 48}
    assert set(data["column_types"].values()) == {"numeric", "categorical"}
    assert data["column_types"]["target"] == "categorical" and data["column_types"]["alcohol"] == "numeric"
    assert data["column_stats"]["alcohol"]["min"] == pytest.approx(11.03)
    assert "target" not in data["column_stats"]
    assert data["training_name"] == f"csv:{dataset.pk}"
    assert data["uploaded_by"] == "owner"
    # stored as sent, under MEDIA_ROOT, in the project's folder, under a generated name
    stored = media_files()
    assert stored == [Path(dataset.file.path)]
    assert stored[0].read_bytes() == content
    assert dataset.file.name == f"projects/{project.pk}/datasets/{dataset.pk}.csv"


def test_regression_is_inferred_and_the_task_can_be_overridden(api, project):
    diabetes = upload(api, project, sklearn_csv("diabetes"), "diabetes.csv").json()["data"]
    assert diabetes["task"] == "regression" and diabetes["num_classes"] is None and diabetes["class_counts"] == {}
    assert diabetes["column_types"]["target"] == "numeric"
    assert diabetes["column_stats"]["target"]["max"] == 346.0

    # an integer score with few values is read as classes, unless the uploader says otherwise
    rows = [[i, i % 7] for i in range(40)]
    inferred = upload(api, project, csv_bytes(["x", "score"], rows), "scores.csv").json()["data"]
    assert inferred["task"] == "classification" and inferred["num_classes"] == 7
    forced = upload(api, project, csv_bytes(["x", "score"], rows), "scores.csv", name="scores as numbers",
                    task="regression").json()["data"]
    assert forced["task"] == "regression" and forced["num_classes"] is None


def test_target_column_name_and_text_labels(api, project):
    rows = [[["spam", "ham"][i % 2], i, -i] for i in range(20)]
    r = upload(api, project, csv_bytes(["kind", "x1", "x2"], rows), "mail.csv", name="  Mail  ",
               target_column="kind")
    data = r.json()["data"]
    assert r.status_code == 201, r.content
    assert data["name"] == "Mail" and data["target_column"] == "kind"
    assert data["class_counts"] == {"ham": 10, "spam": 10}


def test_a_byte_order_mark_crlf_and_signed_numbers_are_fine(api, project):
    rows = [[f"+{i}", f"-{i}.5", i % 2] for i in range(12)]
    content = b"\xef\xbb\xbf" + csv_bytes(HEADER, rows, newline="\r\n")
    r = upload(api, project, content)
    assert r.status_code == 201, r.content
    assert r.json()["data"]["columns"] == HEADER


def test_the_clients_filename_is_never_a_path(api, project):
    r = upload(api, project, csv_bytes(HEADER, GOOD_ROWS), "../../../etc/evil.csv")
    assert r.status_code == 201, r.content
    dataset = ProjectDataset.objects.get()
    assert dataset.original_name == "evil.csv"
    assert dataset.file.name == f"projects/{project.pk}/datasets/{dataset.pk}.csv"


# ---- every way a file is refused, with nothing stored ----------------------------------------------

@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_refused_naming_where(api, project, case):
    content, field, reason, where = BAD_FILES[case]
    error = assert_rejected(upload(api, project, content), field, reason)
    assert where in error["message"], error["message"]


def test_a_bad_cell_is_named_by_row_line_and_column(api, project):
    content = csv_bytes(HEADER, GOOD_ROWS[:4]) + b"\n\n" + csv_bytes(HEADER, with_row(2, [2, "x", 0]))[6:]
    error = assert_rejected(upload(api, project, content), "file", "not_numeric")
    # data row 7 sits on line 10: a header line and two blank lines come before it
    assert error["details"] == {"field": "file", "reason": "not_numeric", "row": 7, "line": 10, "column": "b"}


def test_target_column_must_exist(api, project):
    error = assert_rejected(upload(api, project, csv_bytes(HEADER, GOOD_ROWS), target_column="label"),
                            "target_column", "unknown_target")
    assert "'label'" in error["message"] and "a, b, y" in error["message"]


def test_a_target_of_unique_values_cannot_be_classes(api, project):
    rows = [[i, i * 0.5] for i in range(30)]
    error = assert_rejected(upload(api, project, csv_bytes(["x", "y"], rows), task="classification"), "task",
                            "single_rows")
    assert "regression" in error["message"]


def test_float_labels_keep_their_names(api, project):
    rows = [[i, (i % 4) * 0.5] for i in range(30)]
    data = upload(api, project, csv_bytes(["x", "y"], rows), task="classification").json()["data"]
    assert data["class_counts"] == {"0": 8, "0.5": 8, "1": 7, "1.5": 7}


def test_text_target_cannot_be_regression(api, project):
    rows = [[i, i, "abc"[i % 3]] for i in range(12)]
    assert_rejected(upload(api, project, csv_bytes(HEADER, rows), task="regression"), "task", "text_target")


def test_bad_form_fields_answer_422_naming_them(api, project):
    assert_rejected(upload(api, project, csv_bytes(HEADER, GOOD_ROWS), task="clustering"), "task",
                    "\"clustering\" is not a valid choice.")
    r = api.client.post(base(project), {"name": "no file"}, **api.headers)
    assert_rejected(r, "file", "No file was submitted.")


@pytest.mark.parametrize("setting,value,reason", [
    ("PROJECT_DATASET_MAX_ROWS", 11, "too_many_rows"),
    ("PROJECT_DATASET_MAX_COLUMNS", 2, "too_many_columns"),
    ("PROJECT_DATASET_MAX_BYTES", 50, "too_large"),
])
def test_limits_come_from_settings(api, project, settings, setting, value, reason):
    setattr(settings, setting, value)
    error = assert_rejected(upload(api, project, csv_bytes(HEADER, GOOD_ROWS)), "file", reason)
    assert str(value) in error["message"]


def test_a_body_declaring_more_than_the_limit_is_refused_unread(api, project, settings):
    settings.PROJECT_DATASET_MAX_BYTES = 1000
    content = csv_bytes(HEADER, [[i, i, i % 2] for i in range(20_000)])
    body = assert_error(upload(api, project, content), 413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"]["field"] == "file"
    assert_nothing_stored()


def test_a_file_is_cut_off_at_the_limit_while_it_streams(api, project, settings):
    """A body within the declared allowance but a file past the limit: the parser stops reading it."""
    settings.PROJECT_DATASET_MAX_BYTES = 100 * 1024
    content = csv_bytes(HEADER, [[i, i, i % 2] for i in range(12_000)])
    assert 100 * 1024 < len(content) < 100 * 1024 + 64 * 1024
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # spooled to disk, as a large upload would be
    error = assert_rejected(upload(api, project, content), "file", "too_large")
    assert error["message"] == "The file is larger than the limit of 102400 bytes"


def test_a_duplicate_name_is_a_conflict(api, project):
    assert upload(api, project, csv_bytes(HEADER, GOOD_ROWS), name="Cohort").status_code == 201
    r = upload(api, project, csv_bytes(HEADER, GOOD_ROWS), name="cohort")
    body = assert_error(r, 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"]["field"] == "name"
    assert ProjectDataset.objects.count() == 1 and len(media_files()) == 1
    # the same name in another project is fine
    other = ProjectFactory(owner=project.owner)
    assert upload(api, other, csv_bytes(HEADER, GOOD_ROWS), name="Cohort").status_code == 201


# ---- list, detail, preview, download, delete -------------------------------------------------------

def test_list_detail_filters_and_pages(api, project):
    first = upload(api, project, sklearn_csv("iris"), "iris.csv").json()["data"]
    second = upload(api, project, sklearn_csv("diabetes"), "diabetes.csv").json()["data"]
    body = api.get(base(project)).json()
    assert body["success"] is True and body["pagination"]["total"] == 2
    assert [d["id"] for d in body["data"]] == [second["id"], first["id"]]
    assert api.get(f"{base(project)}/", {"limit": 1}).json()["pagination"]["pages"] == 2
    assert [d["name"] for d in api.get(base(project), {"task": "regression"}).json()["data"]] == ["diabetes"]
    assert [d["name"] for d in api.get(base(project), {"search": "IRI"}).json()["data"]] == ["iris"]
    assert [d["name"] for d in api.get(base(project), {"sort": "name"}).json()["data"]] == ["diabetes", "iris"]
    assert_error(api.get(base(project), {"task": "clustering"}), 400, "VALIDATION_ERROR")

    detail = api.get(f"{base(project)}/{first['id']}").json()
    assert detail["data"] == first
    assert_error(api.get(f"{base(project)}/{'0' * 8}-0000-0000-0000-{'0' * 12}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api.get(f"{base(project)}/not-a-uuid"), 404, "RESOURCE_NOT_FOUND")


def test_preview_shows_twenty_rows_and_a_summary(api, project):
    data = upload(api, project, sklearn_csv("iris"), "iris.csv").json()["data"]
    r = api.get(f"{base(project)}/{data['id']}/preview")
    assert r.status_code == 200, r.content
    preview = r.json()["data"]
    assert preview["columns"] == data["columns"] and preview["total_rows"] == 150
    assert len(preview["rows"]) == 20
    assert preview["rows"][0] == [5.1, 3.5, 1.4, 0.2, "0"]
    sepal = preview["summary"]["sepal_length_(cm)"]
    assert sepal["type"] == "numeric" and (sepal["min"], sepal["max"]) == (4.3, 7.9)
    assert sepal["mean"] == pytest.approx(5.843, abs=1e-3)
    assert preview["summary"]["target"] == {"type": "categorical", "class_counts": {"0": 50, "1": 50, "2": 50}}


def test_download_returns_the_file_as_uploaded(api, project):
    content = csv_bytes(HEADER, GOOD_ROWS)
    data = upload(api, project, content, "cohort.csv").json()["data"]
    r = api.get(f"{base(project)}/{data['id']}/download")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == content
    assert r["Content-Type"] == "text/csv" and 'filename="cohort.csv"' in r["Content-Disposition"]
    assert r["X-Checksum-SHA256"] == hashlib.sha256(content).hexdigest()


def test_delete_removes_row_and_file(api, project, django_capture_on_commit_callbacks):
    data = upload(api, project, csv_bytes(HEADER, GOOD_ROWS)).json()["data"]
    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"{base(project)}/{data['id']}")
    assert r.status_code == 204
    assert_nothing_stored()


def test_delete_is_refused_while_an_execution_uses_the_data_set(api, owner, project,
                                                                django_capture_on_commit_callbacks):
    from training import services as training_services
    from training.choices import ExecutionStatus

    data = upload(api, project, sklearn_csv("iris"), "iris.csv").json()["data"]
    # pending: its run is queued on commit, which this test does not run
    execution = training_services.execution_start(project=project, user=owner, config={
        "dataset": f"csv:{data['id']}", "rounds": 1, "clients": 2})
    for state in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.SUSPENDED):
        type(execution).objects.filter(pk=execution.pk).update(status=state)
        body = assert_error(api.delete(f"{base(project)}/{data['id']}"), 409, "RESOURCE_CONFLICT")
        assert body["error"]["details"]["executions"] == [str(execution.pk)]
        assert ProjectDataset.objects.count() == 1 and len(media_files()) == 1
    type(execution).objects.filter(pk=execution.pk).update(status=ExecutionStatus.COMPLETED)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{base(project)}/{data['id']}").status_code == 204
    assert_nothing_stored()


def test_deleting_the_project_removes_its_data_set_files(api, project, django_capture_on_commit_callbacks):
    upload(api, project, csv_bytes(HEADER, GOOD_ROWS))
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{API}/{project.pk}").status_code == 204
    assert_nothing_stored()


# ---- who may do what ---------------------------------------------------------------------------------

def _paths(project, dataset_id):
    detail = f"{base(project)}/{dataset_id}"
    return {"list": base(project), "detail": detail, "preview": f"{detail}/preview", "download": f"{detail}/download"}


def test_someone_elses_project_is_404_for_every_endpoint(api, project):
    data = upload(api, project, csv_bytes(HEADER, GOOD_ROWS)).json()["data"]
    stranger = Api(UserFactory(roles=["user"]))  # may read and write projects: its own
    for path in _paths(project, data["id"]).values():
        assert_error(stranger.get(path), 404, "RESOURCE_NOT_FOUND")
    assert_error(stranger.delete(_paths(project, data["id"])["detail"]), 404, "RESOURCE_NOT_FOUND")
    assert_error(upload(stranger, project, csv_bytes(HEADER, GOOD_ROWS), name="x"), 404, "RESOURCE_NOT_FOUND")
    assert ProjectDataset.objects.count() == 1


def test_a_project_id_that_is_not_a_uuid_is_404(api):
    assert_error(api.get(f"{API}/nope/datasets"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("role,access,can_read,can_write", [
    ("user", "write", True, True),
    ("user", "read", True, False),
    ("viewer", "write", True, False),   # the role lacks write:projects, whatever the membership says
    ("viewer", "read", True, False),
    ("analyst", "write", False, False),  # no read:projects at all
])
def test_members_by_role_and_access(api, project, role, access, can_read, can_write,
                                    django_capture_on_commit_callbacks):
    data = upload(api, project, csv_bytes(HEADER, GOOD_ROWS)).json()["data"]
    member = UserFactory(roles=[role])
    ProjectMemberFactory(project=project, user=member, access=access)
    client = Api(member)
    for path in _paths(project, data["id"]).values():
        r = client.get(path)
        assert r.status_code == (200 if can_read else 403), (path, r.content)
    r = upload(client, project, csv_bytes(HEADER, GOOD_ROWS), name="member's")
    if can_write:
        assert r.status_code == 201, r.content
        with django_capture_on_commit_callbacks(execute=True):
            assert client.delete(_paths(project, r.json()["data"]["id"])["detail"]).status_code == 204
    else:
        assert_error(r, 403, "AUTHORIZATION_FAILED")
        assert_error(client.delete(_paths(project, data["id"])["detail"]), 403, "AUTHORIZATION_FAILED")
    assert ProjectDataset.objects.count() == 1 and len(media_files()) == 1


def test_anonymous_is_401(project, client):
    assert_error(client.get(base(project)), 401, "AUTHENTICATION_FAILED")
    r = client.post(base(project), {"file": SimpleUploadedFile("d.csv", csv_bytes(HEADER, GOOD_ROWS))})
    assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert_nothing_stored()


# ---- throttling and query counts ---------------------------------------------------------------------

@pytest.fixture
def upload_rate(settings, monkeypatch):
    def apply(rate):
        new = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "upload": rate}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": new}
        api_settings.reload()
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", new)

    yield apply
    api_settings.reload()


def test_uploads_are_throttled_as_uploads(api, project, upload_rate):
    upload_rate("2/min")
    first = upload(api, project, csv_bytes(HEADER, GOOD_ROWS), name="one")
    assert first.status_code == 201
    assert first["X-RateLimit-Limit"] == "2" and first["X-RateLimit-Remaining"] == "1"
    assert int(first["X-RateLimit-Reset"]) > 0
    assert upload(api, project, csv_bytes(HEADER, GOOD_ROWS), name="two").status_code == 201
    third = upload(api, project, csv_bytes(HEADER, GOOD_ROWS), name="three")
    assert_error(third, 429, "RATE_LIMIT_EXCEEDED")
    assert third["Retry-After"]
    # reading is not an upload
    assert api.get(base(project)).status_code == 200
    assert ProjectDataset.objects.count() == 2


def test_the_list_costs_the_same_queries_for_2_and_15_data_sets(api, project):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            r = api.get(base(project))
        assert r.status_code == 200
        return len(ctx.captured_queries), len(r.json()["data"])

    for _ in range(2):
        ProjectDatasetFactory(project=project, uploaded_by=UserFactory())
    count()
    small = count()
    for _ in range(13):
        ProjectDatasetFactory(project=project, uploaded_by=UserFactory())
    large = count()
    assert small[1] == 2 and large[1] == 15
    assert small[0] == large[0], f"{small[0]} queries for 2 data sets, {large[0]} for 15"
