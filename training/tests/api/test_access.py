"""Who may see and change executions: owners, members, roles, API keys, administrators (SPEC 3)."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from accounts import services as account_services
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import ALL_ROLES, assert_error, assert_success
from core.api.permissions import RequiresPermission, required_permission
from core.permissions import has_permission
from projects.tests.factories import ProjectFactory, ProjectMemberFactory
from training.choices import ExecutionStatus
from training.models import Execution
from training.tests.api.factories import ExecutionFactory, ExecutionLogFactory, RoundFactory, store_checkpoint
from training.tests.api.helpers import API, EXECUTIONS, LOGS, START, start_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(db):
    """Someone else's execution, with a round, a checkpoint and a log entry."""
    execution = ExecutionFactory(project=ProjectFactory(owner=UserFactory(), configuration={}), name="Theirs",
                                 status=ExecutionStatus.RUNNING)
    import numpy as np

    store_checkpoint(RoundFactory(execution=execution, number=1), [np.zeros((2, 2))])
    ExecutionLogFactory(execution=execution, message="their secret")
    return execution


def _everything(api, execution):
    base = f"{EXECUTIONS}/{execution.pk}"
    return [
        api.get(base), api.patch(base, {"name": "mine"}), api.put(base, {"name": "mine"}), api.delete(base),
        api.patch(f"{base}/status", {"status": "stopped"}), api.post(f"{base}/stop"), api.post(f"{base}/suspend"),
        api.post(f"{base}/resume"), api.get(f"{base}/rounds"), api.get(f"{base}/rounds/1"),
        api.get(f"{base}/rounds/1/metrics"), api.get(f"{base}/rounds/1/checkpoint"),
        api.get(f"{base}/rounds/1/clients"), api.get(f"{base}/logs"), api.get(f"{base}/metrics"),
        api.get(f"{API}/training/jobs/{execution.pk}"), api.post(f"{API}/training/stop/{execution.pk}"),
        api.get(f"{LOGS}/by-training/{execution.pk}"),
    ]


def test_someone_elses_execution_is_fl001_everywhere(owner_api, theirs):
    for response in _everything(owner_api, theirs):
        assert_error(response, 404, "FL001")
    theirs.refresh_from_db()
    assert theirs.name == "Theirs" and theirs.status == ExecutionStatus.RUNNING and theirs.control == ""
    assert assert_success(owner_api.get(EXECUTIONS))["data"] == []
    assert assert_success(owner_api.get(LOGS))["data"] == []


def test_nobody_starts_training_on_someone_elses_project(owner_api, theirs):
    for path in (EXECUTIONS, START):
        assert_error(owner_api.post(path, start_body(theirs.project)), 404, "RESOURCE_NOT_FOUND")
    assert Execution.objects.count() == 1


def test_a_read_member_reads_but_does_not_change(api_for, theirs):
    reader = UserFactory(roles=["user"])
    ProjectMemberFactory(project=theirs.project, user=reader, access="read")
    api = api_for(reader)
    base = f"{EXECUTIONS}/{theirs.pk}"
    assert assert_success(api.get(base))["data"]["name"] == "Theirs"
    assert [e["id"] for e in assert_success(api.get(EXECUTIONS))["data"]] == [str(theirs.pk)]
    assert api.get(f"{base}/rounds/1/checkpoint").status_code == 200
    for response in (api.patch(base, {"name": "x"}), api.delete(base), api.post(f"{base}/stop"),
                     api.post(f"{base}/suspend"), api.patch(f"{base}/status", {"status": "stopped"}),
                     api.post(f"{API}/training/stop/{theirs.pk}"),
                     api.post(EXECUTIONS, start_body(theirs.project)), api.post(START, start_body(theirs.project))):
        assert_error(response, 403, "AUTHORIZATION_FAILED")
    theirs.refresh_from_db()
    assert theirs.control == "" and Execution.objects.count() == 1


def test_a_write_member_controls_the_projects_executions(api_for, theirs):
    writer = UserFactory(roles=["user"])
    ProjectMemberFactory(project=theirs.project, user=writer, access="write")
    assert_success(api_for(writer).post(f"{EXECUTIONS}/{theirs.pk}/stop"), 202)
    assert_success(api_for(writer).post(EXECUTIONS, start_body(theirs.project)), 202)


def test_a_viewer_reads_but_cannot_start(api_for):
    viewer = UserFactory(roles=["viewer"])
    project = ProjectFactory(owner=viewer, configuration={})
    execution = ExecutionFactory(project=project)
    api = api_for(viewer)
    assert_success(api.get(EXECUTIONS))
    assert_success(api.get(f"{EXECUTIONS}/{execution.pk}"))
    assert_success(api.get(f"{API}/training/jobs/{execution.pk}"))
    body = assert_error(api.post(EXECUTIONS, start_body(project)), 403, "AUTHORIZATION_FAILED")
    assert "start:training" in body["error"]["message"] and "execution:create" in body["error"]["message"]
    assert_error(api.post(START, start_body(project)), 403, "AUTHORIZATION_FAILED")
    assert_error(api.post(f"{EXECUTIONS}/{execution.pk}/stop"), 403, "AUTHORIZATION_FAILED")
    assert Execution.objects.count() == 1


