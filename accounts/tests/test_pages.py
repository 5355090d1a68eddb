"""The dashboard's login and register pages: same services, same lock-out rules as the API."""

import pytest

from accounts.models import User
from accounts.tests.fixtures import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _page_login(client, username="ann", password=PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def test_login_page_logs_in_by_username_or_email(client):
    UserFactory(username="ann", email="ann@example.com")
    assert client.get("/login/").status_code == 200
    r = _page_login(client, username="ann@example.com")
    assert r.status_code == 302 and r["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_page_refuses_wrong_password(client):
    UserFactory(username="ann")
    r = _page_login(client, password="not-the-password")
    assert r.status_code == 200
    assert "Invalid username or password" in r.content.decode()
    assert client.get("/").status_code == 302


def test_login_page_honours_the_account_lock(client, settings):
    settings.LOGIN_MAX_FAILURES = 2
    user = UserFactory(username="ann")
    _page_login(client, password="nope-nope")
    _page_login(client, password="nope-nope")
    r = _page_login(client)
    assert r.status_code == 200 and "locked" in r.content.decode()
    user.refresh_from_db()
    assert user.is_locked()


def test_page_failures_lock_the_api_too(client, settings):
    settings.LOGIN_MAX_FAILURES = 2
    UserFactory(username="ann")
    _page_login(client, password="nope-nope")
    _page_login(client, password="nope-nope")
    r = client.post("/api/v1/auth/login", {"username": "ann", "password": PASSWORD}, content_type="application/json")
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "account_locked"


def test_behind_a_proxy_page_lockouts_count_the_client_not_the_proxy(client, settings):
    # With NUM_PROXIES=1 the API counts failures per X-Forwarded-For client; the page must too,
    # or one attacker behind the shared proxy address locks every user out.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.LOGIN_ADDRESS_MAX_FAILURES = 2
    UserFactory(username="ann")
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(2):
        _page_login(client, username="nobody", password="guess-guess", HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    r = _page_login(client, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    assert r.status_code == 302, r.content.decode()[:500]
    # The attacker's own address is locked, on the page and in the API.
    client.logout()
    r = _page_login(client, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert r.status_code == 200 and "locked" in r.content.decode()
    r = client.post("/api/v1/auth/login", {"username": "ann", "password": PASSWORD},
                    content_type="application/json", HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert r.json()["error"]["details"]["reason"] == "address_locked"


def test_register_page_creates_a_user_and_logs_in(client):
    assert client.get("/register/").status_code == 200
    r = client.post("/register/", {"username": "newbie", "email": "n@example.com", "password": PASSWORD,
                                   "password_confirm": PASSWORD})
    assert r.status_code == 302
    user = User.objects.get(username="newbie")
    assert user.role_names == ["user"]
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("data, message", [
    ({"username": "ann", "email": "new@example.com"}, "That username is taken"),
    ({"username": "newbie", "email": "ann@example.com"}, "An account with that email exists"),
    ({"username": "newbie", "email": "n@example.com", "password": "123", "password_confirm": "123"},
     "too short"),
    ({"username": "newbie", "email": "n@example.com", "password_confirm": "different-Passw0rd"},
     "The passwords differ"),
])
def test_register_page_shows_errors(client, data, message):
    UserFactory(username="ann", email="ann@example.com")
    form = {"password": PASSWORD, "password_confirm": PASSWORD, **data}
    r = client.post("/register/", form)
    assert r.status_code == 200
    assert message in r.content.decode()
    assert User.objects.count() == 1
