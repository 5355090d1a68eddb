"""The ``wia.federatedlearning.v1.FederatedLearning`` service (seed 002 section 2) on grpcio.

A second front door to the device protocol: every call is admitted by the rules of its REST twin
(``calls.admit`` with the view class) and does its work through the same services
(``nodes.protocol.services``), on the same rows and files. So a device may register over gRPC and
download over REST, or the reverse.

=====================  ====================================  ==========================================
RPC                    REST twin                             service
=====================  ====================================  ==========================================
RegisterClient         POST /api/v1/clients/register         device_register
GetTrainingRound       GET /api/v1/rounds/current            device_current_round
DownloadModel          GET /api/v1/models/{version}          device_model (the file, in ModelChunks)
SubmitUpdate           POST /api/v1/rounds/{id}/updates      device_update_submit (the chunks as body)
StreamUpdates          WebSocket training_invitation...      device_current_round, device_progress_report
=====================  ====================================  ==========================================

``build_server()`` makes a server bound to an address (``manage.py device_grpc`` runs it; tests bind
port 0). The thread pool serves DEVICE_GRPC_MAX_WORKERS calls at once; each open StreamUpdates holds
one of them, and calls beyond the pool are refused with RESOURCE_EXHAUSTED rather than queued.
"""

from __future__ import annotations

import itertools
import threading
from concurrent import futures

import grpc
from django.conf import settings
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from core.exceptions import ValidationFailed
from nodes.api.serializers import validated_input
from nodes.protocol import services, views
from nodes.protocol.auth import bearer, check_acting_for
from nodes.protocol.grpc import federated_learning_pb2 as pb
from nodes.protocol.grpc import federated_learning_pb2_grpc as pb_grpc
from nodes.protocol.grpc import messages
from nodes.protocol.grpc.calls import admit, rpc
from nodes.protocol.grpc.chunks import ChunkReader, read_chunks
from nodes.protocol.grpc.stream import DeviceStream
from nodes.protocol.serializers import ClientRegisterInputSerializer

SERVICE = "wia.federatedlearning.v1.FederatedLearning"
MiB = 1024 * 1024


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


class FederatedLearningServicer(pb_grpc.FederatedLearningServicer):
    def __init__(self, *, shutdown: threading.Event | None = None):
        self.shutdown = shutdown or threading.Event()

    @rpc(_method("RegisterClient"), http_method="POST")
    def RegisterClient(self, request: pb.RegisterClientRequest, context, call) -> pb.RegisterClientResponse:
        admit(call.request, views.ClientRegisterView)
        body = {"device_id": request.device_id, "platform": request.platform,
                "capabilities": messages.capabilities_dict(request.capabilities)}
        if call.request.header("x-client-public-key") is not None:
            body["public_key"] = call.request.header("x-client-public-key")
        if call.request.header("x-project-id"):
            body["project_id"] = call.request.header("x-project-id")
        data = validated_input(ClientRegisterInputSerializer, body)
        registration = services.device_register(
            user=call.request.user, device_id=data["device_id"], platform=data["platform"],
            capabilities=dict(data.get("capabilities") or {}), public_key=data.get("public_key"),
            project_id=data.get("project_id"))
        return pb.RegisterClientResponse(client_id=str(registration.node.pk),
                                         registration_token=registration.token,
                                         expires_at=messages.epoch(registration.expires_at))

    @rpc(_method("GetTrainingRound"), http_method="GET")
    def GetTrainingRound(self, request: pb.GetTrainingRoundRequest, context, call) -> pb.TrainingRound:
        admit(call.request, views.CurrentRoundView)
        info = services.device_current_round(node=call.request.auth.node)
        return messages.training_round(info)

    @rpc(_method("DownloadModel"), http_method="GET")
    def DownloadModel(self, request: pb.DownloadModelRequest, context, call):
        admit(call.request, views.ModelDownloadView)
        blob = services.device_model(node=call.request.auth.node, version=request.version)
        chunk_bytes = max(1, int(settings.DEVICE_GRPC_CHUNK_BYTES))
        with open(blob.path, "rb") as fh:
            chunks = read_chunks(fh, size=blob.size, chunk_bytes=chunk_bytes, offset=request.offset)
            first = next(chunks)  # a bad offset fails before any metadata is sent
            context.send_initial_metadata((("x-model-checksum", blob.checksum), ("x-model-version", blob.version),
                                           ("x-model-size", str(blob.size)), ("x-request-id", call.request_id)))
            for index, total, data in itertools.chain([first], chunks):
                yield pb.ModelChunk(data=data, chunk_index=index, total_chunks=total)

    @rpc(_method("SubmitUpdate"), http_method="POST")
    def SubmitUpdate(self, request_iterator, context, call) -> pb.UpdateReceipt:
        admit(call.request, views.UpdateSubmitView)
        node = call.request.auth.node
        check_acting_for(call.request, call.request.header("x-client-id") or None)
        round_id = call.request.header("x-round-id")
        if not round_id:
            raise ValidationFailed("The x-round-id metadata must carry the round's id (TrainingRound.config.round_id)",
                                   field="x-round-id")
        declared = call.request.header("x-update-size")
        try:
            content_length = int(declared) if declared else None
        except ValueError:
            raise ValidationFailed("x-update-size must be a number of bytes", field="x-update-size")
        body = ChunkReader(request_iterator, limit=settings.DEVICE_UPDATE_MAX_BYTES)
        update, created = services.device_update_submit(
            node=node, round_id=round_id, body=body, content_length=content_length,
            checksum=call.request.header("x-update-checksum"), signature=call.request.header("x-client-signature"),
            public_key=call.request.auth.public_key)
        eta = services.estimated_aggregation_time(update.round)
        call.trailers.append(("x-update-created", "true" if created else "false"))
        return pb.UpdateReceipt(update_id=str(update.pk), status="accepted",
                                estimated_aggregation_time=messages.epoch(eta))

    @rpc(_method("StreamUpdates"), http_method="GET")
    def StreamUpdates(self, request_iterator, context, call):
        admit(call.request, views.CurrentRoundView)
        stream = DeviceStream(requests=request_iterator, context=context, token=bearer(call.request),
                              identity=call.request.auth, method=call.name, shutdown=self.shutdown)
        yield from stream.run()


