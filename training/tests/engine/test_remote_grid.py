"""The observed Grid of a deployed federation waits for replies as Flower's does, and stops waiting
for a node as soon as Pollen's registry knows it is gone."""

import time

import httpx
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from training.engine.callback import CallbackObserver
from training.engine.grid import NullObserver, RemoteGrid, server_identity


@pytest.fixture(autouse=True)
def _server_side():
    server_identity(run_id=1)  # Flower builds messages only for a known sender


class FakeSuperLink:
    """Flower's Grid as a ServerApp sees it: messages pushed, replies pulled when the node answers."""

    def __init__(self, answering: set[int]):
        self.answering = answering
        self.pushed: dict[str, Message] = {}
        self.pulls = 0

    def push_messages(self, messages):
        ids = []
        for n, message in enumerate(messages):
            message_id = f"m{len(self.pushed) + n}"
            message.metadata.__dict__["_message_id"] = message_id
            ids.append(message_id)
        self.pushed.update(zip(ids, messages))
        return ids

    def pull_messages(self, message_ids):
        self.pulls += 1
        replies = []
        for message_id in message_ids:
            message = self.pushed[message_id]
            if message.metadata.dst_node_id in self.answering:
                content = RecordDict({"metrics": MetricRecord({"num-examples": 10, "loss": 0.5})})
                reply = Message(content, reply_to=message)
                reply.metadata.__dict__["_src_node_id"] = message.metadata.dst_node_id
                replies.append(reply)
        return replies


class Registry(NullObserver):
    def __init__(self, gone=()):
        self.gone = set(gone)
        self.asked: list[set[int]] = []

    def offline_nodes(self, node_ids):
        self.asked.append(set(node_ids))
        return node_ids & self.gone


def _messages(node_ids):
    content = RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord({"server-round": 1})})
    return [Message(content, dst_node_id=n, message_type="train") for n in node_ids]


def _grid(superlink, observer, **pace):
    return RemoteGrid(superlink, observer=observer, **{"poll_seconds": 0.02, "liveness_seconds": 0.1, **pace})


def test_a_node_the_registry_knows_is_gone_is_not_waited_for():
    registry = Registry(gone={2})
    grid = _grid(FakeSuperLink(answering={1}), registry)
    started = time.monotonic()
    replies = list(grid.send_and_receive(_messages([1, 2]), timeout=60))
    assert time.monotonic() - started < 5  # not the 60 s timeout
    assert [r.metadata.src_node_id for r in replies] == [1]
    assert registry.asked and registry.asked[0] == {2}  # only the node still owed a reply is asked about


def test_what_the_observer_records_tells_a_gone_node_from_a_silent_one():
    seen = []

    class Recording(Registry):
        def on_replies(self, round_number, phase, results):
            seen.extend(results)

    grid = _grid(FakeSuperLink(answering={1}), Recording(gone={2}))
    grid.send_and_receive(_messages([1, 2, 3]), timeout=0.5)
    by_node = {r.node_id: r for r in seen}
    assert by_node[1].error == "" and by_node[1].num_examples == 10
    assert by_node[2].error == RemoteGrid.OFFLINE
    assert by_node[3].error == RemoteGrid.UNANSWERED


def test_without_news_from_the_registry_the_round_waits_out_its_timeout():
    superlink = FakeSuperLink(answering={1})
    grid = _grid(superlink, Registry(gone=()))
    started = time.monotonic()
    replies = list(grid.send_and_receive(_messages([1, 2]), timeout=0.4))
    assert 0.35 < time.monotonic() - started < 3
    assert len(replies) == 1 and superlink.pulls > 1


def test_every_reply_in_ends_the_wait_without_asking_the_registry():
    registry = Registry(gone={1, 2})
    replies = list(_grid(FakeSuperLink(answering={1, 2}), registry).send_and_receive(_messages([1, 2]), timeout=60))
    assert len(replies) == 2 and registry.asked == []


def test_a_node_that_answers_late_is_still_taken_until_the_registry_says_otherwise():
    superlink = FakeSuperLink(answering={1})
    registry = Registry(gone=())
    grid = _grid(superlink, registry, liveness_seconds=0.05)

    def answer_later(message_ids, _pull=superlink.pull_messages):
        if superlink.pulls >= 5:
            superlink.answering.add(2)
        return _pull(message_ids)

    superlink.pull_messages = answer_later
    replies = list(grid.send_and_receive(_messages([1, 2]), timeout=30))
    assert sorted(r.metadata.src_node_id for r in replies) == [1, 2] and registry.asked


class _Client:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.sent = answer, error, []

    def post(self, payload):
        self.sent.append(payload)
        if self.error:
            raise self.error
        return self.answer


def test_the_callback_observer_asks_pollen_and_keeps_only_ids_it_asked_about():
    client = _Client({"offline": [5, 7, "x", 9]})
    assert CallbackObserver(client).offline_nodes({5, 6, 7}) == {5, 7}
    assert client.sent == [{"type": "liveness", "node_ids": [5, 6, 7]}]


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_an_unanswered_liveness_question_means_wait_on(error):
    assert CallbackObserver(_Client(error=error)).offline_nodes({5}) == set()


def test_messages_the_superlink_did_not_take_are_failures_without_a_wait():
    class Refusing(FakeSuperLink):
        def push_messages(self, messages):
            return []  # Flower's answer when the SuperLink refuses the whole batch (413)

    seen = []

    class Recording(Registry):
        def on_replies(self, round_number, phase, results):
            seen.extend(results)

    started = time.monotonic()
    assert list(_grid(Refusing(answering={1, 2}), Recording()).send_and_receive(_messages([1, 2]), timeout=60)) == []
    assert time.monotonic() - started < 5
    assert [r.error for r in seen] == ["the SuperLink did not take the message"] * 2
