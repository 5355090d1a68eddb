"""seed 002's gRPC service on loopback: a real grpcio server in this process, the real services and
database, a real client stub.

The server's threads open their own database connections, so these tests use a transactional
database (the in-memory SQLite test database is shared between threads). Each error case checks
the gRPC status and the REST error that travels in the trailing metadata.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from django.test import Client
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accounts import services as account_services
from core.exceptions import ApplicationError, NotFound, ValidationFailed
from nodes.models import DeviceRound, DeviceUpdate, Node
from nodes.protocol import rounds, services, signatures
from nodes.protocol.grpc import federated_learning_pb2 as pb
from nodes.protocol.grpc import federated_learning_pb2_grpc as pb_grpc
from nodes.protocol.grpc.chunks import ChunkReader, count_chunks, read_chunks
from nodes.protocol.grpc.errors import failure_for
from nodes.protocol.grpc.server import build_server
from nodes.tests.protocol.conftest import device_execution, open_first_round, update_body
from training.local_federation import free_port
from wia_fl import wire

REPO = Path(__file__).resolve().parents[3]
API = "/api/v1"


# ---- helpers without a server -------------------------------------------------------------------------

def _chunk(data: bytes, index: int, total: int = 0) -> pb.UpdateChunk:
    return pb.UpdateChunk(data=data, chunk_index=index, total_chunks=total)


def test_chunk_reader_joins_chunks_in_order():
    reader = ChunkReader([_chunk(b"abc", 0, 3), _chunk(b"", 1, 3), _chunk(b"defg", 2, 3)], limit=100)
    assert reader.read(2) == b"ab"
    assert reader.read(5) == b"c"
    assert reader.read(5) == b"defg"
    assert reader.read(5) == b""
    assert reader.received == 7 and reader.chunks == 3
    assert ChunkReader([_chunk(b"ab", 0), _chunk(b"cd", 1)], limit=4).read() == b"abcd"


@pytest.mark.parametrize("chunks,field", [
    ([_chunk(b"a", 1)], "chunk_index"),
    ([_chunk(b"a", 0), _chunk(b"b", 0)], "chunk_index"),
    ([_chunk(b"a", 0, 2), _chunk(b"b", 1, 3)], "total_chunks"),
    ([_chunk(b"a", 0, 1), _chunk(b"b", 1, 1)], "total_chunks"),
    ([_chunk(b"a", 0, 3), _chunk(b"b", 1, 3)], "total_chunks"),
])
def test_chunk_reader_refuses_a_broken_sequence(chunks, field):
    with pytest.raises(ValidationFailed) as err:
        ChunkReader(chunks, limit=100).read()
    assert err.value.details["field"] == field


def test_chunk_reader_stops_at_the_chunk_that_crosses_the_limit():
    pulled = []

    def endless():
        for i in range(10_000):
            pulled.append(i)
            yield _chunk(b"x" * 100, i)

    reader = ChunkReader(endless(), limit=250)
    with pytest.raises(ApplicationError) as err:
        while reader.read(1000):
            pass
    assert err.value.http_status == 413 and err.value.code == "PAYLOAD_TOO_LARGE"
    assert len(pulled) == 3


def test_read_chunks_counts_and_resumes(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(2500)
    path.write_bytes(data)
    with open(path, "rb") as fh:
        chunks = list(read_chunks(fh, size=2500, chunk_bytes=1000))
        assert [(i, t) for i, t, _ in chunks] == [(0, 3), (1, 3), (2, 3)]
        assert b"".join(c for _, _, c in chunks) == data
        resumed = list(read_chunks(fh, size=2500, chunk_bytes=1000, offset=1800))
        assert [(i, t, c) for i, t, c in resumed] == [(0, 1, data[1800:])]
        with pytest.raises(ValidationFailed):
            list(read_chunks(fh, size=2500, chunk_bytes=1000, offset=2501))
    assert count_chunks(0, 10) == 1 and count_chunks(10, 10) == 1 and count_chunks(11, 10) == 2


@pytest.mark.parametrize("exc,code,http", [
    (ValidationFailed("bad", field="x"), grpc.StatusCode.INVALID_ARGUMENT, 400),
    (ApplicationError("AUTHENTICATION_FAILED"), grpc.StatusCode.UNAUTHENTICATED, 401),
    (ApplicationError("AUTHORIZATION_FAILED"), grpc.StatusCode.PERMISSION_DENIED, 403),
    (NotFound(), grpc.StatusCode.NOT_FOUND, 404),
    (ApplicationError("RESOURCE_CONFLICT"), grpc.StatusCode.FAILED_PRECONDITION, 409),
    (ApplicationError("PAYLOAD_TOO_LARGE"), grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    (ApplicationError("INVALID_MODEL_FORMAT", details={"field": "weights.w.dtype", "expected": "float32",
                                                       "received": "float64"}), grpc.StatusCode.INVALID_ARGUMENT, 422),
    (ApplicationError("RATE_LIMIT_EXCEEDED"), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (ApplicationError("SERVICE_UNAVAILABLE"), grpc.StatusCode.UNAVAILABLE, 503),
])
def test_errors_map_to_grpc_status_codes(exc, code, http):
    failure = failure_for(exc)
    assert (failure.code, failure.http_status, failure.error_code) == (code, http, exc.code)
    trailers = dict(failure.trailing_metadata())
    assert trailers["x-error-code"] == exc.code and trailers["x-error-status"] == str(http)
    assert json.loads(trailers["x-error-details"]) == exc.details


def test_an_unexpected_error_tells_nothing(caplog):
    try:
        raise RuntimeError("password=hunter2 in /srv/secret.py line 12")
    except RuntimeError as exc:  # as the call's plumbing sees it
        failure = failure_for(exc, method="/x/Y")
    assert failure.code == grpc.StatusCode.INTERNAL and failure.error_code == "INTERNAL_ERROR"
    assert failure.message == "Unexpected server error" and failure.details == {}
    assert "hunter2" not in repr(failure.trailing_metadata())
    assert "hunter2" in caplog.text  # logged for the operator, with the traceback


# ---- a server on loopback -----------------------------------------------------------------------------

@pytest.fixture
def server(transactional_db, builtin_roles, settings):
    """A started server on a free loopback port and a client stub for it. The database is
    transactional (the server's threads commit through their own connections), so it is emptied
    between tests: what a test needs is made here and in its fixtures (the built-in roles of the
    migrations by ``builtin_roles``), never restored with ``serialized_rollback``, whose snapshot
    clashes with the content types a plain transactional test's flush re-creates before it."""
    settings.DEVICE_GRPC_CHUNK_BYTES = 256
    settings.DEVICE_GRPC_STREAM_POLL_SECONDS = 0.1
    shutdown = threading.Event()
    grpc_server, port = build_server("127.0.0.1:0", max_workers=8, shutdown=shutdown)
    grpc_server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    yield pb_grpc.FederatedLearningStub(channel)
    shutdown.set()
    channel.close()
    grpc_server.stop(grace=None).wait(10)


@pytest.fixture
def registrant(builtin_roles, registrant):
    """The conftest's registrant, made once the built-in roles exist whatever the order the test
    asks for its fixtures in (a transactional test starts on a database without them)."""
    return registrant


class GrpcDevice:
    """A device speaking seed 002 over gRPC, with its own ed25519 key."""

    def __init__(self, stub, device_id: str = "grpc-device-1"):
        self.stub = stub
        self.device_id = device_id
        self.key = signatures.new_private_key()
        self.token = ""
        self.client_id = ""

    def auth(self, token: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token if token is None else token}")]

    def register(self, api_key: str, *, public_key: str | None = None, **extra_metadata):
        response = self.stub.RegisterClient(
            pb.RegisterClientRequest(device_id=self.device_id, platform="linux", capabilities=pb.ClientCapabilities(
                max_model_size_mb=500, supported_frameworks=["numpy"], compute_capability="medium")),
            metadata=[("authorization", f"Bearer {api_key}"),
                      ("x-client-public-key", public_key or signatures.public_key_b64(self.key)),
                      *extra_metadata.items()], timeout=20)
        self.token, self.client_id = response.registration_token, response.client_id
        return response

    def round(self, **kwargs) -> pb.TrainingRound:
        return self.stub.GetTrainingRound(pb.GetTrainingRoundRequest(), metadata=self.auth(**kwargs), timeout=20)

    def download(self, version: str, offset: int = 0):
        call = self.stub.DownloadModel(pb.DownloadModelRequest(version=version, offset=offset),
                                       metadata=self.auth(), timeout=20)
        chunks = list(call)
        return chunks, dict(call.initial_metadata())

    def submit(self, round_id: str, body: bytes, *, chunk_bytes: int = 3000, checksum: str | None = None,
               key=None, chunks=None, extra=()):
        metadata = [*self.auth(), ("x-round-id", round_id),
                    ("x-update-checksum", hashlib.sha256(body).hexdigest() if checksum is None else checksum),
                    ("x-client-signature", signatures.sign_b64(key or self.key, body)), *extra]
        if chunks is None:
            total = count_chunks(len(body), chunk_bytes)
            chunks = (pb.UpdateChunk(data=body[i * chunk_bytes:(i + 1) * chunk_bytes], chunk_index=i,
                                     total_chunks=total) for i in range(total))
        return self.stub.SubmitUpdate.with_call(chunks, metadata=metadata, timeout=30)


def _error(err: grpc.RpcError) -> dict:
    trailers = dict(err.trailing_metadata() or ())
    return {"code": trailers.get("x-error-code"), "status": int(trailers.get("x-error-status", 0)),
            "details": json.loads(trailers.get("x-error-details", "{}")), "request_id": trailers.get("x-request-id")}


def _raises(code: grpc.StatusCode, fn, *args, **kwargs) -> dict:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kwargs)
    assert err.value.code() == code, (err.value.code(), err.value.details())
    return {**_error(err.value), "message": err.value.details()}


