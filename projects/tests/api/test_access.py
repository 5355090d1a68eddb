"""Who may see and change a project: owners, members, roles, administrators (SPEC section 3)."""

import pytest

from accounts.tests.factories import UserFactory
from projects.models import Project, ProjectMember, ProjectUpload
from projects.tests.api.test_projects import SEED_BODY, assert_error
from projects.tests.archives import flower_zip
from projects.tests.conftest import API, media_files
from projects.tests.factories import ProjectFactory, ProjectMemberFactory, ProjectUploadFactory


@pytest.fixture
def theirs(db):
    return ProjectFactory(owner=UserFactory(username="stranger"), name="Theirs", description="private")


# ---- someone else's project --------------------------------------------------------------------------

def test_someone_elses_project_is_404_everywhere(api, theirs):
    upload = ProjectUploadFactory(project=theirs)
    base = f"{API}/{theirs.pk}"
    responses = [
        api.get(base),
        api.put(base, SEED_BODY),
        api.patch(base, {"name": "mine now"}),
        api.delete(base),
        api.upload(theirs.pk, flower_zip()),
        api.get(f"{base}/uploads"),
        api.get(f"{base}/uploads/{upload.pk}"),
        api.get(f"{base}/uploads/{upload.pk}/download"),
        api.get(f"{base}/members"),
        api.post(f"{base}/members", {"username": "owner", "access": "write"}),
    ]
    for r in responses:
        assert_error(r, 404, "RESOURCE_NOT_FOUND")
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert ProjectUpload.objects.count() == 1
    assert not ProjectMember.objects.exists()
    assert media_files() == []


def test_someone_elses_project_is_not_listed_nor_found_by_search(api, owner, theirs):
    ProjectFactory(owner=owner, name="Mine")
    body = api.get(API).json()
    assert [p["name"] for p in body["data"]] == ["Mine"]
    assert body["pagination"]["total"] == 1
    assert api.get(API, {"search": "Theirs"}).json()["data"] == []


