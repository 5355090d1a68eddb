"""The services' answers as the proto's messages (and the proto's requests as the services' inputs).

The round dict is ``services.device_current_round``'s, the same REST serialises. Times become Unix
seconds (0 for none), the model checksum its 32 raw bytes, ``model_id`` the execution's id (the
model that execution trains; ``version`` says which of its versions).
"""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from nodes.protocol.grpc import federated_learning_pb2 as pb


def epoch(value) -> int:
    """Unix seconds of an aware datetime or an ISO-8601 string; 0 for none."""
    if value in (None, ""):
        return 0
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def from_epoch(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=timezone.utc) if seconds else None


def checksum_bytes(hex_digest: str | None) -> bytes:
    try:
        return bytes.fromhex(hex_digest or "")
    except ValueError:
        return b""


def struct(data: dict | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    ParseDict(data or {}, message)
    return message


def capabilities_dict(capabilities: pb.ClientCapabilities) -> dict:
    """The REST body's ``capabilities`` object: only the fields the device set."""
    out: dict = {}
    if capabilities.HasField("max_model_size_mb"):
        out["max_model_size_mb"] = capabilities.max_model_size_mb
    if capabilities.supported_frameworks:
        out["supported_frameworks"] = list(capabilities.supported_frameworks)
    if capabilities.HasField("compute_capability"):
        out["compute_capability"] = capabilities.compute_capability
    return out


def training_config(info: dict) -> pb.TrainingConfig:
    return pb.TrainingConfig(round_id=info.get("round_id") or "", execution_id=info.get("execution_id") or "",
                             parameters=struct(info.get("training_config")))


def training_round(info: dict) -> pb.TrainingRound:
    """seed 002's TrainingRound from the service's round dict."""
    message = pb.TrainingRound(round_number=int(info.get("round_number") or 0), status=info.get("status") or "",
                               config=training_config(info), deadline=epoch(info.get("deadline")))
    if info.get("model_version"):
        message.global_model.CopyFrom(pb.ModelReference(
            model_id=info.get("execution_id") or "", version=info["model_version"],
            download_url=info.get("global_model_url") or "", checksum=checksum_bytes(info.get("model_checksum")),
            size_bytes=int(info.get("model_size") or 0)))
    return message


def training_invitation(info: dict) -> pb.ServerMessage:
    return pb.ServerMessage(training_invitation=pb.TrainingInvitation(
        round_number=int(info.get("round_number") or 0), global_model_url=info.get("global_model_url") or "",
        config=training_config(info), deadline=epoch(info.get("deadline")),
        model_version=info.get("model_version") or ""))


def model_ready(info: dict) -> pb.ServerMessage:
    return pb.ServerMessage(model_ready=pb.ModelReady(
        version=info.get("model_version") or "", download_url=info.get("global_model_url") or "",
        checksum=checksum_bytes(info.get("model_checksum")), round_number=int(info.get("model_round") or 0),
        execution_id=info.get("execution_id") or ""))
