"""Request ids and security headers on every response, API or not."""

import uuid

import pytest

from accounts.tests.fixtures import assert_error, assert_success

pytestmark = pytest.mark.django_db


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/health", "/login/", "/api/v1/nope"])
def test_a_sane_request_id_is_echoed(client, path):
    r = client.get(path, headers={"X-Request-ID": "trace-42.abc:7_x"})
    assert r["X-Request-ID"] == "trace-42.abc:7_x"
    if r["Content-Type"].startswith("application/json"):
        assert r.json()["request_id"] == "trace-42.abc:7_x"


@pytest.mark.parametrize("hostile", ["x" * 300, "has spaces in it", "<script>", "a\tb", "ok;drop", "é"])
def test_a_hostile_request_id_is_replaced_by_a_uuid(client, hostile):
    r = client.get("/api/v1/auth/me", headers={"X-Request-ID": hostile})
    assert r["X-Request-ID"] != hostile and _is_uuid(r["X-Request-ID"])
    assert r.json()["request_id"] == r["X-Request-ID"]


def test_without_a_request_id_each_request_gets_its_own(client, api_for, user):
    first = client.get("/health")["X-Request-ID"]
    second = client.get("/health")["X-Request-ID"]
    assert _is_uuid(first) and _is_uuid(second) and first != second
    body = assert_success(api_for(user).get("/api/v1/auth/me"))
    assert _is_uuid(body["request_id"])


def test_error_envelopes_carry_the_request_id(client):
    r = client.get("/api/v1/auth/me", headers={"X-Request-ID": "req-1"})
    body = assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert body["request_id"] == "req-1"


@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/api/v1/roles", "/health", "/login/", "/api/v1/nope",
                                  "/api/v1/schema/"])
def test_security_headers(client, path):
    r = client.get(path)
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["X-Frame-Options"] == "DENY"
    csp = r["Content-Security-Policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == "default-src 'self'"
    assert "frame-ancestors 'none'" in csp
    assert r["Referrer-Policy"] == "same-origin"


def test_docs_pages_only_widen_what_swagger_needs(client):
    csp = client.get("/api/v1/docs/")["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src" not in csp or "'unsafe-eval'" not in csp
    assert "'unsafe-inline'" in csp.split("style-src", 1)[1].split(";", 1)[0]
