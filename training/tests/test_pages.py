"""The training pages: list, start form, an execution's page and its stop / suspend / resume buttons.

Executions are made through ``execution_start`` (on-commit work not run: they stay pending) or,
where a run is wanted, with the on-commit callbacks executed: eager Celery then trains for real.
"""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from projects.tests.factories import ProjectFactory, ProjectMemberFactory
from training import services
from training.choices import ControlRequest, ExecutionStatus
from training.models import Execution, Round

pytestmark = pytest.mark.django_db

TINY = {"rounds": 2, "clients": 3, "model_type": "logistic", "dataset": "iris"}
FORM = {"name": "Iris tiny", "algorithm": "fedavg", "strategy_params": "", "model_type": "logistic",
        "dataset": "iris", "rounds": 2, "clients": 3, "min_clients": "", "local_epochs": 1, "batch_size": 16,
        "learning_rate": 0.1, "partition": "iid", "alpha": 0.5, "seed": 3}


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def web(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, name="Iris across clinics", configuration={})


def _start(project, user=None, name="", **config):
    """A pending execution, made by the service (its run is queued on commit, which never comes)."""
    return services.execution_start(project=project, user=user or project.owner, name=name,
                                    config={**TINY, **config})


def _html(response) -> str:
    return response.content.decode()


def _set_status(execution, status, **fields):
    Execution.objects.filter(pk=execution.pk).update(status=status, **fields)


# ---- access --------------------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_log_in(client, project):
    execution = _start(project)
    for url in ("/training/", "/training/new/", f"/projects/{project.pk}/train/", f"/training/{execution.pk}/"):
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/login/?next="), url
    for action in ("stop", "suspend", "resume"):
        r = client.post(f"/training/{execution.pk}/{action}/")
        assert r.status_code == 302 and r["Location"].startswith("/login/"), action
    assert Execution.objects.get().status == ExecutionStatus.PENDING


def test_someone_elses_execution_is_not_found(web):
    other = _start(ProjectFactory(configuration={}))
    assert web.get(f"/training/{other.pk}/").status_code == 404
    for action in ("stop", "suspend", "resume"):
        assert web.post(f"/training/{other.pk}/{action}/").status_code == 404
    assert web.get(f"/projects/{other.project_id}/train/").status_code == 404
    assert Execution.objects.get().status == ExecutionStatus.PENDING


def test_viewer_reads_but_cannot_start_or_control(client, project):
    viewer = UserFactory(roles=["viewer"])
    ProjectMemberFactory(project=project, user=viewer, access="read")
    execution = _start(project, name="Shared run")
    client.force_login(viewer)
    assert client.get("/training/new/").status_code == 403
    assert client.post("/training/new/", {**FORM, "project": project.pk}).status_code == 403
    assert client.get(f"/projects/{project.pk}/train/").status_code == 403
    assert "Shared run" in _html(client.get("/training/"))
    page = client.get(f"/training/{execution.pk}/")
    assert page.status_code == 200
    assert 'id="execution-actions"' not in _html(page)
    assert client.post(f"/training/{execution.pk}/stop/").status_code == 403
    assert Execution.objects.get().status == ExecutionStatus.PENDING


def test_a_read_only_member_with_training_rights_cannot_control(client, project):
    member = UserFactory(roles=["user"])
    ProjectMemberFactory(project=project, user=member, access="read")
    execution = _start(project)
    client.force_login(member)
    assert 'id="execution-actions"' not in _html(client.get(f"/training/{execution.pk}/"))
    assert client.post(f"/training/{execution.pk}/stop/").status_code == 403
    assert client.get(f"/projects/{project.pk}/train/").status_code == 403
    # and the project is not offered on the start form
    assert project.name not in _html(client.get("/training/new/"))


def test_execution_permissions_of_seed_004_also_work(client, project):
    engineer = UserFactory(roles=["ml_engineer"])  # execution:* without read:projects
    ProjectMemberFactory(project=project, user=engineer, access="write")
    execution = _start(project)
    client.force_login(engineer)
    assert client.get("/training/").status_code == 200
    assert client.get("/training/new/").status_code == 200
    assert client.post(f"/training/{execution.pk}/stop/").status_code == 302
    assert Execution.objects.get().status == ExecutionStatus.STOPPED


