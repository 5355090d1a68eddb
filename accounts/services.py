"""Writes for identity and access: registration, login, tokens, passwords, roles, API keys."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.authentication import ISSUED_AT_CLAIM, epoch_microseconds, issued_before, revoked_access_cache_key
from accounts.models import ApiKey, Role, User
from accounts.roles import DEFAULT_ROLE
from core.exceptions import AuthenticationFailed, Conflict, Forbidden, ValidationFailed
from core.permissions import covers, is_valid_permission

_DUMMY_HASH = make_password("pollen-timing-equaliser")


# ---- registration and passwords ----------------------------------------------------------------

def _validate_password(password: str, user: User | None = None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), details={"field": field, "reason": exc.messages})


@transaction.atomic
def user_register(*, username: str, email: str, password: str, first_name: str = "", last_name: str = "") -> User:
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("That username is taken", details={"field": "username"})
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("An account with that email exists", details={"field": "email"})
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    _validate_password(password, user)
    user.set_password(password)
    try:
        user.save()
    except IntegrityError:  # a concurrent registration won the race
        raise Conflict("That username or email is taken")
    role = Role.objects.filter(name=DEFAULT_ROLE).first()
    if role:
        user.roles.add(role)
    return user


@transaction.atomic
def user_change_password(*, user: User, old_password: str, new_password: str) -> None:
    """Change the password and end every session of the account: refresh tokens are blacklisted
    and access tokens issued before now stop working."""
    if not user.check_password(old_password):
        raise ValidationFailed("The current password is wrong", field="old_password")
    _validate_password(new_password, user, field="new_password")
    user.set_password(new_password)
    user.tokens_valid_after = timezone.now()
    user.save(update_fields=["password", "tokens_valid_after"])
    _blacklist_all_refresh_tokens(user)


def _blacklist_all_refresh_tokens(user: User) -> None:
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
        blacklistedtoken__isnull=False
    )
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in outstanding], ignore_conflicts=True)


# ---- login and tokens --------------------------------------------------------------------------

def _address_key(address: str) -> str:
    return f"login:fail:addr:{address}"


def _locked_error(seconds: int, scope: str) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"This {scope} is locked after too many failed logins; try again in {seconds} seconds",
        details={"reason": f"{scope}_locked", "retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )


def auth_login(*, identifier: str, password: str, address: str) -> dict:
    """Check credentials and issue a token pair (seed 000 login response)."""
    user = auth_check_credentials(identifier=identifier, password=password, address=address)
    return tokens_issue(user=user)


def auth_check_credentials(*, identifier: str, password: str, address: str) -> User:
    """The user these credentials prove, or ``AuthenticationFailed``.

    Failures are counted per account (in the database) and per client address (in the cache);
    either reaching its limit locks logins for LOGIN_LOCKOUT_SECONDS.
    """
    lockout = settings.LOGIN_LOCKOUT_SECONDS
    if (cache.get(_address_key(address)) or 0) >= settings.LOGIN_ADDRESS_MAX_FAILURES:
        raise _locked_error(lockout, "address")

    user = User.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier)).first()
    now = timezone.now()
    if user is not None and user.is_locked(now):
        raise _locked_error(int((user.locked_until - now).total_seconds()) + 1, "account")

    if user is None:
        # Spend the same hashing time as a real check so that timing does not reveal accounts.
        check_password(password, _DUMMY_HASH)
        valid = False
    else:
        valid = user.check_password(password)
    if not valid or not user.is_active:
        _record_failure(user, address, now)
        raise AuthenticationFailed("Invalid username or password")

    if user.failed_login_count or user.locked_until:
        User.objects.filter(pk=user.pk).update(failed_login_count=0, locked_until=None)
    return user


def _record_failure(user: User | None, address: str, now: datetime) -> None:
    key = _address_key(address)
    if not cache.add(key, 1, settings.LOGIN_LOCKOUT_SECONDS):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)
    if user is None:
        return
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.failed_login_count = F("failed_login_count") + 1
        locked.save(update_fields=["failed_login_count"])
        locked.refresh_from_db(fields=["failed_login_count"])
        if locked.failed_login_count >= settings.LOGIN_MAX_FAILURES:
            locked.failed_login_count = 0
            locked.locked_until = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
            locked.save(update_fields=["failed_login_count", "locked_until"])


def user_unlock(*, user: User) -> None:
    User.objects.filter(pk=user.pk).update(failed_login_count=0, locked_until=None)


def _claims(user: User) -> dict:
    # seed 000 "JWT Token Structure": sub, user_id, email, roles, permissions, iat, exp, type
    return {
        "sub": user.username,
        "email": user.email,
        "roles": user.role_names,
        "permissions": user.permission_strings,
    }


def tokens_issue(*, user: User) -> dict:
    # The issue time is taken before the roles are read: a role change that lands in between then
    # counts as later than the token, and authentication reads the permissions afresh.
    issued_at = epoch_microseconds(timezone.now())
    user = User.objects.prefetch_related("roles").get(pk=user.pk)
    refresh = RefreshToken.for_user(user)
    for claim, value in _claims(user).items():
        refresh[claim] = value
    refresh[ISSUED_AT_CLAIM] = issued_at  # copied into the access token
    access = refresh.access_token
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return {
        "access_token": str(access),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
        "refresh_expires_in": int(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds()),
        "user": user_summary(user),
    }


def user_summary(user: User) -> dict:
    return {
        "id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "roles": user.role_names,
        "permissions": user.permission_strings,
    }


def _refresh_token(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)
    except TokenError:
        raise AuthenticationFailed("Refresh token is invalid, expired or revoked")


def tokens_refresh(*, refresh_token: str) -> dict:
    """Rotate: the presented refresh token is blacklisted and a fresh pair (with the user's
    current roles) is issued. Reusing a rotated token fails."""
    with transaction.atomic():
        token = _refresh_token(refresh_token)
        user = User.objects.prefetch_related("roles").filter(pk=token.get("user_id")).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed("Refresh token is invalid, expired or revoked")
        if user.tokens_valid_after and issued_before(token, user.tokens_valid_after):
            raise AuthenticationFailed("Refresh token is invalid, expired or revoked")
        _, created = token.blacklist()
        if not created:  # another request rotated it first
            raise AuthenticationFailed("Refresh token is invalid, expired or revoked")
        return tokens_issue(user=user)


def auth_logout(*, user: User, refresh_token: str | None, access_token: AccessToken | None) -> None:
    if refresh_token:
        token = _refresh_token(refresh_token)
        if str(token.get("user_id")) != str(user.pk):
            raise Forbidden("That refresh token belongs to another account")
        token.blacklist()
    if access_token is not None and access_token.get("jti"):
        remaining = int(access_token["exp"] - timezone.now().timestamp()) + 1
        if remaining > 0:
            cache.set(revoked_access_cache_key(access_token["jti"]), True, remaining)


# ---- roles -------------------------------------------------------------------------------------

def _check_permissions(permissions: list[str]) -> list[str]:
    bad = [p for p in permissions if not isinstance(p, str) or not is_valid_permission(p)]
    if bad:
        raise ValidationFailed(f"Not permission strings: {bad}", field="permissions")
    return sorted(set(permissions))


@transaction.atomic
def role_create(*, name: str, permissions: list[str], description: str = "") -> Role:
    if Role.objects.filter(name=name).exists():
        raise Conflict(f"A role named {name!r} exists", details={"field": "name"})
    return Role.objects.create(name=name, description=description, permissions=_check_permissions(permissions))


@transaction.atomic
def role_update(*, role: Role, permissions: list[str] | None = None, description: str | None = None) -> Role:
    role = Role.objects.select_for_update().get(pk=role.pk)
    if role.is_builtin and permissions is not None:
        raise Forbidden("Built-in roles keep the permissions the platform defines")
    if permissions is not None:
        role.permissions = _check_permissions(permissions)
    if description is not None:
        role.description = description
    role.save()
    return role


@transaction.atomic
def user_set_roles(*, actor: User, user: User, role_names: list[str]) -> User:
    roles = list(Role.objects.filter(name__in=role_names))
    missing = sorted(set(role_names) - {r.name for r in roles})
    if missing:
        raise ValidationFailed(f"Unknown roles: {', '.join(missing)}", field="roles")
    if actor.pk == user.pk and not any("*" in r.permissions for r in roles) and actor.has_wildcard_permission():
        raise Forbidden("Administrators cannot remove their own administration rights")
    user.roles.set(roles)
    return User.objects.prefetch_related("roles").get(pk=user.pk)


# ---- API keys ----------------------------------------------------------------------------------

def _check_scopes(user: User, scopes: list[str], granted: Iterable[str] | None = None) -> list[str]:
    scopes = _check_permissions(scopes) if scopes else []
    if not scopes:
        raise ValidationFailed("An API key needs at least one scope", field="scopes")
    held = user.permission_strings if granted is None else list(granted)
    beyond = [s for s in scopes if not covers(held, s)]
    if beyond:
        raise ValidationFailed(
            f"A key cannot hold more than its owner or the credential creating it: {', '.join(beyond)}",
            details={"field": "scopes", "reason": "exceeds_owner_permissions", "scopes": beyond},
        )
    return scopes


@transaction.atomic
def api_key_create(*, user: User, name: str, scopes: list[str], expires_at: datetime | None = None,
                   granted: Iterable[str] | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw secret, which is never retrievable again.

    ``granted`` is what the calling credential may do (an API key's scopes); a key never holds more,
    so a narrow key cannot mint a wider one. None means the owner's own permissions.
    """
    scopes = _check_scopes(user, scopes, granted)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(
        user=user, name=name, prefix=prefix, key_hash=ApiKey.hash_secret(raw), scopes=scopes, expires_at=expires_at
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey, granted: Iterable[str] | None = None) -> tuple[ApiKey, str]:
    """Replace a key by a new secret with the same name, scopes and remaining lifetime.

    ``granted`` as for ``api_key_create``: a credential cannot learn the secret of a wider key.
    """
    if granted is not None:
        granted = list(granted)
        if not all(covers(granted, scope) for scope in key.scopes):
            raise Forbidden("This credential cannot rotate a key with wider scopes than its own")
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.status != "active":
        raise Conflict(f"Only an active key can be rotated; this one is {key.status}")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at", "updated_at"])
    prefix, raw = ApiKey.generate()
    new = ApiKey.objects.create(
        user=key.user, name=key.name, prefix=prefix, key_hash=ApiKey.hash_secret(raw),
        scopes=key.scopes, expires_at=key.expires_at, rotated_from=key,
    )
    return new, raw
