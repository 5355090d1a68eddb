"""``/api/v1/projects``: create, read, list, change and delete (seed 000 Project Management)."""

import uuid
from urllib.parse import parse_qs, urlparse

import pytest

from accounts.tests.factories import UserFactory
from projects.models import Project, ProjectUpload
from projects.tests.archives import flower_zip
from projects.tests.conftest import API, media_files
from projects.tests.factories import ProjectFactory

SEED_BODY = {
    "name": "Fashion CNN",
    "description": "Federated CNN on Fashion-MNIST",
    "configuration": {
        "model_type": "cnn",
        "dataset": "fashion_mnist",
        "privacy_settings": {"differential_privacy": False, "secure_aggregation": True},
    },
}
PROJECT_FIELDS = {"id", "name", "description", "status", "configuration", "training_jobs_count", "created_at",
                  "updated_at"}


def assert_success_envelope(body):
    assert body["success"] is True
    assert isinstance(body["message"], str) and body["message"]
    assert body["timestamp"].endswith("Z")
    uuid.UUID(body["request_id"])


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "details" in body["error"]
    uuid.UUID(body["request_id"])
    return body["error"]


# ---- create ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [API, f"{API}/"])
def test_create_with_seed_body_as_written(api, owner, path):
    r = api.post(path, SEED_BODY)

    assert r.status_code == 201, r.content
    body = r.json()
    assert_success_envelope(body)
    data = body["data"]
    assert PROJECT_FIELDS <= set(data)
    assert data["name"] == "Fashion CNN"
    assert data["description"] == "Federated CNN on Fashion-MNIST"
    assert data["status"] == "active"
    assert data["configuration"] == SEED_BODY["configuration"]
    assert data["training_jobs_count"] == 0
    assert data["owner"] == {"id": str(owner.pk), "username": "owner"}
    project = Project.objects.get(pk=data["id"])
    assert project.owner == owner
    assert project.configuration == SEED_BODY["configuration"]
    assert data["created_at"].startswith(project.created_at.strftime("%Y-%m-%dT%H:%M"))


def test_create_keeps_extra_configuration_keys(api):
    configuration = {**SEED_BODY["configuration"], "rounds": 5, "notes": {"a": [1, 2]}}
    r = api.post(API, {**SEED_BODY, "configuration": configuration})
    assert r.status_code == 201
    assert Project.objects.get(pk=r.json()["data"]["id"]).configuration == configuration


def test_create_with_name_only(api):
    r = api.post(API, {"name": "  Bare  "})
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["name"] == "Bare"
    assert data["description"] == ""
    assert data["configuration"] == {}


def test_duplicate_name_for_same_owner_is_a_conflict_whatever_the_case(api, owner):
    assert api.post(API, SEED_BODY).status_code == 201
    r = api.post(API, {**SEED_BODY, "name": "fashion cnn"})
    error = assert_error(r, 409, "RESOURCE_CONFLICT")
    assert "fashion cnn" in error["message"]
    assert Project.objects.filter(owner=owner).count() == 1


def test_same_name_for_another_owner_is_fine(api, api_as):
    assert api.post(API, SEED_BODY).status_code == 201
    other = api_as(UserFactory())
    assert other.post(API, SEED_BODY).status_code == 201
    assert Project.objects.filter(name="Fashion CNN").count() == 2


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"description": "no name"}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "ok", "description": "d" * 5001}, "description"),
    ({"name": "ok", "configuration": "cnn"}, "configuration"),
    ({"name": "ok", "configuration": ["cnn"]}, "configuration"),
    ({"name": "ok", "configuration": {"privacy_settings": {"differential_privacy": "maybe"}}}, "configuration"),
    ({"name": "ok", "configuration": {"privacy_settings": {"secure_aggregation": [True]}}}, "configuration"),
    ({"name": "ok", "configuration": {"privacy_settings": "on"}}, "configuration"),
    ({"name": "ok", "configuration": {"model_type": "m" * 101}}, "configuration"),
    ({"name": "ok", "configuration": {"blob": "x" * 40000}}, "configuration"),
])
def test_create_rejects_bad_input(api, body, field):
    r = api.post(API, body)
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert field in error["details"]
    assert error["message"].startswith(field)
    assert not Project.objects.exists()


def test_create_rejects_malformed_json(api):
    r = api.client.post(API, "{not json", content_type="application/json", **api.headers)
    assert_error(r, 400, "VALIDATION_ERROR")


def test_anonymous_is_refused(client, db):
    assert_error(client.get(API), 401, "AUTHENTICATION_FAILED")
    assert_error(client.post(API, SEED_BODY, content_type="application/json"), 401, "AUTHENTICATION_FAILED")
    assert not Project.objects.exists()


