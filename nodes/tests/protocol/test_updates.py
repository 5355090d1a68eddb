"""POST /rounds/{round_id}/updates (seed 002): accepted once, folded as it arrives, and every bad
input answered in the envelope with nothing stored."""

import hashlib
import io
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from core.exceptions import ApplicationError
from core.models import Event
from nodes.models import DeviceCredential, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node
from nodes.protocol import rounds, selectors, services, signatures
from nodes.protocol.aggregate import RunningSum, UpdateStore
from nodes.tests.protocol.conftest import REGISTER, Device, device_execution, open_first_round, update_body
from wia_fl import wire

pytestmark = pytest.mark.django_db


@pytest.fixture
def joined(open_round, make_device):
    """A device that asked for the current round (and so joined the execution)."""
    device_round, arrays = open_round
    device = make_device()
    data = assert_success(device.current())["data"]
    assert data["status"] == "active" and data["round_id"] == str(device_round.pk)
    return device, device_round, arrays


def _running_sum(device_round) -> RunningSum:
    device_round.refresh_from_db()
    return RunningSum(Path(device_round.state_dir), selectors.tensor_spec(device_round.global_model))


def _nothing_stored(device_round, folds: int = 0):
    device_round.refresh_from_db()
    assert DeviceUpdate.objects.filter(round=device_round).count() == folds
    assert device_round.updates_received == folds
    assert _running_sum(device_round).count == folds
    assert not any(services.update_dir().iterdir()), "a temporary file was left behind"


def test_an_update_is_accepted_folded_and_announced(joined, django_capture_on_commit_callbacks):
    device, device_round, arrays = joined
    body = update_body(arrays, num_examples=12, loss=0.4, accuracy=0.8)
    with django_capture_on_commit_callbacks(execute=True):
        response = device.submit(device_round.pk, body)
    data = assert_success(response, 202)["data"]
    assert set(data) == {"update_id", "status", "estimated_aggregation_time"} and data["status"] == "accepted"
    update = DeviceUpdate.objects.get(pk=data["update_id"])
    assert str(update.node_id) == device.client_id and update.num_examples == 12 and update.weight == 12.0
    assert update.checksum == hashlib.sha256(body).hexdigest() and update.size == len(body)
    assert update.metrics == {"loss": 0.4, "accuracy": 0.8}
    running = _running_sum(device_round)
    assert running.count == 1 and running.total_weight == 12.0 and device_round.total_weight == 12.0
    mean = running.mean(12.0)
    for name, array in arrays.items():
        np.testing.assert_allclose(mean[name], array + 0.01, rtol=1e-6, atol=1e-7)
    event = Event.objects.get(event="client.update_received")
    assert event.data["update_id"] == data["update_id"] and event.data["client_id"] == device.client_id
    assert event.data["round_id"] == str(device_round.pk) and event.data["round_number"] == 1
    assert event.data["num_examples"] == 12 and f"node.{device.client_id}" in event.groups
    assert not any(services.update_dir().iterdir())


def test_the_same_update_twice_is_stored_once(joined):
    device, device_round, arrays = joined
    body = update_body(arrays)
    first = assert_success(device.submit(device_round.pk, body), 202)["data"]
    second = assert_success(device.submit(device_round.pk, body), 202)
    assert second["data"]["update_id"] == first["update_id"] and second["message"] == "Update already received"
    _nothing_stored(device_round, folds=1)
    # after the round closed too: the retry of a lost answer still gets its receipt
    rounds.close_round(device_round)
    assert assert_success(device.submit(device_round.pk, body), 202)["data"]["update_id"] == first["update_id"]


