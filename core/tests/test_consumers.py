"""The live-event socket /api/v1/ws/ over the real ASGI application (routing, origin check, auth)."""

import io
import zipfile

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as account_services
from core.models import Event
from accounts.tests.fixtures import UserFactory, access_token_for
from config.asgi import application
from projects import services as project_services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("builtin_roles", "fresh_channel_layer"),
]

ORIGIN = (b"origin", b"http://testserver")


def _run(scenario):
    return async_to_sync(scenario)()


def _flower_zip() -> SimpleUploadedFile:
    files = {
        "pyproject.toml": (
            '[project]\nname = "demo"\nversion = "1.0.0"\n\n'
            '[tool.flwr.app.components]\nserverapp = "demo.server_app:app"\nclientapp = "demo.client_app:app"\n'
        ),
        "demo/__init__.py": "",
        "demo/server_app.py": "app = object()\n",
        "demo/client_app.py": "app = object()\n",
        "demo/task.py": "def train():\n    return 1\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return SimpleUploadedFile("demo.zip", buffer.getvalue(), content_type="application/zip")


async def _connect(path="/api/v1/ws/", headers=None):
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *(headers or [])])
    connected, code = await communicator.connect(timeout=3)
    return communicator, connected, code


async def _open(path="/api/v1/ws/", headers=None):
    communicator, connected, code = await _connect(path, headers)
    assert connected, code
    hello = await communicator.receive_json_from(timeout=3)
    assert hello["event"] == "connection.established"
    return communicator, hello


async def _subscribe(communicator, message):
    await communicator.send_json_to(message)
    reply = await communicator.receive_json_from(timeout=3)
    assert reply["event"] == "subscribed", reply
    return reply


async def _next_event(communicator, name, timeout=3):
    """The next message with event ``name``, skipping none: anything else first is a failure."""
    message = await communicator.receive_json_from(timeout=timeout)
    assert message["event"] == name, message
    return message


create_project = database_sync_to_async(project_services.project_create)
upload = database_sync_to_async(project_services.project_upload)


# ---- authentication ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, headers", [
    ("/api/v1/ws/", []),
    ("/api/v1/ws/?token=garbage", []),
    ("/api/v1/ws/", [(b"authorization", b"Bearer garbage")]),
    ("/api/v1/ws/", [(b"x-api-key", b"pk_nope_nope")]),
    ("/api/v1/ws/?api_key=pk_nope_nope", []),
])
def test_unauthenticated_connections_are_closed(path, headers):
    async def scenario():
        communicator, connected, code = await _connect(path, headers)
        await communicator.disconnect()
        return connected, code

    connected, code = _run(scenario)
    assert connected is False
    assert code == 4401


def test_a_revoked_access_token_is_refused():
    user = UserFactory()
    data = account_services.tokens_issue(user=user)
    account_services.auth_logout(user=user, refresh_token=data["refresh_token"],
                                 access_token=AccessToken(data["access_token"]))

    async def scenario():
        communicator, connected, code = await _connect(f"/api/v1/ws/?token={data['access_token']}")
        await communicator.disconnect()
        return connected

    assert _run(scenario) is False


def test_a_foreign_origin_is_refused():
    token = access_token_for(UserFactory())

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/api/v1/ws/?token={token}",
                                             headers=[(b"origin", b"http://evil.example")])
        connected, _ = await communicator.connect(timeout=3)
        await communicator.disconnect()
        return connected

    assert _run(scenario) is False


def _connects_without_origin(path, headers=()):
    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=list(headers))
        connected, _ = await communicator.connect(timeout=3)
        await communicator.disconnect()
        return connected

    return _run(scenario)


def test_a_program_without_origin_connects_with_a_token():
    # Devices and scripts send no Origin header; their credential is not a cookie, so no CSWSH risk.
    token = access_token_for(UserFactory())
    assert _connects_without_origin(f"/api/v1/ws/?token={token}") is True
    assert _connects_without_origin("/api/v1/ws/", [(b"authorization", f"Bearer {token}".encode())]) is True


def test_no_origin_and_no_token_is_refused(client):
    user = UserFactory()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    assert _connects_without_origin("/api/v1/ws/", [(b"cookie", cookie)]) is False


@pytest.mark.parametrize("how", ["query", "header"])
def test_jwt_is_accepted_as_query_or_header(how):
    user = UserFactory()
    token = access_token_for(user)
    path = f"/api/v1/ws/?token={token}" if how == "query" else "/api/v1/ws/"
    headers = [] if how == "query" else [(b"authorization", f"Bearer {token}".encode())]

    async def scenario():
        communicator, hello = await _open(path, headers)
        await communicator.send_json_to({"action": "ping"})
        pong = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return hello, pong

    hello, pong = _run(scenario)
    assert hello["data"] == {"user_id": str(user.pk)}
    assert set(hello) == {"event", "timestamp", "data"}
    assert pong["event"] == "pong"