def test_upload_of_another_project_is_not_reachable_through_mine(api, owner, theirs):
    mine = ProjectFactory(owner=owner)
    upload = ProjectUploadFactory(project=theirs)
    assert_error(api.get(f"{API}/{mine.pk}/uploads/{upload.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api.get(f"{API}/{mine.pk}/uploads/{upload.pk}/download"), 404, "RESOURCE_NOT_FOUND")


# ---- members ---------------------------------------------------------------------------------------

def test_read_member_can_read_but_not_change(api_as, theirs):
    reader = UserFactory()
    ProjectMemberFactory(project=theirs, user=reader, access="read")
    api = api_as(reader)
    base = f"{API}/{theirs.pk}"

    assert api.get(base).json()["data"]["name"] == "Theirs"
    assert [p["id"] for p in api.get(API).json()["data"]] == [str(theirs.pk)]
    assert api.get(f"{base}/uploads").status_code == 200
    assert api.get(f"{base}/members").status_code == 200

    for r in (api.patch(base, {"name": "x"}), api.put(base, SEED_BODY), api.delete(base),
              api.upload(theirs.pk, flower_zip()),
              api.post(f"{base}/members", {"username": reader.username, "access": "write"}),
              api.delete(f"{base}/members/{reader.pk}")):
        assert_error(r, 403, "AUTHORIZATION_FAILED")
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert not ProjectUpload.objects.exists()
    assert ProjectMember.objects.get().access == "read"
    assert media_files() == []


def test_write_member_can_change_and_upload(api_as, theirs):
    writer = UserFactory()
    ProjectMemberFactory(project=theirs, user=writer, access="write")
    api = api_as(writer)
    r = api.patch(f"{API}/{theirs.pk}", {"description": "edited by a member"})
    assert r.status_code == 200
    theirs.refresh_from_db()
    assert theirs.description == "edited by a member"
    assert theirs.owner.username == "stranger"

    r = api.upload(theirs.pk, flower_zip())
    assert r.status_code == 201, r.content
    upload = ProjectUpload.objects.get()
    assert upload.project == theirs and upload.uploaded_by == writer


def test_member_name_clash_is_judged_against_the_owner(api_as, theirs):
    writer = UserFactory()
    ProjectMemberFactory(project=theirs, user=writer, access="write")
    ProjectFactory(owner=theirs.owner, name="Other of theirs")
    ProjectFactory(owner=writer, name="Writer's own")
    api = api_as(writer)
    assert_error(api.patch(f"{API}/{theirs.pk}", {"name": "other of theirs"}), 409, "RESOURCE_CONFLICT")
    assert api.patch(f"{API}/{theirs.pk}", {"name": "Writer's own"}).status_code == 200


def test_members_list_add_change_remove(api, api_as, owner):
    project = ProjectFactory(owner=owner)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    base = f"{API}/{project.pk}/members"

    r = api.post(base, {"username": "ALICE", "access": "write"})
    assert r.status_code == 201, r.content
    assert r.json()["data"]["username"] == "alice"
    assert r.json()["data"]["user_id"] == str(alice.pk)
    assert r.json()["data"]["access"] == "write"

    r = api.post(f"{base}/", {"user_id": str(bob.pk)})
    assert r.status_code == 201
    assert r.json()["data"]["access"] == "read"

    r = api.post(base, {"user_id": str(alice.pk), "access": "read"})
    assert r.status_code == 201
    assert ProjectMember.objects.get(user=alice).access == "read"
    assert ProjectMember.objects.filter(project=project).count() == 2

    body = api.get(base).json()
    assert body["success"] is True
    assert [(m["username"], m["access"]) for m in body["data"]] == [("alice", "read"), ("bob", "read")]
    assert set(body["data"][0]) >= {"user_id", "username", "access", "created_at"}
    assert body["pagination"]["total"] == 2

    r = api.delete(f"{base}/{bob.pk}")
    assert r.status_code == 204
    assert not ProjectMember.objects.filter(user=bob).exists()
    assert_error(api.delete(f"{base}/{bob.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api_as(bob).get(f"{API}/{project.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert api_as(alice).get(f"{API}/{project.pk}").status_code == 200


@pytest.mark.parametrize("body, status, code", [
    ({"username": "owner"}, 400, "VALIDATION_ERROR"),
    ({"username": "nobody-here"}, 404, "RESOURCE_NOT_FOUND"),
    ({"user_id": "7c4f2a8e-0000-4000-8000-000000000000"}, 404, "RESOURCE_NOT_FOUND"),
    ({"user_id": "not-a-uuid"}, 400, "VALIDATION_ERROR"),
    ({"access": "write"}, 400, "VALIDATION_ERROR"),
    ({"username": "alice", "access": "admin"}, 400, "VALIDATION_ERROR"),
])
def test_members_rejects_bad_input(api, owner, body, status, code):
    project = ProjectFactory(owner=owner)
    UserFactory(username="alice")
    assert_error(api.post(f"{API}/{project.pk}/members", body), status, code)
    assert not ProjectMember.objects.exists()


def test_inactive_user_cannot_be_added(api, owner):
    project = ProjectFactory(owner=owner)
    UserFactory(username="gone", is_active=False)
    assert_error(api.post(f"{API}/{project.pk}/members", {"username": "gone"}), 404, "RESOURCE_NOT_FOUND")


def test_member_delete_with_bad_user_id_is_404(api, owner):
    project = ProjectFactory(owner=owner)
    r = api.delete(f"{API}/{project.pk}/members/not-a-uuid")
    assert r.status_code == 404
    # 36 characters that the route accepts but that are not a UUID: still 404, not a 400 from the ORM
    assert_error(api.delete(f"{API}/{project.pk}/members/{'-' * 36}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api.delete(f"{API}/{project.pk}/members/{'a' * 36}"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("upload_id", ["-" * 36, "a" * 36, "0" * 36])
def test_upload_detail_with_malformed_id_is_404(api, owner, upload_id):
    project = ProjectFactory(owner=owner)
    assert_error(api.get(f"{API}/{project.pk}/uploads/{upload_id}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(api.get(f"{API}/{project.pk}/uploads/{upload_id}/download"), 404, "RESOURCE_NOT_FOUND")


# ---- roles -----------------------------------------------------------------------------------------

def test_viewer_can_list_and_read_but_not_write(api_as, theirs):
    viewer = UserFactory(roles=["viewer"])
    own = ProjectFactory(owner=viewer, name="Viewer's")
    ProjectMemberFactory(project=theirs, user=viewer, access="write")
    api = api_as(viewer)

    body = api.get(API).json()
    assert sorted(p["name"] for p in body["data"]) == ["Theirs", "Viewer's"]
    assert api.get(f"{API}/{theirs.pk}").status_code == 200

    for r in (api.post(API, SEED_BODY),
              api.patch(f"{API}/{own.pk}", {"name": "x"}),
              api.put(f"{API}/{own.pk}", SEED_BODY),
              api.delete(f"{API}/{own.pk}"),
              api.patch(f"{API}/{theirs.pk}", {"name": "x"}),
              api.upload(own.pk, flower_zip()),
              api.post(f"{API}/{own.pk}/members", {"username": "stranger"})):
        error = assert_error(r, 403, "AUTHORIZATION_FAILED")
        assert "write:projects" in error["message"]
    assert Project.objects.count() == 2
    assert not ProjectUpload.objects.exists()
    own.refresh_from_db()
    assert own.name == "Viewer's"


def test_role_without_project_permissions_is_refused(api_as):
    api = api_as(UserFactory(roles=["analyst"]))
    assert_error(api.get(API), 403, "AUTHORIZATION_FAILED")
    assert_error(api.post(API, SEED_BODY), 403, "AUTHORIZATION_FAILED")


@pytest.mark.parametrize("role", ["admin", "platform_admin"])
def test_administrators_see_and_change_every_project(api_as, theirs, role):
    ProjectFactory(name="Another")
    api = api_as(UserFactory(roles=[role]))
    body = api.get(API).json()
    assert sorted(p["name"] for p in body["data"]) == ["Another", "Theirs"]
    assert api.get(f"{API}/{theirs.pk}").status_code == 200
    assert api.patch(f"{API}/{theirs.pk}", {"description": "moderated"}).status_code == 200
    theirs.refresh_from_db()
    assert theirs.description == "moderated"
    assert api.upload(theirs.pk, flower_zip()).status_code == 201


def test_superuser_without_roles_sees_every_project(api_as, theirs):
    api = api_as(UserFactory(roles=[], is_superuser=True, is_staff=True))
    assert [p["id"] for p in api.get(API).json()["data"]] == [str(theirs.pk)]
