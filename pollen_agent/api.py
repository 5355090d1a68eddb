"""The two calls the agent makes to Pollen: register the node and send a heartbeat.

Errors come in two kinds: ``Unreachable`` (network errors, timeouts, 5xx, 408 and 429) is worth
retrying with backoff; ``ApiError`` is the server's considered answer (a 4xx with the error
envelope's ``code`` and ``message``) and retrying the same request will not change it.
"""

from __future__ import annotations

import httpx

from pollen_agent import __version__

RETRYABLE_STATUSES = {408, 425, 429}


class Unreachable(Exception):
    """Pollen could not be reached or could not answer now; ``retry_after`` is its hint, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def api_root(server_url: str) -> str:
    """``https://pollen.example.com`` or ``.../api/v1`` both name the API root."""
    url = server_url.strip().rstrip("/")
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url + "/api/v1"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


class PollenApi:
    """A thin client of ``/api/v1`` carrying the node's API key (``Authorization: Bearer`` by
    default, ``X-API-Key`` with ``header="x-api-key"``)."""

    def __init__(self, server_url: str, api_key: str, *, header: str = "bearer", timeout: float = 10.0,
                 verify: bool | str = True):
        if header == "x-api-key":
            auth = {"X-API-Key": api_key}
        else:
            auth = {"Authorization": f"Bearer {api_key}"}
        self.root = api_root(server_url)
        self._client = httpx.Client(
            headers={**auth, "User-Agent": f"pollen-agent/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), verify=verify)

    def close(self) -> None:
        self._client.close()

    def register(self, body: dict, *, idempotency_key: str | None = None) -> dict:
        """``POST /fl/clients``: the registered node (``id``, ``heartbeat_interval_seconds``, ...).
        With ``idempotency_key``, sending the same registration again returns the same node."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._call("POST", "/fl/clients", body, headers=headers)

    def heartbeat(self, node_id: str, body: dict) -> dict:
        """``POST /nodes/{id}/heartbeat``: the node as stored, with the ``federation`` to join."""
        return self._call("POST", f"/nodes/{node_id}/heartbeat", body)

    def _call(self, method: str, path: str, body: dict, *, headers: dict | None = None) -> dict:
        try:
            response = self._client.request(method, self.root + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
            raise Unreachable(f"HTTP {response.status_code} from {path}", retry_after=_retry_after(response))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success:
            if not isinstance(payload, dict):
                raise Unreachable(f"HTTP {response.status_code} from {path} without a JSON body")
            return payload.get("data") or {}
        error = (payload or {}).get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        raise ApiError(response.status_code, str(error.get("code") or "HTTP_ERROR"),
                       str(error.get("message") or response.reason_phrase), error.get("details"))