@pytest.fixture
def running(device_project):
    """A running device execution with round 1 open: (execution, device round, initial arrays)."""
    execution = device_execution(device_project, clients=2)
    device_round, arrays = open_first_round(execution)
    return execution, device_round, arrays


@pytest.fixture
def joined(server, api_key, running):
    """A device registered over gRPC that asked for the round (and so joined the execution)."""
    execution, device_round, arrays = running
    device = GrpcDevice(server)
    device.register(api_key)
    info = device.round()
    assert info.status == "active" and info.config.round_id == str(device_round.pk)
    return device, device_round, arrays


def test_register_round_download_and_submit_end_to_end(server, api_key, running):
    execution, device_round, arrays = running
    device = GrpcDevice(server)
    registered = device.register(api_key)
    node = Node.objects.get(pk=registered.client_id)
    assert node.metadata["device_id"] == "grpc-device-1" and node.registered_by.api_keys.exists()
    assert node.capability["compute_capability"] == "medium" and node.framework == "numpy"
    assert registered.expires_at > time.time() + 3600
    assert services.device_authenticate(token=registered.registration_token).node == node

    info = device.round()
    assert (info.round_number, info.status) == (1, "active")
    assert info.config.round_id == str(device_round.pk) and info.config.execution_id == str(execution.pk)
    assert info.config.parameters["local_epochs"] == 1 and info.config.parameters["format"] == wire.FORMAT
    model = device_round.global_model
    assert info.global_model.version == model.version and info.global_model.model_id == str(execution.pk)
    assert info.global_model.checksum.hex() == model.checksum and info.global_model.size_bytes == model.size
    assert info.global_model.download_url.endswith(f"/models/{model.version}")
    assert info.deadline == int(device_round.deadline.timestamp())

    # The model in chunks: the bytes REST serves, with the checksum announced.
    chunks, headers = device.download(info.global_model.version)
    body = b"".join(c.data for c in chunks)
    total = math.ceil(model.size / 256)
    assert total > 2 and [c.chunk_index for c in chunks] == list(range(total))
    assert {c.total_chunks for c in chunks} == {total} and all(len(c.data) == 256 for c in chunks[:-1])
    rest = Client().get(f"{API}/models/{model.version}", headers={"Authorization": f"Bearer {device.token}"})
    assert rest.status_code == 200 and body == b"".join(rest.streaming_content)
    assert hashlib.sha256(body).digest() == info.global_model.checksum
    assert headers["x-model-checksum"] == model.checksum and headers["x-model-version"] == model.version
    assert headers["x-model-size"] == str(len(body))
    resumed, _ = device.download(model.version, offset=300)
    assert b"".join(c.data for c in resumed) == body[300:] and resumed[0].chunk_index == 0

    # An update trained from it, in chunks: accepted once, whatever the number of sends.
    downloaded, meta = wire.decode_model(body)
    assert meta["version"] == model.version
    update = update_body(downloaded, num_examples=7)
    receipt, call = device.submit(info.config.round_id, update, chunk_bytes=256)
    assert receipt.status == "accepted" and uuid.UUID(receipt.update_id)
    assert receipt.estimated_aggregation_time == int(device_round.deadline.timestamp())
    assert dict(call.trailing_metadata())["x-update-created"] == "true"
    again, call = device.submit(info.config.round_id, update, chunk_bytes=100)
    assert again.update_id == receipt.update_id and dict(call.trailing_metadata())["x-update-created"] == "false"
    stored = DeviceUpdate.objects.get(round=device_round)
    assert str(stored.pk) == receipt.update_id and stored.node == node and stored.num_examples == 7
    assert stored.checksum == hashlib.sha256(update).hexdigest() and stored.size == len(update)
    device_round.refresh_from_db()
    assert device_round.updates_received == 1
    # REST sees the same storage.
    rest = Client().get(f"{API}/rounds/current", headers={"Authorization": f"Bearer {device.token}"})
    assert rest.json()["data"]["update_submitted"] is True