@pytest.mark.parametrize("how", ["x-api-key", "bearer", "query"])
def test_api_key_is_accepted(how):
    user = UserFactory()
    _, raw = account_services.api_key_create(user=user, name="ws", scopes=["read:projects"])
    path, headers = "/api/v1/ws/", []
    if how == "x-api-key":
        headers = [(b"x-api-key", raw.encode())]
    elif how == "bearer":
        headers = [(b"authorization", f"Bearer {raw}".encode())]
    else:
        path = f"/api/v1/ws/?api_key={raw}"

    async def scenario():
        communicator, hello = await _open(path, headers)
        await communicator.disconnect()
        return hello

    assert _run(scenario)["data"]["user_id"] == str(user.pk)


def test_path_without_trailing_slash_works():
    token = access_token_for(UserFactory())

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws?token={token}")
        await communicator.disconnect()

    _run(scenario)


# ---- subscriptions and delivery -----------------------------------------------------------------

def test_seed_001_subscribe_receives_own_project_events_with_filters():
    user = UserFactory()
    token = access_token_for(user)
    watched = project_services.project_create(owner=user, name="Watched")

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        reply = await _subscribe(communicator, {"action": "subscribe", "events": ["project.*"],
                                                "filters": {"projectId": str(watched.pk)}})
        # An event of another of the user's projects does not pass the filter; ours does.
        await create_project(owner=user, name="Unwatched")
        await upload(project=watched, uploaded_by=user, file=_flower_zip())
        uploaded = await _next_event(communicator, "project.uploaded")
        await communicator.disconnect()
        return reply, uploaded

    reply, uploaded = _run(scenario)
    assert reply["data"] == {"events": ["project.*"], "filters": {"projectId": str(watched.pk)}}
    assert set(uploaded) == {"event", "timestamp", "data"}
    assert uploaded["data"]["project_id"] == str(watched.pk)
    assert uploaded["data"]["files"] and uploaded["data"]["checksum"]
    assert uploaded["timestamp"].endswith("Z")


def test_seed_001_subscribe_receives_project_created():
    user = UserFactory()
    token = access_token_for(user)

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await _subscribe(communicator, {"action": "subscribe", "events": ["project.created"]})
        project = await create_project(owner=user, name="Fresh")
        created = await _next_event(communicator, "project.created")
        await communicator.disconnect()
        return project, created

    project, created = _run(scenario)
    assert created["data"] == {"project_id": str(project.pk), "name": "Fresh", "status": project.status}


def test_seed_002_topic_subscription():
    user = UserFactory()
    token = access_token_for(user)

    async def scenario():
        communicator, _ = await _open("/api/v1/ws/", [(b"authorization", f"Bearer {token}".encode())])
        reply = await _subscribe(communicator, {"type": "subscribe", "topics": ["project_updates"]})
        project = await create_project(owner=user, name="Topical")
        created = await _next_event(communicator, "project.created")
        await communicator.disconnect()
        return reply, project, created

    reply, project, created = _run(scenario)
    assert reply["data"]["events"] == ["project.*"]
    assert created["data"]["project_id"] == str(project.pk)


def test_no_events_before_subscribing_or_after_unsubscribing():
    user = UserFactory()
    token = access_token_for(user)

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await create_project(owner=user, name="Unheard")
        silent_before = await communicator.receive_nothing(timeout=0.3)
        await _subscribe(communicator, {"action": "subscribe", "events": ["project.*"]})
        await communicator.send_json_to({"action": "unsubscribe", "events": ["project.*"]})
        unsubscribed = await communicator.receive_json_from(timeout=3)
        await create_project(owner=user, name="Unheard too")
        silent_after = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return silent_before, unsubscribed, silent_after

    silent_before, unsubscribed, silent_after = _run(scenario)
    assert silent_before and silent_after
    assert unsubscribed == {**unsubscribed, "event": "unsubscribed", "data": {"events": []}}


def test_a_user_does_not_receive_another_users_project_events():
    owner, outsider = UserFactory(), UserFactory()
    owner_token, outsider_token = access_token_for(owner), access_token_for(outsider)

    async def scenario():
        theirs, _ = await _open(f"/api/v1/ws/?token={outsider_token}")
        mine, _ = await _open(f"/api/v1/ws/?token={owner_token}")
        for communicator in (theirs, mine):
            await _subscribe(communicator, {"action": "subscribe", "events": ["*"]})
        await create_project(owner=owner, name="Private")
        owner_got = await _next_event(mine, "project.created")
        outsider_silent = await theirs.receive_nothing(timeout=0.3)
        await theirs.disconnect()
        await mine.disconnect()
        return owner_got, outsider_silent

    owner_got, outsider_silent = _run(scenario)
    assert owner_got["data"]["name"] == "Private"
    assert outsider_silent is True


