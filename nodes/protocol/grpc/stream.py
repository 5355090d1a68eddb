"""StreamUpdates: one device's live channel (seed 002 section 3's messages over gRPC).

The server tells the device what ``GET /rounds/current`` would tell it, as soon as it changes: every
few seconds (DEVICE_GRPC_STREAM_POLL_SECONDS) the stream asks ``services.device_current_round``, the
same question REST answers, and sends

- ``training_invitation`` when a round is active that the device has not been invited to and has
  not sent its update for (also right when the stream opens, for a round already running);
- ``model_ready`` when the model version changes after the stream opened to an aggregate (a round
  was aggregated; the last one is the execution's final model).

Asking the service rather than following stored events keeps one source of truth and covers a
device that joins an execution mid-way (the service assigns it, as REST does). The same look also
re-checks the token, so a revoked or expired token ends the stream with UNAUTHENTICATED.

The device sends ``subscribe`` (topics ``round_updates`` and/or ``model_updates``; none means
both, the default before any subscribe), ``training_progress`` (-> ``device_progress_report``)
and ``heartbeat``; each is answered by an ``ack``, which carries the error when the message was
refused (the stream stays open).

A reader thread only queues the device's messages; all database work happens in the call's own
thread, which releases its connection after every look.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from core.exceptions import NotFound, ValidationFailed
from nodes.protocol import services
from nodes.protocol.grpc import federated_learning_pb2 as pb
from nodes.protocol.grpc import messages
from nodes.protocol.grpc.errors import failure_for

logger = logging.getLogger("pollen.nodes.grpc")

TOPICS = ("round_updates", "model_updates")
_END = object()


class DeviceStream:
    """The state of one StreamUpdates call: ``run()`` yields the ServerMessages to send."""

    def __init__(self, *, requests, context, token: str, identity, method: str, shutdown: threading.Event,
                 poll_seconds: float | None = None):
        self.context = context
        self.token = token
        self.node = identity.node
        self.method = method
        self.shutdown = shutdown
        self.poll_seconds = max(0.05, float(poll_seconds if poll_seconds is not None
                                            else settings.DEVICE_GRPC_STREAM_POLL_SECONDS))
        self.topics = set(TOPICS)
        self.inbox: queue.Queue = queue.Queue()
        self.invited: set[str] = set()
        self.model_version: str | None = None
        self._reader = threading.Thread(target=self._read, args=(requests,), daemon=True,
                                        name=f"grpc-stream-{self.node.pk}")

    # ---- the device's messages (reader thread: no database here) ---------------------------------------

    def _read(self, requests) -> None:
        try:
            for message in requests:
                self.inbox.put(message)
        except Exception:  # the call ended (cancelled, deadline, server stop)
            pass
        finally:
            self.inbox.put(_END)

    # ---- the call's thread ----------------------------------------------------------------------------

    def run(self):
        self.context.add_callback(lambda: self.inbox.put(_END))  # wakes the loop when the call ends
        self._reader.start()
        yield from self._look(initial=True)
        next_look = time.monotonic() + self.poll_seconds
        client_open = True
        while self.context.is_active() and not self.shutdown.is_set():
            timeout = max(0.0, next_look - time.monotonic())
            try:
                message = self.inbox.get(timeout=timeout) if client_open else self._sleep(timeout)
            except queue.Empty:
                message = None
            if message is _END:
                # The device closed its side; it may still listen. Invitations go on until it cancels.
                client_open = False
                message = None
            if message is not None:
                yield from self._handle(message)
            if time.monotonic() >= next_look:
                yield from self._look()
                next_look = time.monotonic() + self.poll_seconds

    def _sleep(self, seconds: float):
        self.shutdown.wait(min(seconds, 0.25))
        return None

    def _identity(self):
        identity = services.device_authenticate(token=self.token)  # 401 once revoked or expired
        self.node = identity.node
        return identity

    def _look(self, *, initial: bool = False):
        """What changed since the last look, as messages. Releases the thread's connection after."""
        out = []
        try:
            self._identity()
            info = services.device_current_round(node=self.node)
            version = info.get("model_version")
            if initial:
                self.model_version = version
            elif version and version != self.model_version:
                self.model_version = version
                number = self._model_round(version)
                # Aggregates only, as the WebSocket's model_ready (from model.aggregated): an
                # execution's initial model comes with its first invitation.
                if number >= 1 and "model_updates" in self.topics:
                    out.append(messages.model_ready({**info, "model_round": number}))
            round_id = info.get("round_id")
            if (info.get("status") == "active" and round_id and round_id not in self.invited
                    and not info.get("update_submitted") and "round_updates" in self.topics):
                self.invited.add(round_id)
                out.append(messages.training_invitation(info))
        except DatabaseError:  # a busy database skips a look; the next one will see the news
            logger.warning("StreamUpdates of %s could not look at its round", self.node.pk, exc_info=True)
        finally:
            close_old_connections()
        return out

    def _model_round(self, version: str) -> int:
        try:
            return services.device_model(node=self.node, version=version).number
        except NotFound:
            return 0

    def _handle(self, message: pb.ClientUpdate):
        kind = message.WhichOneof("kind") or ""
        error = None
        extra: list = []
        try:
            if kind == "subscribe":
                unknown = [t for t in message.subscribe.topics if t not in TOPICS]
                if unknown:
                    raise ValidationFailed(f"Unknown topics {unknown}; use {list(TOPICS)}", field="topics")
                self.topics = set(message.subscribe.topics) or set(TOPICS)
                # A round already running is news to a device that just subscribed to it.
                extra = self._look(initial=self.model_version is None)
            elif kind == "training_progress":
                progress = message.training_progress
                self._identity()
                services.device_progress_report(
                    node=self.node, round_number=progress.round_number, progress_percent=progress.progress_percent,
                    estimated_completion=messages.from_epoch(progress.estimated_completion))
            elif kind == "heartbeat":
                self._identity()  # counts as a sign of life, like any request of the device
            else:
                raise ValidationFailed("A ClientUpdate must carry subscribe, training_progress or heartbeat",
                                       field="kind")
        except Exception as exc:
            failure = failure_for(exc, method=self.method)
            if failure.http_status == 401:  # the token is no longer good: the stream ends
                raise
            error = pb.Error(code=failure.error_code, message=failure.message, http_status=failure.http_status,
                             details_json=json.dumps(failure.details, default=str, separators=(",", ":")))
        finally:
            close_old_connections()
        yield pb.ServerMessage(ack=pb.Ack(type=kind, server_time=int(time.time()), error=error))
        yield from extra