def test_register_errors(server, api_key, registrant):
    device = GrpcDevice(server)
    assert _raises(grpc.StatusCode.UNAUTHENTICATED, device.register, "pk_nope_nope")["code"] == "AUTHENTICATION_FAILED"
    bad = _raises(grpc.StatusCode.INVALID_ARGUMENT, device.register, api_key, public_key="not-a-key")
    assert bad["code"] == "VALIDATION_ERROR" and bad["details"]["field"] == "public_key"
    _, other = account_services.api_key_create(user=registrant, name="read", scopes=["model:read"])
    assert _raises(grpc.StatusCode.PERMISSION_DENIED, device.register, other)["code"] == "AUTHORIZATION_FAILED"
    unknown = _raises(grpc.StatusCode.NOT_FOUND, device.register, api_key, **{"x-project-id": str(uuid.uuid4())})
    assert unknown["code"] == "RESOURCE_NOT_FOUND"
    assert not Node.objects.exists()


def test_token_errors(server, joined):
    device, device_round, _ = joined
    for token in ("", "not-a-token", device.token[:-4] + "abcd"):
        error = _raises(grpc.StatusCode.UNAUTHENTICATED, device.round, token=token)
        assert error["code"] == "AUTHENTICATION_FAILED" and error["request_id"]
    services.device_token_revoke(node=Node.objects.get(pk=device.client_id))
    error = _raises(grpc.StatusCode.UNAUTHENTICATED, device.round)
    assert error["details"]["reason"] == "token_revoked"
    error = _raises(grpc.StatusCode.UNAUTHENTICATED, device.submit, str(device_round.pk), b"x")
    assert error["details"]["reason"] == "token_revoked"


