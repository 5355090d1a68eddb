"""Seed 002's WebSocket messages on ``/api/v1/ws/`` over the real ASGI application.

A device connects with its registration token, joins its node's group only, receives
``training_invitation`` / ``model_ready`` when it subscribed the seed 002 way, and reports
``training_progress`` (recorded by ``device_progress_report``, never by the consumer itself).
"""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from core.consumers import render_seed_002
from core.models import Event
from core.realtime import broadcast_on_commit, user_group
from nodes.models import Node
from nodes.protocol import services as protocol_services
from nodes.tests.protocol.conftest import device_execution, open_first_round
from projects import services as project_services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("builtin_roles", "fresh_channel_layer"),
]

SEED_002_SUBSCRIBE = {"type": "subscribe", "topics": ["round_updates", "model_updates"]}
HOST = (b"host", b"testserver")


def _run(scenario):
    return async_to_sync(scenario)()


async def _open(token: str, *, subscribe: dict | None = SEED_002_SUBSCRIBE):
    # A device sends no Origin header: its credential is a bearer token, not a cookie.
    communicator = WebsocketCommunicator(application, "/api/v1/ws/",
                                         headers=[HOST, (b"authorization", f"Bearer {token}".encode())])
    connected, code = await communicator.connect(timeout=3)
    assert connected, code
    hello = await communicator.receive_json_from(timeout=3)
    if subscribe is not None:
        await communicator.send_json_to(subscribe)
        reply = await communicator.receive_json_from(timeout=3)
        assert reply["event"] == "subscribed", reply
    return communicator, hello


@pytest.fixture
def execution(device_project):
    return device_execution(device_project, rounds_total=3, clients=2)


@pytest.fixture
def device(make_device, execution):
    device = make_device()
    assert device.current().json()["data"]["status"] == "pending"  # assigned to the running execution
    return device


open_round = database_sync_to_async(open_first_round)


# ---- connecting -------------------------------------------------------------------------------------

def test_a_device_token_connects_and_joins_only_its_node_group(device, registrant):
    async def scenario():
        communicator, hello = await _open(device.token, subscribe={"action": "subscribe", "events": ["*"]})
        # The registrant's own events are not the device's business...
        await database_sync_to_async(project_services.project_create)(owner=registrant, name="Private")
        silent = await communicator.receive_nothing(timeout=0.3)
        # ...its node's are.
        await database_sync_to_async(broadcast_on_commit)("node.status", {"node_id": device.client_id},
                                                          [f"node.{device.client_id}"])
        mine = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return hello, silent, mine

    hello, silent, mine = _run(scenario)
    assert hello["event"] == "connection.established" and hello["data"] == {"client_id": device.client_id}
    assert silent is True
    assert mine["event"] == "node.status" and mine["data"] == {"node_id": device.client_id}


@pytest.mark.parametrize("how", ["garbage", "revoked", "user-style query"])
def test_bad_device_tokens_are_refused(device, how):
    token = device.token
    if how == "garbage":
        token = token[:-4] + "abcd"
    elif how == "revoked":
        protocol_services.device_token_revoke(node=Node.objects.get(pk=device.client_id))

    async def scenario():
        path = f"/api/v1/ws/?token={token}" if how == "user-style query" else "/api/v1/ws/"
        headers = [HOST] if how == "user-style query" else [HOST, (b"authorization", f"Bearer {token}".encode())]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=3)
        await communicator.disconnect()
        return connected, code

    connected, code = _run(scenario)
    if how == "user-style query":  # ?token= works for devices too (browsers cannot set headers)
        assert connected is True
    else:
        assert connected is False and code == 4401


# ---- server -> device ---------------------------------------------------------------------------------

def test_round_started_becomes_a_training_invitation(device, execution):
    async def scenario():
        communicator, _ = await _open(device.token)
        device_round, _ = await open_round(execution)
        invitation = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return device_round, invitation

    device_round, invitation = _run(scenario)
    assert invitation == {
        "type": "training_invitation", "round_number": 1, "round_id": str(device_round.pk),
        "global_model_url": f"http://testserver/api/v1/models/{device_round.model_version}",
        "model_version": device_round.model_version, "training_config": invitation["training_config"],
        "deadline": device_round.deadline.isoformat().replace("+00:00", "Z"), "execution_id": str(execution.pk)}
    assert invitation["training_config"]["local_epochs"] == 1
    assert set(invitation["training_config"]["tensors"]) == {"weight", "bias"}


def test_model_aggregated_becomes_model_ready_and_seed_001_subscribers_keep_their_shape(device, execution, registrant):
    from accounts.tests.fixtures import access_token_for

    user_token = access_token_for(registrant)
    data = {"execution_id": str(execution.pk), "round": 1, "round_number": 1, "version": "abc.1",
            "download_url": "/api/v1/models/abc.1", "checksum": "0" * 64, "transport": "device"}

    async def scenario():
        seed_002, _ = await _open(device.token)
        seed_001, _ = await _open(user_token, subscribe={"action": "subscribe", "events": ["model.*"]})
        groups = [f"node.{device.client_id}", user_group(registrant.pk)]
        await database_sync_to_async(broadcast_on_commit)("model.aggregated", data, groups)
        ready = await seed_002.receive_json_from(timeout=3)
        plain = await seed_001.receive_json_from(timeout=3)
        # The embedded engine's model.aggregated has no download URL: no model_ready for it.
        await database_sync_to_async(broadcast_on_commit)("model.aggregated", {"round": 2}, groups)
        embedded = await seed_002.receive_json_from(timeout=3)
        for communicator in (seed_002, seed_001):
            await communicator.disconnect()
        return ready, plain, embedded

    ready, plain, embedded = _run(scenario)
    assert ready == {"type": "model_ready", "version": "abc.1", "download_url": "http://testserver/api/v1/models/abc.1",
                     "checksum": "0" * 64, "round_number": 1, "execution_id": str(execution.pk)}
    assert plain["event"] == "model.aggregated" and plain["data"] == data
    assert embedded["event"] == "model.aggregated" and embedded["data"] == {"round": 2}


