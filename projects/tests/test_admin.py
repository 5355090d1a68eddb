"""The Django admin's pages for projects, accounts and events open for a superuser."""

import pytest
from django.test import Client

from accounts.models import ApiKey, Role
from accounts.services import api_key_create
from accounts.tests.factories import UserFactory
from core.models import Event
from projects.services import project_create
from projects.tests.factories import ProjectMemberFactory, ProjectUploadFactory


@pytest.fixture
def admin_client(db):
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True, roles=[])
    client = Client()
    client.force_login(superuser)
    return client, superuser


@pytest.fixture
def rows(admin_client):
    _, superuser = admin_client
    owner = UserFactory(username="alice")
    project = project_create(owner=owner, name="Admin visible", configuration={"model_type": "cnn"})
    ProjectUploadFactory(project=project, original_name="visible.zip")
    ProjectMemberFactory(project=project, user=UserFactory(username="bob"))
    api_key_create(user=superuser, name="ci key", scopes=["read:projects"])
    return project


CHANGELISTS = {
    "/admin/projects/project/": "Admin visible",
    "/admin/projects/projectupload/": "visible.zip",
    "/admin/projects/projectmember/": "bob",
    "/admin/accounts/user/": "alice",
    "/admin/accounts/role/": "platform_admin",
    "/admin/accounts/apikey/": "ci key",
    "/admin/core/event/": "project.created",
}


@pytest.mark.parametrize("url", list(CHANGELISTS))
def test_changelist_opens(admin_client, rows, url):
    client, _ = admin_client
    r = client.get(url)
    assert r.status_code == 200
    assert CHANGELISTS[url] in r.content.decode()
    assert client.get(url, {"q": "visible"}).status_code == 200


def test_change_pages_open(admin_client, rows):
    client, _ = admin_client
    project = rows
    upload = project.uploads.get()
    for url in (f"/admin/projects/project/{project.pk}/change/",
                f"/admin/projects/projectupload/{upload.pk}/change/",
                f"/admin/projects/projectmember/{project.memberships.get().pk}/change/",
                f"/admin/accounts/role/{Role.objects.get(name='user').pk}/change/",
                f"/admin/accounts/apikey/{ApiKey.objects.get().pk}/change/",
                f"/admin/core/event/{Event.objects.first().pk}/change/",
                "/admin/projects/project/add/"):
        assert client.get(url).status_code == 200, url


def test_uploads_cannot_be_added_through_the_admin(admin_client):
    client, _ = admin_client
    assert client.get("/admin/projects/projectupload/add/").status_code == 403


def test_admin_is_closed_to_ordinary_users(client, db):
    client.force_login(UserFactory())
    r = client.get("/admin/projects/project/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
