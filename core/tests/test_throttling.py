"""Rate limits per category (seed 000) and X-RateLimit-* headers on every response."""

import time

import pytest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.tests.fixtures import PASSWORD, UserFactory, assert_error, assert_success
from core.api.throttles import GeneralRateThrottle

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def rates(settings, monkeypatch):
    """Set the throttle rates for one test. DRF copies them into a class attribute at import time."""

    def apply(**overrides):
        new = {"auth": "5/min", "general": "100/min", "upload": "10/min", "training": "20/min", **overrides}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": new}
        api_settings.reload()
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", new)
        return new

    yield apply
    api_settings.reload()


def _login(client, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": "ann", "password": password}, content_type="application/json", **extra)


def _headers(r):
    return int(r["X-RateLimit-Limit"]), int(r["X-RateLimit-Remaining"]), int(r["X-RateLimit-Reset"])


def test_login_is_limited_to_five_a_minute(client, rates):
    rates()
    UserFactory(username="ann")
    remaining = []
    for _ in range(5):
        r = _login(client)
        assert_success(r)
        limit, left, _ = _headers(r)
        assert limit == 5
        remaining.append(left)
    assert remaining == [4, 3, 2, 1, 0]

    r = _login(client)
    body = assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
    retry = int(r["Retry-After"])
    assert 0 < retry <= 60
    assert body["error"]["details"]["retry_after"] == retry
    assert _headers(r)[:2] == (5, 0)
    assert _headers(r)[2] >= int(time.time())
    # Another address has its own budget.
    assert_success(_login(client, REMOTE_ADDR="10.1.2.3"))


def test_failed_logins_count_against_the_auth_limit(client, rates):
    rates()
    UserFactory(username="ann")
    for _ in range(5):
        assert_error(_login(client, password="wrong-wrong"), 401, "AUTHENTICATION_FAILED")
    assert_error(_login(client), 429, "RATE_LIMIT_EXCEEDED")


def test_auth_limit_is_per_address_not_per_claimed_user(client, rates):
    rates(auth="2/min")
    UserFactory(username="ann")
    UserFactory(username="bob")
    assert_success(_login(client))
    r = client.post(LOGIN, {"username": "bob", "password": PASSWORD}, content_type="application/json")
    assert_success(r)
    r = client.post(LOGIN, {"username": "bob", "password": PASSWORD}, content_type="application/json")
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED")


def test_register_and_refresh_share_the_auth_limit(client, rates):
    rates(auth="2/min")
    r = client.post("/api/v1/auth/register", {"username": "newbie", "email": "n@example.com", "password": PASSWORD},
                    content_type="application/json")
    assert r.status_code == 201
    r = client.post("/api/v1/auth/refresh", {"refresh_token": "x"}, content_type="application/json")
    assert r.status_code == 401
    r = client.post("/api/v1/auth/register", {"username": "other", "email": "o@example.com", "password": PASSWORD},
                    content_type="application/json")
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED")


def test_general_limit_per_user(api_for, rates):
    rates(general="3/min")
    user = UserFactory()
    client = api_for(user)
    seen = []
    for _ in range(3):
        r = client.get("/api/v1/auth/me")
        assert_success(r)
        seen.append(_headers(r)[1])
    assert seen == [2, 1, 0]
    r = client.get("/api/v1/auth/me")
    assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
    assert int(r["Retry-After"]) > 0
    # Someone else is not affected.
    assert_success(api_for(UserFactory()).get("/api/v1/auth/me"))


def test_an_api_key_has_its_own_bucket(api, api_for, rates):
    from accounts import services

    rates(general="2/min")
    user = UserFactory()
    _, raw = services.api_key_create(user=user, name="k", scopes=["read:projects"])
    client = api_for(user)
    assert_success(client.get("/api/v1/auth/me"))
    assert_success(client.get("/api/v1/auth/me"))
    assert_error(client.get("/api/v1/auth/me"), 429, "RATE_LIMIT_EXCEEDED")
    r = api.get("/api/v1/auth/me", headers={"X-API-Key": raw})
    assert_success(r)
    assert _headers(r)[:2] == (2, 1)


def test_every_api_response_carries_rate_limit_headers(api_for, rates):
    rates()
    client = api_for(UserFactory())
    first = client.get("/api/v1/auth/me")
    second = client.get("/api/v1/roles")
    error = client.get("/api/v1/users")
    assert error.status_code == 403
    limits = [_headers(r) for r in (first, second, error)]
    assert [limit for limit, _, _ in limits] == [100, 100, 100]
    # A refused request (DRF checks permissions before throttles) reports the bucket without spending.
    assert [left for _, left, _ in limits] == [99, 98, 98]
    assert _headers(client.get("/api/v1/auth/me"))[1] == 97
    now = int(GeneralRateThrottle().timer())  # the throttles' clock (see the root conftest)
    assert all(now <= reset <= now + 61 for _, _, reset in limits)


def test_unauthenticated_api_errors_carry_the_headers(client, rates):
    rates()
    r = client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert _headers(r)[0] == 100


@pytest.mark.parametrize("path", ["/health", "/login/", "/metrics"])
def test_health_and_pages_carry_the_headers_without_spending(client, rates, path):
    rates(general="100/min")
    r1, r2 = client.get(path), client.get(path)
    assert r1.status_code == r2.status_code == 200
    assert _headers(r1)[:2] == (100, 100)
    assert _headers(r2)[:2] == (100, 100)


def test_pages_report_what_the_api_spent(client, rates):
    rates(general="100/min")
    UserFactory(username="ann")
    assert_success(_login(client))  # anonymous: counted against the address
    assert_success(_login(client))
    assert _headers(client.get("/health"))[:2] == (100, 98)
    assert _headers(client.get("/login/"))[:2] == (100, 98)


def test_default_test_settings_do_not_throttle(client):
    UserFactory(username="ann")
    for _ in range(8):
        assert_success(_login(client))
