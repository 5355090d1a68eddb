"""The ServerApp side of a deployed federation: reports every round back to Pollen.

On a Flower SuperLink the ServerApp runs in a process Pollen does not own. ``run_observed`` wraps
the Grid that Flower gives it in a ``RemoteGrid`` whose observer posts each round to Pollen's
callback endpoint (``/api/v1/fl/executions/{id}/callback``): round started (Pollen answers whether
to go on, stop or suspend), round completed (per-node results, server metrics, the global model),
and the end of the run; while a round waits for replies, which of the nodes it waits for Pollen's
registry knows to be offline (the round stops waiting for those). Requests are signed with HMAC-SHA256 over a timestamp, the execution id and
the body, with a secret the SuperLink host holds (``POLLEN_FLOWER_CALLBACK_SECRET``) and the
SuperNodes do not. Nothing here imports Django: this module runs inside Flower's processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import time
from dataclasses import asdict

import httpx
from flwr.app import ArrayRecord

from training.engine.grid import ClientResult, ExecutionInterrupted, RemoteGrid
from training.engine.npz import arrays_to_npz, npz_to_arrays

SECRET_ENV = "POLLEN_FLOWER_CALLBACK_SECRET"
SIGNATURE_HEADER = "X-Pollen-Signature"
MAX_CLOCK_SKEW_SECONDS = 300
CONTINUE = "continue"


# ---- signatures ----------------------------------------------------------------------------------
def sign(secret: str, execution_id: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{execution_id}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def fresh(header: str, now: float | None = None) -> bool:
    """The header is well formed and its time within the allowed skew (says nothing of the secret)."""
    try:
        timestamp = int(dict(item.split("=", 1) for item in header.split(","))["t"])
    except (ValueError, KeyError, AttributeError):
        return False
    return abs((time.time() if now is None else now) - timestamp) <= MAX_CLOCK_SKEW_SECONDS


def verify(secret: str, execution_id: str, body: bytes, header: str, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` for ``execution_id`` with ``secret`` and is fresh."""
    if not fresh(header, now):
        return False
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = sign(secret, execution_id, body, int(parts["t"])).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class CallbackClient:
    def __init__(self, url: str, execution_id: str, secret: str, timeout: float = 60.0):
        self.url = url
        self.execution_id = execution_id
        self.secret = secret
        self.http = httpx.Client(timeout=timeout)

    def post(self, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        response = self.http.post(self.url, content=body, headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, self.execution_id, body),
        })
        response.raise_for_status()
        return response.json().get("data") or {}

    def close(self) -> None:
        self.http.close()


def _encode(arrays: ArrayRecord) -> str:
    return base64.b64encode(arrays_to_npz(arrays)).decode()


class CallbackObserver:
    """A ``RunObserver`` that reports to Pollen over HTTP, one request per round boundary."""

    def __init__(self, client: CallbackClient):
        self.client = client
        self.started: dict[int, float] = {}
        self.results: list[ClientResult] = []
        self.server_metrics: dict[int, dict] = {}
        self.arrays: dict[int, ArrayRecord] = {}
        self.reported: set[int] = set()

    def before_round(self, round_number: int) -> None:
        self.started[round_number] = time.monotonic()
        action = self.client.post({"type": "round_started", "round": round_number}).get("action", CONTINUE)
        if action != CONTINUE:
            raise ExecutionInterrupted(action, round_number - 1)

    def on_replies(self, round_number: int, phase: str, results: list[ClientResult]) -> None:
        self.results.extend(results)

    def on_global_arrays(self, round_number: int, arrays: ArrayRecord) -> None:
        if round_number in self.reported:
            # The model of a round already reported (an app without server-side evaluation).
            self.client.post({"type": "checkpoint", "round": round_number, "checkpoint": _encode(arrays)})
        else:
            self.arrays.setdefault(round_number, arrays)

    def on_server_evaluation(self, round_number: int, arrays: ArrayRecord, metrics: dict) -> None:
        self.arrays[round_number] = arrays
        self.server_metrics[round_number] = metrics

    def offline_nodes(self, node_ids: set[int]) -> set[int]:
        """Which of ``node_ids`` (Flower node ids) Pollen's registry knows to be gone. A failed
        question is no answer: the round waits on, as Flower alone would."""
        try:
            answer = self.client.post({"type": "liveness", "node_ids": sorted(node_ids)})
        except httpx.HTTPError:
            return set()
        return {int(n) for n in answer.get("offline") or [] if isinstance(n, int) and n in node_ids}

    def on_round_end(self, round_number: int) -> None:
        started = self.started.pop(round_number, None)
        arrays = self.arrays.pop(round_number, None)
        payload = {
            "type": "round_completed", "round": round_number,
            "duration_seconds": (time.monotonic() - started) if started else None,
            "results": [asdict(r) for r in self.results],
            "server_metrics": self.server_metrics.pop(round_number, {}),
            "checkpoint": _encode(arrays) if arrays is not None else None,
        }
        self.results = []
        self.reported.add(round_number)
        self.client.post(payload)


def _load_server_app(target: str, run_config: dict):
    """Pollen's own ServerApp, or the uploaded app's (``module:attribute``, from the same FAB)."""
    if target == "builtin":
        from training.engine.secure import server_app_for

        return server_app_for(run_config)
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


def run_observed(grid, context) -> None:
    """The deployed ServerApp's main: run the execution's app over an observed Grid."""
    run_config = context.run_config
    execution_id = str(run_config["pollen.execution-id"])
    client = CallbackClient(str(run_config["pollen.callback-url"]), execution_id, os.environ.get(SECRET_ENV, ""))
    try:
        hello = client.post({"type": "hello"})
        observer = CallbackObserver(client)
        remote = RemoteGrid(grid, observer=observer, round_offset=int(hello.get("round_offset") or 0),
                            poll_seconds=float(hello.get("poll_seconds") or 3.0),
                            liveness_seconds=float(hello.get("liveness_seconds") or 5.0))
        remote.initial_arrays = (npz_to_arrays(base64.b64decode(hello["initial_arrays"]))
                                 if hello.get("initial_arrays") else None)
        if remote.initial_arrays is not None and run_config.get("pollen.app", "builtin") != "builtin":
            remote.resume_arrays = remote.initial_arrays
        server_app = _load_server_app(str(run_config.get("pollen.app", "builtin")), run_config)
        try:
            server_app(remote, context)
            remote.finish()
        except ExecutionInterrupted as interrupt:
            client.post({"type": "interrupted", "action": interrupt.action,
                         "completed_round": interrupt.completed_round})
            return
        except Exception as exc:
            client.post({"type": "failed", "error": f"{exc.__class__.__name__}: {exc}"[:2000]})
            raise
        client.post({"type": "finished", "completed_round": remote.completed_round})
    finally:
        client.close()
