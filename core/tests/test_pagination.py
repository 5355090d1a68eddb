"""?page=&limit= on every list (seed 000), answered with pagination and links (seed 002)."""

from urllib.parse import parse_qs, urlparse

import pytest

from accounts.models import User
from accounts.tests.fixtures import UserFactory, assert_error, assert_success

pytestmark = pytest.mark.django_db

USERS = "/api/v1/users"


@pytest.fixture
def admin_client(api_for):
    admin = UserFactory(username="aaa-admin", roles=["admin"])
    UserFactory.create_batch(24, roles=["viewer"])
    assert User.objects.count() == 25
    return api_for(admin)


def _query(url):
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_default_page_is_20_with_pagination_and_links(admin_client):
    body = assert_success(admin_client.get(USERS))
    assert len(body["data"]) == 20
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 25, "pages": 2, "has_next": True,
                                  "has_prev": False}
    links = body["links"]
    assert links["prev"] is None
    assert _query(links["first"]) == {"page": "1", "limit": "20"}
    assert _query(links["next"]) == {"page": "2", "limit": "20"}
    assert _query(links["last"]) == {"page": "2", "limit": "20"}
    assert links["next"].startswith("http://testserver/api/v1/users")


def test_following_next_walks_every_row_once(admin_client):
    seen, url = [], f"{USERS}?limit=7"
    while url:
        body = assert_success(admin_client.get(url))
        seen.extend(u["id"] for u in body["data"])
        url = body["links"]["next"]
    assert len(seen) == 25 == len(set(seen))


def test_last_page(admin_client):
    body = assert_success(admin_client.get(USERS, {"page": 2, "limit": 20, "search": "example.com"}))
    assert len(body["data"]) == 5
    p = body["pagination"]
    assert (p["page"], p["has_next"], p["has_prev"]) == (2, False, True)
    assert body["links"]["next"] is None
    assert _query(body["links"]["prev"])["page"] == "1"
    # Other query parameters survive in the links.
    assert _query(body["links"]["first"]) == {"page": "1", "limit": "20", "search": "example.com"}


def test_limit_is_capped_at_100(admin_client):
    UserFactory.create_batch(100, roles=[])
    body = assert_success(admin_client.get(USERS, {"limit": 1000}))
    assert len(body["data"]) == 100
    assert body["pagination"]["limit"] == 100 and body["pagination"]["total"] == 125
    assert _query(body["links"]["next"])["limit"] == "100"


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"), ({"limit": -5}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "1.5"}, "limit"),
    ({"page": "abc"}, "page"), ({"page": 0}, "page"), ({"page": -1}, "page"),
])
def test_bad_page_or_limit_is_400(admin_client, params, field):
    body = assert_error(admin_client.get(USERS, params), 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == field


def test_page_past_the_end_is_empty(admin_client):
    body = assert_success(admin_client.get(USERS, {"page": 99}))
    assert body["data"] == []
    p = body["pagination"]
    assert (p["page"], p["total"], p["pages"], p["has_next"], p["has_prev"]) == (99, 25, 2, False, True)
    assert _query(body["links"]["prev"])["page"] == "2"


def test_an_empty_list_has_one_empty_page(api_for, user):
    body = assert_success(api_for(user).get("/api/v1/auth/api-keys"))
    assert body["data"] == []
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 0, "pages": 1, "has_next": False,
                                  "has_prev": False}
    assert body["links"]["next"] is None and body["links"]["prev"] is None
