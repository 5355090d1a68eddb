"""A device's identity: its ed25519 key pair and what registration gave it, optionally on disk.

The private key never leaves the device. The server keeps the public key sent at registration and
checks every update's ``X-Client-Signature`` (base64 ed25519 signature of the exact body) with it.

The state file is JSON, written atomically with mode 0600: a restarted device re-uses its key,
``client_id`` and token instead of registering as a new client.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

STATE_VERSION = 1
# Renew the token this long before it expires, so a request in flight never carries a dead one.
RENEW_MARGIN = timedelta(seconds=60)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class DeviceState:
    """Everything a device must remember between runs."""

    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    server_url: str = ""
    device_id: str = ""
    platform: str = ""
    capabilities: dict = field(default_factory=dict)
    client_id: str = ""
    token: str = ""
    expires_at: datetime | None = None

    @property
    def public_key_b64(self) -> str:
        """The raw 32-byte public key, base64: what ``POST /clients/register`` takes."""
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)
        return _b64(raw)

    def sign(self, body: bytes) -> str:
        """``X-Client-Signature``: the base64 ed25519 signature of ``body``."""
        return _b64(self.private_key.sign(body))

    def token_valid(self, now: datetime | None = None) -> bool:
        if not self.token:
            return False
        if self.expires_at is None:
            return True
        return (now or datetime.now(timezone.utc)) < self.expires_at - RENEW_MARGIN

    # ---- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        raw = self.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
        return {
            "version": STATE_VERSION,
            "server_url": self.server_url,
            "device_id": self.device_id,
            "platform": self.platform,
            "capabilities": self.capabilities,
            "client_id": self.client_id,
            "token": self.token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "private_key": _b64(raw),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceState:
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["private_key"]))
        expires = data.get("expires_at")
        return cls(private_key=key, server_url=data.get("server_url", ""), device_id=data.get("device_id", ""),
                   platform=data.get("platform", ""), capabilities=data.get("capabilities") or {},
                   client_id=data.get("client_id", ""), token=data.get("token", ""),
                   expires_at=parse_time(expires) if expires else None)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (a crash never leaves half a key) and readable by the owner only."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_json(), fh, indent=2)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeviceState | None:
        """The saved state, or None when there is no file yet."""
        try:
            with open(path) as fh:
                return cls.from_json(json.load(fh))
        except FileNotFoundError:
            return None


def parse_time(value: str | int | float | datetime | None) -> datetime | None:
    """An ISO-8601 string (``Z`` allowed) or epoch seconds, as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