def test_login_token_from_the_api_works(client, owner):
    from accounts.tests.factories import PASSWORD

    r = client.post("/api/v1/auth/login", {"username": "owner", "password": PASSWORD},
                    content_type="application/json")
    token = r.json()["data"]["access_token"]
    r = client.post(API, SEED_BODY, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 201
    assert Project.objects.get().owner == owner


# ---- read --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("slash", ["", "/"])
def test_retrieve(api, owner, slash):
    project = ProjectFactory(owner=owner, name="Mine", configuration=SEED_BODY["configuration"])
    r = api.get(f"{API}/{project.pk}{slash}")
    assert r.status_code == 200
    body = r.json()
    assert_success_envelope(body)
    assert body["data"]["id"] == str(project.pk)
    assert body["data"]["name"] == "Mine"
    assert body["data"]["configuration"] == SEED_BODY["configuration"]
    assert PROJECT_FIELDS <= set(body["data"])


@pytest.mark.parametrize("bad", ["not-a-uuid", "123", str(uuid.uuid4()), "%20"])
def test_unknown_or_malformed_id_is_404(api, bad):
    ProjectFactory()
    for r in (api.get(f"{API}/{bad}"), api.patch(f"{API}/{bad}", {"name": "x"}), api.delete(f"{API}/{bad}")):
        assert_error(r, 404, "RESOURCE_NOT_FOUND")


# ---- list --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [API, f"{API}/"])
def test_list_envelope_and_fields(api, owner, path):
    ProjectFactory(owner=owner, name="one")
    ProjectFactory(owner=owner, name="two")
    r = api.get(path)
    assert r.status_code == 200
    body = r.json()
    assert_success_envelope(body)
    assert {p["name"] for p in body["data"]} == {"one", "two"}
    for item in body["data"]:
        assert PROJECT_FIELDS <= set(item)
        assert item["training_jobs_count"] == 0
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 2, "pages": 1, "has_next": False,
                                  "has_prev": False}
    assert set(body["links"]) == {"first", "prev", "next", "last"}
    assert body["links"]["prev"] is None and body["links"]["next"] is None


def _query(url):
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_list_pagination_and_links(api, owner):
    ProjectFactory.create_batch(25, owner=owner)
    r = api.get(API, {"page": 2, "limit": 10})
    body = r.json()
    assert len(body["data"]) == 10
    assert body["pagination"] == {"page": 2, "limit": 10, "total": 25, "pages": 3, "has_next": True,
                                  "has_prev": True}
    links = body["links"]
    assert _query(links["first"]) == {"page": "1", "limit": "10"}
    assert _query(links["prev"]) == {"page": "1", "limit": "10"}
    assert _query(links["next"]) == {"page": "3", "limit": "10"}
    assert _query(links["last"]) == {"page": "3", "limit": "10"}
    assert urlparse(links["next"]).path == API

    last = api.get(links["last"]).json()
    assert len(last["data"]) == 5
    assert last["pagination"]["has_next"] is False and last["links"]["next"] is None

    seen = set()
    for page in (1, 2, 3):
        seen |= {p["id"] for p in api.get(API, {"page": page, "limit": 10}).json()["data"]}
    assert seen == {str(pk) for pk in Project.objects.values_list("pk", flat=True)}


def test_list_default_limit_is_20_and_limit_is_capped(api, owner):
    ProjectFactory.create_batch(21, owner=owner)
    assert len(api.get(API).json()["data"]) == 20
    body = api.get(API, {"limit": 1000}).json()
    assert body["pagination"]["limit"] == 100
    assert len(body["data"]) == 21


def test_page_past_the_end_is_empty(api, owner):
    ProjectFactory(owner=owner)
    body = api.get(API, {"page": 5}).json()
    assert body["data"] == []
    assert body["pagination"]["total"] == 1


@pytest.mark.parametrize("params", [{"page": "x"}, {"page": 0}, {"limit": "many"}, {"limit": 0},
                                    {"status": "deleted"}, {"sort": "owner__password"}])
def test_list_rejects_bad_parameters(api, params):
    assert_error(api.get(API, params), 400, "VALIDATION_ERROR")


def test_list_search_matches_name_or_description_case_insensitively(api, owner):
    ProjectFactory(owner=owner, name="Tumour detection", description="breast cancer")
    ProjectFactory(owner=owner, name="Digits", description="handwritten DIGITS with a CNN")
    ProjectFactory(owner=owner, name="Wine", description="classify wines")
    names = lambda q: sorted(p["name"] for p in api.get(API, {"search": q}).json()["data"])  # noqa: E731
    assert names("TUMOUR") == ["Tumour detection"]
    assert names("cnn") == ["Digits"]
    assert names("i") == ["Digits", "Tumour detection", "Wine"]
    assert names("nothing-like-this") == []
    assert api.get(API, {"search": "wine"}).json()["pagination"]["total"] == 1


