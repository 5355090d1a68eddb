"""Update ingest: the body received once (spooled while sha256 and the ed25519 pre-hash are computed),
the signature checked from the pre-hash exactly as cryptography checks it over the whole body, and
the ASGI front that does this ahead of Django for POST /rounds/{id}/updates."""

import asyncio
import base64
import hashlib
import io
import json
import os

import jwt
import pytest
from asgiref.sync import async_to_sync
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from accounts.tests.fixtures import assert_success
from nodes.choices import NodeStatus
from nodes.models import DeviceCredential, DeviceUpdate, Node
from nodes.protocol import asgi as protocol_asgi
from nodes.protocol import auth, ingest, services, signatures
from nodes.tests.protocol.conftest import update_body

L = signatures.GROUP_ORDER


def _raw_key(private_key) -> bytes:
    return base64.b64decode(signatures.public_key_b64(private_key))


def _reference(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _fast(public_key: bytes, signature: bytes, message: bytes) -> bool:
    hasher = signatures.prehash(public_key, signature)
    hasher.update(message)
    return signatures.verify_prehashed(public_key, signature, hasher.digest())


# ---- the pre-hashed ed25519 check ----------------------------------------------------------------------

def test_the_fast_path_accepts_exactly_the_valid_signatures():
    assert signatures.fast_path_available()
    for i in range(40):
        key = signatures.new_private_key()
        public = _raw_key(key)
        message = os.urandom(i * 7)
        signature = key.sign(message)
        s = int.from_bytes(signature[32:], "little")
        forged = {
            "other message": (public, signature, message + b"x"),
            "R changed": (public, bytes([signature[0] ^ 1]) + signature[1:], message),
            "S changed": (public, signature[:40] + bytes([signature[40] ^ 4]) + signature[41:], message),
            "S + L (malleated)": (public, signature[:32] + (s + L).to_bytes(32, "little"), message),
            "S = 0": (public, signature[:32] + bytes(32), message),
            "other key": (_raw_key(signatures.new_private_key()), signature, message),
        }
        assert _fast(public, signature, message) and _reference(public, signature, message)
        for name, case in forged.items():
            assert not _reference(*case), name
            assert not _fast(*case), name


def test_keys_libsodium_refuses_are_left_to_the_full_verification():
    # The identity point as a public key (small order): cryptography accepts R = [S]B for any message
    # with it; libsodium refuses the key, so the fast path says nothing and the full check decides.
    identity = (1).to_bytes(32, "little")
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

    s = (12345).to_bytes(32, "little")
    signature = crypto_scalarmult_ed25519_base_noclamp(s) + s
    assert _reference(identity, signature, b"anything")
    assert not _fast(identity, signature, b"anything")
    body = ingest.spool(io.BytesIO(b"anything"), directory=services.update_dir(), limit=100,
                        signer=(identity, signature))
    with body:
        assert body.verify(base64.b64encode(identity).decode(), signature)  # the same answer, the slow way


def test_without_pynacl_every_signature_is_checked_over_the_whole_body(monkeypatch):
    monkeypatch.setattr(signatures, "_sodium", None)
    key = signatures.new_private_key()
    message = os.urandom(5000)
    signature = key.sign(message)
    assert not _fast(_raw_key(key), signature, message)
    with ingest.spool(io.BytesIO(message), directory=services.update_dir(), limit=10_000,
                      signer=(_raw_key(key), signature)) as body:
        assert body.verify(signatures.public_key_b64(key), signature)
        assert not body.verify(signatures.public_key_b64(key), signature[:-1] + bytes([signature[-1] ^ 1]))


# ---- ReceivedBody: one pass, both digests ----------------------------------------------------------------

def _receive_messages(chunks):
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()

    return receive


@pytest.mark.parametrize("how", ["stream", "asgi"])
def test_a_body_is_spooled_once_with_its_sha256_and_ed25519_prehash(how, settings, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_BYTES", 10_000)  # several batches in flight
    key = signatures.new_private_key()
    message = os.urandom(300_000)
    signature = key.sign(message)
    signer = (_raw_key(key), signature)
    directory = services.update_dir()
    if how == "stream":
        body = ingest.spool(io.BytesIO(message), directory=directory, limit=len(message), signer=signer)
    else:
        chunks = [message[i:i + 6_000] for i in range(0, len(message), 6_000)]
        body = asyncio.run(ingest.receive(_receive_messages(chunks), directory=directory, limit=len(message),
                                          signer=signer)).wait()
    with body:
        assert body.size == len(message) and body.sha256 == hashlib.sha256(message).hexdigest()
        assert bytes(body.buffer()) == message
        expected = hashlib.sha512(signature[:32] + signer[0] + message).digest()
        assert body.ed25519_digest(*signer) == expected
        assert body.ed25519_digest(_raw_key(signatures.new_private_key()), signature) is None  # another key
        calls = []
        monkeypatch.setattr(signatures, "verify_file", lambda *a: calls.append(a) or False)
        assert body.verify(signatures.public_key_b64(key), signature) and not calls  # from the pre-hash
    assert not any(directory.iterdir())


def _received(message, *, hint, budget, chunk=6_000, directory=None):
    chunks = [message[i:i + chunk] for i in range(0, len(message), chunk)]
    return asyncio.run(ingest.receive(_receive_messages(chunks), directory=directory or services.update_dir(),
                                      limit=10 ** 7, size_hint=hint, memory_budget_bytes=budget)).wait()


def test_a_declared_body_within_the_memory_budget_is_kept_in_memory_and_the_rest_go_to_files():
    message = os.urandom(100_000)
    first = _received(message, hint=len(message), budget=150_000)
    assert first.in_memory and first.file is None and ingest.memory_budget.used == 100_000
    second = _received(message, hint=len(message), budget=150_000)  # what is left is too little
    assert not second.in_memory and second.file is not None
    chunked = _received(message, hint=None, budget=10 ** 9)  # no declared length: a file
    assert not chunked.in_memory
    for body in (first, second, chunked):
        assert bytes(body.buffer()) == message and body.sha256 == hashlib.sha256(message).hexdigest()
    first.close()
    assert ingest.memory_budget.used == 0
    third = _received(message, hint=len(message), budget=150_000)
    assert third.in_memory  # room again
    for body in (second, chunked, third):
        body.close()
    assert ingest.memory_budget.used == 0
    assert not any(services.update_dir().iterdir())


def test_a_body_longer_than_declared_moves_to_a_file_intact():
    message = os.urandom(50_000)
    with _received(message, hint=20_000, budget=10 ** 6) as body:
        assert not body.in_memory and ingest.memory_budget.used == 0
        assert bytes(body.buffer()) == message and body.size == len(message)
        assert body.sha256 == hashlib.sha256(message).hexdigest()


def test_a_body_in_memory_is_verified_over_memory_when_the_prehash_cannot_say(monkeypatch):
    key = signatures.new_private_key()
    message = os.urandom(30_000)
    signature = key.sign(message)
    with _received(message, hint=len(message), budget=10 ** 6) as body:  # no signer: no pre-hash
        assert body.in_memory
        monkeypatch.setattr(signatures, "verify_file", lambda *a: pytest.fail("there is no file"))
        assert body.verify(signatures.public_key_b64(key), signature)
        assert not body.verify(signatures.public_key_b64(key), signature[:-1] + bytes([signature[-1] ^ 1]))


def test_receiving_stops_past_the_limit_and_on_a_disconnect():
    directory = services.update_dir()
    with pytest.raises(ingest.TooLarge):
        asyncio.run(ingest.receive(_receive_messages([b"x" * 4_000] * 1_000), directory=directory, limit=10_000))

    async def gone():
        return {"type": "http.disconnect"}

    assert asyncio.run(ingest.receive(gone, directory=directory, limit=10)) is None
    assert not any(directory.iterdir())


def test_a_server_killed_mid_upload_leaves_no_file_behind(tmp_path):
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time; from pathlib import Path\n"
        "from nodes.protocol import ingest\n"
        "body = ingest.ReceivedBody(Path(sys.argv[1]))\n"
        "body.add([b'x' * 1_000_000])\n"
        "print(body.file.fileno(), flush=True); time.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                             env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"})
    try:
        fd = child.stdout.readline().strip()
        assert fd, "the child did not start"
        # The body is there (a megabyte written to an open file) but has no name in the directory.
        assert os.stat(f"/proc/{child.pid}/fd/{fd.decode()}").st_size == 1_000_000
        assert list(tmp_path.iterdir()) == []
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert list(tmp_path.iterdir()) == []