def test_submit_errors_store_nothing(server, joined, settings):
    device, device_round, arrays = joined
    round_id = str(device_round.pk)
    body = update_body(arrays)

    error = _raises(grpc.StatusCode.INVALID_ARGUMENT, device.submit, round_id, body, checksum="0" * 64)
    assert (error["code"], error["status"], error["details"]["field"]) == ("VALIDATION_ERROR", 400, "X-Update-Checksum")
    error = _raises(grpc.StatusCode.UNAUTHENTICATED, device.submit, round_id, body, key=signatures.new_private_key())
    assert error["details"]["field"] == "X-Client-Signature"
    wrong = wire.encode_update({name: np.zeros((3, 3), np.float32) for name in arrays}, num_examples=3)
    error = _raises(grpc.StatusCode.INVALID_ARGUMENT, device.submit, round_id, wrong)
    assert (error["code"], error["status"]) == ("INVALID_MODEL_FORMAT", 422)
    assert set(error["details"]) >= {"field", "expected", "received"}
    error = _raises(grpc.StatusCode.NOT_FOUND, device.submit, str(uuid.uuid4()), body)
    assert error["code"] == "RESOURCE_NOT_FOUND"
    error = _raises(grpc.StatusCode.INVALID_ARGUMENT, device.submit, round_id, body,
                    chunks=iter([_chunk(body[:10], 0), _chunk(body[10:], 2)]))
    assert error["details"]["field"] == "chunk_index"
    error = _raises(grpc.StatusCode.PERMISSION_DENIED, device.submit, round_id, body,
                    extra=[("x-client-id", str(uuid.uuid4()))])
    assert error["code"] == "AUTHORIZATION_FAILED"
    assert _raises(grpc.StatusCode.INVALID_ARGUMENT, device.stub.SubmitUpdate, iter([]),
                   metadata=device.auth())["details"]["field"] == "x-round-id"
    assert not DeviceUpdate.objects.exists()

    # Too large: refused at the chunk that crosses the limit, the rest never read.
    settings.DEVICE_UPDATE_MAX_BYTES = 200_000
    sent = []

    def huge():
        for i in range(2000):  # 128 MB if it were all read
            sent.append(i)
            yield _chunk(b"\0" * 65536, i)

    error = _raises(grpc.StatusCode.RESOURCE_EXHAUSTED, device.submit, round_id, body, chunks=huge())
    assert (error["code"], error["status"], error["details"]) == ("PAYLOAD_TOO_LARGE", 413, {"limit": 200_000})
    assert len(sent) < 200
    declared = _raises(grpc.StatusCode.RESOURCE_EXHAUSTED, device.submit, round_id, body,
                       extra=[("x-update-size", "300000")])
    assert declared["code"] == "PAYLOAD_TOO_LARGE"

    # A round that no longer takes updates.
    rounds.close_round(device_round)
    settings.DEVICE_UPDATE_MAX_BYTES = 10_000_000
    error = _raises(grpc.StatusCode.FAILED_PRECONDITION, device.submit, round_id, body)
    assert (error["code"], error["status"]) == ("RESOURCE_CONFLICT", 409)
    assert not DeviceUpdate.objects.exists() and DeviceRound.objects.get(pk=round_id).updates_received == 0
    assert not any(services.update_dir().iterdir()), "a temporary file was left behind"


