import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from core.models import TimeStampedModel, UUIDModel
from core.permissions import is_valid_permission


class Role(TimeStampedModel):
    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    permissions = models.JSONField(default=list, help_text="Permission strings; '*' and 'prefix:*' are wildcards.")
    is_builtin = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if not isinstance(self.permissions, list) or not all(isinstance(p, str) for p in self.permissions):
            raise ValidationError({"permissions": "A list of permission strings."})
        bad = [p for p in self.permissions if not is_valid_permission(p)]
        if bad:
            raise ValidationError({"permissions": f"Not permission strings: {', '.join(bad)}"})


class User(UUIDModel, AbstractUser):
    email = models.EmailField(unique=True)
    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    failed_login_count = models.PositiveIntegerField(default=0, editable=False)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Access tokens issued before this instant are refused (password change, "log out everywhere").
    tokens_valid_after = models.DateTimeField(null=True, blank=True, editable=False)
    # Access tokens issued before this instant carry stale role claims (see accounts.signals).
    permissions_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    REQUIRED_FIELDS = ["email"]

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        ordering = ["username"]

    @cached_property
    def role_names(self) -> list[str]:
        return sorted(r.name for r in self.roles.all())

    @cached_property
    def permission_strings(self) -> list[str]:
        if self.is_superuser:
            return ["*"]
        perms: set[str] = set()
        for role in self.roles.all():
            perms.update(role.permissions)
        return sorted(perms)

    def has_wildcard_permission(self) -> bool:
        return "*" in self.permission_strings

    def is_locked(self, now=None) -> bool:
        return bool(self.locked_until and self.locked_until > (now or timezone.now()))


API_KEY_PREFIX = "pk"


class ApiKeyQuerySet(models.QuerySet):
    def active(self, *, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(UUIDModel, TimeStampedModel):
    """A programmatic credential. Only a SHA-256 of the secret is stored; the key is shown once.

    Keys look like ``pk_<prefix>_<secret>``: the prefix finds the row, the hash proves the secret.
    A fast hash is right here: the secret is 256 random bits, nothing to guess.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_from = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="rotated_to", editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({API_KEY_PREFIX}_{self.prefix}_…)"

    @staticmethod
    def hash_secret(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new ``(prefix, raw_key)`` pair."""
        prefix = secrets.token_hex(6)
        return prefix, f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"
