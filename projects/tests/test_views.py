"""The dashboard pages: session login, same selectors and services as the API."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory
from projects.models import Project, ProjectMember, ProjectUpload
from projects.tests.archives import flower_zip
from projects.tests.conftest import media_files
from projects.tests.factories import ProjectFactory, ProjectMemberFactory, ProjectUploadFactory


@pytest.fixture
def web(client, owner):
    client.force_login(owner)
    return client


def _html(response) -> str:
    return response.content.decode()


# ---- dashboard and list ------------------------------------------------------------------------------

def test_dashboard(web, owner):
    project = ProjectFactory(owner=owner, name="Digits FL")
    ProjectUploadFactory(project=project, original_name="digits-app.zip")
    ProjectFactory(name="Not mine")
    r = web.get("/")
    assert r.status_code == 200
    html = _html(r)
    assert "Digits FL" in html and "digits-app.zip" in html
    assert "Not mine" not in html
    assert r.context["project_count"] == 1


def test_project_list_shows_my_projects_only(web, owner):
    ProjectFactory(owner=owner, name="Alpha project")
    shared = ProjectFactory(name="Shared with me")
    ProjectMemberFactory(project=shared, user=owner)
    ProjectFactory(name="Somebody else's")
    r = web.get("/projects/")
    assert r.status_code == 200
    html = _html(r)
    assert "Alpha project" in html and "Shared with me" in html
    assert "Somebody else" not in html
    assert 'href="/projects/new/"' in html


def test_project_list_search_and_status(web, owner):
    ProjectFactory(owner=owner, name="Breast cancer", description="tumour classification")
    ProjectFactory(owner=owner, name="Iris", description="flowers", status="archived")
    html = _html(web.get("/projects/", {"search": "TUMOUR"}))
    assert "Breast cancer" in html and "Iris" not in html
    html = _html(web.get("/projects/", {"status": "archived"}))
    assert "Iris" in html and "Breast cancer" not in html
    r = web.get("/projects/", {"status": "bogus"})
    assert r.status_code == 200
    assert "Iris" not in _html(r) and "Breast cancer" not in _html(r)


def test_project_list_pagination(web, owner):
    for i in range(25):
        ProjectFactory(owner=owner, name=f"P{i:02d}")
    first = web.get("/projects/", {"sort": "name"})
    assert [p.name for p in first.context["page"]] == [f"P{i:02d}" for i in range(20)]
    assert "Page 1 of 2 (25 projects)" in _html(first)
    assert "page=2" in _html(first) and "sort=name" in _html(first)
    second = web.get("/projects/", {"sort": "name", "page": 2})
    assert [p.name for p in second.context["page"]] == [f"P{i:02d}" for i in range(20, 25)]
    # a page number past the end or not a number still answers with a page
    assert web.get("/projects/", {"page": 99}).status_code == 200
    assert web.get("/projects/", {"page": "x"}).status_code == 200


# ---- create and edit ---------------------------------------------------------------------------------

def test_create_page(web, owner):
    assert web.get("/projects/new/").status_code == 200
    r = web.post("/projects/new/", {"name": "Wine quality", "description": "FL on wine", "model_type": "mlp",
                                    "dataset": "wine", "secure_aggregation": "on"})
    project = Project.objects.get(name="Wine quality")
    assert r.status_code == 302
    assert r["Location"] == f"/projects/{project.pk}/"
    assert project.owner == owner
    assert project.configuration == {"model_type": "mlp", "dataset": "wine", "privacy_settings": {
        "differential_privacy": False, "secure_aggregation": True}}
    detail = web.get(r["Location"])
    assert "Wine quality" in _html(detail) and "created" in _html(detail)


@pytest.mark.parametrize("name", ["", "   "])
def test_create_page_blank_name_shows_the_error_by_the_field(web, name):
    r = web.post("/projects/new/", {"name": name, "description": "x"})
    assert r.status_code == 200
    assert r.context["form"].errors["name"]
    html = _html(r)
    assert 'id="id_name-error"' in html
    assert not Project.objects.exists()


def test_create_page_duplicate_name_shows_the_error(web, owner):
    ProjectFactory(owner=owner, name="Digits")
    r = web.post("/projects/new/", {"name": "DIGITS"})
    assert r.status_code == 200
    assert "You already have a project named" in r.context["form"].errors["name"][0]
    assert 'id="id_name-error"' in _html(r)
    assert Project.objects.count() == 1


def test_detail_page(web, owner):
    project = ProjectFactory(owner=owner, name="Detail me", configuration={
        "model_type": "cnn", "dataset": "digits", "privacy_settings": {"secure_aggregation": True}})
    ProjectUploadFactory(project=project, original_name="app-v1.zip")
    ProjectMemberFactory(project=project, user=UserFactory(username="carol"), access="write")
    r = web.get(f"/projects/{project.pk}/")
    assert r.status_code == 200
    html = _html(r)
    for text in ("Detail me", "app-v1.zip", "carol", "digits", f"/projects/{project.pk}/edit/",
                 f"/projects/{project.pk}/upload/"):
        assert text in html


def test_read_member_sees_no_write_controls(client, owner):
    project = ProjectFactory(owner=owner)
    reader = UserFactory()
    ProjectMemberFactory(project=project, user=reader, access="read")
    client.force_login(reader)
    r = client.get(f"/projects/{project.pk}/")
    assert r.status_code == 200
    assert f"/projects/{project.pk}/edit/" not in _html(r)
    assert client.get(f"/projects/{project.pk}/edit/").status_code == 403
    assert client.get(f"/projects/{project.pk}/upload/").status_code == 403


def test_edit_page(web, owner):
    project = ProjectFactory(owner=owner, name="Old", configuration={"model_type": "cnn", "rounds": 7})
    r = web.get(f"/projects/{project.pk}/edit/")
    assert r.status_code == 200
    assert 'value="Old"' in _html(r)
    r = web.post(f"/projects/{project.pk}/edit/", {"name": "New", "description": "changed", "model_type": "mlp",
                                                   "status": "archived", "differential_privacy": "on"})
    assert r.status_code == 302 and r["Location"] == f"/projects/{project.pk}/"
    project.refresh_from_db()
    assert (project.name, project.description, project.status) == ("New", "changed", "archived")
    # keys the form does not show survive an edit
    assert project.configuration["rounds"] == 7
    assert project.configuration["model_type"] == "mlp"
    assert project.configuration["privacy_settings"]["differential_privacy"] is True


def test_edit_page_errors(web, owner):
    ProjectFactory(owner=owner, name="Taken")
    project = ProjectFactory(owner=owner, name="Mine")
    r = web.post(f"/projects/{project.pk}/edit/", {"name": "taken", "status": "active"})
    assert r.status_code == 200 and r.context["form"].errors["name"]
    r = web.post(f"/projects/{project.pk}/edit/", {"name": " ", "status": "active"})
    assert r.status_code == 200 and r.context["form"].errors["name"]
    project.refresh_from_db()
    assert project.name == "Mine"


# ---- upload --------------------------------------------------------------------------------------------

def test_upload_page_with_a_valid_app(web, owner):
    project = ProjectFactory(owner=owner)
    assert web.get(f"/projects/{project.pk}/upload/").status_code == 200
    archive = flower_zip()
    r = web.post(f"/projects/{project.pk}/upload/",
                 {"file": SimpleUploadedFile("flower-app.zip", archive, content_type="application/zip")})
    assert r.status_code == 302 and r["Location"] == f"/projects/{project.pk}/"
    upload = ProjectUpload.objects.get()
    assert upload.project == project and upload.original_name == "flower-app.zip"
    assert [p.read_bytes() for p in media_files()] == [archive]
    assert "flower-app.zip" in _html(web.get(r["Location"]))


@pytest.mark.parametrize("content, message", [
    (b"definitely not a zip", "The file is not a ZIP archive"),
    (flower_zip(overrides={"mypkg/task.py": None}), "The Flower app is missing task.py"),
])
def test_upload_page_with_a_bad_archive(web, owner, content, message):
    project = ProjectFactory(owner=owner)
    r = web.post(f"/projects/{project.pk}/upload/",
                 {"file": SimpleUploadedFile("bad.zip", content, content_type="application/zip")})
    assert r.status_code == 200
    assert message in _html(r)
    assert r.context["form"].errors["file"] == [message]
    assert not ProjectUpload.objects.exists()
    assert media_files() == []


def test_upload_page_without_a_file(web, owner):
    project = ProjectFactory(owner=owner)
    # a browser always sends the CSRF token, so the form arrives bound even without a file
    r = web.post(f"/projects/{project.pk}/upload/", {"csrfmiddlewaretoken": "from-the-page"})
    assert r.status_code == 200 and r.context["form"].errors["file"]
    assert not ProjectUpload.objects.exists()


# ---- members and delete ------------------------------------------------------------------------------

def test_add_member_and_delete_from_pages(web, owner):
    project = ProjectFactory(owner=owner)
    dave = UserFactory(username="dave")
    r = web.post(f"/projects/{project.pk}/members/", {"username": "dave", "access": "write"})
    assert r.status_code == 302
    assert ProjectMember.objects.get(project=project).user == dave
    web.post(f"/projects/{project.pk}/members/", {"username": "nobody", "access": "read"})
    assert ProjectMember.objects.count() == 1
    assert web.get(f"/projects/{project.pk}/delete/").status_code == 405
    r = web.post(f"/projects/{project.pk}/delete/")
    assert r.status_code == 302 and r["Location"] == "/projects/"
    assert not Project.objects.exists()


# ---- access ------------------------------------------------------------------------------------------

def test_someone_elses_project_pages_are_404(web):
    theirs = ProjectFactory(name="Theirs")
    for path in ("", "edit/", "upload/"):
        assert web.get(f"/projects/{theirs.pk}/{path}").status_code == 404
    for path in ("edit/", "upload/", "delete/", "members/"):
        assert web.post(f"/projects/{theirs.pk}/{path}", {"name": "x", "status": "active"}).status_code == 404
    assert web.get(f"/projects/{uuid.uuid4()}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


@pytest.mark.parametrize("path", ["/", "/projects/", "/projects/new/", f"/projects/{uuid.uuid4()}/"])
def test_anonymous_is_sent_to_login(client, db, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r["Location"].startswith("/login/?next=")


def test_viewer_cannot_create(client, db):
    viewer = UserFactory(roles=["viewer"])
    client.force_login(viewer)
    assert client.get("/projects/").status_code == 200
    assert 'href="/projects/new/"' not in _html(client.get("/projects/"))
    assert client.get("/projects/new/").status_code == 403
    assert client.post("/projects/new/", {"name": "Sneaky"}).status_code == 403
    assert not Project.objects.exists()


def test_viewer_cannot_edit_own_project(client, db):
    viewer = UserFactory(roles=["viewer"])
    project = ProjectFactory(owner=viewer)
    client.force_login(viewer)
    assert client.get(f"/projects/{project.pk}/").status_code == 200
    assert client.get(f"/projects/{project.pk}/edit/").status_code == 403
    assert client.post(f"/projects/{project.pk}/delete/").status_code == 403
    assert Project.objects.exists()


def test_role_without_read_permission_cannot_list(client, db):
    client.force_login(UserFactory(roles=["analyst"]))
    assert client.get("/projects/").status_code == 403
    assert client.get("/").status_code == 200


# ---- registration and login --------------------------------------------------------------------------

def test_register_page(client, db):
    assert client.get("/register/").status_code == 200
    r = client.post("/register/", {"username": "newbie", "email": "Newbie@Example.com",
                                   "password": "a-Long-passphrase-42", "password_confirm": "a-Long-passphrase-42"})
    assert r.status_code == 302 and r["Location"] == "/"
    user = User.objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert user.role_names == ["user"]
    assert client.get("/").status_code == 200  # logged in
    assert client.get("/projects/new/").status_code == 200


def test_register_page_errors(client, db):
    UserFactory(username="taken")
    r = client.post("/register/", {"username": "taken", "email": "t@example.com",
                                   "password": "a-Long-passphrase-42", "password_confirm": "a-Long-passphrase-42"})
    assert r.status_code == 200 and r.context["form"].errors["username"]
    r = client.post("/register/", {"username": "fresh", "email": "f@example.com",
                                   "password": "a-Long-passphrase-42", "password_confirm": "different-42-Pass"})
    assert r.status_code == 200 and r.context["form"].errors["password_confirm"]
    assert not User.objects.filter(username="fresh").exists()


def test_login_page(client, owner):
    assert client.get("/login/").status_code == 200
    r = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert r.status_code == 302 and r["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_page_with_next(client, owner):
    r = client.post("/login/?next=/projects/", {"username": "owner@example.com", "password": PASSWORD,
                                                 "next": "/projects/"})
    assert r.status_code == 302 and r["Location"] == "/projects/"


def test_login_page_wrong_password(client, owner):
    r = client.post("/login/", {"username": "owner", "password": "wrong-password"})
    assert r.status_code == 200
    assert "Invalid username or password" in _html(r)
    assert client.get("/").status_code == 302


def test_page_posts_need_the_csrf_token(owner):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.post("/projects/new/", {"name": "Forged"}).status_code == 403
    assert not Project.objects.exists()
