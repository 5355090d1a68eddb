"""``FederatedLearningClient``: seed 002 section 9.1's Python SDK for Pollen's device protocol.

```python
from wia_fl import FederatedLearningClient

client = FederatedLearningClient(server_url="https://fl.example.com", api_key="pk_...")
client.register(device_id="device-123")

@client.on_training_invitation
async def train(round_info):
    model = await client.download_model(round_info.model_url)
    updated = train_locally(model, local_data)
    await client.submit_update(updated, num_examples=len(local_data))

client.start()
```

How it talks to the server:

- ``register`` sends an ed25519 public key (the key pair is made here and never leaves the device)
  with the API key and keeps the device token; with ``state_path`` the key, ``client_id`` and token
  are saved, so a restarted device is the same client. An expired token (or a 401) is renewed by
  registering again with the same key.
- ``start`` listens on the WebSocket ``/api/v1/ws/`` (seed 002's ``subscribe`` with topics
  ``round_updates`` and ``model_updates``) for ``training_invitation`` messages and also polls
  ``GET /api/v1/rounds/current``: often while the socket is down, rarely while it is up (a missed
  message costs one poll interval, never a round). Each round is offered to the callback once.
- ``download_model`` verifies ``X-Model-Checksum``; ``submit_update`` signs the body and retries a
  429 after ``Retry-After`` / ``X-RateLimit-Reset``. Any other error raises ``FederatedLearningError``
  carrying the server's ``code``, ``message``, ``details`` and ``request_id``.

No Django anywhere: a device needs numpy, httpx, websockets and cryptography only.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import random
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import numpy as np

from wia_fl import wire
from wia_fl.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    FederatedLearningError,
    NotRegisteredError,
    RateLimitError,
)
from wia_fl.identity import DeviceState, parse_time
from wia_fl.types import ModelReady, Registration, RoundInfo, UpdateReceipt

logger = logging.getLogger("wia_fl")

SUBSCRIBE_MESSAGE = {"type": "subscribe", "topics": ["round_updates", "model_updates"]}
RETRYABLE_STATUSES = {502, 503, 504}
# Executions in one of these states open no more rounds: ``start()`` returns.
FINISHED_EXECUTION_STATUSES = {"completed", "failed", "stopped"}
# A model this large is spooled to a temporary file while it downloads instead of held twice.
SPOOL_BYTES = 64 * 1024 * 1024
MAX_RETRY_WAIT = 120.0


def _accept_encoding() -> str:
    """``gzip, br`` when a brotli decoder is installed (httpx uses it), else ``gzip``."""
    for module in ("brotli", "brotlicffi"):
        try:
            __import__(module)
            return "gzip, br"
        except ImportError:
            continue
    return "gzip"


def _unwrap(payload: Any) -> Any:
    """The ``data`` of Pollen's success envelope; other bodies unchanged."""
    if isinstance(payload, dict) and payload.get("success") is True and "data" in payload:
        return payload["data"]
    return payload


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def retry_delay(response: httpx.Response, attempt: int, *, now: float | None = None) -> float:
    """How long to wait before retrying ``response`` (a 429 or 503): ``Retry-After`` (seconds or an
    HTTP date) first, then ``X-RateLimit-Reset`` (epoch seconds, or seconds when small), else an
    exponential backoff with jitter."""
    now = time.time() if now is None else now
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(header).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            value = float(reset)
            return max(value - now if value > 1e9 else value, 0.0)
        except ValueError:
            pass
    return min(2.0 ** attempt, 30.0) * (0.5 + random.random() / 2)


def _error_from(response: httpx.Response, what: str) -> FederatedLearningError:
    return FederatedLearningError.from_response(response.status_code, _json_or_none(response),
                                                fallback=f"{what} failed with HTTP {response.status_code}")


Handler = Callable[[RoundInfo], Awaitable[Any] | Any]