# ---- list ----------------------------------------------------------------------------------------

def test_list_shows_the_executions_i_can_see(web, owner, project):
    mine = _start(project, name="Mine")
    shared_project = ProjectFactory(name="Shared project", configuration={})
    ProjectMemberFactory(project=shared_project, user=owner)
    _start(shared_project, name="Shared with me", model_type="kmeans", dataset="wine")
    _start(ProjectFactory(configuration={}), name="Somebody else's")
    Execution.objects.filter(pk=mine.pk).update(status="running", current_round=1, metrics={"accuracy": 0.8125})

    r = web.get("/training/")
    assert r.status_code == 200
    html = _html(r)
    assert "Mine" in html and "Shared with me" in html and "Somebody else" not in html
    row = re.search(r"<tr><td><a href=\"/training/%s/\">Mine</a>.*?</tr>" % mine.pk, html, re.S).group(0)
    for text in ("Iris across clinics", "fedavg", "logistic", "iris", '<span class="badge running">running</span>',
                 '<progress max="2" value="1"', "1/2", "0.813"):
        assert text in row, text
    assert 'href="/training/new/"' in html
    assert '<a href="/training/" aria-current="page">Training</a>' in html


def test_list_filters(web, owner, project):
    _start(project, name="Pending one")
    done = _start(project, name="Finished one", dataset="wine")
    _set_status(done, ExecutionStatus.COMPLETED)
    other_project = ProjectFactory(owner=owner, name="Other project", configuration={})
    _start(other_project, name="Elsewhere")

    def names(**params):
        return {e.name for e in web.get("/training/", params).context["page"]}

    assert names() == {"Pending one", "Finished one", "Elsewhere"}
    assert names(status="completed") == {"Finished one"}
    assert names(project=str(other_project.pk)) == {"Elsewhere"}
    assert names(search="FINISHED") == {"Finished one"}
    assert names(dataset="wine") == {"Finished one"}  # the API's FilterSet: its other filters work too
    assert names(search="pending", status="completed") == set()
    r = web.get("/training/", {"status": "bogus"})
    assert r.status_code == 200 and "Select a valid choice" in _html(r) and not list(r.context["page"])
    assert not list(web.get("/training/", {"project": "not-a-uuid"}).context["page"])
    # the selects keep what was chosen
    html = _html(web.get("/training/", {"status": "completed", "project": str(other_project.pk)}))
    assert '<option value="completed" selected>' in html
    assert f'<option value="{other_project.pk}" selected>' in html


def test_list_pagination(web, project):
    for i in range(23):
        _start(project, name=f"Run {i:02d}")
    first = web.get("/training/")
    assert len(first.context["page"].object_list) == 20
    assert "Page 1 of 2 (23 runs)" in _html(first)
    second = web.get("/training/", {"page": 2, "search": "Run"})
    assert len(second.context["page"].object_list) == 3
    assert "?search=Run&page=1" in _html(second)


def test_list_query_count_does_not_grow(web, owner, project):
    shared = ProjectFactory(configuration={})
    ProjectMemberFactory(project=shared, user=owner)

    def add(n):
        for i in range(n):
            _start(project if i % 2 else shared)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            r = web.get("/training/")
        assert r.status_code == 200
        return len(ctx.captured_queries), len(r.context["page"].object_list)

    add(2)
    count()  # warm per-process caches
    small, rows = count()
    assert rows == 2
    add(6)
    large, rows = count()
    assert rows == 8
    assert small == large, f"{small} queries for 2 executions, {large} for 8"


# ---- start form ----------------------------------------------------------------------------------

