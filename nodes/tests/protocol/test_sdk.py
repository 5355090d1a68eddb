"""The Python SDK (``wia_fl``) against the real REST endpoints on a live server.

Each server-side error must reach the device as a clear exception carrying the envelope's code and
details; the SDK's own duties (state file, token renewal, 429 retries, checksum check) are checked
against what the server really answers. The WebSocket side is in ``test_ws.py``; the whole loop
(three devices, five rounds) in ``test_sdk_e2e.py``.
"""

import asyncio
import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest

from accounts import services as account_services
from accounts.tests.factories import UserFactory
from nodes.models import DeviceCredential, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node
from nodes.protocol import rounds
from nodes.protocol import services as protocol_services
from projects.tests.factories import ProjectFactory
from training.choices import ExecutionStatus, Transport
from training.models import Execution
from training.runner import ExecutionObserver
from wia_fl import (
    AuthenticationError,
    ChecksumMismatchError,
    ConflictError,
    FederatedLearningClient,
    FederatedLearningError,
    InvalidModelFormatError,
    NotFoundError,
    NotRegisteredError,
    PermissionDeniedError,
    RoundInfo,
    wire,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

SHAPES = {"weight": (4, 3), "bias": (3,)}  # the built-in logistic model on iris


def _run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def setup(live_server):
    owner = UserFactory(roles=["user", "ml_engineer"])
    project = ProjectFactory(owner=owner, configuration={})
    _, key = account_services.api_key_create(user=owner, name="devices", scopes=["client:register"])
    return SimpleNamespace(url=live_server.url, owner=owner, project=project, key=key)


def start_round(setup, *, clients=2, timeout=600):
    """A running device execution with its initial model published and round 1 open (what the
    worker's ``drive_device`` does first)."""
    execution = Execution.objects.create(
        project=setup.project, created_by=setup.owner, transport=Transport.DEVICE, status=ExecutionStatus.RUNNING,
        model_type="logistic", dataset="iris", algorithm="fedavg", total_rounds=3, min_clients=1,
        config={"clients": clients, "rounds": 3, "seed": 0, "local_epochs": 2, "learning_rate": 0.05,
                "round_timeout": timeout})
    rng = np.random.default_rng(0)
    arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    model = rounds.publish_model(execution, 0, arrays)
    observer = ExecutionObserver(execution)
    device_round = rounds.open_round(execution, observer, 1, model, list(observer.audience))
    return SimpleNamespace(execution=execution, model=model, round=device_round, arrays=arrays)


def client_for(setup, tmp_path=None, name="device-1", **options) -> FederatedLearningClient:
    state = tmp_path / f"{name}.json" if tmp_path is not None else None
    options.setdefault("poll_interval", 0.2)
    client = FederatedLearningClient(setup.url, setup.key, state_path=state, **options)
    client.register(device_id=name, platform="linux", capabilities={"compute_capability": "low"})
    return client


def joined(setup, **options) -> FederatedLearningClient:
    """A registered client that asked for the current round once: the server assigned it to the
    running device execution, so the round's URLs are its to use."""
    client = client_for(setup, **options)
    assert _run(client.current_round()) is not None
    return client


def trained(arrays, delta=0.01):
    return {name: (a + delta).astype(np.float32) for name, a in arrays.items()}


# ---- registration and the state file -----------------------------------------------------------

def test_register_keeps_its_identity_in_the_state_file(setup, tmp_path):
    client = client_for(setup, tmp_path)
    path = tmp_path / "device-1.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["client_id"] == client.client_id and saved["token"] == client.token
    credential = DeviceCredential.objects.get(node_id=client.client_id)
    assert credential.public_key == client.public_key and credential.device_id == "device-1"
    assert credential.node.metadata["platform"] == "linux"

    # A restarted device re-uses its registration without asking the server...
    again = FederatedLearningClient(setup.url, setup.key, state_path=path)
    registration = again.register(device_id="device-1")
    assert registration.reused and registration.client_id == client.client_id
    assert again.public_key == client.public_key and again.token == client.token
    # ...and registering again on purpose keeps the node and the key, with a new token.
    renewed = again.register(device_id="device-1", force=True)
    assert not renewed.reused and renewed.client_id == client.client_id
    assert renewed.registration_token != client.token
    assert Node.objects.count() == 1
    assert DeviceCredential.objects.get().public_key == client.public_key


def test_register_errors_carry_the_envelope(setup):
    bad = FederatedLearningClient(setup.url, "pk_nope_nope")
    with pytest.raises(AuthenticationError) as caught:
        bad.register(device_id="d")
    assert caught.value.status == 401 and caught.value.code == "AUTHENTICATION_FAILED"
    assert caught.value.request_id

    _, read_only = account_services.api_key_create(user=setup.owner, name="ro", scopes=["read:projects"])
    with pytest.raises(PermissionDeniedError) as caught:
        FederatedLearningClient(setup.url, read_only).register(device_id="d")
    assert caught.value.status == 403 and caught.value.code == "AUTHORIZATION_FAILED"

    with pytest.raises(FederatedLearningError) as caught:
        FederatedLearningClient(setup.url, setup.key).register(device_id="d", capabilities={"compute_capability": "huge"})
    assert caught.value.status == 400 and caught.value.code == "VALIDATION_ERROR"
    assert "compute_capability" in str(caught.value)

    with pytest.raises(NotRegisteredError):
        FederatedLearningClient(setup.url).register(device_id="d")
    assert not Node.objects.exists()


def test_calls_before_register_say_so(setup):
    client = FederatedLearningClient(setup.url, setup.key)
    with pytest.raises(NotRegisteredError):
        _run(client.current_round())


# ---- rounds and models ---------------------------------------------------------------------------

def test_current_round_and_download_verify_the_model(setup, tmp_path):
    state = start_round(setup)
    client = client_for(setup, tmp_path)

    async def scenario():
        info = await client.current_round()
        first = await client.download_model(info.model_url)
        by_version = await client.download_model(info.model_version)
        again = await client.download_model(info)  # the same URL: 304 from the kept copy
        return info, first, by_version, again

    info, first, by_version, again = _run(scenario())
    assert isinstance(info, RoundInfo)
    assert info.round_id == str(state.round.pk) and info.round_number == 1 and info.status == "active"
    assert info.model_url == info.global_model_url and info.model_url.startswith(setup.url)
    assert info.model_version == state.model.version
    assert info.training_config["local_epochs"] == 2 and info.training_config["learning_rate"] == 0.05
    assert info.deadline is not None and info.deadline > datetime.now(timezone.utc)
    assert info.execution_id == str(state.execution.pk)
    for arrays in (first, by_version, again):
        assert set(arrays) == set(SHAPES)
        for name, array in arrays.items():
            assert array.dtype == np.float32 and np.array_equal(array, state.arrays[name])
    assert client.last_model_meta["version"] == state.model.version and client.last_model_meta["round"] == 0
    assert client.last_model_version == state.model.version


def test_a_model_that_does_not_match_its_checksum_is_refused(setup):
    state = start_round(setup)
    client = client_for(setup)
    # The file on disk changed behind the server's back (a corrupted disk, a bad copy).
    tampered = wire.encode_model({name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()},
                                 version=state.model.version, round_number=0)
    with open(state.model.file.path, "wb") as fh:
        fh.write(tampered)

    with pytest.raises(ChecksumMismatchError) as caught:
        _run(client.download_model(state.model.version))
    assert caught.value.code == "CHECKSUM_MISMATCH"
    assert caught.value.details["expected"] == state.model.checksum


def test_an_unknown_model_version_is_404(setup):
    start_round(setup)
    client = client_for(setup)
    with pytest.raises(NotFoundError) as caught:
        _run(client.download_model("nope.1"))
    assert caught.value.status == 404 and caught.value.code == "RESOURCE_NOT_FOUND"


# ---- updates -------------------------------------------------------------------------------------

def test_submit_update_signs_and_is_idempotent(setup):
    state = start_round(setup)
    client = client_for(setup)

    async def scenario():
        info = await client.current_round()
        client.active_round = info  # as during an invitation
        model = await client.download_model(info.model_url)
        first = await client.submit_update(trained(model), num_examples=40, metrics={"train_loss": 0.4})
        second = await client.submit_update(trained(model), num_examples=40, metrics={"train_loss": 0.4})
        return first, second

    first, second = _run(scenario())
    assert first.status == "accepted" and first.update_id == second.update_id
    assert first.round_id == str(state.round.pk) and len(first.checksum) == 64
    update = DeviceUpdate.objects.get()
    assert str(update.pk) == first.update_id and str(update.node_id) == client.client_id
    assert update.num_examples == 40 and update.metrics == {"train_loss": 0.4} and update.checksum == first.checksum
    assert DeviceRound.objects.get().updates_received == 1


def test_format_errors_come_back_with_seed_002_details(setup):
    state = start_round(setup)
    client = joined(setup)
    round_id = str(state.round.pk)
    wrong_shape = {"weight": np.zeros((4, 2), np.float32), "bias": np.zeros(3, np.float32)}
    missing = {"weight": np.zeros((4, 3), np.float32)}

    with pytest.raises(InvalidModelFormatError) as caught:
        _run(client.submit_update(wrong_shape, num_examples=5, round_id=round_id))
    assert caught.value.status == 422 and caught.value.code == "INVALID_MODEL_FORMAT"
    assert caught.value.details == {"field": "weights.weight.shape", "expected": [4, 3], "received": [4, 2]}

    with pytest.raises(InvalidModelFormatError) as caught:
        _run(client.submit_update(missing, num_examples=5, round_id=round_id))
    assert caught.value.details == {"field": "weights", "expected": ["bias", "weight"], "received": ["weight"]}
    # Bad input found before sending never reaches the server.
    with pytest.raises(wire.WireFormatError):
        _run(client.submit_update(state.arrays, num_examples=0, round_id=round_id))
    assert not DeviceUpdate.objects.exists()


def test_a_signature_from_another_key_is_401(setup):
    state = start_round(setup)
    client = joined(setup)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    client.state.private_key = Ed25519PrivateKey.generate()  # not the key the server holds
    with pytest.raises(AuthenticationError) as caught:
        _run(client.submit_update(state.arrays, num_examples=5, round_id=str(state.round.pk)))
    assert caught.value.status == 401 and caught.value.details["field"] == "X-Client-Signature"
    assert not DeviceUpdate.objects.exists()


def test_closed_and_unknown_rounds(setup):
    state = start_round(setup)
    client = joined(setup)
    DeviceRound.objects.filter(pk=state.round.pk).update(status=DeviceRoundStatus.AGGREGATING)
    with pytest.raises(ConflictError) as caught:
        _run(client.submit_update(state.arrays, num_examples=5, round_id=str(state.round.pk)))
    assert caught.value.status == 409 and caught.value.code == "RESOURCE_CONFLICT"
    with pytest.raises(NotFoundError):
        _run(client.submit_update(state.arrays, num_examples=5, round_id="00000000-0000-0000-0000-000000000000"))
    with pytest.raises(FederatedLearningError) as caught:
        _run(client.submit_update(state.arrays, num_examples=5))  # no invitation, no round id
    assert caught.value.code == "NO_CURRENT_ROUND"


# ---- tokens and limits -------------------------------------------------------------------------

def test_an_expired_token_is_renewed_with_the_api_key(setup, tmp_path):
    start_round(setup)
    client = client_for(setup, tmp_path)
    old = client.token
    client.state.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    info = _run(client.current_round())
    assert info is not None and client.token != old
    assert json.loads((tmp_path / "device-1.json").read_text())["token"] == client.token


def test_a_revoked_token_is_renewed_or_reported(setup):
    start_round(setup)
    client = client_for(setup)
    protocol_services.device_token_revoke(node=Node.objects.get(pk=client.client_id))
    assert _run(client.current_round()) is not None  # 401, registered again, retried

    protocol_services.device_token_revoke(node=Node.objects.get(pk=client.client_id))
    keyless = FederatedLearningClient(setup.url)
    keyless.state = client.state  # a device restarted from its state file without the API key
    with pytest.raises(AuthenticationError) as caught:
        _run(keyless.current_round())
    assert caught.value.status == 401 and caught.value.code == "AUTHENTICATION_FAILED"


def test_429_is_retried_after_the_window(setup, settings, caplog):
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_rounds": "2/s"}
    start_round(setup)
    client = client_for(setup)

    async def scenario():
        results = [await client.current_round() for _ in range(5)]
        return results

    with caplog.at_level(logging.INFO, logger="wia_fl"):
        results = _run(scenario())
    assert all(r is not None for r in results)
    assert any("answered 429" in r.message for r in caplog.records)


def test_429_past_the_retries_raises_with_the_envelope(setup, settings):
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_rounds": "1/min"}
    start_round(setup)
    client = client_for(setup, max_retries=0)
    _run(client.current_round())
    with pytest.raises(FederatedLearningError) as caught:
        _run(client.current_round())
    assert caught.value.status == 429 and caught.value.code == "RATE_LIMIT_EXCEEDED"


# ---- the run loop ------------------------------------------------------------------------------

def test_run_falls_back_to_polling_offers_each_round_once_and_stops_when_the_execution_ends(setup, caplog):
    """live_server speaks no WebSocket: the SDK keeps polling, hands round 1 to the callback once
    (however often it is polled), and returns once the server reports the execution finished."""
    state = start_round(setup)
    client = client_for(setup, poll_interval=0.1)
    handled = []

    def finish():
        Execution.objects.filter(pk=state.execution.pk).update(status=ExecutionStatus.COMPLETED)

    @client.on_training_invitation
    async def train(round_info):
        handled.append(round_info)
        model = await client.download_model(round_info.model_url)
        await client.submit_update(trained(model), num_examples=12, metrics={"train_loss": 0.3})
        await asyncio.sleep(0.5)  # several polls see the same open round meanwhile
        await asyncio.to_thread(finish)

    with caplog.at_level(logging.INFO, logger="wia_fl"):
        _run(asyncio.wait_for(client.run(), timeout=30))
    assert [(r.round_number, r.source) for r in handled] == [(1, "poll")]
    assert client.finished_execution["status"] == "completed"
    assert DeviceUpdate.objects.get().num_examples == 12
    assert any("WebSocket" in r.message for r in caplog.records)


def test_stop_from_another_thread_ends_run(setup):
    import threading

    start_round(setup)
    client = client_for(setup)
    started = threading.Event()

    @client.on_training_invitation
    async def train(round_info):
        started.set()

    timer = threading.Thread(target=lambda: (started.wait(10), client.stop()))
    timer.start()
    _run(asyncio.wait_for(client.run(), timeout=20))
    timer.join()
    assert started.is_set() and client.finished_execution is None
