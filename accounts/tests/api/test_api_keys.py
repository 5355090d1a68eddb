"""/api/v1/auth/api-keys: keys shown once, stored hashed, scoped, expiring, revocable, rotatable."""

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey
from accounts.tests.fixtures import UserFactory, assert_error, assert_success

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/auth/api-keys"
ME = "/api/v1/auth/me"


def _create(client, **payload):
    payload = {"name": "ci", "scopes": ["read:projects"], **payload}
    return client.post(KEYS, payload)


def _created_key(client, **payload) -> dict:
    return assert_success(_create(client, **payload), 201)["data"]


def test_create_returns_the_key_once_and_stores_only_its_hash(api_for, user):
    client = api_for(user)
    r = _create(client, name="ci runner", scopes=["read:projects", "write:projects"])
    body = assert_success(r, 201)
    data = body["data"]
    raw = data["key"]
    assert raw.startswith(data["key_prefix"]) and data["key_prefix"].startswith("pk_")
    assert len(raw) > 40
    assert data["name"] == "ci runner"
    assert data["scopes"] == ["read:projects", "write:projects"]
    assert data["status"] == "active"
    assert data["expires_at"] is None and data["revoked_at"] is None

    row = ApiKey.objects.get(pk=data["id"])
    assert row.user_id == user.pk
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    # No column of the stored row holds the secret.
    secret = raw.rsplit("_", 1)[-1]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s",
                       [row.pk.hex if connection.vendor == "sqlite" else row.pk])
        stored = cursor.fetchone()
    assert stored is not None
    assert not any(secret in str(value) for value in stored)
    assert not any(raw in str(value) for value in stored)

    # Never again: neither the list nor the detail shows the key.
    listed = assert_success(client.get(KEYS))
    assert [k["id"] for k in listed["data"]] == [data["id"]]
    assert "key" not in listed["data"][0]
    assert secret not in str(listed)
    detail = assert_success(client.get(f"{KEYS}/{data['id']}"))
    assert "key" not in detail["data"]
    assert detail["data"]["key_prefix"] == data["key_prefix"]


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_key_authenticates_as_x_api_key_and_as_bearer(api, api_for, user, header):
    raw = _created_key(api_for(user))["key"]
    value = raw if header == "X-API-Key" else f"Bearer {raw}"
    r = api.get(ME, headers={header: value})
    assert assert_success(r)["data"]["id"] == str(user.pk)
    row = ApiKey.objects.get(user=user)
    assert row.last_used_at is not None


@pytest.mark.parametrize("value", ["pk_nope_nope", "pk_abc", "garbage", "pk_" + "a" * 12 + "_wrongsecret"])
def test_unknown_keys_are_401(api, value):
    assert_error(api.get(ME, headers={"X-API-Key": value}), 401, "AUTHENTICATION_FAILED")


def test_a_key_with_the_right_prefix_but_wrong_secret_is_401(api, api_for, user):
    data = _created_key(api_for(user))
    forged = data["key_prefix"] + "x" * 43
    assert_error(api.get(ME, headers={"X-API-Key": forged}), 401, "AUTHENTICATION_FAILED")
    assert_error(api.get(ME, headers={"Authorization": f"Bearer {forged}"}), 401, "AUTHENTICATION_FAILED")


def test_scopes_must_be_covered_by_the_owners_permissions(api_for, user):
    client = api_for(user)
    r = _create(client, scopes=["read:projects", "budget:*"])
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["scopes"] == ["budget:*"]
    assert_error(_create(client, scopes=["*"]), 400, "VALIDATION_ERROR")
    assert_error(_create(client, scopes=["read:*"]), 400, "VALIDATION_ERROR")
    assert not ApiKey.objects.exists()


def test_wildcard_owner_can_grant_narrower_wildcards(api_for):
    fc = UserFactory(roles=["financial_controller"])
    data = _created_key(api_for(fc), scopes=["budget:*", "budget:read", "report:monthly:read"])
    assert data["scopes"] == ["budget:*", "budget:read", "report:monthly:read"]
    admin = UserFactory(roles=["admin"])
    assert _created_key(api_for(admin), scopes=["*"])["scopes"] == ["*"]


