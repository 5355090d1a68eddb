"""The ASGI front of update uploads (``POST /api/v1/rounds/{id}/updates``), ahead of Django.

Django's ASGI handler reads a whole request body into a temporary file before any view runs, so
the view's own size check would come after the bytes were received, and the view would then read
that file again to hash and spool it. For this one route, this layer receives the body itself:

* a declared Content-Length over DEVICE_UPDATE_MAX_BYTES is answered 413 without reading the body,
  and a body without one (chunked) is cut with 413 as soon as it passes the limit;
* otherwise the body is received once (in memory when its declared length fits what is left of
  DEVICE_UPDATE_MEMORY_BYTES, else in a temporary file), with its sha256 and the ed25519 pre-hash
  computed as it arrives (``ingest.receive``: the hashing runs in threads while the next bytes
  come in). The pre-hash needs the device's public key, which the token's ``cnf`` claim names, and the
  signature's R from ``X-Client-Signature``; without either the view checks the signature over
  the whole body as before.

Django then gets the request with an empty body and the received one in ``scope[SCOPE_KEY]``; the
view hands that to the service, which makes every check itself (token, round, checksum, signature
against the credential's key, format). This layer authenticates nothing: a token or key it reads
is only a hint for where to start hashing. The received body is dropped when the response is
done. Everything else goes straight through. Under WSGI the view reads the stream itself and
applies the same limits.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from django.conf import settings

from nodes.protocol import ingest

logger = logging.getLogger("pollen.nodes.protocol")

UPDATES_PATH = re.compile(r"^/api/v1/rounds/[^/]+/updates/?$")
SCOPE_KEY = "pollen.update_body"


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _content_length(scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _signer(scope) -> tuple[bytes, bytes] | None:
    """(public key, signature) as the request names them: the token's ``cnf`` key (the token is
    checked, so that a forged one does not cost a hash) and ``X-Client-Signature``. None when
    either is missing or malformed."""
    from core.exceptions import AuthenticationFailed
    from nodes.protocol.auth import looks_like_device_token, token_claims, token_public_key
    from nodes.protocol.signatures import parse_signature

    authorization = (_header(scope, b"authorization") or b"").decode("latin-1").split()
    signature = parse_signature((_header(scope, b"x-client-signature") or b"").decode("latin-1"))
    if len(authorization) != 2 or authorization[0].lower() != "bearer" or signature is None:
        return None
    if not looks_like_device_token(authorization[1]):
        return None
    try:
        key = token_public_key(token_claims(authorization[1]))
    except AuthenticationFailed:  # an invalid or expired token: the view answers 401
        return None
    return (key, signature) if key is not None else None


async def _refuse(send, limit: int) -> None:
    from core.api.envelope import error_envelope

    request_id = str(uuid.uuid4())
    body = error_envelope("PAYLOAD_TOO_LARGE", f"An update may be at most {limit} bytes", {"limit": limit})
    body["request_id"] = request_id
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


class UpdateBodyLimit:
    """The guard (see the module docstring); wraps Django's ASGI application."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST" or not UPDATES_PATH.match(
                scope.get("path", "")):
            return await self.app(scope, receive, send)
        limit = settings.DEVICE_UPDATE_MAX_BYTES
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, limit)
        from nodes.protocol.services import update_dir

        try:
            body = await ingest.receive(receive, directory=update_dir(), limit=limit, signer=_signer(scope),
                                        size_hint=declared, memory_budget_bytes=settings.DEVICE_UPDATE_MEMORY_BYTES)
        except ingest.TooLarge:
            return await _refuse(send, limit)
        if body is None:  # the client went away before sending it all
            return None
        delivered = False

        async def body_received():
            # Django reads the (empty) body, then listens for the disconnect on the real channel.
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return await receive()

        try:
            await self.app({**scope, SCOPE_KEY: body}, body_received, send)
        finally:
            body.close()
