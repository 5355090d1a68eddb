"""Project events are stored as ``core.models.Event`` rows and sent after commit."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.tests.factories import UserFactory
from core.models import Event
from core.realtime import user_group
from projects.tests.api.test_projects import SEED_BODY
from projects.tests.archives import flower_zip
from projects.tests.conftest import API
from projects.tests.factories import ProjectFactory, ProjectMemberFactory


def test_project_created_event(api, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = api.post(API, SEED_BODY)
    assert r.status_code == 201
    project_id = r.json()["data"]["id"]
    event = Event.objects.get(event="project.created")
    assert event.data["project_id"] == project_id
    assert event.data["name"] == "Fashion CNN"
    assert user_group(owner.pk) in event.groups and "staff" in event.groups
    assert len(callbacks) >= 1


def test_no_event_for_a_refused_create(api, owner):
    ProjectFactory(owner=owner, name="Taken")
    assert api.post(API, {"name": "taken"}).status_code == 409
    assert api.post(API, {"name": ""}).status_code == 400
    assert not Event.objects.exists()


def test_project_uploaded_event_reaches_owner_and_members(api, owner, django_capture_on_commit_callbacks):
    project = ProjectFactory(owner=owner)
    member = ProjectMemberFactory(project=project, user=UserFactory()).user
    with django_capture_on_commit_callbacks(execute=True):
        r = api.upload(project.pk, flower_zip())
    assert r.status_code == 201
    data = r.json()["data"]
    event = Event.objects.get(event="project.uploaded")
    assert event.data["project_id"] == str(project.pk)
    assert event.data["upload_id"] == data["upload_id"]
    assert event.data["checksum"] == data["checksum"]
    assert event.data["files"] == data["files"]
    assert set(event.groups) == {user_group(owner.pk), user_group(member.pk), "staff"}


def test_no_event_for_a_refused_upload(api, owner, django_capture_on_commit_callbacks):
    project = ProjectFactory(owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.upload(project.pk, b"not a zip").status_code == 400
    assert not Event.objects.filter(event="project.uploaded").exists()


def test_update_member_and_delete_events(api, owner, django_capture_on_commit_callbacks):
    project = ProjectFactory(owner=owner)
    alice = UserFactory(username="alice")
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"{API}/{project.pk}", {"status": "archived"})
        api.post(f"{API}/{project.pk}/members", {"username": "alice", "access": "write"})
        api.delete(f"{API}/{project.pk}")
    updated = Event.objects.get(event="project.updated")
    assert updated.data == {"project_id": str(project.pk), "name": project.name, "status": "archived"}
    member = Event.objects.get(event="project.member_changed")
    assert member.data["user_id"] == str(alice.pk) and member.data["access"] == "write"
    deleted = Event.objects.get(event="project.deleted")
    assert deleted.data["project_id"] == str(project.pk)
    # the member who just lost the project hears that it is gone
    assert user_group(alice.pk) in deleted.groups


@pytest.mark.django_db(transaction=True)
def test_created_event_is_sent_to_the_owners_group_after_commit(owner):
    from projects.services import project_create

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(owner.pk), channel)
    try:
        project = project_create(owner=owner, name="Live")
        message = async_to_sync(asyncio.wait_for)(layer.receive(channel), 5)
    finally:
        async_to_sync(layer.group_discard)(user_group(owner.pk), channel)
    assert message["type"] == "pollen.event"
    assert message["event"] == "project.created"
    assert message["data"]["project_id"] == str(project.pk)
    assert message["id"] == str(Event.objects.get(event="project.created").pk)
