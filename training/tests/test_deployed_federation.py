"""A deployed federation: a real Flower SuperLink and SuperNodes on this machine, runs submitted
through the Control API, rounds reported back over the signed callback."""

import json
import socket
import uuid

import pytest
from django.test import override_settings

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import UserFactory
from projects import services as project_services
from projects.management.commands.seed_demo import demo_app_zip
from projects.tests.factories import ProjectFactory
from training import services
from training.choices import ExecutionStatus, Transport
from training.deployed import build_fab, callback_secret
from training.engine.callback import SIGNATURE_HEADER, sign, verify
from training.local_federation import LocalFederation, free_port
from training.models import Execution, ExecutionLog, Round, RoundClient


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_an_execution_trains_on_an_authenticated_tls_superlink_with_real_supernodes(live_server, builtin_roles,
                                                                                   django_capture_on_commit_callbacks):
    # builtin_roles: the owner's role exists even after another transactional test's flush emptied the tables.
    port = free_port()
    # TLS with a throwaway CA, and SuperNode authentication: only registered keys may join.
    with LocalFederation(supernodes=2, port=port, auth=True) as federation, override_settings(
            FLOWER_SUPERLINK_ADDRESS=federation.address, FLOWER_INSECURE=False,
            FLOWER_ROOT_CERTIFICATES=str(federation.ca_path), FLOWER_CALLBACK_URL=live_server.url,
            FLOWER_POLL_SECONDS=0.5):
        federation.wait_for_nodes(timeout=120)  # SuperNodes with TLS and auth are slow to join on a loaded machine
        owner = UserFactory()
        project = ProjectFactory(owner=owner, configuration={})
        with django_capture_on_commit_callbacks(execute=True):
            execution = services.execution_start(project=project, user=owner, config={
                "transport": "deployed", "rounds": 2, "clients": 2, "model_type": "logistic",
                "dataset": "digits", "local_epochs": 2, "seed": 3, "fraction_evaluate": 0.0})
        execution.refresh_from_db()
        # An uploaded Flower app, unmodified, on the same federation.
        project_services.project_upload(project=project, uploaded_by=owner, file=SimpleUploadedFile(
            "app.zip", demo_app_zip(), content_type="application/zip"))
        with django_capture_on_commit_callbacks(execute=True):
            uploaded = services.execution_start(project=project, user=owner, config={
                "transport": "deployed", "rounds": 1, "clients": 2})
        uploaded.refresh_from_db()
    assert uploaded.status == ExecutionStatus.COMPLETED, uploaded.error_message
    assert uploaded.upload is not None
    assert list(uploaded.rounds.values_list("number", "participants")) == [(1, 2)]
    assert uploaded.rounds.get().checkpoint

    assert execution.transport == Transport.DEPLOYED
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    rounds = list(Round.objects.filter(execution=execution).order_by("number"))
    assert [r.number for r in rounds] == [1, 2]
    assert all(r.participants == 2 and r.checkpoint and r.status == "completed" for r in rounds), rounds
    assert rounds[-1].server_metrics["accuracy"] >= 0.8, rounds[-1].server_metrics
    # two real SuperNodes, with Flower's own node ids, trained each round
    assert RoundClient.objects.filter(round__execution=execution, phase="train").values("node_id").distinct().count() == 2
    assert ExecutionLog.objects.filter(execution=execution, message__contains="Flower run").exists()
    # the ServerApp's own output, read back through StreamLogs
    assert ExecutionLog.objects.filter(execution=execution, source="superlink").exists()


def test_the_fab_carries_the_execution_and_the_shim(db):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    execution = Execution.objects.create(project=project, created_by=owner, model_type="logistic", dataset="digits",
                                         transport=Transport.DEPLOYED, total_rounds=3,
                                         config={"rounds": 3, "clients": 2, "seed": 1})
    import io
    import zipfile

    import tomli

    with zipfile.ZipFile(io.BytesIO(build_fab(execution))) as fab:
        names = set(fab.namelist())
        pyproject = tomli.loads(fab.read("pyproject.toml").decode())
    assert {"pollen_federation/server_app.py", "pollen_federation/client_app.py"} <= names
    app = pyproject["tool"]["flwr"]["app"]
    assert app["components"]["serverapp"] == "pollen_federation.server_app:app"
    assert app["config"]["pollen.execution-id"] == str(execution.pk)
    assert app["config"]["pollen.rounds"] == 3


def test_signatures_bind_the_body_the_execution_and_the_time():
    body = b'{"type": "hello"}'
    header = sign("s3cret", "exec-1", body)
    assert verify("s3cret", "exec-1", body, header)
    assert not verify("other", "exec-1", body, header)
    assert not verify("s3cret", "exec-2", body, header)
    assert not verify("s3cret", "exec-1", body + b" ", header)
    assert not verify("s3cret", "exec-1", body, sign("s3cret", "exec-1", body, timestamp=1_000))
    assert not verify("s3cret", "exec-1", body, "garbage")


@pytest.fixture
def running_deployed(db):
    owner = UserFactory()
    project = ProjectFactory(owner=owner, configuration={})
    return Execution.objects.create(project=project, created_by=owner, model_type="logistic", dataset="digits",
                                    transport=Transport.DEPLOYED, status=ExecutionStatus.RUNNING, total_rounds=3,
                                    config={"rounds": 3, "clients": 2})


