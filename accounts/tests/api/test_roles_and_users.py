"""Roles (/api/v1/roles) and user administration (/api/v1/users): who may read, assign and change."""

import uuid

import pytest

from accounts.models import Role, User
from accounts.tests.fixtures import ALL_ROLES, UserFactory, assert_error, assert_success

pytestmark = pytest.mark.django_db

SEED_PERMISSIONS = {
    "admin": ["*"],
    "user": ["read:projects", "write:projects", "start:training", "view:metrics"],
    "viewer": ["read:projects", "view:metrics"],
    "platform_admin": ["*"],
    "service_owner": ["service:*", "budget:read", "monitoring:*"],
    "financial_controller": ["budget:*", "approval:*", "report:*"],
    "ml_engineer": ["client:*", "execution:*", "model:*", "test:write"],
    "test_engineer": ["test:*", "report:write", "monitoring:read"],
    "operator": ["service:read", "monitoring:*", "alert:*", "log:read"],
    "analyst": ["report:read", "chart:read", "metric:read", "log:read"],
}
MANAGERS = {"admin", "platform_admin"}
NON_MANAGERS = sorted(set(SEED_PERMISSIONS) - MANAGERS)


def test_the_ten_builtin_roles_exist_with_exactly_the_seed_permissions():
    roles = {r.name: r for r in Role.objects.all()}
    assert set(roles) == set(SEED_PERMISSIONS)
    for name, permissions in SEED_PERMISSIONS.items():
        assert sorted(roles[name].permissions) == sorted(permissions), name
        assert roles[name].is_builtin


def test_roles_api_lists_the_builtin_roles(api_for):
    body = assert_success(api_for(UserFactory(roles=["viewer"])).get("/api/v1/roles"))
    listed = {r["name"]: r for r in body["data"]}
    assert {n: sorted(r["permissions"]) for n, r in listed.items()} == {
        n: sorted(p) for n, p in SEED_PERMISSIONS.items()
    }
    assert all(r["is_builtin"] for r in listed.values())
    assert [r["name"] for r in body["data"]] == sorted(listed)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_any_logged_in_user_reads_roles(api_for, role):
    client = api_for(UserFactory(roles=[role]))
    assert len(assert_success(client.get("/api/v1/roles"))["data"]) == 10
    detail = assert_success(client.get("/api/v1/roles/analyst"))["data"]
    assert sorted(detail["permissions"]) == sorted(SEED_PERMISSIONS["analyst"])


def test_a_user_without_roles_still_reads_roles(api_for):
    assert_success(api_for(UserFactory(roles=[])).get("/api/v1/roles"))


def test_unknown_role_is_404(api_for, user):
    assert_error(api_for(user).get("/api/v1/roles/no-such-role"), 404, "RESOURCE_NOT_FOUND")


def test_roles_need_authentication(api):
    assert_error(api.get("/api/v1/roles"), 401, "AUTHENTICATION_FAILED")


def test_admin_creates_a_role(api_for, admin):
    r = api_for(admin).post("/api/v1/roles", {"name": "auditor", "description": "Reads reports",
                                              "permissions": ["report:read", "log:*", "report:read"]})
    data = assert_success(r, 201)["data"]
    assert data["name"] == "auditor" and data["is_builtin"] is False
    assert data["permissions"] == ["log:*", "report:read"]
    assert Role.objects.get(name="auditor").permissions == ["log:*", "report:read"]


@pytest.mark.parametrize("role", NON_MANAGERS)
def test_non_admins_cannot_create_roles(api_for, role):
    r = api_for(UserFactory(roles=[role])).post("/api/v1/roles", {"name": "mine", "permissions": ["*"]})
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert not Role.objects.filter(name="mine").exists()


@pytest.mark.parametrize("payload, status, code", [
    ({"name": "admin", "permissions": ["*"]}, 409, "RESOURCE_CONFLICT"),
    ({"name": "bad", "permissions": ["Not Valid"]}, 400, "VALIDATION_ERROR"),
    ({"name": "bad", "permissions": ["read:"]}, 400, "VALIDATION_ERROR"),
    ({"name": "bad name", "permissions": []}, 400, "VALIDATION_ERROR"),
    ({"permissions": ["read:projects"]}, 400, "VALIDATION_ERROR"),
    ({"name": "bad", "permissions": "read:projects"}, 400, "VALIDATION_ERROR"),
])
def test_role_create_validates(api_for, admin, payload, status, code):
    before = Role.objects.count()
    assert_error(api_for(admin).post("/api/v1/roles", payload), status, code)
    assert Role.objects.count() == before


def test_builtin_role_permissions_cannot_be_changed(api_for, admin):
    client = api_for(admin)
    for name in SEED_PERMISSIONS:
        r = client.patch(f"/api/v1/roles/{name}", {"permissions": ["*"]})
        assert_error(r, 403, "AUTHORIZATION_FAILED")
        assert sorted(Role.objects.get(name=name).permissions) == sorted(SEED_PERMISSIONS[name])


def test_custom_role_permissions_can_be_changed_by_admin_only(api_for, admin):
    Role.objects.create(name="auditor", permissions=["report:read"])
    r = api_for(UserFactory(roles=["user"])).patch("/api/v1/roles/auditor", {"permissions": ["*"]})
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    data = assert_success(api_for(admin).patch("/api/v1/roles/auditor", {"permissions": ["report:*"],
                                                                        "description": "More"}))["data"]
    assert data["permissions"] == ["report:*"] and data["description"] == "More"


