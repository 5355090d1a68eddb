"""accounts.services called directly: the rules behind the API, without HTTP."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services
from accounts.authentication import (ISSUED_AT_CLAIM, authenticate_api_key, authenticate_jwt, epoch_microseconds,
                                     issued_before)
from accounts.models import ApiKey, Role, User
from accounts.tests.fixtures import PASSWORD, UserFactory
from core.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


def test_epoch_microseconds_is_exact():
    instant = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt_timezone.utc)
    assert epoch_microseconds(instant) == int(instant.replace(microsecond=0).timestamp()) * 1_000_000 + 678901


def test_issued_before_uses_microseconds_when_the_token_has_them():
    change = datetime(2030, 1, 1, 12, 0, 0, 500000, tzinfo=dt_timezone.utc)
    before = {ISSUED_AT_CLAIM: epoch_microseconds(change) - 1, "iat": int(change.timestamp())}
    after = {ISSUED_AT_CLAIM: epoch_microseconds(change) + 1, "iat": int(change.timestamp())}
    assert issued_before(before, change) is True
    assert issued_before(after, change) is False


def test_issued_before_without_microseconds_refuses_the_whole_second():
    change = datetime(2030, 1, 1, 12, 0, 0, 500000, tzinfo=dt_timezone.utc)
    assert issued_before({"iat": int(change.timestamp())}, change) is True
    assert issued_before({"iat": int(change.timestamp()) - 1}, change) is True
    assert issued_before({"iat": int(change.timestamp()) + 1}, change) is False


def test_tokens_issued_right_after_a_password_change_work():
    user = UserFactory()
    services.user_change_password(user=user, old_password=PASSWORD, new_password="Brand-new-pass-99")
    fresh = services.tokens_issue(user=User.objects.get(pk=user.pk))
    assert authenticate_jwt(fresh["access_token"])[0] == user
    assert services.tokens_refresh(refresh_token=fresh["refresh_token"])["access_token"]


def test_tokens_issued_just_before_a_password_change_are_refused():
    user = UserFactory()
    old = services.tokens_issue(user=user)
    services.user_change_password(user=user, old_password=PASSWORD, new_password="Brand-new-pass-99")
    assert authenticate_jwt(old["access_token"]) is None
    with pytest.raises(ApplicationError) as exc:
        services.tokens_refresh(refresh_token=old["refresh_token"])
    assert exc.value.code == "AUTHENTICATION_FAILED"


def test_register_normalises_email_and_adds_the_default_role():
    user = services.user_register(username="Ann", email="Ann@EXAMPLE.com", password=PASSWORD)
    assert user.email == "ann@example.com"
    assert user.role_names == ["user"]
    with pytest.raises(ApplicationError) as exc:
        services.user_register(username="ann", email="x@example.com", password=PASSWORD)
    assert exc.value.code == "RESOURCE_CONFLICT"


def test_register_with_a_weak_password_leaves_nothing():
    with pytest.raises(ApplicationError) as exc:
        services.user_register(username="ann", email="a@example.com", password="ann")
    assert exc.value.code == "VALIDATION_ERROR"
    assert not User.objects.exists()


def test_check_credentials_counts_failures_and_locks(settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = UserFactory(username="ann")
    for expected in (1, 2):
        with pytest.raises(ApplicationError):
            services.auth_check_credentials(identifier="ann", password="x", address="1.2.3.4")
        user.refresh_from_db()
        assert user.failed_login_count == expected and user.locked_until is None
    with pytest.raises(ApplicationError):
        services.auth_check_credentials(identifier="ann", password="x", address="1.2.3.4")
    user.refresh_from_db()
    assert user.failed_login_count == 0
    lock = user.locked_until - timezone.now()
    lockout = timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    assert lockout - timedelta(seconds=5) < lock <= lockout
    services.user_unlock(user=user)
    assert services.auth_check_credentials(identifier="ANN", password=PASSWORD, address="1.2.3.4") == user


def test_unknown_users_count_only_against_the_address(settings):
    settings.LOGIN_ADDRESS_MAX_FAILURES = 2
    user = UserFactory(username="ann")
    for _ in range(2):
        with pytest.raises(ApplicationError):
            services.auth_check_credentials(identifier="ghost", password="x", address="5.6.7.8")
    with pytest.raises(ApplicationError) as exc:
        services.auth_check_credentials(identifier="ann", password=PASSWORD, address="5.6.7.8")
    assert exc.value.details["reason"] == "address_locked"
    assert services.auth_check_credentials(identifier="ann", password=PASSWORD, address="5.6.7.9") == user
    user.refresh_from_db()
    assert user.failed_login_count == 0


def test_api_key_create_respects_the_granting_credential():
    admin = UserFactory(roles=["admin"])
    key, raw = services.api_key_create(user=admin, name="k", scopes=["budget:*"], granted=["budget:*"])
    assert key.scopes == ["budget:*"]
    with pytest.raises(ApplicationError) as exc:
        services.api_key_create(user=admin, name="k2", scopes=["*"], granted=["budget:*"])
    assert exc.value.code == "VALIDATION_ERROR"
    assert authenticate_api_key(raw)[1].scopes == ["budget:*"]


def test_api_key_rotate_respects_the_granting_credential():
    user = UserFactory(roles=["user"])
    key, _ = services.api_key_create(user=user, name="k", scopes=["read:projects", "write:projects"])
    with pytest.raises(ApplicationError) as exc:
        services.api_key_rotate(key=key, granted=["read:projects"])
    assert exc.value.code == "AUTHORIZATION_FAILED"
    new, raw = services.api_key_rotate(key=key, granted=["read:projects", "write:projects"])
    assert new.rotated_from_id == key.pk and authenticate_api_key(raw)[0] == user
    key.refresh_from_db()
    assert key.status == "revoked"


def test_api_key_rotate_refuses_an_expired_key():
    user = UserFactory()
    key, _ = services.api_key_create(user=user, name="k", scopes=["read:projects"],
                                     expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as exc:
        services.api_key_rotate(key=key)
    assert exc.value.code == "RESOURCE_CONFLICT"


def test_role_update_keeps_builtin_permissions_but_allows_description():
    role = Role.objects.get(name="viewer")
    with pytest.raises(ApplicationError) as exc:
        services.role_update(role=role, permissions=["*"])
    assert exc.value.code == "AUTHORIZATION_FAILED"
    updated = services.role_update(role=role, description="Read-only")
    assert updated.description == "Read-only"
    assert sorted(updated.permissions) == ["read:projects", "view:metrics"]


def test_role_create_rejects_mid_string_wildcards():
    with pytest.raises(ApplicationError):
        services.role_create(name="odd", permissions=["fl:*:read"])
    assert not Role.objects.filter(name="odd").exists()


def test_logout_revokes_only_the_presented_access_token():
    user = UserFactory()
    one, two = services.tokens_issue(user=user), services.tokens_issue(user=user)
    services.auth_logout(user=user, refresh_token=one["refresh_token"], access_token=AccessToken(one["access_token"]))
    assert authenticate_jwt(one["access_token"]) is None
    assert authenticate_jwt(two["access_token"])[0] == user
