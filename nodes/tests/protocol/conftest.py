"""Fixtures of the device-protocol suites: a registrant with an API key, simulated devices that
speak seed 002's REST protocol (through Django's test client or real HTTP), and device executions
with an open round opened by the real worker code."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.tests.factories import UserFactory
from nodes.protocol import rounds, signatures
from projects.tests.factories import ProjectFactory
from training.choices import ExecutionStatus, Transport
from training.engine import builtin_app
from training.models import Execution
from training.runner import ExecutionObserver, run_config_for
from wia_fl import wire

API = "/api/v1"
REGISTER = f"{API}/clients/register"
CURRENT = f"{API}/rounds/current"


class DjangoTransport:
    """Requests through Django's test client (same thread and database as the test)."""

    def __init__(self):
        self.client = Client()

    def request(self, method: str, path: str, *, body=None, json_body=None, headers=None):
        headers = dict(headers or {})
        if json_body is not None:
            return getattr(self.client, method)(path, json.dumps(json_body), content_type="application/json",
                                                headers=headers)
        if body is not None:
            return getattr(self.client, method)(path, body, content_type="application/octet-stream", headers=headers)
        return getattr(self.client, method)(path, headers=headers)


class Device:
    """A device speaking seed 002's REST protocol with its own ed25519 key."""

    def __init__(self, device_id: str, transport=None, platform: str = "linux"):
        self.device_id = device_id
        self.platform = platform
        self.key = signatures.new_private_key()
        self.http = transport or DjangoTransport()
        self.token: str | None = None
        self.client_id: str | None = None

    @property
    def public_key(self) -> str:
        return signatures.public_key_b64(self.key)

    def auth(self, token: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}

    def register(self, api_key: str, **extra):
        body = {"device_id": self.device_id, "platform": self.platform, "public_key": self.public_key,
                "capabilities": {"max_model_size_mb": 500, "supported_frameworks": ["numpy"],
                                 "compute_capability": "medium"}, **extra}
        response = self.http.request("post", REGISTER, json_body=body, headers={"Authorization": f"Bearer {api_key}"})
        if response.status_code == 201:
            data = response.json()["data"]
            self.token, self.client_id = data["registration_token"], data["client_id"]
        return response

    def current(self, **headers):
        return self.http.request("get", CURRENT, headers={**self.auth(), **headers})

    def download(self, url_or_version: str, **headers):
        path = url_or_version if "/" in url_or_version else f"{API}/models/{url_or_version}"
        if "://" in path:
            path = "/" + path.split("://", 1)[1].split("/", 1)[1]
        return self.http.request("get", path, headers={**self.auth(), **headers})

    def submit(self, round_id, body: bytes, *, checksum: str | None = None, signature: str | None = None,
               key=None, **headers):
        sent = {**self.auth(),
                "X-Update-Checksum": hashlib.sha256(body).hexdigest() if checksum is None else checksum,
                "X-Client-Signature": signatures.sign_b64(key or self.key, body) if signature is None else signature,
                **headers}
        sent = {k: v for k, v in sent.items() if v is not False}
        return self.http.request("post", f"{API}/rounds/{round_id}/updates", body=body, headers=sent)


@pytest.fixture
def registrant(db):
    """An ML engineer (``client:*``): may hold a key with ``client:register``."""
    return UserFactory(roles=["ml_engineer"])


@pytest.fixture
def device_project(registrant):
    return ProjectFactory(owner=registrant, configuration={})


@pytest.fixture
def api_key(registrant) -> str:
    _, raw = account_services.api_key_create(user=registrant, name="devices", scopes=["client:register"])
    return raw


@pytest.fixture
def make_device(api_key):
    made = []

    def make(device_id: str | None = None, *, register: bool = True, **extra) -> Device:
        device = Device(device_id or f"device-{len(made) + 1}")
        if register:
            response = device.register(api_key, **extra)
            assert response.status_code == 201, response.content
        made.append(device)
        return device

    return make


def device_execution(project, *, rounds_total: int = 3, clients: int = 2, algorithm: str = "fedavg",
                     model_type: str = "logistic", dataset: str = "iris", round_timeout: int = 60,
                     status: str = ExecutionStatus.RUNNING, **config) -> Execution:
    return Execution.objects.create(
        project=project, created_by=project.owner, model_type=model_type, dataset=dataset, algorithm=algorithm,
        transport=Transport.DEVICE, status=status, total_rounds=rounds_total, min_clients=1,
        started_at=timezone.now(),
        config={"rounds": rounds_total, "clients": clients, "model_type": model_type, "dataset": dataset,
                "local_epochs": 1, "batch_size": 16, "learning_rate": 0.1, "seed": 0, "round_timeout": round_timeout,
                **config})


def open_first_round(execution: Execution):
    """Round 1 of ``execution`` opened by the worker's own code: (device round, initial arrays)."""
    observer = ExecutionObserver(execution)
    model = builtin_app.new_model(run_config_for(execution))
    arrays = rounds.initial_arrays(execution, model)
    published = rounds.publish_model(execution, 0, arrays)
    return rounds.open_round(execution, observer, 1, published, list(observer.audience)), arrays


@pytest.fixture
def open_round(device_project, django_capture_on_commit_callbacks):
    execution = device_execution(device_project)
    with django_capture_on_commit_callbacks(execute=True):
        device_round, arrays = open_first_round(execution)
    return device_round, arrays


def update_body(arrays: dict, *, num_examples: int = 10, shift: float = 0.01, **metrics) -> bytes:
    return wire.encode_update({k: np.asarray(v, dtype=np.float32) + shift for k, v in arrays.items()},
                              num_examples=num_examples, metrics=metrics or {"loss": 0.5})


__all__ = ["API", "CURRENT", "REGISTER", "Device", "DjangoTransport", "device_execution", "open_first_round",
           "update_body"]