def test_a_hashing_thread_error_reaches_whoever_waits_for_the_body(monkeypatch):
    def broken(self, chunks):
        raise OSError("No space left on device")

    monkeypatch.setattr(ingest.ReceivedBody, "add_checksum", broken)
    directory = services.update_dir()
    with pytest.raises(OSError, match="No space left"):
        # raised while receiving if the loop waited for the threads, else by wait(): either way, once
        body = asyncio.run(ingest.receive(_receive_messages([b"x" * 5_000] * 3), directory=directory, limit=10**6))
        with body:
            body.wait()
    assert not any(directory.iterdir())


def test_device_tokens_name_the_devices_key(make_device, db):
    device = make_device()
    claims = jwt.decode(device.token, options={"verify_signature": False})
    assert claims["cnf"]["jwk"]["kty"] == "OKP" and claims["cnf"]["jwk"]["crv"] == "Ed25519"
    assert auth.token_public_key(claims) == _raw_key(device.key)
    assert auth.token_public_key({}) is None and auth.token_public_key({"cnf": {"jwk": {"x": "short"}}}) is None


# ---- the ASGI front, end to end through the project's application ------------------------------------------

def _asgi_post(path: str, body: bytes, headers: dict, chunk: int = 65_536):
    """POST through config.asgi.application (as uvicorn runs it): (status, JSON answer). The view runs
    in this thread, so it sees the test's database."""
    from config.asgi import application

    sent = []
    receive = _receive_messages([body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""])

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/octet-stream"),
                         (b"content-length", str(len(body)).encode()),
                         *((k.lower().encode(), str(v).encode()) for k, v in headers.items())],
             "client": ("127.0.0.1", 40000), "server": ("testserver", 80)}
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(application)(scope, receive, send)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(payload)