def test_a_second_different_update_of_the_same_device_is_409(joined):
    device, device_round, arrays = joined
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    body = assert_error(device.submit(device_round.pk, update_body(arrays, shift=0.5)), 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"]["update_id"]
    _nothing_stored(device_round, folds=1)


def test_a_wrong_checksum_is_400(joined):
    device, device_round, arrays = joined
    body = update_body(arrays)
    response = device.submit(device_round.pk, body, checksum=hashlib.sha256(b"other").hexdigest())
    error = assert_error(response, 400, "VALIDATION_ERROR")["error"]
    assert error["details"]["field"] == "X-Update-Checksum"
    assert error["details"]["expected"] == hashlib.sha256(body).hexdigest()
    assert_error(device.submit(device_round.pk, body, checksum="abc"), 400, "VALIDATION_ERROR")
    assert_error(device.submit(device_round.pk, body, checksum=False), 400, "VALIDATION_ERROR")
    _nothing_stored(device_round)


def test_a_missing_or_bad_signature_is_401(joined):
    device, device_round, arrays = joined
    body = update_body(arrays)
    assert_error(device.submit(device_round.pk, body, signature=False), 401, "AUTHENTICATION_FAILED")
    assert_error(device.submit(device_round.pk, body, signature="not base64 at all"), 401, "AUTHENTICATION_FAILED")
    other_key = signatures.new_private_key()
    response = device.submit(device_round.pk, body, key=other_key)
    assert assert_error(response, 401, "AUTHENTICATION_FAILED")["error"]["details"]["field"] == "X-Client-Signature"
    # signed, but over other bytes than those sent
    response = device.submit(device_round.pk, body, signature=signatures.sign_b64(device.key, body + b"x"))
    assert_error(response, 401, "AUTHENTICATION_FAILED")
    _nothing_stored(device_round)


def _raw_npz(meta: dict, **arrays) -> bytes:
    import json

    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


def test_tensors_that_do_not_fit_the_round_are_422_with_seed_002_details(joined):
    device, device_round, arrays = joined
    names = sorted(arrays)
    meta = {"format": wire.FORMAT, "num_examples": 5, "metrics": {}}
    cases = [
        (wire.encode_update({"other": np.zeros(3, np.float32)}, num_examples=5),
         {"field": "weights", "expected": names, "received": ["other"]}),
        (wire.encode_update({**arrays, "extra": np.zeros(2, np.float32)}, num_examples=5),
         {"field": "weights", "expected": names, "received": sorted([*names, "extra"])}),
        (wire.encode_update({**arrays, "weight": np.zeros((2, 2), np.float32)}, num_examples=5),
         {"field": "weights.weight.shape", "expected": list(arrays["weight"].shape), "received": [2, 2]}),
        (_raw_npz(meta, **{k: v.astype(np.float64) for k, v in arrays.items()}),
         {"field": "weights.bias.dtype", "expected": "float32", "received": "float64"}),
        (b"certainly not an npz", {"field": "body", "expected": wire.FORMAT, "received": "not an npz archive"}),
        (_raw_npz({"format": wire.FORMAT, "num_examples": 0, "metrics": {}}, **arrays),
         {"field": "num_examples", "expected": "integer > 0", "received": 0}),
        (_raw_npz({"format": "pollen-tensors/9", "num_examples": 1}, **arrays),
         {"field": "format", "expected": wire.FORMAT, "received": "pollen-tensors/9"}),
    ]
    nan = {k: v.copy() for k, v in arrays.items()}
    nan["bias"][0] = np.nan
    cases.append((_raw_npz(meta, **nan), {"field": "weights.bias", "expected": "finite", "received": "nan or inf"}))
    for body, details in cases:
        error = assert_error(device.submit(device_round.pk, body), 422, "INVALID_MODEL_FORMAT")["error"]
        if details["field"] == "weights.bias.dtype":  # whichever tensor is read first
            assert error["details"]["field"].endswith(".dtype") and error["details"]["received"] == "float64"
        else:
            assert error["details"] == details, (details, error)
    _nothing_stored(device_round)


def test_a_round_that_is_closed_or_past_its_deadline_is_409(joined):
    device, device_round, arrays = joined
    DeviceRound.objects.filter(pk=device_round.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    error = assert_error(device.submit(device_round.pk, update_body(arrays)), 409, "RESOURCE_CONFLICT")["error"]
    assert error["details"]["round_id"] == str(device_round.pk)
    DeviceRound.objects.filter(pk=device_round.pk).update(deadline=timezone.now() + timedelta(minutes=5))
    rounds.close_round(device_round)
    error = assert_error(device.submit(device_round.pk, update_body(arrays)), 409, "RESOURCE_CONFLICT")["error"]
    assert error["details"]["status"] == "aggregating"
    _nothing_stored(device_round)


def test_an_unknown_round_is_404(joined, device_project):
    device, device_round, arrays = joined
    assert_error(device.submit(uuid.uuid4(), update_body(arrays)), 404, "RESOURCE_NOT_FOUND")
    assert_error(device.submit("not-a-round", update_body(arrays)), 404, "RESOURCE_NOT_FOUND")
    # a round of an execution the device does not serve
    other_round, _ = open_first_round(device_execution(device_project))
    assert_error(device.submit(other_round.pk, update_body(arrays)), 404, "RESOURCE_NOT_FOUND")
    _nothing_stored(device_round)


def test_a_body_over_the_limit_is_413_without_reading_it(joined, settings):
    device, device_round, arrays = joined
    body = update_body(arrays)
    settings.DEVICE_UPDATE_MAX_BYTES = len(body) - 1
    error = assert_error(device.submit(device_round.pk, body), 413, "PAYLOAD_TOO_LARGE")["error"]
    assert error["details"]["limit"] == len(body) - 1

    class Counting(io.BytesIO):
        consumed = 0

        def read(self, size=-1):
            chunk = super().read(size)
            Counting.consumed += len(chunk)
            return chunk

    node = Node.objects.get(pk=device.client_id)
    kwargs = dict(node=node, round_id=device_round.pk, checksum=hashlib.sha256(body).hexdigest(),
                  signature=signatures.sign_b64(device.key, body))
    with pytest.raises(ApplicationError) as declared:
        services.device_update_submit(body=Counting(body), content_length=len(body), **kwargs)
    assert declared.value.http_status == 413 and Counting.consumed == 0
    # without a declared length (chunked), reading stops one byte past the limit
    huge = Counting(body * 50)
    with pytest.raises(ApplicationError) as chunked:
        services.device_update_submit(body=huge, content_length=None, **kwargs)
    assert chunked.value.http_status == 413 and Counting.consumed == len(body)
    _nothing_stored(device_round)


def test_a_device_cannot_submit_for_another_node(joined, make_device):
    device, device_round, arrays = joined
    other = make_device("other")
    response = device.submit(device_round.pk, update_body(arrays), **{"X-Client-Id": other.client_id})
    assert_error(response, 403, "AUTHORIZATION_FAILED")
    _nothing_stored(device_round)
    assert_success(device.submit(device_round.pk, update_body(arrays), **{"X-Client-Id": device.client_id}), 202)


def test_updates_need_a_device_token(joined, api_for, registrant):
    device, device_round, arrays = joined
    body = update_body(arrays)
    response = api_for(registrant).client.post(f"/api/v1/rounds/{device_round.pk}/updates", body,
                                               content_type="application/octet-stream",
                                               headers=api_for(registrant).headers)
    assert_error(response, 401, "AUTHENTICATION_FAILED")
    assert_error(device.submit(device_round.pk, body, Authorization=False), 401, "AUTHENTICATION_FAILED")
    _nothing_stored(device_round)


def test_updates_are_limited_per_device(joined, settings, make_device):
    device, device_round, arrays = joined
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_updates": "2/min"}
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    response = device.submit(device_round.pk, update_body(arrays))
    assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert response["X-RateLimit-Limit"] == "2" and response["X-RateLimit-Remaining"] == "0"
    # another device has its own budget
    other = make_device("other")
    assert_success(other.current())
    assert_success(other.submit(device_round.pk, update_body(arrays, shift=0.2)), 202)


def test_robust_strategies_keep_each_update_on_disk(device_project, make_device, django_capture_on_commit_callbacks):
    execution = device_execution(device_project, algorithm="fedmedian")
    device_round, arrays = open_first_round(execution)
    devices = [make_device(f"d{i}") for i in range(3)]
    for i, device in enumerate(devices):
        assert_success(device.current())
        assert_success(device.submit(device_round.pk, update_body(arrays, shift=0.1 * (i + 1))), 202)
    device_round.refresh_from_db()
    store = UpdateStore(Path(device_round.state_dir), selectors.tensor_spec(device_round.global_model))
    keys = {str(pk) for pk in DeviceUpdate.objects.filter(round=device_round).values_list("pk", flat=True)}
    assert set(store.keys()) == keys
    median = store.aggregate("fedmedian", {}, {k: 1.0 for k in keys})
    np.testing.assert_allclose(median["weight"], arrays["weight"] + 0.2, rtol=1e-6, atol=1e-6)
    assert device_round.status == DeviceRoundStatus.OPEN and device_round.updates_received == 3


# ---- under ASGI: Django reads whole bodies before any view, so a guard refuses them first -----------

def _asgi(*, headers, chunks, path="/api/v1/rounds/abc/updates"):
    import asyncio

    from nodes.protocol.asgi import UpdateBodyLimit

    calls = {"receive": 0, "app": 0}
    sent = []

    async def receive():
        calls["receive"] += 1
        index = calls["receive"] - 1
        return {"type": "http.request", "body": chunks[index] if index < len(chunks) else b"",
                "more_body": index < len(chunks) - 1}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # reads the whole body first, as Django's ASGIHandler does
        calls["app"] += 1
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(UpdateBodyLimit(app)(scope, receive, send))
    return calls, sent


def test_the_asgi_guard_refuses_large_update_bodies_before_django_reads_them(settings):
    import json

    settings.DEVICE_UPDATE_MAX_BYTES = 10_000
    calls, sent = _asgi(headers=[(b"content-length", b"10001")], chunks=[b"x" * 10_001])
    assert calls == {"receive": 0, "app": 0} and sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert body["success"] is False and body["error"]["code"] == "PAYLOAD_TOO_LARGE" and body["request_id"]
    # chunked: cut one chunk past the limit, however long the body goes on
    calls, sent = _asgi(headers=[], chunks=[b"x" * 4_000] * 1_000)
    assert calls["receive"] == 3 and sent[0]["status"] == 413
    # within the limit, or another path: untouched
    calls, sent = _asgi(headers=[(b"content-length", b"8000")], chunks=[b"x" * 4_000] * 2)
    assert sent[0]["status"] == 202
    calls, sent = _asgi(headers=[(b"content-length", b"20000")], chunks=[b"x" * 20_000],
                        path="/api/v1/projects")
    assert sent[0]["status"] == 202


def test_seed_002s_registration_example_as_written_registers_but_cannot_sign_until_it_sends_a_key(
        open_round, api_key):
    """Seed 002's example body has no public key (and placeholder values such as "android|ios|linux"):
    the device registers and follows rounds, its updates are refused (401) until it registers again
    with a key, after which the same device signs and is accepted."""
    device_round, arrays = open_round
    device = Device("hashed-device-identifier")
    seed_body = {"device_id": "hashed-device-identifier", "platform": "android|ios|linux",
                 "capabilities": {"max_model_size_mb": 500, "supported_frameworks": ["tensorflow", "pytorch"],
                                  "compute_capability": "low|medium|high"}}
    response = device.http.request("post", REGISTER, json_body=seed_body, headers={"Authorization": f"Bearer {api_key}"})
    data = assert_success(response, 201)["data"]
    device.token, device.client_id = data["registration_token"], data["client_id"]
    assert DeviceCredential.objects.get(node_id=data["client_id"]).public_key == ""
    assert assert_success(device.current())["data"]["round_id"] == str(device_round.pk)
    error = assert_error(device.submit(device_round.pk, update_body(arrays)), 401, "AUTHENTICATION_FAILED")
    assert error["error"]["details"]["reason"] == "no_public_key"
    _nothing_stored(device_round)
    assert_success(device.register(api_key), 201)  # the same device, now with its key
    assert_success(device.submit(device_round.pk, update_body(arrays)), 202)
    assert Node.objects.filter(device_credential__device_id="hashed-device-identifier").count() == 1