def test_start_form_offers_writable_projects_and_every_algorithm(web, owner, project):
    writable = ProjectFactory(name="Writable shared", configuration={})
    ProjectMemberFactory(project=writable, user=owner, access="write")
    readable = ProjectFactory(name="Read-only shared", configuration={})
    ProjectMemberFactory(project=readable, user=owner, access="read")
    r = web.get("/training/new/")
    assert r.status_code == 200
    html = _html(r)
    assert "Iris across clinics" in html and "Writable shared" in html and "Read-only shared" not in html
    for name in ("fedavg", "fedprox", "fedadam", "krum", "qfedavg"):
        assert f'<option value="{name}"' in html
    assert "Adaptive server optimiser (Adam)" in html
    assert "<code>eta</code>" in html and "<code>client_learning_rate</code>" in html
    for field in ("rounds", "clients", "min_clients", "local_epochs", "batch_size", "learning_rate", "partition",
                  "alpha", "seed", "model_type", "dataset", "strategy_params"):
        assert f'name="{field}"' in html, field
    assert '<option value="dirichlet">' in html
    assert 'name="rounds" value="5"' in html  # the parser's defaults
    assert "<script>" not in html  # CSP: code only from static files


def test_start_form_from_a_project_is_prefilled(web, owner):
    project = ProjectFactory(owner=owner, configuration={"model_type": "linear", "dataset": "diabetes"})
    r = web.get(f"/projects/{project.pk}/train/")
    assert r.status_code == 200
    html = _html(r)
    assert f'<option value="{project.pk}" selected>' in html
    assert '<option value="linear" selected>' in html and '<option value="diabetes" selected>' in html
    assert f"Start training on {project.name}" in html


def _field_error(html: str, field: str) -> str:
    match = re.search(r'<p class="error" id="id_%s-error">(.*?)</p>' % field, html)
    return match.group(1) if match else ""


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"rounds": 0}, "rounds", "rounds must be at least 1"),
    ({"learning_rate": 50}, "learning_rate", "learning_rate must be at most 10.0"),
    ({"clients": 3, "min_clients": 5}, "min_clients", "min_clients (5) is more than the 3 nodes"),
    ({"strategy_params": "{eta: 1"}, "strategy_params", "Not valid JSON"),
    ({"strategy_params": "[1, 2]"}, "strategy_params", "Give a JSON object"),
    ({"algorithm": "fedadam", "strategy_params": '{"eta": -1}'}, "strategy_params", "strategy_params.eta must be &gt; 0.0"),
    ({"strategy_params": '{"bogus": 1}'}, "strategy_params", "&#x27;bogus&#x27; is not a parameter of fedavg"),
    ({"algorithm": "qfedavg"}, "strategy_params", "qfedavg needs client_learning_rate"),
    ({"rounds": "many"}, "rounds", "Enter a whole number."),
    ({"secure_aggregation": "on", "clients": 2, "min_clients": 2}, "clients", "secure aggregation needs at least 3"),
    ({"secure_aggregation": "on", "algorithm": "krum"}, "algorithm", "secure aggregation only reveals the sum"),
    ({"transport": "carrier-pigeon"}, "transport", "Select a valid choice"),
])
def test_a_bad_value_is_shown_next_to_its_field_and_creates_nothing(web, project, change, field, message):
    r = web.post("/training/new/", {**FORM, "project": project.pk, **change})
    assert r.status_code == 200
    html = _html(r)
    assert message in _field_error(html, field), html
    assert re.search(r'<div class="field has-error">\s*<label for="id_%s">' % field, html)
    assert not Execution.objects.exists()


