"""POST /clients/register (seed 002), device tokens, revocation, and a node acting for another."""

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from accounts import services as account_services
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import ALL_ROLES, access_token_for, assert_error, assert_success
from core.permissions import has_permission
from nodes.models import DeviceCredential, Node
from nodes.protocol import auth
from nodes.tests.factories import NodeFactory
from nodes.tests.protocol.conftest import API, REGISTER, Device
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _stored():
    return Node.objects.count(), DeviceCredential.objects.count()


def test_a_device_registers_with_an_api_key_and_gets_a_seed_002_token(api_key, registrant):
    device = Device("hashed-device-identifier", platform="android")
    body = assert_success(device.register(api_key), 201)
    data = body["data"]
    assert set(data) == {"client_id", "registration_token", "expires_at"}
    claims = jwt.decode(data["registration_token"], options={"verify_signature": False})
    assert claims["sub"] == data["client_id"]
    assert claims["scope"] == "training:participate model:download" and claims["type"] == "device"
    assert claims["exp"] > claims["iat"] and claims["jti"]
    assert data["expires_at"].endswith("Z")
    node = Node.objects.get(pk=data["client_id"])
    assert node.type == "client" and node.registered_by == registrant and node.status == "connected"
    assert node.framework == "numpy" and node.capability["compute"] == "mobile"
    assert node.metadata["device_id"] == "hashed-device-identifier" and node.metadata["platform"] == "android"
    credential = node.device_credential
    assert credential.public_key == device.public_key and credential.token_jti == claims["jti"]
    assert credential.capabilities["compute_capability"] == "medium"
    # the token works on the device endpoints
    assert_success(device.current())


def test_the_api_key_may_come_as_x_api_key_and_a_user_with_client_register_may_register(api_key, registrant):
    device = Device("d-1")
    response = device.http.request("post", REGISTER, json_body={
        "device_id": "d-1", "platform": "linux", "public_key": device.public_key}, headers={"X-API-Key": api_key})
    assert_success(response, 201)
    response = device.http.request("post", REGISTER, json_body={
        "device_id": "d-2", "platform": "ios", "public_key": device.public_key},
        headers={"Authorization": f"Bearer {access_token_for(registrant)}"})
    assert_success(response, 201)
    assert Node.objects.filter(registered_by=registrant).count() == 2


def test_registering_again_rotates_the_key_and_revokes_the_old_token(api_key, registrant):
    device = Device("phone-42")
    first = assert_success(device.register(api_key), 201)["data"]
    old_token = device.token
    replacement = Device("phone-42")  # the same device with a new key
    second = assert_success(replacement.register(api_key), 201)["data"]
    assert second["client_id"] == first["client_id"] and second["registration_token"] != old_token
    assert Node.objects.count() == 1 and DeviceCredential.objects.count() == 1
    assert DeviceCredential.objects.get().public_key == replacement.public_key
    body = assert_error(replacement.current(Authorization=f"Bearer {old_token}"), 401, "AUTHENTICATION_FAILED")
    assert body["error"]["details"]["reason"] == "token_revoked"
    assert_success(replacement.current())


def test_the_same_device_id_of_another_owner_is_another_node(api_key, registrant):
    other = UserFactory(roles=["ml_engineer"])
    _, other_key = account_services.api_key_create(user=other, name="k", scopes=["client:register"])
    assert_success(Device("shared-id").register(api_key), 201)
    assert_success(Device("shared-id").register(other_key), 201)
    assert Node.objects.count() == 2


@pytest.mark.parametrize("body, field", [
    ({"public_key": "not base64!"}, "public_key"),
    ({"public_key": "AAAA"}, "public_key"),  # base64, but 3 bytes
    ({"public_key": ""}, "public_key"),
    ({"public_key": None}, "public_key"),
    ({"device_id": ""}, "device_id"),
    ({"device_id": "x" * 300}, "device_id"),
    ({"platform": "Not A Platform!"}, "platform"),
    ({"capabilities": {"compute_capability": "huge"}}, "capabilities.compute_capability"),
    ({"capabilities": {"max_model_size_mb": -1}}, "capabilities.max_model_size_mb"),
    ({"capabilities": {"supported_frameworks": "torch"}}, "capabilities.supported_frameworks"),
    ({"capabilities": []}, "capabilities"),
    ({"project_id": "not-a-uuid"}, "project_id"),
])
def test_bad_registrations_answer_400_and_store_nothing(api_key, body, field):
    device = Device("bad")
    payload = {"device_id": "bad", "platform": "linux", "public_key": device.public_key, **body}
    response = device.http.request("post", REGISTER, json_body=payload, headers={"Authorization": f"Bearer {api_key}"})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["error"]["details"]["field"] == field
    assert _stored() == (0, 0)


def test_registration_into_a_project_needs_write_access_to_it(api_key, registrant, device_project):
    theirs = ProjectFactory(configuration={})
    assert_error(Device("a").register(api_key, project_id=str(theirs.pk)), 404, "RESOURCE_NOT_FOUND")
    assert _stored() == (0, 0)
    data = assert_success(Device("b").register(api_key, project_id=str(device_project.pk)), 201)["data"]
    assert Node.objects.get(pk=data["client_id"]).project == device_project


def test_registration_needs_client_register(registrant):
    _, narrow = account_services.api_key_create(user=registrant, name="k", scopes=["client:read"])
    assert_error(Device("x").register(narrow), 403, "AUTHORIZATION_FAILED")
    anonymous = Device("y")
    response = anonymous.http.request("post", REGISTER, json_body={"device_id": "y", "platform": "linux",
                                                                   "public_key": anonymous.public_key})
    assert_error(response, 401, "AUTHENTICATION_FAILED")
    assert_error(Device("z").register("pk_abc_notakey"), 401, "AUTHENTICATION_FAILED")
    assert _stored() == (0, 0)