def test_render_seed_002_leaves_other_events_alone():
    assert render_seed_002("round.started", {"round": 1, "execution_id": "x"}) is None  # not a device round
    assert render_seed_002("round.completed", {"transport": "device", "round_id": "r"}) is None
    invitation = render_seed_002("round.started", {"transport": "device", "round_id": "r", "round": 3,
                                                   "global_model_url": "https://cdn.example/m"}, "http://host")
    assert invitation["round_number"] == 3 and invitation["global_model_url"] == "https://cdn.example/m"


# ---- device -> server ---------------------------------------------------------------------------------

def _progress_events():
    return list(Event.objects.filter(event="client.training_progress").order_by("created_at"))


def test_training_progress_is_recorded_through_the_service(device, execution, registrant):
    async def scenario():
        communicator, _ = await _open(device.token)
        device_round, _ = await open_round(execution)
        await communicator.receive_json_from(timeout=3)  # the invitation
        await communicator.send_json_to({"type": "training_progress", "round_number": 1, "progress_percent": 45,
                                         "estimated_completion": "2030-01-01T00:00:00Z"})
        # Faster than once a second: dropped (advisory), except the final 100%.
        await communicator.send_json_to({"type": "training_progress", "round_number": 1, "progress_percent": 50})
        await communicator.send_json_to({"type": "training_progress", "round_number": 1, "progress_percent": 100})
        await communicator.send_json_to({"type": "ping"})
        pong = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return device_round, pong

    device_round, pong = _run(scenario)
    assert pong["event"] == "pong"  # no error in between
    events = _progress_events()
    assert [e.data["progress_percent"] for e in events] == [45.0, 100.0]
    first = events[0]
    assert first.data["client_id"] == device.client_id and first.data["round_id"] == str(device_round.pk)
    assert first.data["estimated_completion"] == "2030-01-01T00:00:00Z"
    assert user_group(registrant.pk) in first.groups and f"node.{device.client_id}" in first.groups


@pytest.mark.parametrize("message, code, fragment", [
    ({"type": "training_progress", "round_number": 0, "progress_percent": 10}, "VALIDATION_ERROR", "round_number"),
    ({"type": "training_progress", "round_number": 1, "progress_percent": 101}, "VALIDATION_ERROR", "progress_percent"),
    ({"type": "training_progress", "round_number": 1, "progress_percent": "10"}, "VALIDATION_ERROR", "progress_percent"),
    ({"type": "training_progress", "round_number": 1, "progress_percent": 10, "estimated_completion": "soon"},
     "VALIDATION_ERROR", "estimated_completion"),
    ({"type": "training_progress", "round_number": 7, "progress_percent": 10}, "RESOURCE_CONFLICT", "no open round"),
])
def test_bad_progress_gets_an_error_event_and_nothing_is_recorded(device, execution, message, code, fragment):
    async def scenario():
        communicator, _ = await _open(device.token)
        await open_round(execution)
        await communicator.receive_json_from(timeout=3)
        await communicator.send_json_to(message)
        error = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return error

    error = _run(scenario)
    assert error["event"] == "error" and error["data"]["code"] == code, error
    assert fragment in error["data"]["message"]
    assert _progress_events() == []


def test_progress_from_a_user_is_refused(registrant):
    from accounts.tests.fixtures import access_token_for

    token = access_token_for(registrant)

    async def scenario():
        communicator, _ = await _open(token, subscribe=None)
        await communicator.send_json_to({"type": "training_progress", "round_number": 1, "progress_percent": 5})
        error = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return error

    error = _run(scenario)
    assert error["event"] == "error" and error["data"]["code"] == "AUTHORIZATION_FAILED"


def test_a_token_revoked_while_connected_closes_the_socket_on_its_next_write(device, execution):
    async def scenario():
        communicator, _ = await _open(device.token)
        await open_round(execution)
        await communicator.receive_json_from(timeout=3)
        await database_sync_to_async(protocol_services.device_token_revoke)(node=await database_sync_to_async(
            Node.objects.get)(pk=device.client_id))
        await communicator.send_json_to({"type": "training_progress", "round_number": 1, "progress_percent": 5})
        error = await communicator.receive_json_from(timeout=3)
        closed = await communicator.receive_output(timeout=3)
        return error, closed

    error, closed = _run(scenario)
    assert error["data"]["code"] == "AUTHENTICATION_FAILED"
    assert closed == {"type": "websocket.close", "code": 4401}
    assert _progress_events() == []