def test_the_form_starts_secure_aggregation_on_the_chosen_transport(web, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post("/training/new/", {**FORM, "project": project.pk, "secure_aggregation": "on", "clients": 4})
    execution = Execution.objects.get()
    assert r.status_code == 302 and execution.privacy["secure_aggregation"] is True
    assert execution.transport == "embedded" and execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert "SecAgg+" in _html(web.get(r["Location"]))


def test_a_project_i_cannot_write_is_refused(web, project):
    readable = ProjectFactory(configuration={})
    r = web.post("/training/new/", {**FORM, "project": readable.pk})
    assert r.status_code == 200
    assert "Select a valid choice" in _field_error(_html(r), "project")
    assert not Execution.objects.exists()


def test_a_valid_form_trains_and_the_page_shows_the_rounds(web, owner, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post("/training/new/", {**FORM, "project": project.pk})
    execution = Execution.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/training/{execution.pk}/"
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.name == "Iris tiny" and execution.created_by == owner
    assert (execution.total_rounds, execution.config["clients"], execution.dataset, execution.model_type) == \
        (2, 3, "iris", "logistic")
    assert execution.config["batch_size"] == 16 and execution.config["seed"] == 3

    page = web.get(r["Location"])
    assert page.status_code == 200
    html = _html(page)
    assert '<span class="badge completed" id="execution-status">completed</span>' in html
    assert '<progress id="execution-progress" class="wide" max="2" value="2"' in html
    assert "Training “Iris tiny” queued." in html
    rounds = list(Round.objects.filter(execution=execution).order_by("number"))
    rows = re.findall(r'<tr data-round="(\d+)">(.*?)</tr>', html, re.S)
    assert [n for n, _ in rows] == ["1", "2"]
    for (_, row), round_ in zip(rows, rounds):
        assert '<span class="badge completed">completed</span>' in row
        assert f'data-col="accuracy" class="num">{round_.server_metrics["accuracy"]:.4f}' in row
        assert f'data-col="eval_accuracy" class="num">{round_.evaluate_metrics["eval_accuracy"]:.4f}' in row
        assert f'data-col="participants" class="num">3<' in row
        assert f'href="/api/v1/fl/executions/{execution.pk}/rounds/{round_.number}/checkpoint"' in row
    chart = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S)
                       .group(1))
    assert chart["total_rounds"] == 2
    assert [p["round"] for p in chart["rounds"]] == [1, 2]
    assert [p["accuracy"] for p in chart["rounds"]] == [r.server_metrics["accuracy"] for r in rounds]
    assert all(0 <= p["accuracy"] <= 1 and p["loss"] > 0 and p["train_loss"] > 0 for p in chart["rounds"])
    assert "Execution completed" in html  # the log
    # the registered model, downloadable in each of its formats with the session
    assert 'id="model"' in html and "current version 2" in html
    links = re.findall(r'href="(/api/v1/fl/models/[^"]+/download\?format=(\w+))"', html)
    assert [fmt for _, fmt in links] == ["npz", "pt", "onnx"]
    onnx_file = web.get(links[2][0])
    assert onnx_file.status_code == 200 and onnx_file["X-Model-Version"] == "2"
    assert 'id="execution-actions"' not in html  # nothing to do with a completed run
    # the list shows it with its accuracy; the project page lists it
    listing = _html(web.get("/training/"))
    assert '<span class="badge completed">completed</span>' in listing
    assert f'{execution.metrics["accuracy"]:.3f}' in listing
    assert "Iris tiny" in _html(web.get(f"/projects/{project.pk}/"))


def test_the_chart_falls_back_to_the_clients_evaluation(web, project):
    execution = _start(project)
    Round.objects.create(execution=execution, number=1, status="completed",
                         evaluate_metrics={"eval_accuracy": 0.5, "eval_loss": 1.25})
    html = _html(web.get(f"/training/{execution.pk}/"))
    chart = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html).group(1))
    assert chart["rounds"] == [{"round": 1, "accuracy": 0.5, "loss": 1.25, "train_loss": None}]


# ---- execution page and its buttons --------------------------------------------------------------

def _buttons(html: str) -> set[str]:
    """The actions whose forms are shown (not those kept hidden for later)."""
    return set(re.findall(r'action="/training/[0-9a-f-]+/(stop|suspend|resume)/" class="[^"]*">', html))


@pytest.mark.parametrize(("status", "buttons"), [
    ("pending", {"stop"}),
    ("running", {"stop", "suspend"}),
    ("suspended", {"stop", "resume"}),
    ("failed", {"resume"}),
    ("stopped", {"resume"}),
    ("completed", set()),
])
def test_the_page_offers_the_buttons_of_its_status(web, project, status, buttons):
    execution = _start(project)
    _set_status(execution, status)
    r = web.get(f"/training/{execution.pk}/")
    assert r.status_code == 200
    html = _html(r)
    assert _buttons(html) == buttons
    assert f'<span class="badge {status}" id="execution-status">{status}</span>' in html
    live = json.loads(re.search(r'<script id="execution-live" type="application/json">(.*?)</script>', html).group(1))
    assert live["executionId"] == str(execution.pk) and live["status"] == status
    assert "No round has started yet." in html and "js/execution.js" in html and "js/chart.js" in html
    # a pending run's Suspend button waits, hidden, for the worker to start it (execution.js shows it)
    assert ('data-show-when="running" hidden>' in html) == (status == "pending")


