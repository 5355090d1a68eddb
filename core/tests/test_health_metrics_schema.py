"""/health, /metrics and the API's schema and documentation pages."""

import pytest
import yaml

from accounts.tests.fixtures import UserFactory
from core import health

pytestmark = pytest.mark.django_db

SERVICES = {"database", "cache", "channel_layer", "broker", "storage"}


def test_health_is_200_with_every_service(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert set(body["services"]) == SERVICES
    assert all(v == "healthy" for v in body["services"].values())
    assert body["checks"]["broker"]["mode"] == "eager"
    assert body["request_id"] == r["X-Request-ID"]
    assert body["version"] and isinstance(body["uptime_seconds"], int)
    assert "no-cache" in r["Cache-Control"] or "max-age=0" in r["Cache-Control"]
    assert client.get("/health/").status_code == 200


def test_health_needs_no_login_and_only_get(client):
    assert client.post("/health").status_code == 405


@pytest.mark.parametrize("service", ["database", "cache", "storage"])
def test_health_is_503_when_a_required_service_fails(client, monkeypatch, service):
    def down():
        raise ConnectionError("password=hunter2 host=db.internal")

    monkeypatch.setitem(health.CHECKS, service, down)
    r = client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    assert body["services"][service] == "unhealthy"
    assert body["checks"][service] == {"error": "ConnectionError"}
    assert "hunter2" not in r.content.decode()
    assert all(v == "healthy" for k, v in body["services"].items() if k != service)


def test_health_is_degraded_but_200_when_an_optional_service_fails(client, monkeypatch, settings):
    settings.HEALTH_REQUIRED_SERVICES = ["database", "cache", "storage"]
    monkeypatch.setitem(health.CHECKS, "channel_layer", lambda: 1 / 0)
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert r.json()["services"]["channel_layer"] == "unhealthy"


def test_health_required_services_follow_settings(client, monkeypatch, settings):
    settings.HEALTH_REQUIRED_SERVICES = ["database", "broker"]
    monkeypatch.setitem(health.CHECKS, "broker", lambda: 1 / 0)
    assert client.get("/health").status_code == 503


def test_metrics_expose_pollen_and_django_families(client):
    UserFactory()
    UserFactory(is_active=False)
    client.get("/health")
    r = client.get("/metrics")
    assert r.status_code == 200
    text = r.content.decode()
    assert 'pollen_users{active="true"} 1.0' in text
    assert 'pollen_users{active="false"} 1.0' in text
    assert "pollen_api_keys_active" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text
    assert "django_http_responses_total_by_status_total" in text


def _schema(client):
    r = client.get("/api/v1/schema/")
    assert r.status_code == 200
    return yaml.safe_load(r.content)


def test_schema_is_openapi_3_with_envelopes_and_paths(client):
    schema = _schema(client)
    assert schema["openapi"].startswith("3.")
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    paths = schema["paths"]
    project_paths = [p for p in paths if p.startswith("/api/v1/projects")]
    assert project_paths
    assert any(p.startswith("/api/v1/auth/login") for p in paths)
    assert any(p.startswith("/api/v1/auth/api-keys") for p in paths)
    login = next(v for p, v in paths.items() if p.rstrip("/").endswith("/auth/login"))["post"]
    assert login["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"}
    ok = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"success", "data", "request_id"} <= set(ok["properties"])
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKeyAuth"]["name"] == "X-API-Key" and schemes["jwtAuth"]["scheme"] == "bearer"


def test_schema_as_json(client):
    r = client.get("/api/v1/schema/", {"format": "json"})
    assert r.status_code == 200
    assert r.json()["openapi"].startswith("3.")


@pytest.mark.parametrize("path, marker", [("/api/v1/docs/", "swagger"), ("/api/v1/redoc/", "redoc")])
def test_docs_pages_are_served_offline(client, path, marker):
    r = client.get(path)
    assert r.status_code == 200
    html = r.content.decode().lower()
    assert marker in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
