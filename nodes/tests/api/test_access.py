"""Who may see and change nodes: registrants, project members, roles, administrators (SPEC 3)."""

import pytest

from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import ALL_ROLES, assert_error, assert_success
from core.permissions import has_permission
from nodes.models import Node, NodeDataset
from nodes.tests.factories import NodeFactory
from projects.tests.factories import ProjectFactory, ProjectMemberFactory
from training.tests.api.factories import ExecutionFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
CLIENTS, NODES = f"{API}/fl/clients", f"{API}/nodes"
READ = ("read:projects", "client:read", "view:metrics")
WRITE = ("client:write", "client:create", "client:update", "write:projects")


@pytest.fixture
def theirs(db):
    return NodeFactory(name="theirs", project=ProjectFactory(configuration={}))


def _everything(api, node):
    base = f"{CLIENTS}/{node.pk}"
    return [
        api.get(base), api.put(base, {"name": "mine"}), api.patch(base, {"name": "mine"}), api.delete(base),
        api.put(f"{base}/status", {"status": "offline"}), api.patch(f"{base}/status", {"status": "offline"}),
        api.post(f"{base}/heartbeat", {}), api.post(f"{NODES}/{node.pk}/heartbeat", {}),
        api.get(f"{NODES}/{node.pk}/metrics"), api.get(f"{base}/metrics"),
        api.post(f"{base}/assign", {"executionId": str(ExecutionFactory(status="running").pk)}),
        api.post(f"{base}/unassign"), api.get(f"{base}/dataset"), api.put(f"{base}/dataset", {"name": "d"}),
        api.get(f"{base}/datasets"), api.post(f"{base}/datasets", {"name": "d"}), api.get(f"{base}/cluster"),
        api.put(f"{base}/cluster", {"cluster": None}),
        api.post(f"{API}/fl/datasets/assign", {"clientId": str(node.pk), "name": "d"}),
    ]


def test_someone_elses_node_is_404_everywhere(owner_api, theirs):
    for response in _everything(owner_api, theirs):
        assert_error(response, 404, "RESOURCE_NOT_FOUND")
    theirs.refresh_from_db()
    assert theirs.name == "theirs" and theirs.status == "connected" and not NodeDataset.objects.exists()
    for path in (CLIENTS, NODES, f"{CLIENTS}/by-zone", f"{CLIENTS}/by-location", f"{API}/fl/datasets"):
        assert assert_success(owner_api.get(path))["data"] == []


def test_a_malformed_id_is_404(owner_api):
    assert_error(owner_api.get(f"{CLIENTS}/not-a-uuid"), 404, "RESOURCE_NOT_FOUND")


def test_a_read_member_sees_the_projects_nodes_but_does_not_change_them(api_for, theirs):
    reader = UserFactory(roles=["user"])
    ProjectMemberFactory(project=theirs.project, user=reader, access="read")
    api = api_for(reader)
    assert [n["id"] for n in assert_success(api.get(CLIENTS))["data"]] == [str(theirs.pk)]
    assert_success(api.get(f"{CLIENTS}/{theirs.pk}"))
    for response in (api.patch(f"{CLIENTS}/{theirs.pk}", {"name": "x"}), api.delete(f"{CLIENTS}/{theirs.pk}"),
                     api.put(f"{CLIENTS}/{theirs.pk}/status", {"status": "offline"})):
        assert_error(response, 403, "AUTHORIZATION_FAILED")
    theirs.refresh_from_db()
    assert theirs.name == "theirs" and theirs.status == "connected"


def test_a_write_member_changes_the_projects_nodes(api_for, theirs):
    writer = UserFactory(roles=["user"])
    ProjectMemberFactory(project=theirs.project, user=writer, access="write")
    assert_success(api_for(writer).patch(f"{CLIENTS}/{theirs.pk}", {"host": "h"}))


def test_platform_administrators_see_every_node(api_for, theirs):
    api = api_for(UserFactory(roles=["platform_admin"]))
    assert [n["id"] for n in assert_success(api.get(NODES))["data"]] == [str(theirs.pk)]
    assert_success(api.put(f"{CLIENTS}/{theirs.pk}/status", {"status": "idle"}))


def test_anonymous_callers_are_refused(api, theirs):
    for response in (api.get(CLIENTS), api.get(NODES), api.post(CLIENTS, {"name": "x"}),
                     api.post(f"{NODES}/{theirs.pk}/heartbeat", {}), api.get(f"{API}/fl/zones")):
        assert_error(response, 401, "AUTHENTICATION_FAILED")
    assert Node.objects.count() == 1


# ---- role x endpoint matrix ------------------------------------------------------------------------

def _grants(role, *options):
    return any(has_permission(BUILTIN_ROLES[role]["permissions"], p) for p in options)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_matrix(api_for, role):
    user = UserFactory(roles=[role])
    project = ProjectFactory(owner=user, configuration={})
    node = NodeFactory(registered_by=user, project=project)
    execution = ExecutionFactory(project=project, status="running")
    api = api_for(user)
    may_read = _grants(role, *READ)
    may_write = _grants(role, *WRITE)
    may_register = may_write or _grants(role, "client:register")
    may_beat = may_write or _grants(role, "training:participate")
    may_zone = _grants(role, "client:write", "client:create", "client:update")
    base = f"{CLIENTS}/{node.pk}"
    expected = [
        ("get", NODES, None, 200 if may_read else 403),
        ("get", f"{NODES}/{node.pk}/metrics", None, 200 if may_read else 403),
        ("get", CLIENTS, None, 200 if may_read else 403),
        ("get", base, None, 200 if may_read else 403),
        ("get", f"{base}/metrics", None, 200 if may_read else 403),
        ("get", f"{CLIENTS}/by-location", None, 200 if may_read else 403),
        ("get", f"{CLIENTS}/by-zone", None, 200 if may_read else 403),
        ("get", f"{base}/dataset", None, 200 if may_read else 403),
        ("get", f"{API}/fl/datasets", None, 200 if may_read else 403),
        ("get", f"{API}/fl/zones", None, 200 if may_read else 403),
        ("get", f"{API}/fl/clusters", None, 200 if may_read else 403),
        ("post", CLIENTS, {"name": "n"}, 201 if may_register else 403),
        ("post", f"{NODES}/{node.pk}/heartbeat", {}, 200 if may_beat else 403),
        ("patch", base, {"host": "h"}, 200 if may_write else 403),
        ("put", f"{base}/status", {"status": "idle"}, 200 if may_write else 403),
        ("post", f"{base}/assign", {"executionId": str(execution.pk)}, 200 if may_write else 403),
        ("put", f"{base}/dataset", {"name": "d"}, 200 if may_write else 403),
        ("post", f"{API}/fl/zones", {"name": "z", "code": f"z-{role}"}, 201 if may_zone else 403),
    ]
    for method, path, body, status in expected:
        response = getattr(api, method)(path, body) if body is not None else getattr(api, method)(path)
        assert response.status_code == status, (role, method, path, response.content)
        if status == 403:
            assert_error(response, 403, "AUTHORIZATION_FAILED")
