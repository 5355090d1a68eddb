"""The values the SDK hands to device code: a round invitation, a registration, an update receipt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from wia_fl.identity import parse_time


@dataclass(frozen=True)
class RoundInfo:
    """A training invitation: what ``@client.on_training_invitation`` callbacks receive.

    Built from a WebSocket ``training_invitation`` message or from ``GET /api/v1/rounds/current``.
    ``model_url`` (seed 002's SDK name) and ``global_model_url`` (its REST/WebSocket name) are the
    same URL; pass either, or ``model_version``, to ``client.download_model``.
    """

    round_id: str
    round_number: int
    global_model_url: str
    model_version: str
    training_config: dict = field(default_factory=dict)
    deadline: datetime | None = None
    status: str = "active"
    execution_id: str | None = None
    source: str = "poll"  # "websocket" or "poll": how the invitation arrived

    @property
    def model_url(self) -> str:
        return self.global_model_url

    @property
    def expired(self) -> bool:
        return self.deadline is not None and datetime.now(timezone.utc) >= self.deadline

    @property
    def seconds_left(self) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - datetime.now(timezone.utc)).total_seconds()

    @classmethod
    def from_payload(cls, data: dict[str, Any], *, source: str = "poll") -> RoundInfo | None:
        """The invitation in ``data``, or None when it names no open round."""
        round_id = data.get("round_id")
        if not round_id:
            return None
        try:
            number = int(data.get("round_number") or 0)
        except (TypeError, ValueError):
            number = 0
        url = data.get("global_model_url") or data.get("model_url") or ""
        version = data.get("model_version") or data.get("version") or ""
        config = data.get("training_config")
        try:
            deadline = parse_time(data.get("deadline"))
        except ValueError:
            deadline = None
        return cls(round_id=str(round_id), round_number=number, global_model_url=str(url),
                   model_version=str(version), training_config=config if isinstance(config, dict) else {},
                   deadline=deadline, status=str(data.get("status") or "active"),
                   execution_id=str(data["execution_id"]) if data.get("execution_id") else None, source=source)


@dataclass(frozen=True)
class Registration:
    """What ``client.register`` returns (and what is kept in the state file)."""

    client_id: str
    registration_token: str
    expires_at: datetime | None
    reused: bool = False  # True when a saved, still valid registration was re-used without a request


@dataclass(frozen=True)
class UpdateReceipt:
    """The server's 202 answer to an update: ``update_id`` is stable (a resend returns the same)."""

    update_id: str
    status: str
    estimated_aggregation_time: datetime | None
    round_id: str
    checksum: str
    size: int


@dataclass(frozen=True)
class ModelReady:
    """A ``model_ready`` WebSocket message: a new global model version was published."""

    version: str
    download_url: str
    raw: dict = field(default_factory=dict)
