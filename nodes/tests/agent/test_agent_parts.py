"""The node agent's parts on their own: Flower's log, node config, backoff, state file, the CLI,
the SuperNode command and its supervision (with a stand-in binary that dies on purpose)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pollen_agent import cli
from pollen_agent.agent import Agent, AgentConfig
from pollen_agent.api import api_root
from pollen_agent.backoff import Backoff
from pollen_agent.state import StateFile
from pollen_agent.supernode import FlowerLog, SuperNodeSupervisor, Target, merge_node_config

ROOT = Path(__file__).resolve().parents[3]
GREEN, RESET = "\x1b[92m", "\x1b[0m"


def _flower(line: str) -> str:
    """A line as flower-supernode prints it: coloured level, then the message."""
    return f"{GREEN}INFO {RESET}:      {line}"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_flower_log_counts_train_replies_sent_and_their_time():
    clock = Clock()
    flower = FlowerLog(clock)
    assert not flower.connected and flower.counters() == {"rounds_completed": 0, "updates_sent": 0}
    flower.feed(_flower("SuperNode ID: 1234567"))
    assert flower.connected and flower.flower_node_id == "1234567"
    for round_number, seconds in ((1, 2.0), (2, 4.0)):
        flower.feed(_flower(f"[RUN 42, ROUND {round_number}]"))
        flower.feed(_flower("Receiving: train message (ID: aa)"))
        assert flower.training
        clock.now += seconds
        flower.feed(_flower(f"[RUN 42, ROUND {round_number}]"))
        flower.feed(_flower("Sending: train message (ID: bb)"))
        assert flower.training  # until it is sent
        flower.feed(_flower("Sent successfully"))
        assert not flower.training
    # evaluate messages are not updates; a reply Flower drops is not counted
    flower.feed(_flower("Receiving: evaluate message (ID: cc)"))
    flower.feed(_flower("Sending: evaluate message (ID: dd)"))
    flower.feed(_flower("Sent successfully"))
    flower.feed(_flower("[RUN 42, ROUND 3]"))
    flower.feed(_flower("Receiving: train message (ID: ee)"))
    flower.feed(_flower("Sending: train message (ID: ff)"))
    flower.feed(_flower("Run ID 42 is not in `RUNNING` status. Ignoring reply message ff."))
    assert flower.counters() == {"rounds_completed": 2, "updates_sent": 2, "avg_training_seconds": 3.0}
    flower.feed("\x1b[93mWARNING \x1b[0m:   Connection attempt failed, retrying in 0.66 seconds")
    assert not flower.connected


def test_flower_log_counts_each_train_reply_of_a_run_without_rounds_and_resumes_totals():
    flower = FlowerLog(totals={"rounds_completed": 5, "updates_sent": 7, "training_seconds_total": 14.0})
    for _ in range(2):
        flower.feed(_flower("[RUN 9]"))
        flower.feed(_flower("Receiving: train message (ID: a)"))
        flower.feed(_flower("Sending: train message (ID: b)"))
        flower.feed(_flower("Sent successfully"))
    assert flower.counters()["rounds_completed"] == 7 and flower.counters()["updates_sent"] == 9
    assert flower.totals()["training_seconds_total"] >= 14.0


def test_node_config_merges_the_servers_pairs_under_the_agents_own():
    merged = merge_node_config({"partition-id": 0, "dataset": "digits", "shuffle": True, "ratio": 0.5},
                               'partition-id=3 num-partitions=4 label="a b"')
    assert dict(merged) == {"partition-id": "3", "num-partitions": "4", "dataset": '"digits"', "shuffle": "true",
                            "ratio": "0.5", "label": '"a b"'}
    assert merge_node_config(None, None) == ()


def test_the_supernode_command(tmp_path):
    supervisor = SuperNodeSupervisor(binary="/opt/flwr/bin/flower-supernode", workdir=tmp_path, runtime_port=9194,
                                     auth_private_key="/etc/pollen/node.key", extra_args=["--isolation", "process"])
    tls = Target("superlink.example.com:9093", insecure=False, root_certificates="/etc/pollen/ca.pem",
                 node_config=(("partition-id", "0"),))
    assert supervisor.command(tls) == [
        "/opt/flwr/bin/flower-supernode", "--superlink", "superlink.example.com:9093",
        "--root-certificates", "/etc/pollen/ca.pem", "--auth-supernode-private-key", "/etc/pollen/node.key",
        "--node-config", "partition-id=0", "--port", "9194", "--isolation", "process"]
    assert supervisor.command(Target("10.0.0.1:9093"))[:4] == [
        "/opt/flwr/bin/flower-supernode", "--superlink", "10.0.0.1:9093", "--insecure"]


def _fake_supernode(tmp_path: Path, body: str) -> str:
    path = tmp_path / "flower-supernode"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _poll_until(supervisor, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, supervisor.report()
        supervisor.poll()
        time.sleep(0.02)


def test_a_supernode_that_keeps_dying_is_restarted_with_growing_delays(tmp_path):
    binary = _fake_supernode(tmp_path, 'echo "INFO :      SuperNode ID: 77"\nexit 3')
    supervisor = SuperNodeSupervisor(binary=binary, workdir=tmp_path / "work", initial_backoff=0.05,
                                     max_backoff=0.4)
    supervisor.poll()
    assert not supervisor.running  # no target: nothing to run
    supervisor.set_target(Target("127.0.0.1:1"))
    _poll_until(supervisor, lambda: supervisor.exits >= 4)
    report = supervisor.report()
    assert report["restarts"] >= 3 and report["last_exit_code"] == 3 and report["flower_node_id"] == "77"
    assert supervisor._backoff.failures >= 4
    supervisor.stop()
    assert "SuperNode ID: 77" in (tmp_path / "work" / "supernode.log").read_text()


def test_a_missing_binary_is_retried_not_fatal(tmp_path):
    supervisor = SuperNodeSupervisor(binary=str(tmp_path / "nope"), workdir=tmp_path, initial_backoff=0.01)
    supervisor.set_target(Target("127.0.0.1:1"))
    supervisor.poll()
    assert not supervisor.running and supervisor.starts == 0 and supervisor._backoff.failures == 1


def test_stop_kills_a_supernode_that_ignores_sigterm(tmp_path):
    binary = _fake_supernode(tmp_path, "trap '' TERM\nwhile true; do sleep 0.05; done")
    supervisor = SuperNodeSupervisor(binary=binary, workdir=tmp_path, stop_timeout=0.5)
    supervisor.set_target(Target("127.0.0.1:1"))
    supervisor.poll()
    pid = supervisor.report()["pid"]
    time.sleep(0.2)
    began = time.monotonic()
    supervisor.stop()
    assert 0.4 < time.monotonic() - began < 5
    assert not supervisor.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter():
    backoff = Backoff(1.0, 8.0, rng=lambda: 0.5)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0
    jittery = Backoff(1.0, 60.0, jitter=0.1, rng=lambda: 1.0)
    assert jittery.next() == pytest.approx(1.1)


def test_the_state_file_is_written_atomically_for_its_owner_only(tmp_path):
    state = StateFile(tmp_path / "agent" / "state.json")
    assert state.load() == {}
    state.update(node_id="n1", server_url="http://x/api/v1")
    state.update(federation={"address": "a:1"}, server_url=None)
    assert state.load() == {"node_id": "n1", "federation": {"address": "a:1"}}
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert [p.name for p in state.path.parent.iterdir()] == ["state.json"]
    state.path.write_text("{not json")
    assert state.load() == {}


def test_the_api_root_accepts_a_base_url_or_the_api_url():
    assert api_root("https://pollen.example.com/") == "https://pollen.example.com/api/v1"
    assert api_root("https://pollen.example.com/api/v1/") == "https://pollen.example.com/api/v1"


def _agent(tmp_path, **overrides) -> Agent:
    config = AgentConfig(server_url="http://127.0.0.1:9", api_key="pk_x_y", state_dir=tmp_path,
                         supernode_bin="/bin/true", **overrides)
    return Agent(config)


def test_the_target_follows_pollen_unless_the_node_says_otherwise(tmp_path):
    federation = {"address": "superlink:9093", "insecure": False, "root_certificates": "-----BEGIN CERT-----\n",
                  "node_config": {"partition-id": 2}}
    target = _agent(tmp_path).target(federation)
    assert target.address == "superlink:9093" and not target.insecure
    assert Path(target.root_certificates).read_text() == "-----BEGIN CERT-----\n"
    assert target.node_config == (("partition-id", "2"),)
    local = _agent(tmp_path, superlink="10.1.1.1:9093", root_certificates="/etc/ca.pem",
                   node_config="partition-id=5").target(federation)
    assert (local.address, local.insecure, local.root_certificates, local.node_config) == (
        "10.1.1.1:9093", False, "/etc/ca.pem", (("partition-id", "5"),))
    assert _agent(tmp_path, superlink_insecure=True).target(federation).insecure
    assert _agent(tmp_path).target({"address": ""}) is None and _agent(tmp_path).target(None) is None


def test_registration_describes_the_host(tmp_path):
    body = _agent(tmp_path, name="edge", zone="eu-par", location={"name": "Paris", "code": None},
                  register_interval=2).registration()
    assert body["name"] == "edge" and body["zone"] == "eu-par" and body["location"] == {"name": "Paris"}
    assert body["framework"] == "flwr" and body["framework_version"]
    assert body["heartbeat_interval_seconds"] == 5  # Pollen's minimum
    assert body["resources"]["cpu_count"] >= 1 and body["capability"]["memory_gb"] > 0


def test_the_cli_reads_the_environment_and_refuses_what_is_missing(monkeypatch, tmp_path, capsys):
    for name in [k for k in os.environ if k.startswith("POLLEN_")]:
        monkeypatch.delenv(name)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--no-supernode"])
    assert exit_info.value.code == 2 and "POLLEN_SERVER_URL" in capsys.readouterr().err
    key_file = tmp_path / "key"
    key_file.write_text("pk_abc_def\n")
    monkeypatch.setenv("POLLEN_SERVER_URL", "https://pollen.example.com")
    monkeypatch.setenv("POLLEN_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("POLLEN_NO_SUPERNODE", "1")
    monkeypatch.setenv("POLLEN_HEARTBEAT_INTERVAL", "2.5")
    parser = cli.build_parser()
    config = cli.config_from_args(parser.parse_args(["--zone", "eu-par"]), parser)
    assert (config.server_url, config.api_key, config.supernode, config.interval, config.zone) == (
        "https://pollen.example.com", "pk_abc_def", False, 2.5, "eu-par")


def test_the_agent_imports_no_django():
    code = ("import sys, pollen_agent.cli, pollen_agent.agent; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'django')))")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


class LosingApi:
    """Pollen as the agent sees it when the answer to its first registration is lost: the node is
    registered (by key) but the agent hears only a dropped connection."""

    root = "http://127.0.0.1:9/api/v1"

    def __init__(self, state_file: Path):
        self.state_file = state_file
        self.nodes: dict[str, dict] = {}
        self.keys_sent: list[str | None] = []
        self.state_before_call: list[dict] = []

    def register(self, body, *, idempotency_key=None):
        from pollen_agent.api import Unreachable

        self.keys_sent.append(idempotency_key)
        self.state_before_call.append(json.loads(self.state_file.read_text()) if self.state_file.exists() else {})
        node = self.nodes.setdefault(idempotency_key, {"id": f"node-{len(self.nodes) + 1}", "name": body["name"]})
        if len(self.keys_sent) == 1:
            raise Unreachable("RemoteProtocolError: Server disconnected without sending a response")
        return node

    def heartbeat(self, node_id, body):
        return {"id": node_id, "heartbeat_interval_seconds": 30, "federation": None}

    def close(self):
        pass


def test_a_lost_registration_answer_does_not_make_a_second_node(tmp_path):
    def agent(api):
        config = AgentConfig(server_url="http://127.0.0.1:9", api_key="pk_x_y", state_dir=tmp_path,
                             supernode=False, name="edge-1")
        return Agent(config, api=api)

    api = LosingApi(tmp_path / "state.json")
    first = agent(api)
    first.step(time.monotonic())  # the answer is lost
    assert first.node_id is None and api.keys_sent[0]
    # The key was on disk before the request left, so even an agent killed now would send it again.
    assert api.state_before_call[0]["registration_key"] == api.keys_sent[0]
    restarted = agent(api)  # a new process on the same state folder
    restarted.step(time.monotonic() + 3600)
    assert restarted.node_id == "node-1" and api.keys_sent[1] == api.keys_sent[0] and len(api.nodes) == 1
    # A node Pollen forgot is registered anew, with a new key.
    assert restarted._registration_key() == api.keys_sent[0]
    restarted.state.update(registration_key=None)
    assert restarted._registration_key() != api.keys_sent[0]
