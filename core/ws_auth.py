"""WebSocket authentication: a session cookie, a JWT, an API key or a device token.

Browsers cannot set headers on a WebSocket, so the token may also come as ``?token=`` (JWT) or
``?api_key=``. Header forms: ``Authorization: Bearer <jwt or api key>`` and ``X-API-Key``.

A device's registration token (seed 002, ``POST /api/v1/clients/register``) is accepted where a
user's JWT is: the connection then carries ``scope["device"]`` (the device identity) and an
anonymous user, so it sees its own node's events only, never its owner's.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _authenticate(token: str | None, api_key: str | None):
    from accounts.authentication import authenticate_api_key, authenticate_jwt

    if api_key:
        result = authenticate_api_key(api_key)
        if result:
            return result
        return AnonymousUser(), None
    if token:
        result = authenticate_jwt(token)
        if result:
            return result
        device = _authenticate_device(token)
        if device is not None:
            return AnonymousUser(), device
    return AnonymousUser(), None


def _authenticate_device(token: str):
    """The device identity of a valid device token, else None (a bad token is just refused)."""
    try:
        from nodes.protocol.services import device_authenticate
    except ImportError:  # the device protocol is not installed
        return None
    from core.exceptions import ApplicationError
    from rest_framework.exceptions import APIException

    try:
        return device_authenticate(token=token)
    except (ApplicationError, APIException):
        return None


class TokenAuthMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        token = (query.get("token") or [None])[0]
        api_key = headers.get("x-api-key") or (query.get("api_key") or [None])[0]
        auth_header = headers.get("authorization", "")
        if auth_header.lower().startswith("bearer "):
            bearer = auth_header[7:].strip()
            from accounts.authentication import looks_like_api_key

            if looks_like_api_key(bearer):
                api_key = api_key or bearer
            else:
                token = token or bearer
        if token or api_key:
            user, auth = await _authenticate(token, api_key)
            scope = dict(scope, user=user, auth=auth)
            if auth is not None and not user.is_authenticated:
                # Kept with the raw token: the consumer checks it again before each write, so a
                # token revoked while the socket is open stops working there too.
                scope["device"] = auth
                scope["device_token"] = token
        return await self.app(scope, receive, send)


def TokenAuthMiddlewareStack(inner):
    # Session first (dashboard pages), then tokens override it when given.
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))


class OriginPolicy(OriginValidator):
    """Cross-site WebSocket hijacking only threatens cookie sessions: a browser always sends
    ``Origin``, and it must name one of ALLOWED_HOSTS. Programs (devices, the SDK, scripts) send
    no ``Origin``; they are let through when they present a token or API key, never on a cookie."""

    def __init__(self, application):
        super().__init__(application, list(settings.ALLOWED_HOSTS))

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        if b"origin" not in headers and _carries_credentials(scope, headers):
            return await self.application(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _carries_credentials(scope, headers) -> bool:
    if b"x-api-key" in headers or headers.get(b"authorization", b"").lower().startswith(b"bearer "):
        return True
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return bool(query.get("token") or query.get("api_key"))
