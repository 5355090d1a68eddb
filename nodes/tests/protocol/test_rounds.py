"""GET /rounds/current, which execution a device serves, and the worker's round pieces (waiting,
early close for nodes known to be gone, deadline, stop), plus the device execution's config."""

import hashlib
import io
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from core.exceptions import ApplicationError
from core.models import Event
from nodes.choices import NodeStatus
from nodes.models import DeviceModel, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node
from nodes.protocol import rounds, services, signatures
from nodes.tests.protocol.conftest import device_execution, open_first_round, update_body
from projects.tests.factories import ProjectFactory
from training import services as training_services
from training.choices import ControlRequest, ExecutionStatus, Transport
from training.models import Execution, ExecutionLog, Round
from training.runner import run_execution
from wia_fl import wire

pytestmark = pytest.mark.django_db

KEYS = {"round_id", "round_number", "status", "global_model_url", "model_version", "model_checksum", "model_size",
        "training_config", "deadline", "execution_id", "execution_status", "update_submitted"}


def test_pending_when_there_is_nothing_to_serve(make_device, device_project):
    device = make_device()
    data = assert_success(device.current())["data"]
    assert set(data) == KEYS
    assert data["status"] == "pending" and data["round_id"] is None and data["execution_id"] is None
    assert data["execution_status"] is None
    # an embedded execution is not a device's business
    Execution.objects.filter(pk=device_execution(device_project).pk).update(transport=Transport.EMBEDDED)
    assert assert_success(device.current())["data"]["status"] == "pending"
    assert Node.objects.get(pk=device.client_id).current_execution is None


def test_a_device_joins_the_newest_running_device_execution_it_can_see(make_device, device_project, registrant):
    older = device_execution(device_project)
    newer = device_execution(ProjectFactory(owner=registrant, configuration={}))
    device_execution(ProjectFactory(configuration={}))  # someone else's
    device_execution(device_project, status=ExecutionStatus.PENDING)
    device = make_device()
    data = assert_success(device.current())["data"]
    assert data["execution_id"] == str(newer.pk) and data["status"] == "pending"  # no round open yet
    node = Node.objects.get(pk=device.client_id)
    assert node.current_execution_id == newer.pk and node.role == "trainer"
    # a device registered into a project serves that project only
    scoped = make_device("scoped", project_id=str(device_project.pk))
    assert assert_success(scoped.current())["data"]["execution_id"] == str(older.pk)


