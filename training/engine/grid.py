"""Pollen's Flower ``Grid``s: the embedded federation, and the observed Grid of a deployed one.

Flower's ServerApp drives rounds through a ``Grid`` (send messages to nodes, receive replies).
This Grid hands each message to the ClientApp in the same process, one simulated node after
another, each with its own ``Context`` (node config with its partition, persistent state). Messages
are deep-copied both ways so that no node sees another's objects, as over a network.

Flower keeps the sender's identity in the process-global ``TaskIdentity``; a worker process runs
one execution at a time, so setting it per run is safe there.

``RemoteGrid`` wraps the Grid Flower gives a ServerApp on a SuperLink and observes it the same way
(``training.engine.callback`` reports to Pollen from there). ``ObservedGrid`` is what both share.

The Grid also reports what it sees to an observer (Pollen's round records, events, control
checks): this works for Pollen's own apps and for uploaded Flower apps alike, because the Grid is
the one interface both must use.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from flwr.app import ArrayRecord, Context, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

CLIENT_ERROR_CODE = 0


class ExecutionInterrupted(Exception):
    """Raised between rounds when the execution was asked to stop or suspend."""

    def __init__(self, action: str, completed_round: int):
        self.action = action
        self.completed_round = completed_round
        super().__init__(f"{action} requested after round {completed_round}")


@dataclass
class ClientResult:
    node_id: int
    partition_id: int | None
    phase: str
    num_examples: int = 0
    metrics: dict = field(default_factory=dict)
    duration_ms: float = 0.0
    bytes_down: int = 0
    bytes_up: int = 0
    error: str = ""


class RunObserver(Protocol):
    def before_round(self, round_number: int) -> None: ...
    def on_replies(self, round_number: int, phase: str, results: list[ClientResult]) -> None: ...
    def on_global_arrays(self, round_number: int, arrays: ArrayRecord) -> None: ...
    def on_round_end(self, round_number: int) -> None: ...
    def offline_nodes(self, node_ids: set[int]) -> set[int]: ...


class NullObserver:
    def offline_nodes(self, node_ids):
        return set()

    def before_round(self, round_number):
        pass

    def on_replies(self, round_number, phase, results):
        pass

    def on_global_arrays(self, round_number, arrays):
        pass

    def on_round_end(self, round_number):
        pass


def content_bytes(content: RecordDict | None) -> int:
    if content is None:
        return 0
    total = 0
    for record in content.values():
        counter = getattr(record, "count_bytes", None)
        if counter is None:
            continue
        try:
            total += counter()
        except IndexError:  # flwr 1.41 cannot count a config record holding an empty list
            total += sum(len(v) if isinstance(v, (bytes, str)) else sum(len(x) if isinstance(x, (bytes, str)) else 8
                                                                         for x in v) if isinstance(v, list) else 8
                         for v in record.values())
    return total


def _metrics(content: RecordDict | None) -> dict:
    if content is None:
        return {}
    out: dict = {}
    # Flower's legacy replies (NumPyClient, SecAgg+) keep their metrics in a ``fitres.metrics`` /
    # ``evaluateres.metrics`` config record and the number of examples in a metric record.
    records = [*content.metric_records.values(),
               *(r for name, r in content.config_records.items() if name.endswith(".metrics"))]
    for record in records:
        for key, value in record.items():
            if isinstance(value, (int, float)):
                out[key] = value
            elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
                out[key] = list(value)
    return out


def _first_arrays(content: RecordDict | None) -> ArrayRecord | None:
    if content is None:
        return None
    records = list(content.array_records.values())
    return records[0] if records else None


class ObservedGrid(Grid):
    """What every Pollen grid shares: it tells the observer where rounds begin and end, what the
    server sent (the global model) and what each node answered. Subclasses implement
    ``_exchange`` (deliver the messages, return each reply with its ``ClientResult``)."""

    def __init__(self, *, observer: RunObserver | None = None, round_offset: int = 0):
        self.observer = observer or NullObserver()
        self.round_offset = round_offset
        self.current_round = 0
        self.completed_round = round_offset
        # Resuming an app that builds its own initial model: the first training message carries
        # this checkpoint instead, so the run continues where it stopped.
        self.resume_arrays: ArrayRecord | None = None

    def _exchange(self, messages: list[Message], timeout: float | None) -> list[tuple[Message, ClientResult]]:
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        if not messages:
            return []
        phase = messages[0].metadata.message_type.split(".")[0]
        round_number = self._round_of(messages[0])
        if phase == "train" and round_number != self.current_round:
            self._close_round()
            self.observer.before_round(round_number)
            self.current_round = round_number
        if phase == "train" and self.resume_arrays is not None and messages[0].has_content():
            for message in messages:
                keys = list(message.content.array_records)
                if keys:
                    message.content[keys[0]] = self.resume_arrays
            self.resume_arrays = None
        arrays = _first_arrays(messages[0].content) if messages[0].has_content() else None
        if arrays is not None:
            # What the server sends is the global model: at evaluate time the one of this round,
            # at train time the one of the round before.
            target = round_number if phase == "evaluate" else round_number - 1
            if target > self.round_offset:
                self.observer.on_global_arrays(target, arrays)
        exchanged = self._exchange(messages, timeout)
        self.observer.on_replies(round_number, phase, [result for _, result in exchanged])
        return [reply for reply, _ in exchanged if reply is not None]

    def _round_of(self, message: Message) -> int:
        """The round a message belongs to: Flower's strategies put it in the config record as
        ``server-round``; older code uses ``group_id``; failing both, each train call is a round."""
        if message.has_content():
            for record in message.content.config_records.values():
                value = record.get("server-round")
                if isinstance(value, int):
                    return value + self.round_offset
        group = message.metadata.group_id
        if group and group.isdigit():
            return int(group) + self.round_offset
        phase = message.metadata.message_type.split(".")[0]
        if phase == "train":
            return max(self.current_round, self.round_offset) + 1
        return max(self.current_round, self.round_offset + 1)

    def _close_round(self) -> None:
        if self.current_round and self.current_round > self.completed_round:
            self.observer.on_round_end(self.current_round)
            self.completed_round = self.current_round

    def finish(self) -> None:
        """Call once the ServerApp returned: closes the last round."""
        self._close_round()


def reply_result(reply: Message, result: ClientResult) -> ClientResult:
    """Fill ``result`` with what a node's reply says: its metrics, examples, bytes or error."""
    if reply.has_content():
        result.bytes_up = content_bytes(reply.content)
        result.metrics = _metrics(reply.content)
        result.num_examples = int(result.metrics.get("num-examples", result.metrics.get("num_examples", 0)) or 0)
    elif reply.has_error() and not result.error:
        result.error = (reply.error.reason or "client error")[:500]
    return result