def test_admins_see_every_event_once():
    owner = UserFactory()
    admin_token = access_token_for(UserFactory(roles=["admin"]))

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={admin_token}")
        await _subscribe(communicator, {"action": "subscribe", "events": ["project.created"]})
        await create_project(owner=owner, name="Watched by staff")
        seen = await _next_event(communicator, "project.created")
        nothing_more = await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return seen, nothing_more

    seen, nothing_more = _run(scenario)
    assert seen["data"]["name"] == "Watched by staff"
    assert nothing_more is True


@pytest.mark.parametrize("raw, fragment", [
    ("not json at all", "JSON objects"),
    ("[1, 2, 3]", "JSON objects"),
    ('{"action": "dance"}', "Unknown action"),
    ('{"foo": 1}', "Unknown action"),
    ('{"action": "subscribe", "events": "project.*"}', "subscribe needs"),
    ('{"action": "subscribe", "events": ["Bad Name!"]}', "subscribe needs"),
    ('{"action": "subscribe", "events": ["project.*"], "filters": [1]}', "subscribe needs"),
    ('{"action": "subscribe", "events": ["project.*"], "filters": {"projectId": {"$ne": 1}}}', "filter values"),
    ('{"type": "subscribe", "topics": "project_updates"}', "subscribe needs"),
])
def test_bad_messages_get_an_error_event(raw, fragment):
    token = access_token_for(UserFactory())

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await communicator.send_to(text_data=raw)
        error = await communicator.receive_json_from(timeout=3)
        # The socket stays usable.
        await communicator.send_json_to({"action": "ping"})
        pong = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return error, pong

    error, pong = _run(scenario)
    assert error["event"] == "error"
    assert error["data"]["code"] == "VALIDATION_ERROR"
    assert fragment in error["data"]["message"]
    assert pong["event"] == "pong"


def test_too_many_patterns_are_refused():
    token = access_token_for(UserFactory())

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await communicator.send_json_to({"action": "subscribe", "events": [f"e{i}.x" for i in range(101)]})
        error = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return error

    assert _run(scenario)["event"] == "error"


def test_events_stored_by_another_process_reach_the_socket(settings):
    """A Celery worker's events never pass through this process's in-memory layer; the consumer
    reads them from the database (written here directly, as the worker's process would)."""
    settings.EVENT_POLL_SECONDS = 0.2
    user, other = UserFactory(), UserFactory()
    token = access_token_for(user)

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await communicator.send_json_to({"action": "subscribe", "events": ["round.*"]})
        await communicator.receive_json_from(timeout=3)
        await database_sync_to_async(Event.objects.create)(
            event="round.completed", data={"round": 1, "execution_id": "x"}, groups=[f"user.{other.pk}", "staff"])
        await database_sync_to_async(Event.objects.create)(
            event="round.completed", data={"round": 2, "execution_id": "x"}, groups=[f"user.{user.pk}", "staff"])
        message = await communicator.receive_json_from(timeout=3)
        nothing_else = await communicator.receive_nothing(timeout=0.6)
        await communicator.disconnect()
        return message, nothing_else

    message, nothing_else = _run(scenario)
    assert message["event"] == "round.completed" and message["data"]["round"] == 2
    assert nothing_else  # the other user's event, and no duplicate of this one


def test_subscribe_with_since_replays_stored_events():
    from datetime import timedelta

    from django.utils import timezone

    user = UserFactory()
    token = access_token_for(user)
    before = timezone.now() - timedelta(seconds=5)
    Event.objects.create(event="round.completed", data={"round": 7}, groups=[f"user.{user.pk}"])
    Event.objects.create(event="project.created", data={"project_id": "p"}, groups=[f"user.{user.pk}"])

    async def scenario():
        communicator, _ = await _open(f"/api/v1/ws/?token={token}")
        await communicator.send_json_to({"action": "subscribe", "events": ["round.*"],
                                         "since": before.isoformat()})
        subscribed = await communicator.receive_json_from(timeout=3)
        replayed = await communicator.receive_json_from(timeout=3)
        await communicator.send_json_to({"action": "subscribe", "events": ["round.*"], "since": "yesterday"})
        error = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return subscribed, replayed, error

    subscribed, replayed, error = _run(scenario)
    assert subscribed["event"] == "subscribed"
    assert replayed["event"] == "round.completed" and replayed["data"] == {"round": 7}
    assert error["event"] == "error" and "since" in error["data"]["message"]