def test_download_errors(server, joined):
    device, device_round, _ = joined
    error = _raises(grpc.StatusCode.NOT_FOUND, device.download, "feedfacecafe.9")
    assert error["code"] == "RESOURCE_NOT_FOUND"
    version = device_round.global_model.version
    error = _raises(grpc.StatusCode.INVALID_ARGUMENT, device.download, version, offset=10 ** 9)
    assert error["details"]["field"] == "offset"


def test_rate_limits_are_the_rest_ones(server, joined, settings):
    device, _, _ = joined
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_rounds": "3/min"}
    device.round()  # the second of the window (``joined`` asked once)
    _, call = device.stub.GetTrainingRound.with_call(pb.GetTrainingRoundRequest(), metadata=device.auth())
    trailers = dict(call.trailing_metadata())
    assert trailers["x-ratelimit-remaining"] == "0" and int(trailers["x-ratelimit-reset"]) > time.time()
    error = _raises(grpc.StatusCode.RESOURCE_EXHAUSTED, device.round)
    assert (error["code"], error["status"]) == ("RATE_LIMIT_EXCEEDED", 429) and error["details"]["retry_after"] > 0


def test_an_unexpected_failure_is_internal_without_details(server, joined, monkeypatch):
    device, _, _ = joined

    def broken(**kwargs):
        raise RuntimeError("secret detail of the server")

    monkeypatch.setattr(services, "device_current_round", broken)
    error = _raises(grpc.StatusCode.INTERNAL, device.round)
    assert error["message"] == "Unexpected server error" and error["code"] == "INTERNAL_ERROR"
    assert "secret" not in json.dumps(error)


# ---- the bidirectional stream -------------------------------------------------------------------------

