"""List endpoints make the same number of queries whatever the number of rows (STYLE item 10)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import Role
from accounts.tests.fixtures import UserFactory, assert_success

pytestmark = pytest.mark.django_db


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path, {"limit": 100})
    assert_success(r)
    return len(ctx.captured_queries)


def _grow_api_keys(owner, n):
    for i in range(n):
        services.api_key_create(user=owner, name=f"k{i}", scopes=["read:projects"])


def _grow_users(owner, n):
    for _ in range(n):
        UserFactory(roles=["viewer", "analyst"])


def _grow_roles(owner, n):
    for i in range(n):
        Role.objects.create(name=f"custom-{i}-{Role.objects.count()}", permissions=["report:read"])


@pytest.mark.parametrize("path, grow, rows_in_response", [
    ("/api/v1/auth/api-keys", _grow_api_keys, lambda body: len(body["data"])),
    ("/api/v1/users", _grow_users, lambda body: len(body["data"])),
    ("/api/v1/roles", _grow_roles, lambda body: len(body["data"])),
])
def test_list_query_count_does_not_grow_with_rows(api_for, path, grow, rows_in_response):
    admin = UserFactory(roles=["admin", "user"])
    client = api_for(admin)
    grow(admin, 2)
    client.get(path)  # warm up per-process caches (content types and the like)
    small = _queries(client, path)
    small_rows = rows_in_response(assert_success(client.get(path, {"limit": 100})))

    grow(admin, 10)
    large = _queries(client, path)
    large_rows = rows_in_response(assert_success(client.get(path, {"limit": 100})))

    assert large_rows == small_rows + 10
    assert large == small, f"{path}: {small} queries for {small_rows} rows, {large} for {large_rows}"


def test_a_project_list_query_count_does_not_grow_with_roles(api_for):
    # The permission check reads the caller's roles once, however many they hold.
    few = UserFactory(roles=["user"])
    many = UserFactory(roles=["user", "viewer", "analyst", "operator", "ml_engineer", "test_engineer"])
    counts = []
    for who in (few, many):
        client = api_for(who)
        client.get("/api/v1/projects")
        counts.append(_queries(client, "/api/v1/projects"))
    assert counts[0] == counts[1]