class FederatedLearningClient:
    """A device taking part in Pollen's federated executions (seed 002 section 9.1).

    ``server_url`` is the server's origin (``https://fl.example.com``; a trailing ``/api/v1`` is
    accepted). ``api_key`` is needed to register and to renew an expired token; a device restarted
    from ``state_path`` with a valid token can run without it until the token expires.
    """

    def __init__(self, server_url: str, api_key: str | None = None, *, state_path: str | Path | None = None,
                 project_id: str | None = None, poll_interval: float = 5.0, websocket_poll_interval: float = 30.0,
                 use_websocket: bool = True, stop_when_complete: bool = True, timeout: float = 60.0,
                 max_retries: int = 5, verify: bool | str = True):
        base = server_url.rstrip("/")
        if base.endswith("/api/v1"):
            base = base[: -len("/api/v1")]
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"server_url must be an http(s) URL, got {server_url!r}")
        self.server_url = base
        self.api_base = f"{base}/api/v1"
        self.ws_url = ("wss://" if parts.scheme == "https" else "ws://") + parts.netloc + parts.path + "/api/v1/ws/"
        self.api_key = api_key
        self.project_id = project_id
        self.poll_interval = poll_interval
        self.websocket_poll_interval = max(websocket_poll_interval, poll_interval)
        self.use_websocket = use_websocket
        self.stop_when_complete = stop_when_complete
        self.timeout = timeout
        self.max_retries = max_retries
        self.verify = verify
        self.state_path = Path(state_path) if state_path else None
        self.state = (DeviceState.load(self.state_path) if self.state_path else None) or DeviceState()

        self.active_round: RoundInfo | None = None
        self.last_model_meta: dict = {}
        self.last_model_version: str | None = None
        self.receipts: dict[str, UpdateReceipt] = {}
        self.rounds_handled: list[RoundInfo] = []
        self.finished_execution: dict | None = None

        self._handler: Handler | None = None
        self._model_ready_handler: Callable[[ModelReady], Any] | None = None
        self._seen_rounds: OrderedDict[str, None] = OrderedDict()
        self._executions: set[str] = set()
        self._serving: str | None = None  # the execution the server last said this device serves
        self._model_cache: tuple[str, str, dict[str, np.ndarray]] | None = None
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._http_users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._queue: asyncio.Queue[RoundInfo] | None = None
        self._ws = None
        self._stop_requested = threading.Event()
        self._register_lock: asyncio.Lock | None = None

    # ---- identity --------------------------------------------------------------------------------

    @property
    def client_id(self) -> str | None:
        return self.state.client_id or None

    @property
    def token(self) -> str | None:
        return self.state.token or None

    @property
    def public_key(self) -> str:
        """This device's ed25519 public key (raw, base64), as the server stores it."""
        return self.state.public_key_b64

    def register(self, device_id: str | None = None, platform: str = "linux", capabilities: dict | None = None,
                 *, project_id: str | None = None, force: bool = False) -> Registration:
        """Register this device (seed 002 ``POST /api/v1/clients/register``) and keep its token.

        A saved registration for the same server and device that is still valid is re-used without
        a request (``Registration.reused``); ``force=True`` registers again. Raises
        ``FederatedLearningError`` (``AuthenticationError`` for a bad API key,
        ``PermissionDeniedError`` for a key without ``client:register``).
        """
        device_id = device_id or self.state.device_id
        if not device_id:
            raise ValueError("register() needs a device_id")
        if project_id is not None:
            self.project_id = project_id
        if (not force and self.state.device_id == device_id and self.state.server_url == self.server_url
                and self.state.token_valid() and capabilities in (None, self.state.capabilities)):
            return Registration(self.state.client_id, self.state.token, self.state.expires_at, reused=True)
        if self.state.device_id and self.state.device_id != device_id:
            # Another device's identity must not be re-used: a new device gets a new key.
            self.state = DeviceState()
        self.state.device_id = device_id
        self.state.platform = platform or self.state.platform or "linux"
        if capabilities is not None:
            self.state.capabilities = dict(capabilities)
        self.state.server_url = self.server_url
        url = f"{self.api_base}/clients/register"
        with httpx.Client(timeout=self.timeout, verify=self.verify) as http:
            for attempt in range(self.max_retries + 1):
                try:
                    response = http.post(url, json=self._registration_body(), headers=self._api_key_headers())
                except httpx.TransportError as exc:
                    if attempt >= self.max_retries:
                        raise FederatedLearningError(f"Cannot reach {url}: {exc}", code="NETWORK_ERROR") from exc
                    time.sleep(min(2.0 ** attempt, 30.0))
                    continue
                if (response.status_code == 429 or response.status_code in RETRYABLE_STATUSES) \
                        and attempt < self.max_retries:
                    time.sleep(min(retry_delay(response, attempt), MAX_RETRY_WAIT))
                    continue
                break
        return self._registered(response)

    async def _register_again(self) -> None:
        """Renew the token: register again with the same key pair (one renewal at a time)."""
        if self._register_lock is None:
            self._register_lock = asyncio.Lock()
        token_before = self.state.token
        async with self._register_lock:
            if self.state.token != token_before and self.state.token_valid():
                return  # another task renewed it while this one waited
            if not self.api_key:
                raise AuthenticationError("The device token expired and no api_key was given to renew it",
                                          code="AUTHENTICATION_FAILED")
            logger.info("Renewing the device token of %s", self.state.device_id)
            response = await self._send("POST", f"{self.api_base}/clients/register", json=self._registration_body(),
                                        headers=self._api_key_headers(), auth=False)
            self._registered(response)

    def _registration_body(self) -> dict:
        body = {"device_id": self.state.device_id, "platform": self.state.platform or "linux",
                "capabilities": self.state.capabilities, "public_key": self.state.public_key_b64}
        if self.project_id:
            body["project_id"] = str(self.project_id)
        return body

    def _api_key_headers(self) -> dict:
        if not self.api_key:
            raise NotRegisteredError("Registering needs the api_key given to FederatedLearningClient",
                                     code="AUTHENTICATION_FAILED")
        return {"Authorization": f"Bearer {self.api_key}"}

    def _registered(self, response: httpx.Response) -> Registration:
        if response.status_code not in (200, 201):
            raise _error_from(response, "Registration")
        data = _unwrap(_json_or_none(response)) or {}
        token = data.get("registration_token")
        if not token or not data.get("client_id"):
            raise FederatedLearningError("The registration answer has no client_id or registration_token",
                                         status=response.status_code, code="INVALID_RESPONSE", details=data)
        self.state.client_id = str(data["client_id"])
        self.state.token = token
        self.state.expires_at = parse_time(data.get("expires_at"))
        if self.state_path:
            self.state.save(self.state_path)
        return Registration(self.state.client_id, token, self.state.expires_at)

    def _auth_headers(self) -> dict:
        if not self.state.token:
            raise NotRegisteredError("Call register() first: this device has no token")
        return {"Authorization": f"Bearer {self.state.token}"}

    async def _ensure_token(self) -> None:
        if not self.state.token:
            raise NotRegisteredError("Call register() first: this device has no token")
        if not self.state.token_valid() and self.api_key:
            await self._register_again()

    # ---- HTTP ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def session(self):
        """Keep one HTTP connection pool open for several calls: ``async with client.session(): ...``.

        ``run()`` holds one for its whole duration. A call made outside any session opens and closes
        its own pool, so nothing is left open when the caller's event loop ends."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.is_closed or self._http_loop is not loop:
            # A pool belongs to one event loop; one left from another (finished) loop is dropped.
            self._http = httpx.AsyncClient(timeout=self.timeout, verify=self.verify)
            self._http_loop = loop
            self._http_users = 0
        self._http_users += 1
        try:
            yield self._http
        finally:
            self._http_users -= 1
            if self._http_users == 0 and self._http is not None:
                http, self._http = self._http, None
                await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed or self._http_loop is not asyncio.get_running_loop():
            raise RuntimeError("HTTP calls run inside client.session()")
        return self._http

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.server_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    async def _send(self, method: str, url: str, *, headers: dict | None = None, auth: bool = True,
                    stream: bool = False, deadline: datetime | None = None, **kwargs) -> httpx.Response:
        """Send with the SDK's retry rules and return the final response (opened for streaming when
        ``stream``; the caller closes it).

        429 and 502/503/504 wait (``Retry-After``, ``X-RateLimit-Reset``) and retry, at most
        ``max_retries`` times and never past ``deadline``; a 401 renews the token once when an API
        key is available. Network errors are retried the same way.
        """
        http = self._client()
        renewed = False
        attempt = 0
        while True:
            request_headers = dict(headers or {})
            if auth:
                await self._ensure_token()
                request_headers.update(self._auth_headers())
            request = http.build_request(method, url, headers=request_headers, **kwargs)
            try:
                response = await http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise FederatedLearningError(f"Cannot reach {url}: {exc}", code="NETWORK_ERROR") from exc
                attempt += 1
                await asyncio.sleep(min(2.0 ** attempt, 30.0) * (0.5 + random.random() / 2))
                continue
            status = response.status_code
            if status == 401 and auth and not renewed and self.api_key and await self._token_refused(response):
                await response.aclose()
                renewed = True
                await self._register_again()
                continue
            if (status == 429 or status in RETRYABLE_STATUSES) and attempt < self.max_retries:
                wait = min(retry_delay(response, attempt), MAX_RETRY_WAIT)
                if deadline is None or time.time() + wait < deadline.timestamp():
                    if stream:
                        await response.aread()
                    await response.aclose()
                    attempt += 1
                    logger.info("%s %s answered %s; retrying in %.1fs", method, url, status, wait)
                    await asyncio.sleep(wait)
                    continue
            return response

    @staticmethod
    async def _token_refused(response: httpx.Response) -> bool:
        """Whether a 401 is about the token (expired, revoked: registering again helps) rather than
        about the request itself (a bad ``X-Client-Signature``: it must surface)."""
        await response.aread()
        payload = _json_or_none(response)
        error = payload.get("error") if isinstance(payload, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        return not (isinstance(details, dict) and details.get("field"))

    # ---- rounds ----------------------------------------------------------------------------------

    async def current_round(self) -> RoundInfo | None:
        """``GET /api/v1/rounds/current``: the open round this device may train in, or None."""
        data = await self._round_status()
        info = RoundInfo.from_payload(data) if isinstance(data, dict) else None
        return info if info is not None and info.status == "active" else None

    async def _round_status(self) -> dict | None:
        async with self.session():
            response = await self._send("GET", f"{self.api_base}/rounds/current")
        if response.status_code in (204, 404):
            return None
        if response.status_code != 200:
            raise _error_from(response, "Reading the current round")
        data = _unwrap(_json_or_none(response))
        return data if isinstance(data, dict) else None

    # ---- models ----------------------------------------------------------------------------------

    def model_url(self, url_or_version: str) -> str:
        """An absolute download URL for a model URL (absolute or server-relative) or a version."""
        if url_or_version.startswith(("http://", "https://")):
            return url_or_version
        if url_or_version.startswith("/"):
            return self.server_url + url_or_version
        return f"{self.api_base}/models/{quote(url_or_version, safe='')}"

    async def download_model(self, url_or_version: str | RoundInfo) -> dict[str, np.ndarray]:
        """Download a global model and return its tensors (name -> float32 array).

        Accepts ``round_info.model_url``, a model version or the ``RoundInfo`` itself. The body is
        compressed in transit (``Accept-Encoding: gzip`` and ``br`` when brotli is installed) and
        checked against ``X-Model-Checksum`` (sha256 of the uncompressed bytes); a mismatch raises
        ``ChecksumMismatchError``. The same URL downloaded again is answered 304 from the copy kept
        here (``If-None-Match``). The model's metadata lands in ``last_model_meta``.
        """
        if isinstance(url_or_version, RoundInfo):
            url_or_version = url_or_version.global_model_url or url_or_version.model_version
        url = self.model_url(str(url_or_version))
        same_origin = self._same_origin(url)
        headers = {"Accept-Encoding": _accept_encoding(), "Accept": "application/octet-stream"}
        cached = self._model_cache if self._model_cache and self._model_cache[0] == url else None
        if cached and cached[1]:
            headers["If-None-Match"] = cached[1]
        async with self.session():
            # The device token goes to Pollen's own origin only, never to a URL on another host.
            response = await self._send("GET", url, headers=headers, auth=same_origin, stream=True)
            try:
                arrays, meta = await self._read_model(response, cached)
            finally:
                await response.aclose()
        if arrays is None:  # 304: the copy kept here
            return {name: array.copy() for name, array in cached[2].items()}
        self.last_model_meta = dict(meta)
        self.last_model_version = response.headers.get("X-Model-Version") or str(meta.get("version") or "") or None
        etag = response.headers.get("ETag", "")
        self._model_cache = (url, etag, {name: array.copy() for name, array in arrays.items()})
        return arrays

    async def _read_model(self, response: httpx.Response, cached) -> tuple[dict | None, dict]:
        """The model in a streamed response, its bytes checked against ``X-Model-Checksum``; (None, {})
        for a 304 answered from ``cached``."""
        if response.status_code == 304 and cached:
            self.last_model_version = response.headers.get("X-Model-Version", self.last_model_version)
            return None, {}
        if response.status_code != 200:
            await response.aread()
            raise _error_from(response, "Downloading the model")
        expected = (response.headers.get("X-Model-Checksum") or "").strip().lower()
        if expected.startswith("sha256:"):
            expected = expected[len("sha256:"):]
        if not expected:
            raise ChecksumMismatchError("The server sent no X-Model-Checksum header", code="CHECKSUM_MISSING",
                                        status=response.status_code)
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in response.aiter_bytes():  # decoded: the checksum is of the plain body
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            actual = digest.hexdigest()
            if actual != expected:
                raise ChecksumMismatchError(
                    "The downloaded model does not match its X-Model-Checksum",
                    code="CHECKSUM_MISMATCH", status=response.status_code,
                    details={"field": "X-Model-Checksum", "expected": expected, "received": actual, "size": size})
            spool.seek(0)
            return wire.decode_model(spool)

    # ---- updates ---------------------------------------------------------------------------------

    async def submit_update(self, arrays: Mapping[str, np.ndarray], num_examples: int = 1,
                            metrics: Mapping[str, float] | None = None, *,
                            round_id: str | None = None) -> UpdateReceipt:
        """Send trained tensors for the current round (``POST /api/v1/rounds/{round_id}/updates``).

        ``arrays`` must have the global model's tensor names, shapes and float32 dtype;
        ``num_examples`` (the number of local training examples) weights the update in FedAvg and
        defaults to 1 (every device counts the same); ``metrics`` are numbers reported with it
        (``train_loss``, ``train_accuracy``...). The body is ``wia_fl.wire.encode_update``, with its
        sha256 in ``X-Update-Checksum`` and its ed25519 signature in ``X-Client-Signature``.

        Sending the same update again returns the same ``update_id``. A 429 is retried (never past
        the round's deadline); any other error raises ``FederatedLearningError`` with the server's
        ``code`` and ``details``: ``InvalidModelFormatError`` (422) with ``{"field", "expected",
        "received"}``, ``ConflictError`` (409) for a closed round, ``AuthenticationError`` (401)...
        """
        info = self.active_round
        round_id = round_id or (info.round_id if info else None)
        if not round_id:
            raise FederatedLearningError("No current round: pass round_id, or call submit_update from a "
                                         "training invitation", code="NO_CURRENT_ROUND")
        body = wire.encode_update(arrays, num_examples=num_examples, metrics=dict(metrics or {}))
        checksum = hashlib.sha256(body).hexdigest()
        headers = {"Content-Type": "application/octet-stream", "X-Update-Checksum": checksum,
                   "X-Client-Signature": self.state.sign(body)}
        if self.state.client_id:
            headers["X-Client-Id"] = self.state.client_id
        deadline = info.deadline if info and info.round_id == round_id else None
        async with self.session():
            response = await self._send("POST", f"{self.api_base}/rounds/{quote(str(round_id), safe='')}/updates",
                                        headers=headers, content=body, deadline=deadline)
        if response.status_code not in (200, 201, 202):
            raise _error_from(response, "Submitting the update")
        data = _unwrap(_json_or_none(response)) or {}
        receipt = UpdateReceipt(update_id=str(data.get("update_id", "")), status=str(data.get("status", "accepted")),
                                estimated_aggregation_time=_maybe_time(data.get("estimated_aggregation_time")),
                                round_id=str(round_id), checksum=checksum, size=len(body))
        self.receipts[str(round_id)] = receipt
        return receipt

    async def report_progress(self, percent: float, estimated_completion: datetime | str | None = None, *,
                              round_number: int | None = None) -> bool:
        """Tell the server how far local training got (seed 002 ``training_progress``).

        Sent over the WebSocket; returns False (and sends nothing) while it is not connected, since
        progress is advisory and the REST protocol has no endpoint for it.
        """
        ws = self._ws
        info = self.active_round
        number = round_number if round_number is not None else (info.round_number if info else None)
        if ws is None or number is None:
            return False
        if isinstance(estimated_completion, datetime):
            estimated_completion = estimated_completion.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        message = {"type": "training_progress", "round_number": int(number),
                   "progress_percent": float(max(0.0, min(100.0, percent)))}
        if estimated_completion:
            message["estimated_completion"] = estimated_completion
        try:
            await ws.send(json.dumps(message))
        except Exception:  # a socket that just closed: progress is advisory
            logger.debug("Could not send training_progress", exc_info=True)
            return False
        return True

    # ---- callbacks -------------------------------------------------------------------------------

    def on_training_invitation(self, handler: Handler) -> Handler:
        """Decorator: ``handler(round_info)`` runs once per round this device is invited to.

        Usually ``async def``; a plain function runs in a worker thread. Invitations are handled one
        at a time, in order; one whose deadline has passed is skipped. Keep CPU-heavy training off
        the event loop (``await asyncio.to_thread(train, ...)``) so the WebSocket stays responsive.
        """
        self._handler = handler
        return handler

    def on_model_ready(self, handler: Callable[[ModelReady], Any]) -> Callable[[ModelReady], Any]:
        """Decorator: called with each ``model_ready`` message (a new global model was published)."""
        self._model_ready_handler = handler
        return handler

    # ---- the run loop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run until ``stop()``, until the execution this device trained for finishes (with
        ``stop_when_complete``), or until Ctrl-C. Blocking; ``await client.run()`` from async code."""
        try:
            asyncio.run(self.run())
        except KeyboardInterrupt:
            logger.info("Interrupted: stopping")

    def stop(self) -> None:
        """Ask ``start()`` / ``run()`` to return. Safe from any thread and from a callback."""
        self._stop_requested.set()
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    async def run(self) -> None:
        """The body of ``start()``: listen, poll and hand invitations to the callback."""
        if self._handler is None:
            raise FederatedLearningError("Decorate a function with @client.on_training_invitation first",
                                         code="NO_HANDLER")
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._queue = asyncio.Queue()
        self._register_lock = asyncio.Lock()
        self.finished_execution = None
        if self._stop_requested.is_set():  # stop() came before the loop existed
            self._stop.set()
        tasks: list[asyncio.Task] = []
        try:
            async with self.session():
                await self._ensure_token()
                tasks = [asyncio.create_task(self._poll_loop(), name="wia_fl-poll"),
                         asyncio.create_task(self._work_loop(), name="wia_fl-work")]
                if self.use_websocket:
                    tasks.append(asyncio.create_task(self._websocket_loop(), name="wia_fl-websocket"))
                tasks.append(asyncio.create_task(self._stop.wait(), name="wia_fl-stop"))
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        if not task.cancelled() and task.exception() is not None:
                            raise task.exception()
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._ws = None
            self._loop = self._stop = self._wake = self._queue = None
            self._stop_requested.clear()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _offer(self, info: RoundInfo) -> None:
        """Queue an invitation unless this round was offered already (WebSocket and polling both
        report it) or it is over."""
        if info.status != "active" or info.round_id in self._seen_rounds:
            return
        if info.expired:
            logger.info("Skipping round %s: its deadline passed", info.round_number)
            return
        self._seen_rounds[info.round_id] = None
        while len(self._seen_rounds) > 1000:
            self._seen_rounds.popitem(last=False)
        if info.execution_id:
            self._executions.add(info.execution_id)
        assert self._queue is not None
        await self._queue.put(info)

    async def _work_loop(self) -> None:
        assert self._queue is not None
        while True:
            info = await self._queue.get()
            if info.expired:
                logger.info("Skipping round %s: its deadline passed while waiting", info.round_number)
                continue
            self.active_round = info
            logger.info("Training for round %s (%s, via %s)", info.round_number, info.round_id, info.source)
            try:
                result = self._handler(info) if inspect.iscoroutinefunction(self._handler) else \
                    await asyncio.to_thread(self._handler, info)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except FederatedLearningError as exc:  # the server's answer says it all: no traceback
                logger.error("Round %s: %s", info.round_number, exc)
            except Exception:
                logger.exception("The training callback failed in round %s", info.round_number)
            self.rounds_handled.append(info)
            self._poke()

    async def _poll_loop(self) -> None:
        assert self._wake is not None and self._stop is not None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                data = await self._round_status()
                if data is not None:
                    await self._on_round_status(data)
            except NotRegisteredError:
                raise
            except AuthenticationError as exc:
                if not self.api_key:
                    raise  # nothing can renew the token: stop instead of polling forever
                logger.warning("Polling the current round failed: %s", exc)
            except FederatedLearningError as exc:
                logger.warning("Polling the current round failed: %s", exc)
            # The socket brings invitations only once the server counts this device in an
            # execution (which a poll does): until then, and without a socket, poll often.
            serving = self._serving is not None
            interval = self.websocket_poll_interval if self._ws is not None and serving else self.poll_interval
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass

    async def _on_round_status(self, data: dict) -> None:
        # ``completed`` is the round status the server gives once the execution this device serves
        # has finished (completed, failed or stopped); ``pending`` is between rounds.
        execution_id = str(data.get("execution_id") or "")
        self._serving = execution_id or None
        finished = data.get("status") == "completed" or data.get("execution_status") in FINISHED_EXECUTION_STATUSES
        if (self.stop_when_complete and finished and execution_id and execution_id in self._executions
                and (self._queue is None or self._queue.empty())):
            logger.info("Execution %s finished (%s): stopping", execution_id, data.get("execution_status") or "completed")
            self.finished_execution = dict(data)
            assert self._stop is not None
            self._stop.set()
            return
        info = RoundInfo.from_payload(data, source="poll")
        if info is not None:
            await self._offer(info)

    async def _websocket_loop(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        delay = 1.0
        while True:
            try:
                await self._ensure_token()
                async with connect(self.ws_url, additional_headers=self._auth_headers(), open_timeout=10,
                                   max_size=2 ** 20, proxy=None) as ws:
                    await ws.send(json.dumps(SUBSCRIBE_MESSAGE))
                    self._ws = ws
                    delay = 1.0
                    logger.info("WebSocket connected to %s", self.ws_url)
                    self._poke()  # an invitation sent before the subscription: ask once
                    async for raw in ws:
                        await self._on_message(raw)
                    code = ws.close_code
                if code == 4401 and self.api_key:
                    await self._register_again()
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                logger.info("WebSocket refused with HTTP %s; polling meanwhile", status)
                if status in (401, 403) and self.api_key and not self.state.token_valid():
                    await self._register_again()
            except (OSError, WebSocketException, asyncio.TimeoutError, FederatedLearningError) as exc:
                if isinstance(exc, AuthenticationError) and not self.api_key:
                    raise
                logger.info("WebSocket unavailable (%s); polling meanwhile", exc)
            finally:
                self._ws = None
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 60.0)

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "training_invitation":
            info = RoundInfo.from_payload({**message, "status": message.get("status", "active")}, source="websocket")
            if info is not None:
                await self._offer(info)
        elif kind == "model_ready":
            ready = ModelReady(version=str(message.get("version", "")),
                               download_url=str(message.get("download_url", "")), raw=message)
            self._poke()  # the execution may have finished with this model: ask now
            if self._model_ready_handler is not None:
                try:
                    result = self._model_ready_handler(ready)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("The model_ready callback failed")
        elif message.get("event") == "error":
            logger.warning("The server refused a WebSocket message: %s", message.get("data"))


def _maybe_time(value) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError:
        return None