@pytest.fixture
def joined(open_round, make_device, db):
    device_round, arrays = open_round
    device = make_device()
    assert_success(device.current())
    return device, device_round, arrays


def _headers(device, body, **extra):
    return {"Authorization": f"Bearer {device.token}", "X-Update-Checksum": hashlib.sha256(body).hexdigest(),
            "X-Client-Signature": signatures.sign_b64(device.key, body), **extra}


def test_under_asgi_an_update_is_received_ahead_of_django_and_checked_from_the_prehash(joined, monkeypatch):
    device, device_round, arrays = joined
    body = update_body(arrays, num_examples=4)
    seen, kept = [], []
    real_submit = services.device_update_submit

    def submit(**kwargs):
        seen.append(kwargs["body"])
        kept.append(kwargs["body"].in_memory)
        return real_submit(**kwargs)

    monkeypatch.setattr(services, "device_update_submit", submit)
    monkeypatch.setattr(signatures, "verify_file", lambda *a: pytest.fail("the body was hashed again"))
    status, answer = _asgi_post(f"/api/v1/rounds/{device_round.pk}/updates", body, _headers(device, body), chunk=100)
    assert status == 202 and answer["data"]["status"] == "accepted", answer
    assert isinstance(seen[0], ingest.ReceivedBody) and seen[0].size == len(body)
    assert kept == [True] and ingest.memory_budget.used == 0  # held while checked, then let go
    update = DeviceUpdate.objects.get(pk=answer["data"]["update_id"])
    assert update.checksum == hashlib.sha256(body).hexdigest() and update.num_examples == 4
    assert not any(services.update_dir().iterdir()), "the spooled body was left behind"