def test_a_role_change_reaches_its_users_on_their_next_token(api_for, admin):
    Role.objects.create(name="auditor", permissions=["report:read"])
    member = UserFactory(roles=["auditor"])
    api_for(admin).patch("/api/v1/roles/auditor", {"permissions": ["report:read", "read:projects"]})
    assert_success(api_for(member).get("/api/v1/projects"))


# ---- role assignment -----------------------------------------------------------------------------

def test_admin_assigns_roles(api_for, admin):
    target = UserFactory(roles=["viewer"])
    r = api_for(admin).put(f"/api/v1/users/{target.pk}/roles", {"roles": ["analyst", "operator"]})
    data = assert_success(r)["data"]
    assert data["roles"] == ["analyst", "operator"]
    assert "log:read" in data["permissions"] and "read:projects" not in data["permissions"]
    target = User.objects.get(pk=target.pk)
    assert target.role_names == ["analyst", "operator"]


def test_assigning_no_roles_removes_all(api_for, admin):
    target = UserFactory(roles=["viewer", "user"])
    assert assert_success(api_for(admin).put(f"/api/v1/users/{target.pk}/roles", {"roles": []}))["data"]["roles"] == []
    assert User.objects.get(pk=target.pk).role_names == []


def test_platform_admin_assigns_roles(api_for):
    target = UserFactory(roles=["viewer"])
    r = api_for(UserFactory(roles=["platform_admin"])).put(f"/api/v1/users/{target.pk}/roles",
                                                           {"roles": ["ml_engineer"]})
    assert assert_success(r)["data"]["roles"] == ["ml_engineer"]


@pytest.mark.parametrize("role", NON_MANAGERS)
def test_non_admins_cannot_assign_roles(api_for, role):
    actor = UserFactory(roles=[role])
    target = UserFactory(roles=["viewer"])
    for who in (target, actor):  # not even to themselves
        r = api_for(actor).put(f"/api/v1/users/{who.pk}/roles", {"roles": ["admin"]})
        assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert User.objects.get(pk=target.pk).role_names == ["viewer"]
    assert User.objects.get(pk=actor.pk).role_names == [role]


def test_unknown_role_assignment_is_400(api_for, admin):
    target = UserFactory(roles=["viewer"])
    r = api_for(admin).put(f"/api/v1/users/{target.pk}/roles", {"roles": ["viewer", "wizard"]})
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert "wizard" in body["error"]["message"]
    assert User.objects.get(pk=target.pk).role_names == ["viewer"]


@pytest.mark.parametrize("payload", [{}, {"roles": "admin"}, {"roles": ["Bad Name"]}])
def test_role_assignment_validates_the_body(api_for, admin, payload):
    target = UserFactory(roles=["viewer"])
    assert_error(api_for(admin).put(f"/api/v1/users/{target.pk}/roles", payload), 400, "VALIDATION_ERROR")


def test_role_assignment_to_unknown_user_is_404(api_for, admin):
    r = api_for(admin).put(f"/api/v1/users/{uuid.uuid4()}/roles", {"roles": ["viewer"]})
    assert_error(r, 404, "RESOURCE_NOT_FOUND")


def test_admin_cannot_remove_their_own_admin_rights(api_for, admin):
    r = api_for(admin).put(f"/api/v1/users/{admin.pk}/roles", {"roles": ["viewer"]})
    assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert User.objects.get(pk=admin.pk).role_names == ["admin"]
    # Swapping one wildcard role for another is fine.
    r = api_for(admin).put(f"/api/v1/users/{admin.pk}/roles", {"roles": ["platform_admin"]})
    assert assert_success(r)["data"]["roles"] == ["platform_admin"]


def test_new_roles_apply_to_tokens_issued_afterwards(api_for, admin):
    target = UserFactory(roles=["analyst"])
    assert_error(api_for(target).get("/api/v1/projects"), 403, "AUTHORIZATION_FAILED")
    api_for(admin).put(f"/api/v1/users/{target.pk}/roles", {"roles": ["viewer"]})
    assert_success(api_for(target).get("/api/v1/projects"))


# ---- user administration -------------------------------------------------------------------------

def test_admin_lists_and_reads_users(api_for, admin):
    UserFactory(username="zed", roles=["viewer"])
    client = api_for(admin)
    body = assert_success(client.get("/api/v1/users"))
    names = [u["username"] for u in body["data"]]
    assert names == sorted(names) and "zed" in names
    zed = next(u for u in body["data"] if u["username"] == "zed")
    assert zed["roles"] == ["viewer"] and "password" not in zed
    assert assert_success(client.get(f"/api/v1/users/{zed['id']}"))["data"]["username"] == "zed"


@pytest.mark.parametrize("role", NON_MANAGERS)
def test_non_admins_cannot_list_or_unlock_users(api_for, role):
    actor = UserFactory(roles=[role])
    client = api_for(actor)
    assert_error(client.get("/api/v1/users"), 403, "AUTHORIZATION_FAILED")
    assert_error(client.get(f"/api/v1/users/{actor.pk}"), 403, "AUTHORIZATION_FAILED")
    assert_error(client.post(f"/api/v1/users/{actor.pk}/unlock"), 403, "AUTHORIZATION_FAILED")