@pytest.mark.parametrize("payload", [
    {"scopes": []},
    {"scopes": ["Not A Permission"]},
    {"scopes": "read:projects"},
    {"name": ""},
    {"name": "x" * 101},
    {"expires_in_days": 0},
    {"expires_in_days": 4000},
    {"expires_at": "2001-01-01T00:00:00Z"},
    {"expires_at": "2999-01-01T00:00:00Z", "expires_in_days": 3},
])
def test_create_validates_input(api_for, user, payload):
    assert_error(_create(api_for(user), **payload), 400, "VALIDATION_ERROR")
    assert not ApiKey.objects.exists()


def test_key_scopes_narrow_the_owners_permissions(api, api_for, user):
    raw = _created_key(api_for(user), scopes=["read:projects"])["key"]
    headers = {"X-API-Key": raw}
    assert_success(api.get("/api/v1/projects", headers=headers))
    r = api.post("/api/v1/projects", {"name": "Nope"}, headers=headers)
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    # The owner's own token still may.
    assert_success(api_for(user).post("/api/v1/projects", {"name": "Yes"}), 201)


def test_a_key_does_not_gain_permissions_its_owner_lost(api, api_for, user):
    raw = _created_key(api_for(user), scopes=["read:projects", "write:projects"])["key"]
    user.roles.set([])
    from accounts.models import Role
    user.roles.add(Role.objects.get(name="viewer"))
    r = api.post("/api/v1/projects", {"name": "Nope"}, headers={"X-API-Key": raw})
    assert_error(r, 403, "AUTHORIZATION_FAILED")


def test_a_scoped_key_cannot_mint_a_wider_key(api, api_for, user):
    raw = _created_key(api_for(user), scopes=["read:projects"])["key"]
    r = api.post(KEYS, {"name": "escalate", "scopes": ["write:projects"]}, headers={"X-API-Key": raw})
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["scopes"] == ["write:projects"]
    assert ApiKey.objects.filter(user=user).count() == 1
    # Within its own scopes it may.
    r = api.post(KEYS, {"name": "same", "scopes": ["read:projects"]}, headers={"X-API-Key": raw})
    assert_success(r, 201)


def test_a_scoped_key_cannot_rotate_a_wider_key_to_learn_its_secret(api, api_for, user):
    client = api_for(user)
    narrow = _created_key(client, scopes=["read:projects"])["key"]
    wide = _created_key(client, name="wide", scopes=["read:projects", "write:projects"])
    r = api.post(f"{KEYS}/{wide['id']}/rotate", headers={"X-API-Key": narrow})
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert "key" not in r.json()["error"]["details"]
    assert ApiKey.objects.get(pk=wide["id"]).revoked_at is None
    assert ApiKey.objects.filter(user=user).count() == 2
    assert_success(api.get(ME, headers={"X-API-Key": wide["key"]}))


def test_list_shows_only_the_callers_keys_newest_first(api_for, user):
    client = api_for(user)
    first = _created_key(client, name="one")
    second = _created_key(client, name="two")
    _created_key(api_for(UserFactory()), name="someone else's")
    body = assert_success(client.get(KEYS))
    assert [k["id"] for k in body["data"]] == [second["id"], first["id"]]
    assert body["pagination"]["total"] == 2


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_revoked_key_is_refused(api, api_for, user, how):
    client = api_for(user)
    data = _created_key(client)
    raw = data["key"]
    assert_success(api.get(ME, headers={"X-API-Key": raw}))
    if how == "revoke":
        body = assert_success(client.post(f"{KEYS}/{data['id']}/revoke"))
        assert body["data"]["status"] == "revoked" and body["data"]["revoked_at"]
    else:
        r = client.delete(f"{KEYS}/{data['id']}")
        assert r.status_code == 204 and r.content == b""
    assert ApiKey.objects.get(pk=data["id"]).revoked_at is not None
    assert_error(api.get(ME, headers={"X-API-Key": raw}), 401, "AUTHENTICATION_FAILED")
    assert_error(api.get(ME, headers={"Authorization": f"Bearer {raw}"}), 401, "AUTHENTICATION_FAILED")
    # Still listed, as revoked.
    assert assert_success(client.get(f"{KEYS}/{data['id']}"))["data"]["status"] == "revoked"