def server_options() -> list[tuple[str, int]]:
    chunk = int(settings.DEVICE_GRPC_CHUNK_BYTES)
    message = max(4 * MiB, chunk + 64 * 1024)
    return [
        ("grpc.max_receive_message_length", message),
        ("grpc.max_send_message_length", message),
        # Never share a port with another process (gRPC allows it by default on Linux): a second
        # server on the same address must fail, not split the traffic.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def credentials() -> grpc.ServerCredentials | None:
    cert, key = settings.DEVICE_GRPC_TLS_CERT, settings.DEVICE_GRPC_TLS_KEY
    if not cert and not key:
        return None
    if not (cert and key):
        raise ValueError("DEVICE_GRPC_TLS_CERT and DEVICE_GRPC_TLS_KEY go together")
    with open(cert, "rb") as c, open(key, "rb") as k:
        return grpc.ssl_server_credentials([(k.read(), c.read())])


def build_server(address: str | None = None, *, max_workers: int | None = None,
                 shutdown: threading.Event | None = None) -> tuple[grpc.Server, int]:
    """A server with the service (and ``grpc.health.v1``, as ``server.health``) on ``address``
    (DEVICE_GRPC_ADDRESS by default; port 0 picks a free one): ``(server, port)``. Not started.
    Binding fails loudly (the port is taken, say)."""
    address = address or settings.DEVICE_GRPC_ADDRESS
    workers = max_workers or settings.DEVICE_GRPC_MAX_WORKERS
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="device-grpc"),
                         options=server_options(), maximum_concurrent_rpcs=workers)
    pb_grpc.add_FederatedLearningServicer_to_server(FederatedLearningServicer(shutdown=shutdown), server)
    # The standard health service (grpc.health.v1), for load balancers and orchestrators.
    server.health = health.HealthServicer()
    for name in ("", SERVICE):
        server.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(server.health, server)
    tls = credentials()
    try:
        port = server.add_secure_port(address, tls) if tls else server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises on a failed bind
        raise OSError(f"Cannot listen on {address}: {exc}") from exc
    if not port:
        raise OSError(f"Cannot listen on {address}")
    return server, port
