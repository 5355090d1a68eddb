"""Permission strings with wildcards (core.permissions) and the DRF permission built on them."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from core.api.permissions import RequiresPermission, request_permissions, required_permission
from core.permissions import covers, has_permission, is_valid_permission, permission_matches


@pytest.mark.parametrize("granted, required, expected", [
    ("*", "read:projects", True),
    ("*", "fl:training:execute", True),
    ("read:projects", "read:projects", True),
    ("read:projects", "write:projects", False),
    ("read:projects", "read:projects:extra", False),
    ("budget:*", "budget:read", True),
    ("budget:*", "budget:approve:large", True),
    ("budget:*", "budget", False),
    ("budget:*", "budgets:read", False),
    ("budget:*", "budgetx:read", False),
    ("budget:read", "budget:*", False),
    ("fl:*", "fl:training:execute", True),
    ("fl:training:*", "fl:training:execute", True),
    ("fl:training:*", "fl:model:read", False),
    ("monitoring:*", "service:read", False),
    ("read:*", "read:projects", True),
    ("", "read:projects", False),
])
def test_permission_matches(granted, required, expected):
    assert permission_matches(granted, required) is expected


def test_has_permission_checks_any_granted_string():
    granted = ["service:*", "budget:read", "monitoring:*"]
    assert has_permission(granted, "service:restart")
    assert has_permission(granted, "budget:read")
    assert not has_permission(granted, "budget:approve")
    assert not has_permission([], "read:projects")
    assert has_permission(iter(["*"]), "anything:at:all")


@pytest.mark.parametrize("granted, wanted, expected", [
    (["*"], "*", True),
    (["budget:*"], "*", False),
    (["budget:*"], "budget:*", True),
    (["budget:*"], "budget:approval:*", True),
    (["budget:read"], "budget:*", False),
    (["*"], "budget:*", True),
    (["budget:approval:*"], "budget:*", False),
    (["read:projects"], "read:projects", True),
    (["read:projects"], "read:*", False),
    (["report:*"], "report:monthly:read", True),
])
def test_covers(granted, wanted, expected):
    assert covers(granted, wanted) is expected


@pytest.mark.parametrize("value, valid", [
    ("*", True), ("read:projects", True), ("budget:*", True), ("fl:training:execute", True),
    ("client:register", True), ("a_b-c:d", True),
    ("", False), ("Read:projects", False), ("read:", False), ("read projects", False), (":read", False),
    ("*:read", False), ("read:*:x", False), ("read::x", False), ("1read", False),
])
def test_is_valid_permission(value, valid):
    assert is_valid_permission(value) is valid


class _View:
    def __init__(self, action, mapping):
        self.action = action
        self.required_permissions = mapping


def test_required_permission_lookup_order():
    rf = RequestFactory()
    mapping = {"members:post": "write:projects", "members": "read:projects", "get": "view:metrics", "*": "x:y"}
    post = Request(rf.post("/"))
    get = Request(rf.get("/"))
    assert required_permission(post, _View("members", mapping)) == "write:projects"
    assert required_permission(get, _View("members", mapping)) == "read:projects"
    assert required_permission(get, _View("other", mapping)) == "view:metrics"
    assert required_permission(post, _View("other", mapping)) == "x:y"
    assert required_permission(post, _View("other", {})) is None


@pytest.mark.django_db
def test_api_key_scopes_narrow_request_permissions():
    from accounts import services
    from accounts.authentication import authenticate_api_key
    from accounts.tests.factories import UserFactory

    user = UserFactory(roles=["user"])
    _, raw = services.api_key_create(user=user, name="k", scopes=["read:projects"])
    key_user, auth = authenticate_api_key(raw)
    request = Request(RequestFactory().get("/"))
    request.user, request.auth = key_user, auth
    assert request_permissions(request) == frozenset({"read:projects"})
    view = _View("create", {"create": "write:projects"})
    assert RequiresPermission().has_permission(request, view) is False
    assert RequiresPermission().has_permission(request, _View("list", {"list": "read:projects"})) is True