def test_revoking_twice_keeps_the_first_revocation_time(api_for, user):
    client = api_for(user)
    data = _created_key(client)
    first = assert_success(client.post(f"{KEYS}/{data['id']}/revoke"))["data"]["revoked_at"]
    second = assert_success(client.post(f"{KEYS}/{data['id']}/revoke"))["data"]["revoked_at"]
    assert first == second


def test_expired_key_is_refused(api, api_for, user):
    client = api_for(user)
    data = _created_key(client, expires_in_days=1)
    expires = timezone.datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < expires - timezone.now() <= timedelta(days=1)
    raw = data["key"]
    assert_success(api.get(ME, headers={"X-API-Key": raw}))
    ApiKey.objects.filter(pk=data["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api.get(ME, headers={"X-API-Key": raw}), 401, "AUTHENTICATION_FAILED")
    assert assert_success(client.get(f"{KEYS}/{data['id']}"))["data"]["status"] == "expired"


def test_create_with_explicit_expiry(api_for, user):
    when = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    data = _created_key(api_for(user), expires_at=when.isoformat())
    assert ApiKey.objects.get(pk=data["id"]).expires_at == when


def test_rotate_replaces_the_secret_with_the_same_scopes(api, api_for, user):
    client = api_for(user)
    old = _created_key(client, name="runner", scopes=["read:projects", "view:metrics"], expires_in_days=30)
    r = client.post(f"{KEYS}/{old['id']}/rotate")
    new = assert_success(r, 201)["data"]
    assert new["id"] != old["id"] and new["key"] != old["key"]
    assert new["scopes"] == old["scopes"] and new["name"] == "runner"
    assert new["expires_at"] == old["expires_at"]
    assert new["rotated_from"] == old["id"]
    assert_success(api.get(ME, headers={"X-API-Key": new["key"]}))
    assert_error(api.get(ME, headers={"X-API-Key": old["key"]}), 401, "AUTHENTICATION_FAILED")
    # A rotated (revoked) key cannot be rotated again.
    assert_error(client.post(f"{KEYS}/{old['id']}/rotate"), 409, "RESOURCE_CONFLICT")
    listed = assert_success(client.get(KEYS))["data"]
    assert {k["id"]: k["status"] for k in listed} == {old["id"]: "revoked", new["id"]: "active"}
    assert all("key" not in k for k in listed)


@pytest.mark.parametrize("method, suffix", [("get", ""), ("post", "/revoke"), ("post", "/rotate"), ("delete", "")])
def test_another_users_key_is_404(api, api_for, user, method, suffix):
    other = UserFactory()
    theirs = _created_key(api_for(other))
    r = getattr(api_for(user), method)(f"{KEYS}/{theirs['id']}{suffix}")
    assert_error(r, 404, "RESOURCE_NOT_FOUND")
    assert ApiKey.objects.get(pk=theirs["id"]).revoked_at is None
    assert_success(api.get(ME, headers={"X-API-Key": theirs["key"]}))


def test_unknown_key_id_is_404(api_for, user):
    assert_error(api_for(user).get(f"{KEYS}/{uuid.uuid4()}"), 404, "RESOURCE_NOT_FOUND")


def test_api_keys_need_authentication(api):
    assert_error(api.get(KEYS), 401, "AUTHENTICATION_FAILED")
    assert_error(api.post(KEYS, {"name": "x", "scopes": ["read:projects"]}), 401, "AUTHENTICATION_FAILED")


def test_key_of_a_deactivated_user_is_refused(api, api_for, user):
    raw = _created_key(api_for(user))["key"]
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert_error(api.get(ME, headers={"X-API-Key": raw}), 401, "AUTHENTICATION_FAILED")


def test_device_scopes_are_permission_strings_an_admin_can_grant(api_for):
    admin = UserFactory(roles=["admin"])
    data = _created_key(api_for(admin), scopes=["client:register", "training:participate", "model:download"])
    assert data["scopes"] == ["client:register", "model:download", "training:participate"]
