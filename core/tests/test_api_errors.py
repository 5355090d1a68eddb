"""Every error leaves as the one envelope: unknown URLs, wrong methods, content negotiation,
DRF and Django exceptions, domain errors and unexpected crashes."""

import logging

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.tests.fixtures import assert_error, assert_success
from core.api.exceptions import exception_handler
from core.context import request_id_var
from core.exceptions import ERROR_CATALOGUE, ApplicationError, Conflict, ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/projects/a/b/c/d", "/api/v2/projects", "/api/"])
def test_unknown_api_url_is_a_404_envelope(client, path):
    r = client.get(path)
    assert r["Content-Type"].startswith("application/json")
    assert_error(r, 404, "RESOURCE_NOT_FOUND")


def test_unknown_page_is_html(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")


def test_unknown_page_asked_for_json_is_an_envelope(client):
    r = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert_error(r, 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("method, path", [
    ("delete", "/api/v1/auth/me"),
    ("put", "/api/v1/roles"),
    ("delete", "/api/v1/projects"),
])
def test_wrong_method_is_405_envelope(api_for, user, method, path):
    r = getattr(api_for(user), method)(path)
    body = assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert method.upper() in body["error"]["message"]
    assert method.upper() not in r["Allow"]


def test_wrong_method_on_a_public_endpoint(api_for, user):
    r = api_for(user).get("/api/v1/auth/login")
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r["Allow"].startswith("POST")


def test_vendor_media_type_is_accepted(api_for, user):
    r = api_for(user).get("/api/v1/auth/me", headers={"Accept": "application/vnd.pollen.v1+json"})
    assert r["Content-Type"].startswith("application/vnd.pollen.v1+json")
    body = assert_success(r)
    assert body["data"]["id"] == str(user.pk)


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/json; q=0.9, text/html; q=0.1"])
def test_json_accept_headers(api_for, user, accept):
    r = api_for(user).get("/api/v1/auth/me", headers={"Accept": accept})
    assert r["Content-Type"].startswith("application/json")
    assert_success(r)


@pytest.mark.parametrize("accept", ["application/xml", "text/csv", "application/vnd.pollen.v2+json"])
def test_unsatisfiable_accept_is_406_envelope(api_for, user, accept):
    r = api_for(user).get("/api/v1/auth/me", headers={"Accept": accept})
    assert r["Content-Type"].startswith("application/json")
    assert_error(r, 406, "NOT_ACCEPTABLE")


def test_unsupported_body_type_is_415_envelope(api_for, user):
    r = api_for(user).client.post("/api/v1/projects", "<p/>", content_type="application/xml",
                                  headers=api_for(user).headers)
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_unexpected_exception_is_500_without_traceback(api_for, user, monkeypatch, caplog):
    from accounts import selectors

    def broken():
        raise RuntimeError("secret database password is hunter2")

    monkeypatch.setattr(selectors, "role_list", broken)
    with caplog.at_level(logging.ERROR, logger="pollen.api"):
        r = api_for(user).get("/api/v1/roles", headers={"X-Request-ID": "crash-1"})
    body = assert_error(r, 500, "INTERNAL_ERROR")
    assert body["error"]["message"] == "Unexpected server error"
    assert body["error"]["details"] == {}
    text = r.content.decode()
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text
    # The crash is logged, with the request id, for the operators.
    records = [rec for rec in caplog.records if rec.name == "pollen.api"]
    assert records and records[0].exc_info and records[0].request_id == "crash-1"


def _handle(exc):
    token = request_id_var.set("unit-1")
    try:
        return exception_handler(exc, {"request": None})
    finally:
        request_id_var.reset(token)


@pytest.mark.parametrize("exc, status, code", [
    (Http404(), 404, "RESOURCE_NOT_FOUND"),
    (PermissionDenied(), 403, "AUTHORIZATION_FAILED"),
    (ValidationError({"name": ["bad"]}), 400, "VALIDATION_ERROR"),
    (ValidationError("bad"), 400, "VALIDATION_ERROR"),
    (IntegrityError("UNIQUE constraint failed: secret_table.col"), 409, "RESOURCE_CONFLICT"),
    (drf.NotAuthenticated(), 401, "AUTHENTICATION_FAILED"),
    (drf.PermissionDenied(), 403, "AUTHORIZATION_FAILED"),
    (drf.Throttled(wait=2.5), 429, "RATE_LIMIT_EXCEEDED"),
    (drf.ParseError("bad json"), 400, "VALIDATION_ERROR"),
    (InvalidToken("nope"), 401, "AUTHENTICATION_FAILED"),
    (Conflict(), 409, "RESOURCE_CONFLICT"),
    (ValidationFailed("no", field="x"), 400, "VALIDATION_ERROR"),
    (ApplicationError("FL002"), 409, "FL002"),
    (ApplicationError("BUDGET_001"), 422, "BUDGET_001"),
    (KeyError("boom"), 500, "INTERNAL_ERROR"),
    (ZeroDivisionError(), 500, "INTERNAL_ERROR"),
])
def test_exception_handler_maps_everything_to_the_envelope(exc, status, code):
    response = _handle(exc)
    assert response.status_code == status
    body = response.data
    assert set(body) == {"success", "error", "timestamp", "request_id"}
    assert body["success"] is False and body["request_id"] == "unit-1"
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], (dict, list))
    assert "secret_table" not in str(body)


def test_throttled_error_has_retry_after():
    response = _handle(drf.Throttled(wait=2.5))
    assert response["Retry-After"] == "3"
    assert response.data["error"]["details"] == {"retry_after": 3}


def test_application_error_details_and_headers_pass_through():
    exc = ApplicationError("RATE_LIMIT_EXCEEDED", "slow down", details={"retry_after": 9},
                           headers={"Retry-After": "9"})
    response = _handle(exc)
    assert response.status_code == 429 and response["Retry-After"] == "9"
    assert response.data["error"] == {"code": "RATE_LIMIT_EXCEEDED", "message": "slow down",
                                      "details": {"retry_after": 9}}


def test_unknown_error_codes_are_refused():
    with pytest.raises(ValueError):
        ApplicationError("NOT_A_CODE")


def test_the_catalogue_holds_the_seed_codes():
    for code, status in {"VALIDATION_ERROR": 400, "AUTHENTICATION_FAILED": 401, "AUTHORIZATION_FAILED": 403,
                         "RESOURCE_NOT_FOUND": 404, "RESOURCE_CONFLICT": 409, "RATE_LIMIT_EXCEEDED": 429,
                         "TRAINING_ERROR": 500, "DEPLOYMENT_ERROR": 500, "INTERNAL_ERROR": 500}.items():
        assert ERROR_CATALOGUE[code][0] == status
    for prefix, n in (("FL", 8), ("MF", 8)):
        assert all(f"{prefix}{i:03d}" in ERROR_CATALOGUE for i in range(1, n + 1))
    assert "INVALID_MODEL_FORMAT" in ERROR_CATALOGUE
