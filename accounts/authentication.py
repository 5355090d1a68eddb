"""How callers prove who they are: JWT access tokens and API keys (``X-API-Key`` or Bearer)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import API_KEY_PREFIX, ApiKey, User

LAST_USED_RESOLUTION = timedelta(minutes=1)


def looks_like_api_key(raw: str) -> bool:
    return raw.startswith(f"{API_KEY_PREFIX}_") and raw.count("_") >= 2 and "." not in raw


def revoked_access_cache_key(jti: str) -> str:
    return f"jwt:revoked:{jti}"


# JWT ``iat`` has whole seconds only, so a token issued in the same second as a password change
# would outlive it. Tokens from ``tokens_issue`` also carry their issue time in microseconds.
ISSUED_AT_CLAIM = "iat_us"
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def epoch_microseconds(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def issued_before(token, instant: datetime) -> bool:
    """True when ``token`` was issued before ``instant``. A token without the precise claim counts
    as issued before anything in its ``iat`` second: refusing a fresh token beats accepting a stale one."""
    precise = token.get(ISSUED_AT_CLAIM)
    if isinstance(precise, int):
        return precise < epoch_microseconds(instant)
    return token.get("iat", 0) <= int(instant.timestamp())


@dataclass
class ApiKeyAuth:
    """``request.auth`` for a key: what the permission check and the throttle need to know."""

    key: ApiKey
    scopes: list[str] = field(default_factory=list)

    @property
    def api_key_id(self):
        return self.key.pk


def _user_queryset():
    return User.objects.prefetch_related("roles")


def authenticate_api_key(raw_key: str):
    """``(user, ApiKeyAuth)`` for a valid, active key, else None."""
    try:
        _, prefix, _ = raw_key.split("_", 2)
    except ValueError:
        return None
    key = (
        ApiKey.objects.select_related("user")
        .prefetch_related("user__roles")
        .filter(prefix=prefix)
        .first()
    )
    if key is None or not _constant_time_equal(key.key_hash, ApiKey.hash_secret(raw_key)):
        return None
    if key.status != "active" or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user, ApiKeyAuth(key=key, scopes=list(key.scopes))


def _constant_time_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def check_access_token(token: AccessToken, user: User) -> None:
    """Raise when the token was revoked by logout or predates a password change."""
    jti = token.get("jti")
    if jti and cache.get(revoked_access_cache_key(jti)):
        raise InvalidToken("Token has been revoked")
    if user.tokens_valid_after and issued_before(token, user.tokens_valid_after):
        raise InvalidToken("Token was issued before the account's credentials changed")


def user_for_access_token(token: AccessToken) -> User:
    """The token's user, checked (active, not revoked), with roles and permissions taken from the
    token's signed claims while they are current.

    The claims were computed when the token was issued; a change to the user's roles or to one of
    their roles' permissions stamps ``permissions_changed_at`` (see accounts.signals), after which
    the permissions are read from the database again. This saves a query on every API request.
    """
    try:
        user = User.objects.get(pk=token["user_id"])
    except (KeyError, User.DoesNotExist, ValueError, DjangoValidationError):
        raise exceptions.AuthenticationFailed("User not found")
    if not user.is_active:
        raise exceptions.AuthenticationFailed("User is inactive")
    check_access_token(token, user)
    roles, permissions = token.get("roles"), token.get("permissions")
    claims_current = isinstance(roles, list) and isinstance(permissions, list) and not (
        user.permissions_changed_at and issued_before(token, user.permissions_changed_at)
    )
    if claims_current and not user.is_superuser:
        user.__dict__["role_names"] = sorted(str(r) for r in roles)
        user.__dict__["permission_strings"] = sorted(str(p) for p in permissions)
    return user


def authenticate_jwt(raw_token: str):
    """``(user, token)`` for a valid access token, else None (used by the WebSocket)."""
    try:
        token = AccessToken(raw_token)
        return user_for_access_token(token), token
    except (TokenError, InvalidToken, exceptions.AuthenticationFailed):
        return None


class JWTAuthentication(SimpleJWTAuthentication):
    def get_header(self, request):
        header = super().get_header(request)
        # A Bearer API key (seed 002) is the API-key authenticator's business.
        if header and looks_like_api_key(header.split()[-1].decode("latin1")):
            return None
        return header

    def get_user(self, validated_token):
        return user_for_access_token(validated_token)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``X-API-Key: <key>`` (seed 001) or ``Authorization: Bearer <key>`` (seed 002)."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_API_KEY")
        if not raw:
            header = request.META.get("HTTP_AUTHORIZATION", "")
            parts = header.split()
            if len(parts) == 2 and parts[0] == "Bearer" and looks_like_api_key(parts[1]):
                raw = parts[1]
        if not raw:
            return None
        result = authenticate_api_key(raw.strip())
        if result is None:
            raise exceptions.AuthenticationFailed("API key is invalid, expired or revoked")
        return result

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
