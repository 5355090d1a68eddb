"""/api/v1/auth: register, login, lock-out, tokens (refresh, logout, expiry), /me and password change."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.tests.fixtures import PASSWORD, UserFactory, access_token_for, assert_error, assert_success

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
PASSWORD_CHANGE = "/api/v1/auth/password/change"
NEW_PASSWORD = "Another-str0ng-secret"


def _decode(token: str) -> dict:
    return jwt.decode(token, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])


def _login(api, identifier_field="username", identifier="ann", password=PASSWORD, headers=None):
    return api.post(LOGIN, {identifier_field: identifier, "password": password}, headers=headers)


# ---- register ------------------------------------------------------------------------------------

def test_register_creates_a_user_with_the_default_role(api):
    r = api.post(REGISTER, {"username": "newbie", "email": "Newbie@Example.com", "password": PASSWORD,
                            "first_name": "New"})
    body = assert_success(r, 201)
    assert set(body) == {"success", "data", "message", "timestamp", "request_id"}
    assert body["message"] == "Account created"
    assert body["timestamp"].endswith("Z")
    data = body["data"]
    assert data["username"] == "newbie"
    assert data["email"] == "newbie@example.com"
    assert data["roles"] == ["user"]
    assert data["permissions"] == sorted(["read:projects", "write:projects", "start:training", "view:metrics"])
    assert "password" not in data
    user = User.objects.get(username="newbie")
    assert user.check_password(PASSWORD)
    assert user.first_name == "New"


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"username": "ANN", "email": "other@example.com"}, "username"),
        ({"username": "other", "email": "ANN@example.com"}, "email"),
    ],
)
def test_register_duplicate_username_or_email_is_a_conflict(api, payload, field):
    UserFactory(username="ann", email="ann@example.com")
    r = api.post(REGISTER, {**payload, "password": PASSWORD})
    body = assert_error(r, 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"]["field"] == field
    assert User.objects.count() == 1


@pytest.mark.parametrize("password", ["short1!", "password123", "12345678901", "newbie-user"])
def test_register_weak_password_is_refused(api, password):
    r = api.post(REGISTER, {"username": "newbie-user", "email": "n@example.com", "password": password})
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "password"
    assert not User.objects.filter(username="newbie-user").exists()


@pytest.mark.parametrize(
    "payload, bad_field",
    [
        ({"email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "abc", "password": PASSWORD}, "email"),
        ({"username": "abc", "email": "a@example.com"}, "password"),
        ({"username": "abc", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"username": "a b", "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "ab", "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "x" * 151, "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": ["abc"], "email": "a@example.com", "password": PASSWORD}, "username"),
    ],
)
def test_register_bad_or_missing_fields(api, payload, bad_field):
    r = api.post(REGISTER, payload)
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert bad_field in body["error"]["details"]
    assert User.objects.count() == 0


def test_register_non_json_body_is_an_error_envelope(api):
    r = api.client.post(REGISTER, "{not json", content_type="application/json")
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert "Malformed" in body["error"]["message"]


def test_register_json_array_body_is_refused(api):
    r = api.post(REGISTER, ["username", "password"])
    assert_error(r, 400, "VALIDATION_ERROR")


# ---- login ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, identifier", [("username", "ann"), ("email", "ann@example.com"),
                                               ("username", "ANN@example.com")])
def test_login_returns_the_seed_000_token_response(api, field, identifier):
    user = UserFactory(username="ann", email="ann@example.com", roles=["user", "viewer"])
    r = _login(api, field, identifier)
    body = assert_success(r)
    data = body["data"]
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 15 * 60
    assert data["access_token"] and data["refresh_token"]
    assert data["user"] == {
        "id": str(user.pk),
        "username": "ann",
        "email": "ann@example.com",
        "roles": ["user", "viewer"],
        "permissions": ["read:projects", "start:training", "view:metrics", "write:projects"],
    }
    user.refresh_from_db()
    assert user.last_login is not None


def test_access_token_carries_the_seed_000_claims(api):
    user = UserFactory(username="ann", email="ann@example.com", roles=["financial_controller"])
    before = int(timezone.now().timestamp())
    data = assert_success(_login(api))["data"]
    claims = _decode(data["access_token"])
    assert claims["sub"] == "ann"
    assert claims["user_id"] == str(user.pk)
    assert claims["email"] == "ann@example.com"
    assert claims["roles"] == ["financial_controller"]
    assert claims["permissions"] == ["approval:*", "budget:*", "report:*"]
    assert claims["type"] == "access"
    assert before - 1 <= claims["iat"] <= before + 5
    assert claims["exp"] - claims["iat"] == data["expires_in"]
    refresh = _decode(data["refresh_token"])
    assert refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600


def test_the_access_token_from_login_authenticates(api, api_for):
    UserFactory(username="ann")
    token = assert_success(_login(api))["data"]["access_token"]
    me = assert_success(api_for(token=token).get(ME))
    assert me["data"]["username"] == "ann"


@pytest.mark.parametrize("payload", [
    {"username": "ann", "password": "wrong-password"},
    {"username": "nobody", "password": PASSWORD},
    {"email": "nobody@example.com", "password": PASSWORD},
])
def test_login_with_bad_credentials_is_401(api, payload):
    UserFactory(username="ann")
    r = api.post(LOGIN, payload)
    body = assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert body["error"]["message"] == "Invalid username or password"
    assert "access_token" not in r.content.decode()


def test_login_of_an_inactive_user_is_401(api):
    UserFactory(username="ann", is_active=False)
    assert_error(_login(api), 401, "AUTHENTICATION_FAILED")


@pytest.mark.parametrize("payload", [{"password": PASSWORD}, {"username": "ann"}, {}])
def test_login_missing_fields_is_400(api, payload):
    UserFactory(username="ann")
    assert_error(api.post(LOGIN, payload), 400, "VALIDATION_ERROR")


def test_login_ignores_a_stale_token_sent_along(api):
    UserFactory(username="ann")
    r = _login(api, headers={"Authorization": "Bearer garbage.token.value"})
    assert_success(r)


# ---- lock-out ------------------------------------------------------------------------------------

def test_account_locks_after_max_failures_and_admin_unlocks(api, api_for, settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = UserFactory(username="ann")
    for _ in range(3):
        assert_error(_login(api, password="nope-nope"), 401, "AUTHENTICATION_FAILED")

    user.refresh_from_db()
    assert user.locked_until is not None and user.locked_until > timezone.now()

    # Locked: even the right password is refused, with a clear reason and Retry-After.
    r = _login(api)
    body = assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert "locked" in body["error"]["message"]
    assert body["error"]["details"]["reason"] == "account_locked"
    retry = int(r["Retry-After"])
    assert 0 < retry <= settings.LOGIN_LOCKOUT_SECONDS + 1
    assert body["error"]["details"]["retry_after"] == retry

    # A non-admin cannot unlock; an admin can, and then the password works again.
    assert_error(api_for(UserFactory(roles=["user"])).post(f"/api/v1/users/{user.pk}/unlock"),
                 403, "AUTHORIZATION_FAILED")
    r = api_for(UserFactory(roles=["admin"])).post(f"/api/v1/users/{user.pk}/unlock")
    assert assert_success(r)["data"]["locked_until"] is None
    user.refresh_from_db()
    assert user.locked_until is None and user.failed_login_count == 0
    assert_success(_login(api))


def test_default_account_lockout_uses_login_max_failures(api):
    user = UserFactory(username="ann")
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert_error(_login(api, password="nope-nope"), 401, "AUTHENTICATION_FAILED")
    user.refresh_from_db()
    assert user.locked_until is None
    assert user.failed_login_count == settings.LOGIN_MAX_FAILURES - 1
    assert_error(_login(api, password="nope-nope"), 401, "AUTHENTICATION_FAILED")
    body = assert_error(_login(api), 401, "AUTHENTICATION_FAILED")
    assert body["error"]["details"]["reason"] == "account_locked"


def test_successful_login_resets_the_failure_count(api):
    user = UserFactory(username="ann")
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        _login(api, password="nope-nope")
    assert_success(_login(api))
    user.refresh_from_db()
    assert user.failed_login_count == 0
    assert_error(_login(api, password="nope-nope"), 401, "AUTHENTICATION_FAILED")
    assert_success(_login(api))


def test_lock_expires_after_the_lockout_period(api):
    user = UserFactory(username="ann")
    User.objects.filter(pk=user.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert_success(_login(api))


def test_address_locks_after_max_failures_across_accounts(api, settings):
    settings.LOGIN_ADDRESS_MAX_FAILURES = 3
    UserFactory(username="ann")
    for name in ("bob", "carol", "dave"):
        assert_error(_login(api, identifier=name, password="guess-guess"), 401, "AUTHENTICATION_FAILED")
    r = _login(api)  # the right password for an account that never failed
    body = assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert body["error"]["details"]["reason"] == "address_locked"
    assert int(r["Retry-After"]) == settings.LOGIN_LOCKOUT_SECONDS
    # Another client address is not affected.
    r = api.client.post(LOGIN, {"username": "ann", "password": PASSWORD}, content_type="application/json",
                        REMOTE_ADDR="10.9.8.7")
    assert_success(r)


# ---- refresh, logout, expiry ---------------------------------------------------------------------

def test_refresh_rotates_and_the_old_refresh_token_is_refused(api, api_for):
    user = UserFactory(username="ann")
    first = assert_success(_login(api))["data"]
    r = api.post(REFRESH, {"refresh_token": first["refresh_token"]})
    second = assert_success(r)["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["token_type"] == "bearer" and second["user"]["id"] == str(user.pk)
    assert _decode(second["access_token"])["type"] == "access"
    assert assert_success(api_for(token=second["access_token"]).get(ME))["data"]["id"] == str(user.pk)

    assert_error(api.post(REFRESH, {"refresh_token": first["refresh_token"]}), 401, "AUTHENTICATION_FAILED")
    # The seed's alias field works for the fresh one.
    assert_success(api.post(REFRESH, {"refresh": second["refresh_token"]}))


def test_refresh_carries_the_users_current_roles(api):
    user = UserFactory(username="ann", roles=["viewer"])
    first = assert_success(_login(api))["data"]
    user.roles.set([])
    from accounts.models import Role
    user.roles.add(Role.objects.get(name="analyst"))
    second = assert_success(api.post(REFRESH, {"refresh_token": first["refresh_token"]}))["data"]
    assert _decode(second["access_token"])["roles"] == ["analyst"]


def test_refresh_without_a_token_is_400(api):
    assert_error(api.post(REFRESH, {}), 400, "VALIDATION_ERROR")


def test_refresh_with_a_garbage_token_is_401(api):
    assert_error(api.post(REFRESH, {"refresh_token": "garbage"}), 401, "AUTHENTICATION_FAILED")


def test_an_access_token_is_not_a_refresh_token(api):
    UserFactory(username="ann")
    data = assert_success(_login(api))["data"]
    assert_error(api.post(REFRESH, {"refresh_token": data["access_token"]}), 401, "AUTHENTICATION_FAILED")


def test_logout_blacklists_refresh_and_revokes_access(api, api_for):
    UserFactory(username="ann")
    data = assert_success(_login(api))["data"]
    client = api_for(token=data["access_token"])
    assert_success(client.get(ME))
    body = assert_success(client.post(LOGOUT, {"refresh_token": data["refresh_token"]}))
    assert body["data"] == {"logged_out": True}

    assert_error(client.get(ME), 401, "AUTHENTICATION_FAILED")
    assert_error(api.post(REFRESH, {"refresh_token": data["refresh_token"]}), 401, "AUTHENTICATION_FAILED")
    # Logging in again gives working tokens.
    fresh = assert_success(_login(api))["data"]
    assert_success(api_for(token=fresh["access_token"]).get(ME))


def test_logout_requires_authentication(api):
    UserFactory(username="ann")
    data = assert_success(_login(api))["data"]
    assert_error(api.post(LOGOUT, {"refresh_token": data["refresh_token"]}), 401, "AUTHENTICATION_FAILED")
    # The refresh token was not touched by the refused call.
    assert_success(api.post(REFRESH, {"refresh_token": data["refresh_token"]}))


def test_logout_with_someone_elses_refresh_token_is_refused(api, api_for):
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    bobs = assert_success(_login(api, identifier="bob"))["data"]
    r = api_for(ann).post(LOGOUT, {"refresh_token": bobs["refresh_token"]})
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert_success(api.post(REFRESH, {"refresh_token": bobs["refresh_token"]}))
    assert bob.pk


def test_expired_access_token_is_401_envelope(api_for):
    user = UserFactory()
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    r = api_for(token=str(token)).get(ME)
    body = assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert "Bearer" in r["WWW-Authenticate"]
    assert "Traceback" not in r.content.decode()
    assert body["error"]["details"] == {}


@pytest.mark.parametrize("header", [
    "Bearer garbage",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    "Bearer ",
    "Token abc",
    "Bearer a b",
])
def test_garbage_or_malformed_credentials_are_401(api, header):
    UserFactory()
    r = api.get(ME, headers={"Authorization": header})
    assert_error(r, 401, "AUTHENTICATION_FAILED")


def test_a_token_signed_with_another_key_is_401(api_for):
    user = UserFactory()
    forged = jwt.encode({"user_id": str(user.pk), "type": "access", "jti": "x", "exp": 9999999999},
                        "not-the-signing-key-of-this-installation", algorithm="HS256")
    assert_error(api_for(token=forged).get(ME), 401, "AUTHENTICATION_FAILED")


def test_a_refresh_token_is_not_accepted_as_access(api_for):
    user = UserFactory()
    refresh = RefreshToken.for_user(user)
    assert_error(api_for(token=str(refresh)).get(ME), 401, "AUTHENTICATION_FAILED")


def test_token_of_a_deactivated_user_is_refused(api_for):
    user = UserFactory()
    client = api_for(user)
    assert_success(client.get(ME))
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_error(client.get(ME), 401, "AUTHENTICATION_FAILED")


# ---- /me -----------------------------------------------------------------------------------------

def test_me_get_and_patch(api_for):
    user = UserFactory(username="ann", roles=["viewer"])
    client = api_for(user)
    data = assert_success(client.get(ME))["data"]
    assert data["id"] == str(user.pk)
    assert data["roles"] == ["viewer"]
    assert data["permissions"] == ["read:projects", "view:metrics"]

    r = client.patch(ME, {"first_name": "Ann", "last_name": "Lee", "username": "hacker", "email": "x@example.com"})
    data = assert_success(r)["data"]
    assert (data["first_name"], data["last_name"]) == ("Ann", "Lee")
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.username, user.email) == ("Ann", "Lee", "ann", "ann@example.com")


def test_me_patch_cannot_grant_roles(api_for):
    user = UserFactory(roles=["viewer"])
    api_for(user).patch(ME, {"roles": ["admin"], "is_superuser": True})
    user.refresh_from_db()
    assert user.role_names == ["viewer"] and not user.is_superuser


def test_me_patch_validates(api_for):
    user = UserFactory()
    assert_error(api_for(user).patch(ME, {"first_name": "x" * 151}), 400, "VALIDATION_ERROR")


def test_me_needs_authentication(api):
    r = api.get(ME)
    assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert r["WWW-Authenticate"].startswith("Bearer")


# ---- password change -----------------------------------------------------------------------------

def test_password_change_with_wrong_old_password_is_400(api, api_for):
    user = UserFactory(username="ann")
    r = api_for(user).post(PASSWORD_CHANGE, {"old_password": "not-it-at-all", "new_password": NEW_PASSWORD})
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "old_password"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_change_refuses_a_weak_new_password(api_for):
    user = UserFactory(username="ann")
    r = api_for(user).post(PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password": "123"})
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "new_password"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_change_ends_every_session(api, api_for):
    UserFactory(username="ann")
    first = assert_success(_login(api))["data"]
    other_device = assert_success(_login(api))["data"]
    client = api_for(token=first["access_token"])

    body = assert_success(client.post(PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password": NEW_PASSWORD}))
    assert body["data"] == {"password_changed": True}

    # Every token issued before the change stops working, on this device and on the other.
    assert_error(client.get(ME), 401, "AUTHENTICATION_FAILED")
    assert_error(api_for(token=other_device["access_token"]).get(ME), 401, "AUTHENTICATION_FAILED")
    for refresh in (first["refresh_token"], other_device["refresh_token"]):
        assert_error(api.post(REFRESH, {"refresh_token": refresh}), 401, "AUTHENTICATION_FAILED")

    # The old password is refused, the new one works, and its tokens work at once.
    assert_error(_login(api), 401, "AUTHENTICATION_FAILED")
    fresh = assert_success(_login(api, password=NEW_PASSWORD))["data"]
    assert_success(api_for(token=fresh["access_token"]).get(ME))
    assert_success(api.post(REFRESH, {"refresh_token": fresh["refresh_token"]}))


def test_password_change_needs_authentication(api):
    r = api.post(PASSWORD_CHANGE, {"old_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert_error(r, 401, "AUTHENTICATION_FAILED")


def test_token_helper_matches_login(api_for):
    # access_token_for (used across the suite) issues through the same service as login.
    user = UserFactory(roles=["analyst"])
    claims = _decode(access_token_for(user))
    assert claims["roles"] == ["analyst"] and claims["type"] == "access"
