"""Device credentials: the registration token (a JWT) and the DRF authentication that reads it.

A device token carries seed 002's claims (``sub`` = the node's uuid, ``iat``, ``exp``,
``scope`` "training:participate model:download") plus ``jti`` and ``type`` "device". It is signed
with a key derived from the JWT signing key, so it is never mistaken for a user's access token
(simplejwt wants ``type`` "access" and a ``user_id``) and a user's token is never a device's.
Revocation: the ``jti`` must be the one its ``DeviceCredential`` holds, and that credential must not
be revoked; registering again replaces the ``jti``.

A token also names the device's ed25519 public key (``cnf``, RFC 7800: ``{"jwk": {"kty": "OKP",
"crv": "Ed25519", "x": ...}}``), so that the update upload can start hashing the body for the
signature check before Django has looked the device up (``nodes.protocol.asgi``). It is a hint: the
key the signature is checked against is always the credential's, from the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import jwt
from django.conf import settings
from django.utils import timezone
from rest_framework import authentication

from core.exceptions import AuthenticationFailed, Forbidden

TOKEN_TYPE = "device"
DEVICE_SCOPES = ("training:participate", "model:download")
SCOPE_CLAIM = " ".join(DEVICE_SCOPES)
ALGORITHM = "HS256"
ISSUER = "pollen"
# A device's sign of life (``last_seen``) is written at most this often from its requests.
TOUCH_SECONDS = 5


@dataclass
class DeviceIdentity:
    """``request.auth`` for a device token: the node, its registrant and the token's scopes."""

    node: object
    user: object
    scopes: list[str] = field(default_factory=lambda: list(DEVICE_SCOPES))
    jti: str = ""
    public_key: str = ""  # the credential's ed25519 key as authentication read it ("" if none)

    @property
    def node_id(self):
        return self.node.pk

    @property
    def api_key_id(self) -> str:
        # The rate limiter counts a caller by its key; a device counts as itself, not as its
        # registrant (whose other devices would otherwise share one bucket).
        return f"device:{self.node.pk}"


def _signing_key() -> bytes:
    base = settings.SIMPLE_JWT.get("SIGNING_KEY") or settings.SECRET_KEY
    return hmac.new(base.encode(), b"pollen-device-token", hashlib.sha256).digest()


def token_issue(*, node_id, now: datetime | None = None, public_key: str | None = None) -> tuple[str, str, datetime]:
    """A new device token for ``node_id``: ``(token, jti, expires_at)``. The caller stores the jti.
    ``public_key`` (base64, the device's ed25519 key) goes into the ``cnf`` claim."""
    now = now or timezone.now()
    expires_at = (now + timedelta(hours=settings.DEVICE_TOKEN_HOURS)).replace(microsecond=0)
    jti = uuid.uuid4().hex
    claims = {"sub": str(node_id), "iat": int(now.timestamp()), "exp": int(expires_at.timestamp()), "jti": jti,
              "scope": SCOPE_CLAIM, "type": TOKEN_TYPE, "iss": ISSUER}
    if public_key:
        x = base64.urlsafe_b64encode(base64.b64decode(public_key)).rstrip(b"=").decode("ascii")
        claims["cnf"] = {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}
    return jwt.encode(claims, _signing_key(), algorithm=ALGORITHM), jti, expires_at


def token_public_key(claims: dict) -> bytes | None:
    """The raw ed25519 key a token's ``cnf`` claim names, or None."""
    jwk = (claims.get("cnf") or {}).get("jwk") if isinstance(claims.get("cnf"), dict) else None
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    x = jwk.get("x")
    if not isinstance(x, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    except (ValueError, TypeError):
        return None
    return raw if len(raw) == 32 else None


def looks_like_device_token(raw: str) -> bool:
    """True for a JWT whose (unverified) ``type`` claim is "device": whether this is ours to judge."""
    if raw.count(".") != 2:
        return False
    try:
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return isinstance(claims, dict) and claims.get("type") == TOKEN_TYPE


def token_claims(raw: str) -> dict:
    """The verified claims of a device token; AuthenticationFailed (401) when it is not one, its
    signature is wrong or it expired."""
    try:
        claims = jwt.decode(raw, _signing_key(), algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["sub", "exp", "iat", "jti", "type"]})
    except jwt.ExpiredSignatureError:
        raise AuthenticationFailed("The device token has expired; register again to get a new one",
                                   details={"reason": "token_expired"}, headers=_challenge("invalid_token"))
    except jwt.PyJWTError:
        raise AuthenticationFailed("The device token is invalid", details={"reason": "token_invalid"},
                                   headers=_challenge("invalid_token"))
    if claims.get("type") != TOKEN_TYPE:
        raise AuthenticationFailed("Not a device token", details={"reason": "token_invalid"},
                                   headers=_challenge("invalid_token"))
    return claims


def _challenge(error: str) -> dict:
    return {"WWW-Authenticate": f'Bearer realm="api", error="{error}"'}


def bearer(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <device token>``. Any other bearer (a user's JWT, an API key) is left
    to the authenticators after this one. ``touch``: whether the request counts as the node's
    heartbeat (``last_seen``)."""

    touch = True

    def authenticate(self, request):
        raw = bearer(request)
        if not raw or not looks_like_device_token(raw):
            return None
        from nodes.protocol.services import device_authenticate

        identity = device_authenticate(token=raw, touch=self.touch)
        return identity.user, identity

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class DeviceUploadAuthentication(DeviceTokenAuthentication):
    """The same, for update uploads: the upload is not written as a heartbeat (the update itself
    is the device's news, and the write would cost every upload a locked transaction); a node
    marked offline is still brought back."""

    touch = False


def device_identity(request) -> DeviceIdentity | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, DeviceIdentity) else None


def check_acting_for(request, node_id) -> None:
    """403 when the caller is a device and ``node_id`` is another node than its own: a node never
    acts for another. Anyone else is judged by the view's own rules."""
    identity = device_identity(request)
    if identity is None or node_id is None:
        return
    if str(node_id).strip().lower() != str(identity.node.pk):
        raise Forbidden("A device acts only for its own node", details={"client_id": str(identity.node.pk),
                                                                         "requested": str(node_id)[:100]})


def to_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=dt_timezone.utc)


from nodes.protocol import schema  # noqa: E402,F401  registers the OpenAPI scheme of device tokens
