import pytest

from accounts.tests.factories import PASSWORD, UserFactory


@pytest.mark.django_db
def test_login_then_list_projects_in_envelope(client):
    UserFactory(username="ann")
    r = client.post("/api/v1/auth/login", {"username": "ann", "password": PASSWORD}, content_type="application/json")
    assert r.status_code == 200
    token = r.json()["data"]["access_token"]
    r = client.get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["data"] == [] and body["pagination"]["total"] == 0
    assert r["X-Request-ID"] == body["request_id"]
