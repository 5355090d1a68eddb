"""The role x endpoint matrix (SPEC section 3): every built-in role against every identity endpoint
and the project endpoints, plus the anonymous caller."""

import pytest

from accounts.tests.fixtures import ALL_ROLES, UserFactory, assert_error

pytestmark = pytest.mark.django_db

MANAGERS = {"admin", "platform_admin"}
PROJECT_READERS = MANAGERS | {"user", "viewer"}
PROJECT_WRITERS = MANAGERS | {"user"}

# endpoint name -> (method, path template, body, success status, roles allowed)
ENDPOINTS = {
    "list projects": ("get", "/api/v1/projects", None, 200, PROJECT_READERS),
    "create project": ("post", "/api/v1/projects", {"name": "Matrix"}, 201, PROJECT_WRITERS),
    "list users": ("get", "/api/v1/users", None, 200, MANAGERS),
    "assign roles": ("put", "/api/v1/users/{target}/roles", {"roles": ["viewer"]}, 200, MANAGERS),
    "list roles": ("get", "/api/v1/roles", None, 200, set(ALL_ROLES)),
    "me": ("get", "/api/v1/auth/me", None, 200, set(ALL_ROLES)),
}


def _call(client, endpoint, target):
    method, path, body, _, _ = ENDPOINTS[endpoint]
    path = path.format(target=target.pk)
    return client.get(path) if method == "get" else getattr(client, method)(path, body)


def test_the_matrix_names_all_ten_roles():
    assert len(ALL_ROLES) == 10
    assert set(ALL_ROLES) >= PROJECT_READERS


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_endpoint_matrix(api_for, role, endpoint):
    target = UserFactory(roles=["analyst"])
    r = _call(api_for(UserFactory(roles=[role])), endpoint, target)
    _, _, _, ok_status, allowed = ENDPOINTS[endpoint]
    if role in allowed:
        assert r.status_code == ok_status, (role, endpoint, r.content)
        assert r.json()["success"] is True
    else:
        assert_error(r, 403, "AUTHORIZATION_FAILED")
    if endpoint == "assign roles":
        expected = ["viewer"] if role in allowed else ["analyst"]
        assert type(target).objects.get(pk=target.pk).role_names == expected


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_anonymous_is_401_everywhere(api, endpoint):
    target = UserFactory(roles=["analyst"])
    r = _call(api, endpoint, target)
    assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert r["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_user_without_roles_gets_only_self_service(api_for, endpoint):
    target = UserFactory(roles=["analyst"])
    r = _call(api_for(UserFactory(roles=[])), endpoint, target)
    if endpoint in ("me", "list roles"):
        assert r.status_code == 200
    else:
        assert_error(r, 403, "AUTHORIZATION_FAILED")


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_superuser_flag_grants_everything(api_for, endpoint):
    target = UserFactory(roles=["analyst"])
    root = UserFactory(roles=[], is_superuser=True)
    r = _call(api_for(root), endpoint, target)
    assert r.status_code == ENDPOINTS[endpoint][3], r.content