def test_a_device_token_cannot_register_another_device(make_device):
    device = make_device()
    assert_error(Device("other").register(device.token), 403, "AUTHORIZATION_FAILED")
    assert Node.objects.count() == 1


@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_matrix_for_register_and_revoke(role, client):
    user = UserFactory(roles=[role])
    token = access_token_for(user)
    device = Device(f"dev-{role}")
    may_register = any(has_permission(BUILTIN_ROLES[role]["permissions"], p)
                       for p in ("client:register", "client:write", "client:create"))
    may_revoke = any(has_permission(BUILTIN_ROLES[role]["permissions"], p)
                     for p in ("client:write", "client:update", "write:projects"))
    response = device.register(token)
    assert response.status_code == (201 if may_register else 403), (role, response.content)
    if not may_register:
        assert_error(response, 403, "AUTHORIZATION_FAILED")
        return
    response = device.http.request("post", f"{API}/fl/clients/{device.client_id}/revoke-token",
                                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == (200 if may_revoke else 403), (role, response.content)


def test_the_registrant_and_an_admin_revoke_a_token_and_it_answers_401(make_device, registrant, admin):
    device, other_device = make_device("one"), make_device("two")
    stranger = UserFactory(roles=["ml_engineer"])
    url = f"{API}/fl/clients/{device.client_id}/revoke-token"
    # someone else's device is not even visible
    assert_error(device.http.request("post", url, headers={"Authorization": f"Bearer {access_token_for(stranger)}"}),
                 404, "RESOURCE_NOT_FOUND")
    # a device cannot revoke (itself or another)
    assert_error(device.http.request("post", url, headers=other_device.auth()), 403, "AUTHORIZATION_FAILED")
    assert_success(device.current())
    data = assert_success(device.http.request(
        "post", url, headers={"Authorization": f"Bearer {access_token_for(registrant)}"}))["data"]
    assert data["client_id"] == device.client_id and data["revoked_at"]
    body = assert_error(device.current(), 401, "AUTHENTICATION_FAILED")
    assert body["error"]["details"]["reason"] == "token_revoked"
    assert_success(other_device.current())
    assert_success(other_device.http.request("post", f"{API}/fl/clients/{other_device.client_id}/revoke-token",
                                             headers={"Authorization": f"Bearer {access_token_for(admin)}"}))
    assert_error(other_device.current(), 401, "AUTHENTICATION_FAILED")
    # a node that is not a device has no token to revoke
    plain = NodeFactory(registered_by=registrant)
    assert_error(device.http.request("post", f"{API}/fl/clients/{plain.pk}/revoke-token",
                                     headers={"Authorization": f"Bearer {access_token_for(registrant)}"}),
                 404, "RESOURCE_NOT_FOUND")


def test_expired_tampered_and_foreign_tokens_answer_401(make_device, registrant):
    device = make_device()
    credential = DeviceCredential.objects.get(node_id=device.client_id)
    expired, jti, _ = auth.token_issue(node_id=device.client_id, now=timezone.now() - timedelta(days=30))
    credential.token_jti = jti
    credential.save()
    body = assert_error(device.current(Authorization=f"Bearer {expired}"), 401, "AUTHENTICATION_FAILED")
    assert body["error"]["details"]["reason"] == "token_expired"
    forged = jwt.encode({**jwt.decode(expired, options={"verify_signature": False}),
                         "exp": int((timezone.now() + timedelta(days=1)).timestamp())}, "guessed-key", "HS256")
    assert_error(device.current(Authorization=f"Bearer {forged}"), 401, "AUTHENTICATION_FAILED")
    # a user's own access token is not a device token
    assert_error(device.current(Authorization=f"Bearer {access_token_for(registrant)}"), 401,
                 "AUTHENTICATION_FAILED")
    assert_error(device.current(Authorization=""), 401, "AUTHENTICATION_FAILED")


def test_user_tokens_and_api_keys_still_work_next_to_device_tokens(make_device, registrant, api_key, api_for):
    device = make_device()
    assert_success(api_for(registrant).get(f"{API}/fl/clients"))
    _, reader = account_services.api_key_create(user=registrant, name="reader", scopes=["client:read"])
    assert_success(api_for(api_key=reader).get(f"{API}/fl/clients"))
    # a device token reaches only what its scopes allow
    response = device.http.request("get", f"{API}/fl/clients", headers=device.auth())
    assert_error(response, 403, "AUTHORIZATION_FAILED")


def test_a_device_beats_for_its_own_node_only(make_device, registrant):
    device, other = make_device("mine"), make_device("other")
    own = device.http.request("post", f"{API}/nodes/{device.client_id}/heartbeat", json_body={},
                              headers=device.auth())
    assert_success(own)
    response = device.http.request("post", f"{API}/nodes/{other.client_id}/heartbeat", json_body={},
                                   headers=device.auth())
    assert_error(response, 403, "AUTHORIZATION_FAILED")
    response = device.http.request("post", f"{API}/fl/clients/{other.client_id}/heartbeat", json_body={},
                                   headers=device.auth())
    assert_error(response, 403, "AUTHORIZATION_FAILED")
    # a user may still beat for any node they can change
    assert_success(device.http.request("post", f"{API}/nodes/{other.client_id}/heartbeat", json_body={},
                                       headers={"Authorization": f"Bearer {access_token_for(registrant)}"}))