class InProcessGrid(ObservedGrid):
    """The embedded federation: every node is the ClientApp called in this process."""

    def __init__(self, *, client_app, nodes: dict[int, dict], run_config: dict, run_id: int = 1,
                 observer: RunObserver | None = None, round_offset: int = 0):
        super().__init__(observer=observer, round_offset=round_offset)
        self.client_app = client_app
        self.nodes = nodes
        self.run_config = run_config
        self._run = Run.create_empty(run_id)
        self._states = {node_id: RecordDict() for node_id in nodes}
        self._replies: dict[str, Message] = {}
        self._results: dict[str, ClientResult] = {}

    # ---- Flower's Grid interface -------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            message.metadata.__dict__["_message_id"] = message_id
            reply, result = self._deliver(message)
            self._replies[message_id] = reply
            self._results[message_id] = result
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def _exchange(self, messages, timeout):
        ids = self.push_messages(messages)
        results = [self._results.pop(i) for i in ids]
        return list(zip(self.pull_messages(ids), results))

    def _deliver(self, message: Message) -> tuple[Message, ClientResult]:
        node_id = message.metadata.dst_node_id
        node_config = self.nodes.get(node_id, {})
        result = ClientResult(node_id=node_id, partition_id=node_config.get("partition-id"),
                              phase=message.metadata.message_type.split(".")[0],
                              bytes_down=content_bytes(message.content) if message.has_content() else 0)
        incoming = copy.deepcopy(message)
        incoming.metadata.__dict__["_delivered_at"] = str(time.time())
        context = Context(run_id=self._run.run_id, node_id=node_id, node_config=node_config,
                          state=self._states.setdefault(node_id, RecordDict()), run_config=self.run_config)
        started = time.perf_counter()
        try:
            reply = self.client_app(incoming, context)
        except ExecutionInterrupted:
            raise
        except Exception as exc:  # a failing node answers with an error, as over the network
            reply = Message(Error(code=CLIENT_ERROR_CODE, reason=f"{exc.__class__.__name__}: {exc}"),
                            reply_to=message)
            result.error = f"{exc.__class__.__name__}: {exc}"[:500]
        result.duration_ms = (time.perf_counter() - started) * 1000
        reply = copy.deepcopy(reply)
        reply_result(reply, result)
        return reply, result