def _post(client, execution_id, payload, *, secret=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post(f"/api/v1/fl/executions/{execution_id}/callback", data=body, content_type="application/json",
                       headers={SIGNATURE_HEADER: sign(secret or callback_secret(), str(execution_id), body)})


def test_the_callback_refuses_unsigned_and_wrongly_signed_reports(client, running_deployed):
    url = f"/api/v1/fl/executions/{running_deployed.pk}/callback"
    assert client.post(url, data="{}", content_type="application/json").status_code == 401
    response = _post(client, running_deployed.pk, {"type": "round_started", "round": 1}, secret="not-the-secret")
    assert response.status_code == 401 and response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert not Round.objects.exists()


def test_the_callback_records_a_round_and_answers_stop(client, running_deployed):
    assert _post(client, running_deployed.pk, {"type": "hello"}).json()["data"] == {
        "round_offset": 0, "initial_arrays": None, "poll_seconds": 3.0, "liveness_seconds": 5.0}
    assert _post(client, running_deployed.pk, {"type": "round_started", "round": 1}).json()["data"]["action"] == "continue"
    result = {"node_id": 2**64 - 5, "partition_id": None, "phase": "train", "num_examples": 40,
              "metrics": {"train_loss": 0.5}, "duration_ms": 12.0, "bytes_down": 10, "bytes_up": 10, "error": ""}
    response = _post(client, running_deployed.pk, {"type": "round_completed", "round": 1, "duration_seconds": 1.5,
                                                   "results": [result], "server_metrics": {"accuracy": 0.7}})
    assert response.status_code == 200, response.json()
    round_one = Round.objects.get(execution=running_deployed, number=1)
    assert round_one.status == "completed" and round_one.server_metrics == {"accuracy": 0.7}
    assert round_one.clients.get().node_id == (2**64 - 5) & 0x7FFFFFFFFFFFFFFF
    services.execution_stop(execution=running_deployed, reason="enough", save_checkpoint=True)
    assert _post(client, running_deployed.pk, {"type": "round_started", "round": 2}).json()["data"]["action"] == "stop"


@pytest.mark.parametrize("payload, status", [
    ({"type": "round_started", "round": "one"}, 422),
    ({"type": "round_started", "round": -1}, 422),
    ({"type": "round_completed", "round": 1, "checkpoint": "!!not base64!!"}, 422),
    ({"type": "nonsense"}, 422),
])
def test_the_callback_answers_malformed_reports_with_a_clear_error(client, running_deployed, payload, status):
    response = _post(client, running_deployed.pk, payload)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_the_callback_is_404_for_unknown_and_409_for_finished_executions(client, running_deployed):
    assert _post(client, uuid.uuid4(), {"type": "hello"}).status_code == 404
    assert _post(client, running_deployed.pk, {"type": "hello"}, raw=b"[1, 2]").status_code == 400
    Execution.objects.filter(pk=running_deployed.pk).update(status=ExecutionStatus.COMPLETED)
    assert _post(client, running_deployed.pk, {"type": "hello"}).status_code == 409


def test_a_report_larger_than_djangos_form_limit_is_read_but_the_callback_limit_holds(client, running_deployed,
                                                                                       settings):
    import base64
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, arr_0=np.ones((1600, 1000), dtype=np.float32))  # 6.4 MB, over DATA_UPLOAD_MAX_MEMORY_SIZE
    report = {"type": "checkpoint", "round": 1, "checkpoint": base64.b64encode(buffer.getvalue()).decode()}
    assert len(json.dumps(report)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert _post(client, running_deployed.pk, report).status_code == 200
    settings.FLOWER_CALLBACK_MAX_BYTES = 1000
    response = _post(client, running_deployed.pk, report)
    assert response.status_code == 413 and response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_the_callback_says_which_awaited_nodes_the_registry_knows_are_gone(client, running_deployed):
    from datetime import timedelta

    from django.utils import timezone

    from nodes.tests.factories import NodeFactory

    def node(flower_id, **fields):
        return NodeFactory(metadata={"agent": {"supernode": {"flower_node_id": str(flower_id)}}}, **fields)

    big = 2 ** 64 - 7  # Flower's ids are unsigned 64-bit
    node(big, status="offline")
    node(11, last_seen=timezone.now() - timedelta(minutes=5))  # past its interval, not yet swept
    node(12)  # alive
    node(13, status="offline", project=ProjectFactory())  # another project's node is not answered for
    node(14, status="offline", project=running_deployed.project)
    response = _post(client, running_deployed.pk, {"type": "liveness", "node_ids": [big, 11, 12, 13, 14, 99]})
    assert response.status_code == 200, response.json()
    assert response.json()["data"] == {"offline": sorted([11, 14, big])}
    log = ExecutionLog.objects.get(execution=running_deployed)
    assert log.level == "WARNING" and "3 node(s) the registry marked offline" in log.message
    assert _post(client, running_deployed.pk, {"type": "liveness", "node_ids": [12]}).json()["data"] == {"offline": []}
    assert ExecutionLog.objects.count() == 1  # a question with no gone node leaves no log line


@pytest.mark.parametrize("node_ids", ["12", [True], [-1], [2 ** 64], ["12"], [1.5], list(range(10_001))])
def test_a_malformed_liveness_question_is_a_clear_error(client, running_deployed, node_ids):
    response = _post(client, running_deployed.pk, {"type": "liveness", "node_ids": node_ids})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["field"] == "node_ids"


@pytest.mark.timeout(120)
def test_a_supernode_that_could_not_bind_its_port_is_started_again(monkeypatch, settings):
    """A SuperNode exits at once when its ClientAppIo port is taken (here, on purpose, by a socket
    of this test): the federation starts it again on another free port instead of waiting for a
    node that will never come."""
    from training import local_federation

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real_free_port = local_federation.free_port
    monkeypatch.setattr(local_federation, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host))
    try:
        with LocalFederation(supernodes=1, port=free_port()) as federation:
            assert federation.wait_for_nodes(timeout=90) == 1
            assert federation._restarts == 1
            assert "failed to start" in (federation.workdir / "supernode-0.log").read_text()
    finally:
        taken.close()