def test_an_open_round_is_active_with_the_seed_002_fields(open_round, make_device):
    device_round, arrays = open_round
    device = make_device()
    data = assert_success(device.current())["data"]
    assert data["status"] == "active" and data["round_id"] == str(device_round.pk) and data["round_number"] == 1
    assert data["execution_status"] == "running"
    assert data["model_version"] == device_round.global_model.version
    assert data["global_model_url"] == f"http://testserver/api/v1/models/{data['model_version']}"
    assert data["deadline"] == device_round.deadline.isoformat().replace("+00:00", "Z")
    config = data["training_config"]
    assert config["model_type"] == "logistic" and config["dataset"] == "iris" and config["format"] == "pollen-tensors/1"
    assert config["local_epochs"] == 1 and config["batch_size"] == 16 and config["round_timeout"] == 60
    assert config["tensors"]["weight"] == {"shape": [4, 3], "dtype": "float32"}
    assert data["update_submitted"] is False
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    assert assert_success(device.current())["data"]["update_submitted"] is True
    # past its deadline the round is no longer offered
    DeviceRound.objects.filter(pk=device_round.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert assert_success(device.current())["data"]["status"] == "pending"


def test_round_started_carries_the_device_fields(open_round):
    device_round, _ = open_round
    event = Event.objects.get(event="round.started")
    assert event.data["transport"] == "device" and event.data["round_id"] == str(device_round.pk)
    assert event.data["round_number"] == 1 and event.data["model_version"] == device_round.global_model.version
    assert event.data["global_model_url"].endswith(f"/api/v1/models/{device_round.global_model.version}")
    assert event.data["deadline"] and event.data["training_config"]["model_type"] == "logistic"
    assert event.data["execution_id"] == str(device_round.execution_id)


def test_a_finished_execution_is_completed_until_a_newer_one_runs(open_round, make_device, device_project):
    device_round, _ = open_round
    device = make_device()
    assert assert_success(device.current())["data"]["status"] == "active"
    Execution.objects.filter(pk=device_round.execution_id).update(status=ExecutionStatus.COMPLETED)
    data = assert_success(device.current())["data"]
    assert data["status"] == "completed" and data["execution_id"] == str(device_round.execution_id)
    assert data["execution_status"] == "completed"
    assert data["model_version"] == device_round.global_model.version and data["round_id"] is None
    Execution.objects.filter(pk=device_round.execution_id).update(status=ExecutionStatus.FAILED)
    data = assert_success(device.current())["data"]
    assert data["status"] == "completed" and data["execution_status"] == "failed"
    newer = device_execution(device_project)
    data = assert_success(device.current())["data"]
    assert data["execution_id"] == str(newer.pk) and data["status"] == "pending"
    assert Node.objects.get(pk=device.client_id).current_execution_id == newer.pk


# ---- invitations: round 1 reaches devices that never asked ---------------------------------------------

def test_opening_a_round_invites_the_online_devices_the_serving_rule_gives_the_execution(
        make_device, device_project, registrant, django_capture_on_commit_callbacks):
    from accounts.tests.factories import UserFactory
    from nodes.models import DeviceCredential

    listening = make_device("listening")  # registered, never polled: it only listens on the WebSocket
    offline = make_device("offline")
    revoked = make_device("revoked")
    scoped_elsewhere = make_device("elsewhere", project_id=str(ProjectFactory(owner=registrant, configuration={}).pk))
    Node.objects.filter(pk=offline.client_id).update(status=NodeStatus.OFFLINE)
    services.device_token_revoke(node=Node.objects.get(pk=revoked.client_id))
    busy = make_device("busy")  # serves another running device execution: it stays there
    other = device_execution(ProjectFactory(owner=registrant, configuration={}))
    assert assert_success(busy.current())["data"]["execution_id"] == str(other.pk)
    stranger = UserFactory(roles=["ml_engineer"])  # a device of someone who cannot see the project
    node_of_stranger = Node.objects.create(name="theirs", type="client", registered_by=stranger, status="connected")
    DeviceCredential.objects.create(node=node_of_stranger, owner=stranger, device_id="theirs", platform="linux",
                                    public_key=listening.public_key)

    execution = device_execution(device_project)
    with django_capture_on_commit_callbacks(execute=True):
        device_round, _ = open_first_round(execution)
    assigned = set(Node.objects.filter(current_execution=execution).values_list("pk", flat=True))
    assert {str(pk) for pk in assigned} == {listening.client_id}
    node = Node.objects.get(pk=listening.client_id)
    assert node.role == "trainer"
    event = Event.objects.get(event="round.started", data__execution_id=str(execution.pk))
    assert f"node.{listening.client_id}" in event.groups
    for absent in (offline, revoked, scoped_elsewhere, busy):
        assert f"node.{absent.client_id}" not in event.groups
    assert f"node.{node_of_stranger.pk}" not in event.groups
    # what the device then reads is the round it was invited to
    data = assert_success(listening.current())["data"]
    assert data["round_id"] == str(device_round.pk) and data["status"] == "active"


def test_a_device_is_invited_only_by_its_newest_running_execution(make_device, device_project, registrant,
                                                                  django_capture_on_commit_callbacks):
    device = make_device()
    older = device_execution(device_project)
    newer = device_execution(ProjectFactory(owner=registrant, configuration={}))
    open_first_round(older)
    assert Node.objects.get(pk=device.client_id).current_execution_id is None
    open_first_round(newer)
    assert Node.objects.get(pk=device.client_id).current_execution_id == newer.pk
    # done with a finished execution, it moves to the next one that opens a round
    Execution.objects.filter(pk=newer.pk).update(status=ExecutionStatus.COMPLETED)
    latest = device_execution(ProjectFactory(owner=registrant, configuration={}))
    open_first_round(latest)
    assert Node.objects.get(pk=device.client_id).current_execution_id == latest.pk


def test_round_queries_are_limited_per_device(make_device, settings):
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_rounds": "1/min"}
    device = make_device()
    assert_success(device.current())
    assert_error(device.current(), 429, "RATE_LIMIT_EXCEEDED")


def test_the_current_round_costs_the_same_queries_however_many_devices_sent_updates(open_round, make_device):
    device_round, arrays = open_round
    device = make_device("asking")
    assert_success(device.current())

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert_success(device.current())
        return len(captured)

    baseline = queries()
    for i in range(4):
        other = make_device(f"sender-{i}")
        assert_success(other.current())
        assert_success(other.submit(device_round.pk, update_body(arrays, shift=0.01 * i)), 202)
    assert queries() == baseline


# ---- the worker's wait ------------------------------------------------------------------------------

def _joined(make_device, count: int, execution):
    devices = [make_device(f"n{i}") for i in range(count)]
    Node.objects.filter(pk__in=[d.client_id for d in devices]).update(current_execution=execution, role="trainer")
    return devices


def test_the_wait_ends_when_the_target_arrived(device_project, make_device):
    execution = device_execution(device_project, clients=2)
    device_round, arrays = open_first_round(execution)
    devices = _joined(make_device, 2, execution)
    for i, device in enumerate(devices):
        assert_success(device.submit(device_round.pk, update_body(arrays, shift=0.1 * i)), 202)
    assert rounds.wait_for_updates(execution, device_round) == "target"


def test_the_wait_ends_early_when_every_missing_node_is_known_to_be_gone(device_project, make_device):
    execution = device_execution(device_project, clients=3, round_timeout=600)
    device_round, arrays = open_first_round(execution)
    sender, gone, stale = _joined(make_device, 3, execution)
    assert_success(sender.submit(device_round.pk, update_body(arrays)), 202)
    Node.objects.filter(pk=gone.client_id).update(status=NodeStatus.OFFLINE)
    # not yet marked offline, but past twice its heartbeat interval
    Node.objects.filter(pk=stale.client_id).update(stale_at=timezone.now() - timedelta(seconds=1),
                                                   last_seen=timezone.now() - timedelta(minutes=5))
    started = timezone.now()
    assert rounds.wait_for_updates(execution, device_round) == "offline"
    assert timezone.now() - started < timedelta(seconds=5)


def test_the_wait_goes_on_while_a_missing_node_is_alive_and_ends_at_the_deadline(device_project, make_device,
                                                                                 monkeypatch):
    execution = device_execution(device_project, clients=3)
    device_round, arrays = open_first_round(execution)
    alive, gone = _joined(make_device, 2, execution)
    Node.objects.filter(pk=gone.client_id).update(status=NodeStatus.OFFLINE)
    looks = []

    def pause(seconds):
        looks.append(seconds)
        if len(looks) == 3:  # time runs out
            DeviceRound.objects.filter(pk=device_round.pk).update(deadline=timezone.now())
            device_round.deadline = timezone.now()

    monkeypatch.setattr(rounds, "pause", pause)
    assert rounds.wait_for_updates(execution, device_round) == "deadline"
    assert len(looks) == 3


def test_the_wait_gives_way_to_a_stop(device_project, monkeypatch):
    execution = device_execution(device_project)
    device_round, _ = open_first_round(execution)
    monkeypatch.setattr(rounds, "pause", lambda s: Execution.objects.filter(pk=execution.pk).update(
        control=ControlRequest.STOP))
    assert rounds.wait_for_updates(execution, device_round) == ControlRequest.STOP


# ---- whole runs without devices -----------------------------------------------------------------------

def test_a_round_without_any_update_fails_the_run_with_fl004(device_project, settings):
    execution = device_execution(device_project, round_timeout=1, status=ExecutionStatus.PENDING)
    assert run_execution(execution.pk) == ExecutionStatus.FAILED
    execution.refresh_from_db()
    assert execution.error_code == "FL004" and "No device sent an update" in execution.error_message
    device_round = DeviceRound.objects.get(execution=execution)
    assert device_round.status == DeviceRoundStatus.FAILED
    assert Round.objects.get(execution=execution).status == "failed"
    assert ExecutionLog.objects.filter(execution=execution, message__contains="closed (deadline)").exists()


def test_a_stop_during_a_round_stops_the_run(device_project, monkeypatch):
    execution = device_execution(device_project, status=ExecutionStatus.PENDING)
    monkeypatch.setattr(rounds, "pause", lambda s: Execution.objects.filter(pk=execution.pk).update(
        control=ControlRequest.STOP))
    assert run_execution(execution.pk) == ExecutionStatus.STOPPED
    assert DeviceRound.objects.get(execution=execution).status == DeviceRoundStatus.FAILED


# ---- progress reports -------------------------------------------------------------------------------

def test_progress_reports_are_broadcast_and_checked(open_round, make_device, django_capture_on_commit_callbacks):
    device_round, _ = open_round
    device = make_device()
    assert_success(device.current())
    node = Node.objects.get(pk=device.client_id)
    services.device_progress_report(node=node, round_number=1, progress_percent=45,
                                    estimated_completion="2030-01-01T00:00:00Z")
    event = Event.objects.get(event="client.training_progress")
    assert event.data["progress_percent"] == 45.0 and event.data["client_id"] == device.client_id
    assert f"node.{device.client_id}" in event.groups
    for kwargs, status in (({"round_number": 1, "progress_percent": 101}, 400),
                           ({"round_number": 0, "progress_percent": 5}, 400),
                           ({"round_number": 2, "progress_percent": 5}, 409)):
        with pytest.raises(ApplicationError) as exc:
            services.device_progress_report(node=node, **kwargs)
        assert exc.value.http_status == status


# ---- starting a device execution ---------------------------------------------------------------------

def test_a_device_execution_is_checked_when_it_starts(registrant, device_project, monkeypatch):
    monkeypatch.setattr("training.services._enqueue", lambda execution: None)
    execution = training_services.execution_start(project=device_project, user=registrant, config={
        "transport": "device", "rounds": 2, "clients": 3, "model_type": "logistic", "dataset": "digits",
        "round_timeout": 30})
    assert execution.transport == Transport.DEVICE and execution.config["round_timeout"] == 30
    assert execution.config["source"] == "builtin"
    default = training_services.execution_start(project=device_project, user=registrant, config={
        "transport": "device", "model_type": "logistic", "dataset": "iris"})
    assert default.config["round_timeout"] == 600
    for config, privacy, field in (
            ({"round_timeout": 1}, None, "round_timeout"),
            ({"round_timeout": "soon"}, None, "round_timeout"),
            ({"algorithm": "qfedavg", "strategy_params": {"client_learning_rate": 0.1}}, None, "algorithm"),
            ({}, {"differential_privacy": True}, "privacy_config"),
            ({"source": "upload"}, None, "source")):
        with pytest.raises(ApplicationError) as exc:
            training_services.execution_start(project=device_project, user=registrant, privacy=privacy, config={
                "transport": "device", "model_type": "logistic", "dataset": "iris", **config})
        assert exc.value.http_status == 422 and exc.value.details["field"] == field, (config, exc.value.details)
    assert Execution.objects.count() == 2


def test_a_suspended_device_execution_resumes_from_its_checkpoint(device_project, make_device, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    """Devices answer every open round (through the service, from the worker's own pauses); a suspend
    during round 2 abandons it, and resuming trains rounds 2 and 3 from round 1's model."""
    execution = device_execution(device_project, rounds_total=3, clients=2, status=ExecutionStatus.PENDING)
    devices = _joined(make_device, 2, execution)
    state = {"suspend_in": 2}

    def pause(seconds):
        for device_round in DeviceRound.objects.filter(execution=execution, status=DeviceRoundStatus.OPEN):
            if device_round.number == state["suspend_in"]:
                state["suspend_in"] = None
                Execution.objects.filter(pk=execution.pk).update(control=ControlRequest.SUSPEND)
                return
            with device_round.global_model.file.open("rb") as fh:
                arrays, _ = wire.decode_model(fh.read())
            for i, device in enumerate(devices):
                node = Node.objects.get(pk=device.client_id)
                if DeviceUpdate.objects.filter(round=device_round, node=node).exists():
                    continue
                body = wire.encode_update({k: v + np.float32(0.01 * (i + 1)) for k, v in arrays.items()},
                                          num_examples=10 + i)
                services.device_update_submit(node=node, round_id=device_round.pk, body=io.BytesIO(body),
                                              content_length=len(body), checksum=hashlib.sha256(body).hexdigest(),
                                              signature=signatures.sign_b64(device.key, body))

    monkeypatch.setattr(rounds, "pause", pause)
    assert run_execution(execution.pk) == ExecutionStatus.SUSPENDED
    execution.refresh_from_db()
    assert execution.current_round == 1
    first = DeviceModel.objects.get(execution=execution, number=1)
    with django_capture_on_commit_callbacks(execute=True):
        training_services.execution_resume(execution=execution)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert list(Round.objects.filter(execution=execution).order_by("number").values_list("number", "participants")) \
        == [(1, 2), (2, 2), (3, 2)]
    assert DeviceModel.objects.get(execution=execution, number=1).pk == first.pk
    assert DeviceRound.objects.get(execution=execution, number=2).global_model_id == first.pk
    assert list(DeviceModel.objects.filter(execution=execution).values_list("number", flat=True)) == [0, 1, 2, 3]
    # FedAvg of two updates shifted by 0.01 and 0.02 with 10 and 11 examples moves each weight by their mean
    with first.file.open("rb") as fh:
        before, _ = wire.decode_model(fh.read())
    with DeviceModel.objects.get(execution=execution, number=2).file.open("rb") as fh:
        after, _ = wire.decode_model(fh.read())
    np.testing.assert_allclose(after["bias"], before["bias"] + (0.01 * 10 + 0.02 * 11) / 21, rtol=1e-5, atol=1e-6)


def test_a_round_left_open_by_a_killed_worker_is_closed_when_the_execution_is_reaped(
        open_round, make_device, settings, django_capture_on_commit_callbacks):
    """The worker died mid-round (no chance to close it); the reaper fails the execution after its
    heartbeat timeout. The round is closed as failed and its running sum removed, and a device
    uploading to it gets 409, not a 202 for a round nobody will aggregate."""
    from pathlib import Path

    from training.tasks import executions_reap

    device_round, arrays = open_round
    early, late = make_device("early"), make_device("late")
    for device in (early, late):
        assert_success(device.current())
    assert_success(early.submit(device_round.pk, update_body(arrays)), 202)
    assert Path(device_round.state_dir).exists()
    Execution.objects.filter(pk=device_round.execution_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT_SECONDS + 5))
    with django_capture_on_commit_callbacks(execute=True):
        assert executions_reap() == 1
    device_round.refresh_from_db()
    assert device_round.execution.status == ExecutionStatus.FAILED
    assert device_round.status == DeviceRoundStatus.FAILED and not Path(device_round.state_dir).exists()
    body = assert_error(late.submit(device_round.pk, update_body(arrays, shift=0.02)), 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"]["status"] == DeviceRoundStatus.FAILED
    assert DeviceUpdate.objects.filter(round=device_round).count() == 1


def test_an_update_for_a_round_of_an_execution_that_ended_is_refused(open_round, make_device):
    """Even before the round itself is closed: what decides is that its execution no longer runs."""
    device_round, arrays = open_round
    device = make_device("late")
    assert_success(device.current())
    Execution.objects.filter(pk=device_round.execution_id).update(status=ExecutionStatus.FAILED)
    body = assert_error(device.submit(device_round.pk, update_body(arrays)), 409, "RESOURCE_CONFLICT")
    assert "the execution is failed" in body["error"]["message"]
    assert not DeviceUpdate.objects.exists()