def test_a_requested_stop_hides_the_buttons(web, project):
    execution = _start(project)
    _set_status(execution, ExecutionStatus.RUNNING, control=ControlRequest.STOP)
    html = _html(web.get(f"/training/{execution.pk}/"))
    assert _buttons(html) == set()
    assert "A stop was requested" in html


def test_stop_suspend_and_resume_call_the_services(web, project):
    execution = _start(project)
    _set_status(execution, ExecutionStatus.RUNNING)

    r = web.post(f"/training/{execution.pk}/suspend/")
    assert r.status_code == 302 and r["Location"] == f"/training/{execution.pk}/"
    execution.refresh_from_db()
    assert execution.control == ControlRequest.SUSPEND and execution.status == ExecutionStatus.RUNNING

    web.post(f"/training/{execution.pk}/stop/")
    execution.refresh_from_db()
    assert execution.control == ControlRequest.STOP
    assert "Stop requested" in _html(web.get(f"/training/{execution.pk}/"))

    # the worker honours it between rounds; then resume queues it again
    _set_status(execution, ExecutionStatus.SUSPENDED, control="")
    r = web.post(f"/training/{execution.pk}/resume/", {"from_round": ""})
    assert r.status_code == 302
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.PENDING and execution.current_round == 0
    assert "Resumed from the beginning" in _html(web.get(r["Location"]))

    r = web.post(f"/training/{execution.pk}/stop/", follow=True)  # a pending one stops at once
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.STOPPED and execution.finished_at is not None
    assert "Stopped." in _html(r) and _buttons(_html(r)) == {"resume"}


def test_resume_from_a_chosen_checkpoint(web, project):
    execution = _start(project, rounds=3)
    for n in (1, 2):
        Round.objects.create(execution=execution, number=n, status="completed", checkpoint=f"ck/{n}.npz")
    _set_status(execution, ExecutionStatus.STOPPED, current_round=2)
    html = _html(web.get(f"/training/{execution.pk}/"))
    assert '<option value="1">from round 1</option>' in html and '<option value="2">from round 2</option>' in html

    r = web.post(f"/training/{execution.pk}/resume/", {"from_round": "1"}, follow=True)
    assert "Resumed from round 1" in _html(r)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.PENDING
    assert execution.resume_from_round == 1 and execution.current_round == 1
    assert list(Round.objects.filter(execution=execution).values_list("number", flat=True)) == [1]


def test_a_refused_action_is_reported_and_changes_nothing(web, project):
    execution = _start(project)
    _set_status(execution, ExecutionStatus.COMPLETED)
    r = web.post(f"/training/{execution.pk}/suspend/", follow=True)
    assert "Only a running execution can be suspended" in _html(r)
    r = web.post(f"/training/{execution.pk}/resume/", {"from_round": "7"}, follow=True)
    assert "There is no checkpoint of round 7" in _html(r)
    r = web.post(f"/training/{execution.pk}/resume/", {"from_round": "x"}, follow=True)
    assert "Choose a round to resume from" in _html(r)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED and execution.control == ""
    assert web.get(f"/training/{execution.pk}/stop/").status_code == 405


def test_the_page_shows_the_newest_log_lines(web, project):
    from django.utils import timezone

    from training.models import ExecutionLog

    execution = _start(project)
    now = timezone.now()
    ExecutionLog.objects.bulk_create([
        ExecutionLog(execution=execution, timestamp=now + timezone.timedelta(seconds=i), message=f"line {i:03d}")
        for i in range(60)
    ])
    html = _html(web.get(f"/training/{execution.pk}/"))
    shown = re.findall(r"line (\d{3})", html)
    assert shown == [f"{i:03d}" for i in range(10, 60)]


def test_project_page_links_to_training(web, project):
    _start(project, name="Earlier run")
    html = _html(web.get(f"/projects/{project.pk}/"))
    assert f'href="/projects/{project.pk}/train/"' in html
    assert "Earlier run" in html