def test_list_status_filter(api, owner):
    ProjectFactory(owner=owner, name="live")
    ProjectFactory(owner=owner, name="old", status="archived")
    assert [p["name"] for p in api.get(API, {"status": "archived"}).json()["data"]] == ["old"]
    assert [p["name"] for p in api.get(API, {"status": "active"}).json()["data"]] == ["live"]


def test_list_sort(api, owner):
    for name in ("bravo", "alpha", "charlie"):
        ProjectFactory(owner=owner, name=name)
    assert [p["name"] for p in api.get(API, {"sort": "name"}).json()["data"]] == ["alpha", "bravo", "charlie"]
    assert [p["name"] for p in api.get(API, {"sort": "-name"}).json()["data"]] == ["charlie", "bravo", "alpha"]
    newest_first = [p["name"] for p in api.get(API, {"sort": "-created_at"}).json()["data"]]
    assert newest_first == ["charlie", "alpha", "bravo"]
    assert [p["name"] for p in api.get(API).json()["data"]] == newest_first


# ---- change ------------------------------------------------------------------------------------------

def test_patch_changes_only_what_is_sent(api, owner):
    project = ProjectFactory(owner=owner, name="Before", description="keep me",
                             configuration=SEED_BODY["configuration"])
    r = api.patch(f"{API}/{project.pk}", {"name": "After"})
    assert r.status_code == 200
    body = r.json()
    assert_success_envelope(body)
    assert body["data"]["name"] == "After"
    assert body["data"]["description"] == "keep me"
    project.refresh_from_db()
    assert (project.name, project.description) == ("After", "keep me")
    assert project.configuration == SEED_BODY["configuration"]


def test_patch_status_and_configuration(api, owner):
    project = ProjectFactory(owner=owner)
    new_conf = {"model_type": "mlp", "privacy_settings": {"differential_privacy": True}}
    r = api.patch(f"{API}/{project.pk}", {"status": "archived", "configuration": new_conf})
    assert r.status_code == 200
    project.refresh_from_db()
    assert project.status == "archived"
    assert project.configuration == new_conf
    assert r.json()["data"]["status"] == "archived"


def test_put_replaces_the_project(api, owner):
    project = ProjectFactory(owner=owner, name="Before", description="old", configuration={"model_type": "cnn"})
    r = api.put(f"{API}/{project.pk}/", {**SEED_BODY, "status": "archived"})
    assert r.status_code == 200
    project.refresh_from_db()
    assert project.name == SEED_BODY["name"]
    assert project.description == SEED_BODY["description"]
    assert project.configuration == SEED_BODY["configuration"]
    assert project.status == "archived"


def test_put_needs_a_name(api, owner):
    project = ProjectFactory(owner=owner, name="Before")
    assert_error(api.put(f"{API}/{project.pk}", {"description": "x"}), 400, "VALIDATION_ERROR")
    project.refresh_from_db()
    assert project.name == "Before"


@pytest.mark.parametrize("body", [{"name": " "}, {"name": "n" * 201}, {"status": "deleted"},
                                  {"configuration": 5},
                                  {"configuration": {"privacy_settings": {"secure_aggregation": "perhaps"}}}])
def test_patch_rejects_bad_input(api, owner, body):
    project = ProjectFactory(owner=owner, name="Same", status="active", configuration={"model_type": "cnn"})
    assert_error(api.patch(f"{API}/{project.pk}", body), 400, "VALIDATION_ERROR")
    project.refresh_from_db()
    assert (project.name, project.status, project.configuration) == ("Same", "active", {"model_type": "cnn"})


def test_patch_to_a_name_already_used_is_a_conflict(api, owner):
    ProjectFactory(owner=owner, name="Taken")
    project = ProjectFactory(owner=owner, name="Mine")
    assert_error(api.patch(f"{API}/{project.pk}", {"name": "TAKEN"}), 409, "RESOURCE_CONFLICT")
    project.refresh_from_db()
    assert project.name == "Mine"


def test_patch_may_change_the_case_of_its_own_name(api, owner):
    project = ProjectFactory(owner=owner, name="mine")
    assert api.patch(f"{API}/{project.pk}", {"name": "Mine"}).status_code == 200
    project.refresh_from_db()
    assert project.name == "Mine"


def test_delete(api, owner, django_capture_on_commit_callbacks):
    project = ProjectFactory(owner=owner)
    r = api.upload(project.pk, flower_zip())
    assert r.status_code == 201
    assert len(media_files()) == 1

    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"{API}/{project.pk}")
    assert r.status_code == 204
    assert r.content == b""
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not ProjectUpload.objects.exists()
    assert media_files() == []
    assert_error(api.get(f"{API}/{project.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api.delete(f"{API}/{project.pk}"), 404, "RESOURCE_NOT_FOUND")


def test_method_not_allowed_on_upload(api, owner):
    project = ProjectFactory(owner=owner)
    assert_error(api.get(f"{API}/{project.pk}/upload"), 405, "METHOD_NOT_ALLOWED")