class Stream:
    """An open StreamUpdates call: ``send`` ClientUpdates, ``next`` ServerMessage (with a timeout)."""

    def __init__(self, device: GrpcDevice):
        self.outgoing: queue.Queue = queue.Queue()
        self.incoming: queue.Queue = queue.Queue()

        def requests():
            while (message := self.outgoing.get()) is not None:
                yield message

        self.call = device.stub.StreamUpdates(requests(), metadata=device.auth(), timeout=60)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for message in self.call:
                self.incoming.put(message)
        except grpc.RpcError as err:
            self.incoming.put(err)

    def send(self, **kind):
        self.outgoing.put(pb.ClientUpdate(**kind))

    def next(self, timeout: float = 10.0):
        return self.incoming.get(timeout=timeout)

    def close(self):
        self.outgoing.put(None)
        self.call.cancel()


def test_the_stream_invites_acks_and_announces_models(server, api_key, device_project):
    execution = device_execution(device_project, clients=1)
    device = GrpcDevice(server)
    device.register(api_key)
    stream = Stream(device)
    try:
        stream.send(subscribe=pb.Subscribe(topics=["round_updates", "model_updates"]))
        ack = stream.next()
        assert ack.WhichOneof("kind") == "ack" and ack.ack.type == "subscribe" and not ack.ack.HasField("error")

        # The worker opens round 1: the device is invited without asking.
        device_round, arrays = open_first_round(execution)
        invitation = stream.next()
        assert invitation.WhichOneof("kind") == "training_invitation", invitation
        invite = invitation.training_invitation
        assert invite.round_number == 1 and invite.config.round_id == str(device_round.pk)
        assert invite.model_version == device_round.global_model.version
        assert invite.deadline == int(device_round.deadline.timestamp())
        assert invite.global_model_url.endswith(f"/models/{invite.model_version}")

        stream.send(training_progress=pb.TrainingProgress(round_number=1, progress_percent=45.0))
        ack = stream.next()
        assert ack.ack.type == "training_progress" and not ack.ack.HasField("error")
        stream.send(training_progress=pb.TrainingProgress(round_number=7, progress_percent=45.0))
        ack = stream.next()
        assert ack.ack.error.code == "RESOURCE_CONFLICT" and ack.ack.error.http_status == 409
        assert json.loads(ack.ack.error.details_json) == {"round_number": 7}
        stream.send(heartbeat=pb.Heartbeat(sent_at=int(time.time())))
        assert stream.next().ack.type == "heartbeat"

        # The round is aggregated and a new model published: model_ready.
        rounds.close_round(device_round)
        published = rounds.publish_model(execution, 1, {k: v + 1 for k, v in arrays.items()})
        ready = stream.next()
        assert ready.WhichOneof("kind") == "model_ready", ready
        assert ready.model_ready.version == published.version and ready.model_ready.round_number == 1
        assert ready.model_ready.checksum.hex() == published.checksum
        assert ready.model_ready.execution_id == str(execution.pk)

        # A revoked token ends the stream.
        services.device_token_revoke(node=Node.objects.get(pk=device.client_id))
        ended = stream.next()
        assert isinstance(ended, grpc.RpcError) and ended.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stream.close()


def test_a_stream_opened_mid_round_is_invited_at_once(server, joined):
    device, device_round, _ = joined
    stream = Stream(device)
    try:
        invitation = stream.next()
        assert invitation.training_invitation.config.round_id == str(device_round.pk)
        stream.send(heartbeat=pb.Heartbeat())
        assert stream.next().WhichOneof("kind") == "ack"  # invited once, not at every look
    finally:
        stream.close()


# ---- the management command ---------------------------------------------------------------------------