def test_under_asgi_with_no_memory_budget_the_body_is_spooled_to_a_file(joined, monkeypatch, settings):
    settings.DEVICE_UPDATE_MEMORY_BYTES = 0
    device, device_round, arrays = joined
    body = update_body(arrays, num_examples=4)
    seen = []
    real_submit = services.device_update_submit
    monkeypatch.setattr(services, "device_update_submit",
                        lambda **kw: seen.append(kw["body"].file is not None) or real_submit(**kw))
    status, answer = _asgi_post(f"/api/v1/rounds/{device_round.pk}/updates", body, _headers(device, body))
    assert status == 202, answer
    assert seen == [True] and DeviceUpdate.objects.filter(pk=answer["data"]["update_id"]).exists()


def test_under_asgi_every_check_still_applies(joined):
    device, device_round, arrays = joined
    path = f"/api/v1/rounds/{device_round.pk}/updates"
    body = update_body(arrays)
    status, answer = _asgi_post(path, body, _headers(device, body, **{"X-Update-Checksum": "0" * 64}))
    assert status == 400 and answer["error"]["details"]["field"] == "X-Update-Checksum"
    forged = signatures.sign_b64(signatures.new_private_key(), body)
    status, answer = _asgi_post(path, body, _headers(device, body, **{"X-Client-Signature": forged}))
    assert status == 401 and answer["error"]["details"]["field"] == "X-Client-Signature"
    status, answer = _asgi_post(path, body, _headers(device, body, Authorization="Bearer not-a-token"))
    assert status == 401
    bad = b"not an npz"
    status, answer = _asgi_post(path, bad, _headers(device, bad))
    assert status == 422 and answer["error"]["code"] == "INVALID_MODEL_FORMAT"
    assert DeviceUpdate.objects.count() == 0 and not any(services.update_dir().iterdir())
    status, answer = _asgi_post(path, body, _headers(device, body))
    assert status == 202


def test_under_asgi_a_token_without_the_key_claim_falls_back_to_the_full_check(joined, monkeypatch):
    device, device_round, arrays = joined
    node = Node.objects.get(pk=device.client_id)
    token, jti, expires_at = auth.token_issue(node_id=node.pk)  # as issued before tokens named the key
    DeviceCredential.objects.filter(node=node).update(token_jti=jti, token_expires_at=expires_at)
    device.token = token
    checked = []
    real = signatures.verify
    monkeypatch.setattr(signatures, "verify", lambda *a: checked.append(1) or real(*a))
    body = update_body(arrays)
    status, answer = _asgi_post(f"/api/v1/rounds/{device_round.pk}/updates", body, _headers(device, body))
    assert status == 202 and checked == [1], answer


def test_under_asgi_an_oversized_body_is_refused_unread(joined, settings):
    device, device_round, arrays = joined
    body = update_body(arrays)
    settings.DEVICE_UPDATE_MAX_BYTES = len(body) - 1
    status, answer = _asgi_post(f"/api/v1/rounds/{device_round.pk}/updates", body, _headers(device, body))
    assert status == 413 and answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert DeviceUpdate.objects.count() == 0 and not any(services.update_dir().iterdir())


def test_the_guard_passes_other_routes_through_untouched():
    assert not protocol_asgi.UPDATES_PATH.match("/api/v1/rounds/current")
    assert protocol_asgi.UPDATES_PATH.match("/api/v1/rounds/abc/updates")


# ---- the upload is not a heartbeat write ---------------------------------------------------------------

def test_an_upload_does_not_write_a_heartbeat_but_revives_an_offline_node(joined):
    device, device_round, arrays = joined
    long_ago = timezone.now() - timezone.timedelta(minutes=1)
    Node.objects.filter(pk=device.client_id).update(last_seen=long_ago)
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    assert Node.objects.get(pk=device.client_id).last_seen == long_ago
    Node.objects.filter(pk=device.client_id).update(status=NodeStatus.OFFLINE)
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)  # the same update again
    node = Node.objects.get(pk=device.client_id)
    assert node.status != NodeStatus.OFFLINE and node.last_seen > long_ago
    # any other request still counts as a sign of life
    Node.objects.filter(pk=device.client_id).update(last_seen=long_ago)
    assert_success(device.current())
    assert Node.objects.get(pk=device.client_id).last_seen > long_ago
