"""Access tokens carry roles and permissions; authentication trusts them only while current."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import access_token_for, assert_error, assert_success

pytestmark = pytest.mark.django_db


def test_a_live_token_loses_access_when_its_role_is_taken_away(api_for):
    user = UserFactory(roles=["user"])
    token = access_token_for(user)
    client = api_for(token=token)
    assert_success(client.get("/api/v1/projects"))
    user.roles.set(Role.objects.filter(name="analyst"))  # any path: here the ORM, as a shell would
    assert_error(client.get("/api/v1/projects"), 403, "AUTHORIZATION_FAILED")


def test_a_live_token_gains_access_when_a_role_is_added(api_for):
    user = UserFactory(roles=["analyst"])
    client = api_for(token=access_token_for(user))
    assert_error(client.get("/api/v1/projects"), 403, "AUTHORIZATION_FAILED")
    user.roles.add(Role.objects.get(name="viewer"))
    assert_success(client.get("/api/v1/projects"))


def test_editing_a_custom_roles_permissions_reaches_live_tokens(api_for):
    role = Role.objects.create(name="project_reader", permissions=["read:projects"])
    user = UserFactory(roles=["project_reader"])
    client = api_for(token=access_token_for(user))
    assert_success(client.get("/api/v1/projects"))
    role.permissions = ["view:metrics"]
    role.save()
    assert_error(client.get("/api/v1/projects"), 403, "AUTHORIZATION_FAILED")


def test_deleting_a_role_reaches_live_tokens(api_for):
    role = Role.objects.create(name="project_reader", permissions=["read:projects"])
    user = UserFactory(roles=["project_reader"])
    client = api_for(token=access_token_for(user))
    assert_success(client.get("/api/v1/projects"))
    role.delete()
    assert_error(client.get("/api/v1/projects"), 403, "AUTHORIZATION_FAILED")


def test_current_claims_save_the_roles_query(api_for):
    user = UserFactory(roles=["user"])
    client = api_for(token=access_token_for(user))
    # the user row, then the view's own work: no read of the user's roles for the permission check
    with CaptureQueriesContext(connection) as ctx:
        assert_success(client.get("/api/v1/projects"))
    assert not any("accounts_user_roles" in q["sql"] for q in ctx.captured_queries), ctx.captured_queries
