"""Fixtures and helpers shared by the accounts and core suites.

Both ``accounts/tests/conftest.py`` and ``core/tests/conftest.py`` star-import this module, so
the API helpers exist once. Tokens are issued through the real service (``tokens_issue``), the
same code the login endpoint runs.
"""

import json
from collections.abc import Callable

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import PASSWORD, UserFactory

ENVELOPE_KEYS = {"success", "data", "message", "timestamp", "request_id"}
ERROR_KEYS = {"success", "error", "timestamp", "request_id"}
ALL_ROLES = list(BUILTIN_ROLES)


def access_token_for(user) -> str:
    return services.tokens_issue(user=user)["access_token"]


class Api:
    """A JSON client for ``/api/v1``: one place that sets the body type and the credentials."""

    def __init__(self, client: Client, headers: dict[str, str] | None = None):
        self.client = client
        self.headers = dict(headers or {})

    def _headers(self, extra):
        return {**self.headers, **(extra or {})}

    def get(self, path, data=None, headers=None):
        return self.client.get(path, data, headers=self._headers(headers))

    def _send(self, method, path, data, headers):
        body = "" if data is None else json.dumps(data)
        return getattr(self.client, method)(path, body, content_type="application/json",
                                            headers=self._headers(headers))

    def post(self, path, data=None, headers=None):
        return self._send("post", path, data, headers)

    def put(self, path, data=None, headers=None):
        return self._send("put", path, data, headers)

    def patch(self, path, data=None, headers=None):
        return self._send("patch", path, data, headers)

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self._headers(headers))


def assert_success(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert ENVELOPE_KEYS <= set(body), body
    assert body["success"] is True
    assert body["request_id"] == response["X-Request-ID"]
    return body


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["success"] is False
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "details" in body["error"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


@pytest.fixture
def api(client) -> Api:
    """An anonymous API client."""
    return Api(client)


@pytest.fixture
def api_for(client) -> Callable[..., Api]:
    """``api_for(user)``: a client carrying a fresh access token of ``user``."""

    def make(user=None, *, token: str | None = None, api_key: str | None = None) -> Api:
        headers = {}
        if user is not None or token is not None:
            headers["Authorization"] = f"Bearer {token or access_token_for(user)}"
        if api_key is not None:
            headers["X-API-Key"] = api_key
        return Api(Client(), headers)

    return make


@pytest.fixture
def builtin_roles(db):
    """The built-in roles, for transactional tests (a flush between them removes the migration's rows)."""
    for name, spec in BUILTIN_ROLES.items():
        Role.objects.update_or_create(
            name=name, defaults={"permissions": spec["permissions"], "description": spec["description"],
                                 "is_builtin": True}
        )


@pytest.fixture
def user(db):
    return UserFactory(roles=["user"])


@pytest.fixture
def admin(db):
    return UserFactory(roles=["admin"])


__all__ = [
    "ALL_ROLES", "Api", "PASSWORD", "UserFactory", "access_token_for", "admin", "api", "api_for",
    "assert_error", "assert_success", "builtin_roles", "user",
]
