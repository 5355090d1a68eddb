from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterClientRequest(_message.Message):
    __slots__ = ("device_id", "platform", "capabilities")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    platform: str
    capabilities: ClientCapabilities
    def __init__(self, device_id: _Optional[str] = ..., platform: _Optional[str] = ..., capabilities: _Optional[_Union[ClientCapabilities, _Mapping]] = ...) -> None: ...

class RegisterClientResponse(_message.Message):
    __slots__ = ("client_id", "registration_token", "expires_at")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    registration_token: str
    expires_at: int
    def __init__(self, client_id: _Optional[str] = ..., registration_token: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class TrainingRound(_message.Message):
    __slots__ = ("round_number", "status", "global_model", "config", "deadline")
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_MODEL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    round_number: int
    status: str
    global_model: ModelReference
    config: TrainingConfig
    deadline: int
    def __init__(self, round_number: _Optional[int] = ..., status: _Optional[str] = ..., global_model: _Optional[_Union[ModelReference, _Mapping]] = ..., config: _Optional[_Union[TrainingConfig, _Mapping]] = ..., deadline: _Optional[int] = ...) -> None: ...

class ModelReference(_message.Message):
    __slots__ = ("model_id", "version", "download_url", "checksum", "size_bytes")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: str
    download_url: str
    checksum: bytes
    size_bytes: int
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[str] = ..., download_url: _Optional[str] = ..., checksum: _Optional[bytes] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UpdateChunk(_message.Message):
    __slots__ = ("data", "chunk_index", "total_chunks")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    chunk_index: int
    total_chunks: int
    def __init__(self, data: _Optional[bytes] = ..., chunk_index: _Optional[int] = ..., total_chunks: _Optional[int] = ...) -> None: ...

class UpdateReceipt(_message.Message):
    __slots__ = ("update_id", "status", "estimated_aggregation_time")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_AGGREGATION_TIME_FIELD_NUMBER: _ClassVar[int]
    update_id: str
    status: str
    estimated_aggregation_time: int
    def __init__(self, update_id: _Optional[str] = ..., status: _Optional[str] = ..., estimated_aggregation_time: _Optional[int] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("data", "chunk_index", "total_chunks")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    chunk_index: int
    total_chunks: int
    def __init__(self, data: _Optional[bytes] = ..., chunk_index: _Optional[int] = ..., total_chunks: _Optional[int] = ...) -> None: ...

class ClientCapabilities(_message.Message):
    __slots__ = ("max_model_size_mb", "supported_frameworks", "compute_capability")
    MAX_MODEL_SIZE_MB_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FRAMEWORKS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    max_model_size_mb: int
    supported_frameworks: _containers.RepeatedScalarFieldContainer[str]
    compute_capability: str
    def __init__(self, max_model_size_mb: _Optional[int] = ..., supported_frameworks: _Optional[_Iterable[str]] = ..., compute_capability: _Optional[str] = ...) -> None: ...

class GetTrainingRoundRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainingConfig(_message.Message):
    __slots__ = ("round_id", "execution_id", "parameters")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    execution_id: str
    parameters: _struct_pb2.Struct
    def __init__(self, round_id: _Optional[str] = ..., execution_id: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DownloadModelRequest(_message.Message):
    __slots__ = ("version", "offset")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    version: str
    offset: int
    def __init__(self, version: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ClientUpdate(_message.Message):
    __slots__ = ("subscribe", "training_progress", "heartbeat")
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    subscribe: Subscribe
    training_progress: TrainingProgress
    heartbeat: Heartbeat
    def __init__(self, subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., training_progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, topics: _Optional[_Iterable[str]] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("round_number", "progress_percent", "estimated_completion")
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    round_number: int
    progress_percent: float
    estimated_completion: int
    def __init__(self, round_number: _Optional[int] = ..., progress_percent: _Optional[float] = ..., estimated_completion: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at",)
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    sent_at: int
    def __init__(self, sent_at: _Optional[int] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("training_invitation", "model_ready", "ack")
    TRAINING_INVITATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_READY_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    training_invitation: TrainingInvitation
    model_ready: ModelReady
    ack: Ack
    def __init__(self, training_invitation: _Optional[_Union[TrainingInvitation, _Mapping]] = ..., model_ready: _Optional[_Union[ModelReady, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...

class TrainingInvitation(_message.Message):
    __slots__ = ("round_number", "global_model_url", "config", "deadline", "model_version")
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_MODEL_URL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    round_number: int
    global_model_url: str
    config: TrainingConfig
    deadline: int
    model_version: str
    def __init__(self, round_number: _Optional[int] = ..., global_model_url: _Optional[str] = ..., config: _Optional[_Union[TrainingConfig, _Mapping]] = ..., deadline: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class ModelReady(_message.Message):
    __slots__ = ("version", "download_url", "checksum", "round_number", "execution_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    ROUND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    version: str
    download_url: str
    checksum: bytes
    round_number: int
    execution_id: str
    def __init__(self, version: _Optional[str] = ..., download_url: _Optional[str] = ..., checksum: _Optional[bytes] = ..., round_number: _Optional[int] = ..., execution_id: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("type", "server_time", "error")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    type: str
    server_time: int
    error: Error
    def __init__(self, type: _Optional[str] = ..., server_time: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "details_json", "http_status")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    details_json: str
    http_status: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., details_json: _Optional[str] = ..., http_status: _Optional[int] = ...) -> None: ...