def test_the_command_serves_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
           "POLLEN_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(REPO / "manage.py"), "device_grpc", "--address", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving on 127.0.0.1" in process.stdout.readline()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.FederatedLearningStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetTrainingRound(pb.GetTrainingRoundRequest(), metadata=[("authorization", "Bearer x")], timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="wia.federatedlearning.v1.FederatedLearning"), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The address is taken: a second server refuses to start instead of sharing it.
        with pytest.raises(OSError, match="Cannot listen"):
            build_server(f"127.0.0.1:{port}", max_workers=1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- the platform as deployed: runplatform starts the gRPC service next to the web server and worker ----

@pytest.mark.timeout(300)
def test_devices_train_a_device_execution_over_grpc_only(tmp_path):
    """Two devices that speak only gRPC take a device execution through two rounds on the platform
    ``runplatform`` serves (web, worker and the gRPC service as separate processes on one SQLite
    file): invitations on the stream, the model downloaded in chunks, updates uploaded in chunks,
    aggregated by the worker, model_ready for each aggregate."""
    from nodes.tests.protocol.live_platform import LivePlatform

    rounds_total, devices_total = 2, 2
    env = {"DEVICE_GRPC_STREAM_POLL_SECONDS": "0.3", "DEVICE_GRPC_CHUNK_BYTES": "512"}
    # grpc=True: runplatform starts the gRPC service too, on a free port; start() returns once it
    # answers its health check (and fails with the platform's log if it did not start).
    with LivePlatform(tmp_path / "platform", extra_env=env, grpc=True) as platform:
        channel = grpc.insecure_channel(platform.grpc_address)
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = pb_grpc.FederatedLearningStub(channel)
        devices = [GrpcDevice(stub, f"grpc-live-{i}") for i in range(devices_total)]
        for device in devices:
            device.register(platform.credentials["device_key"])
        streams = [Stream(device) for device in devices]
        for stream in streams:
            stream.send(subscribe=pb.Subscribe())
            assert stream.next().ack.type == "subscribe"

        project = platform.api("POST", "projects", json={"name": "gRPC devices"}).json()["data"]["id"]
        response = platform.api("POST", "fl/executions", json={"project_id": project, "config": {
            "transport": "device", "model_type": "logistic", "dataset": "iris", "rounds": rounds_total,
            "clients": devices_total, "local_epochs": 1, "learning_rate": 0.1, "batch_size": 16, "seed": 0,
            "round_timeout": 120}})
        assert response.status_code == 202, response.text
        execution_id = response.json()["data"]["id"]

        def take_part(device: GrpcDevice, stream: Stream, seen: list):
            for number in range(1, rounds_total + 1):
                message = stream.next(timeout=90)
                while message.WhichOneof("kind") != "training_invitation":
                    seen.append(message)
                    message = stream.next(timeout=90)
                invite = message.training_invitation
                assert invite.round_number == number and invite.config.execution_id == execution_id
                chunks, headers = device.download(invite.model_version)
                body = b"".join(c.data for c in chunks)
                assert len(chunks) > 1 and hashlib.sha256(body).hexdigest() == headers["x-model-checksum"]
                arrays, _ = wire.decode_model(body)
                receipt, _ = device.submit(invite.config.round_id, update_body(arrays, num_examples=20),
                                           chunk_bytes=700)
                seen.append(receipt)
            message = stream.next(timeout=90)
            while message.WhichOneof("kind") != "model_ready" or message.model_ready.round_number < rounds_total:
                seen.append(message)
                message = stream.next(timeout=90)
            seen.append(message)

        seen = [[] for _ in devices]
        errors = []

        def run(i):
            try:
                take_part(devices[i], streams[i], seen[i])
            except BaseException as exc:  # reported below, with the platform's log
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(devices_total)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        for stream in streams:
            stream.close()
        channel.close()
        assert not errors, (errors, platform.log_tail())

        for messages_seen in seen:
            ready = [m.model_ready for m in messages_seen
                     if isinstance(m, pb.ServerMessage) and m.WhichOneof("kind") == "model_ready"]
            assert [m.round_number for m in ready] == list(range(1, rounds_total + 1))
            assert len({m.version for m in ready}) == rounds_total
            assert sum(isinstance(m, pb.UpdateReceipt) for m in messages_seen) == rounds_total
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            execution = platform.api("GET", f"fl/executions/{execution_id}").json()["data"]
            if execution["status"] == "completed":
                break
            time.sleep(0.5)
        assert execution["status"] == "completed", (execution, platform.log_tail())
        rounds_done = platform.api("GET", f"fl/executions/{execution_id}/rounds").json()["data"]
        assert sorted(r["participants"] for r in rounds_done) == [devices_total] * rounds_total
        assert "started grpc" in platform.log_tail(100_000)