def test_platform_administrators_see_and_control_every_execution(api_for, theirs):
    api = api_for(UserFactory(roles=["platform_admin"]))
    assert [e["id"] for e in assert_success(api.get(EXECUTIONS))["data"]] == [str(theirs.pk)]
    assert [e["message"] for e in assert_success(api.get(LOGS))["data"]] == ["their secret"]
    assert_success(api.post(f"{EXECUTIONS}/{theirs.pk}/suspend"), 202)


def test_anonymous_callers_are_refused(api, theirs):
    for response in (api.get(EXECUTIONS), api.get(LOGS), api.post(START, {}), api.get(f"{EXECUTIONS}/{theirs.pk}")):
        assert_error(response, 401, "AUTHENTICATION_FAILED")


# ---- role x endpoint matrix ------------------------------------------------------------------------

def _grants(role, *options):
    return any(has_permission(BUILTIN_ROLES[role]["permissions"], p) for p in options)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_matrix(api_for, role):
    user = UserFactory(roles=[role])
    project = ProjectFactory(owner=user, configuration={})
    execution = ExecutionFactory(project=project, status=ExecutionStatus.RUNNING)
    api = api_for(user)
    may_read = _grants(role, "read:projects", "execution:read")
    may_start = _grants(role, "start:training", "execution:create")
    may_control = _grants(role, "start:training", "execution:update")
    may_read_logs = may_read or _grants(role, "log:read")
    may_read_metrics = may_read or _grants(role, "view:metrics", "metric:read")
    may_read_models = may_read or _grants(role, "model:read")

    expected = {
        ("get", EXECUTIONS): 200 if may_read else 403,
        ("get", f"{EXECUTIONS}/{execution.pk}"): 200 if may_read else 403,
        ("get", f"{API}/training/jobs/{execution.pk}"): 200 if may_read else 403,
        ("get", LOGS): 200 if may_read_logs else 403,
        ("post", EXECUTIONS): 202 if may_start else 403,
        ("post", START): 202 if may_start else 403,
        ("post", f"{EXECUTIONS}/{execution.pk}/suspend"): 202 if may_control else 403,
        ("get", f"{API}/fl/aggregation/{execution.pk}/status"): 200 if may_read else 403,
        ("get", f"{API}/fl/metrics/validation?executionId={execution.pk}"): 200 if may_read_metrics else 403,
        ("get", f"{API}/fl/metrics/bias?executionId={execution.pk}"): 200 if may_read_metrics else 403,
        ("get", f"{API}/fl/models"): 200 if may_read_models else 403,
        ("get", f"{API}/models"): 200 if may_read_models else 403,
    }
    for (method, path), status in expected.items():
        body = start_body(project) if method == "post" and path in (EXECUTIONS, START) else None
        response = api.post(path, body) if method == "post" else api.get(path)
        assert response.status_code == status, (role, method, path, response.content)
        if status == 403:
            assert_error(response, 403, "AUTHORIZATION_FAILED")


def test_the_matrix_covers_what_the_seeds_say():
    # seed 000: user starts, viewer only reads; seed 004: ml_engineer holds execution:*.
    assert _grants("user", "start:training") and not _grants("viewer", "start:training")
    assert _grants("ml_engineer", "execution:create") and not _grants("ml_engineer", "read:projects")
    assert not any(_grants(r, "read:projects", "execution:read") for r in
                   ("service_owner", "financial_controller", "test_engineer", "operator", "analyst"))


def test_an_api_key_scoped_to_reading_cannot_start(api_for):
    engineer = UserFactory(roles=["ml_engineer"])
    project = ProjectFactory(owner=engineer, configuration={})
    _, raw = account_services.api_key_create(user=engineer, name="ci", scopes=["execution:read"])
    api = api_for(api_key=raw)
    assert_success(api.get(EXECUTIONS))
    assert_error(api.post(EXECUTIONS, start_body(project)), 403, "AUTHORIZATION_FAILED")


# ---- RequiresPermission with "any of" --------------------------------------------------------------

class _View:
    def __init__(self, action, mapping):
        self.action = action
        self.required_permissions = mapping


def _request(user, method="get"):
    request = Request(getattr(RequestFactory(), method)("/"))
    request.user = user
    return request


@pytest.mark.parametrize("roles, allowed", [(["user"], True), (["ml_engineer"], True), (["viewer"], False),
                                            (["analyst"], False), (["admin"], True)])
def test_a_tuple_of_permissions_means_any_of_them(roles, allowed):
    view = _View("start", {"start": ("start:training", "execution:create")})
    permission = RequiresPermission()
    assert permission.has_permission(_request(UserFactory(roles=roles), "post"), view) is allowed
    if not allowed:
        assert permission.message == "This action needs the permission 'start:training' or 'execution:create'"


def test_a_single_string_still_works_and_lookup_order_is_kept():
    mapping = {"list": ("read:projects", "execution:read"), "list:post": "write:projects", "*": "x:y"}
    assert required_permission(_request(None), _View("list", mapping)) == ("read:projects", "execution:read")
    assert required_permission(_request(None, "post"), _View("list", mapping)) == "write:projects"
    permission = RequiresPermission()
    assert permission.has_permission(_request(UserFactory(roles=["viewer"]), "post"), _View("list", mapping)) is False
    assert permission.message == "This action needs the permission 'write:projects'"
    assert permission.has_permission(_request(UserFactory(roles=["user"]), "post"), _View("list", mapping)) is True