class RemoteGrid(ObservedGrid):
    """A deployed federation: Flower's own Grid to a SuperLink, observed the same way.

    It waits for replies as Flower's ``send_and_receive`` does (push, then pull until every reply is
    in or the timeout passes), and every ``liveness_seconds`` it asks the observer which of the nodes
    still owing a reply Pollen's registry knows to be gone: it stops waiting for those at once
    instead of waiting out the timeout, or Flower's own heartbeat patience (up to a minute)."""

    UNANSWERED = "no reply before the timeout"
    OFFLINE = "node offline: Pollen's registry lost its heartbeat during the round"

    def __init__(self, inner: Grid, *, observer: RunObserver | None = None, round_offset: int = 0,
                 poll_seconds: float = 3.0, liveness_seconds: float = 5.0):
        super().__init__(observer=observer, round_offset=round_offset)
        self.inner = inner
        self.poll_seconds = poll_seconds
        self.liveness_seconds = liveness_seconds

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def _exchange(self, messages, timeout):
        results = [ClientResult(node_id=m.metadata.dst_node_id, partition_id=None,
                                phase=m.metadata.message_type.split(".")[0],
                                bytes_down=content_bytes(m.content) if m.has_content() else 0) for m in messages]
        started = time.time()
        # Flower keeps the order of the messages: ``None`` for one it could not push, and no ids at
        # all when the SuperLink refused the whole batch (too large).
        pushed = list(self.inner.push_messages(messages))
        pushed += [None] * (len(results) - len(pushed))
        pending = {message_id: result for message_id, result in zip(pushed, results) if message_id}
        for message_id, result in zip(pushed, results):
            if not message_id:
                result.error = "the SuperLink did not take the message"
        replies = self._wait(pending, None if timeout is None else started + timeout)
        out = []
        for reply, result in replies:
            created = reply.metadata.created_at or time.time()
            result.duration_ms = max(0.0, created - started) * 1000
            out.append((reply, reply_result(reply, result)))
        # Nodes that never answered (timeout, node gone) are on the record as failures.
        answered = {id(result) for _, result in replies}
        for result in results:
            if id(result) not in answered:
                result.error = result.error or self.UNANSWERED
                out.append((None, result))
        return out

    def _wait(self, pending: dict[str, ClientResult], deadline: float | None) -> list[tuple[Message, ClientResult]]:
        replies = []
        next_check = time.monotonic() + self.liveness_seconds
        while pending:
            for reply in self.inner.pull_messages(list(pending)):
                result = pending.pop(reply.metadata.reply_to_message_id, None)
                if result is not None:
                    replies.append((reply, result))
            if not pending or (deadline is not None and time.time() >= deadline):
                break
            if time.monotonic() >= next_check:
                gone = self.observer.offline_nodes({r.node_id for r in pending.values()})
                for message_id, result in list(pending.items()):
                    if result.node_id in gone:
                        result.error = self.OFFLINE
                        del pending[message_id]
                next_check = time.monotonic() + self.liveness_seconds
                if not pending:
                    break
            pause = self.poll_seconds if deadline is None else min(self.poll_seconds, deadline - time.time())
            time.sleep(max(0.0, min(pause, max(0.0, next_check - time.monotonic()) + 0.01)))
        return replies


def server_identity(run_id: int) -> None:
    """Set Flower's process-global identity for the ServerApp side of ``run_id``."""
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID


def server_context(run_id: int, run_config: dict) -> Context:
    return Context(run_id=run_id, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(),
                   run_config=run_config)
