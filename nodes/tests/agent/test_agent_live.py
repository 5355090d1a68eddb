"""The node agent (``python -m pollen_agent``) against a live Pollen on loopback, with the real
``flower-supernode`` of this environment."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from importlib.metadata import version
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from core.models import Event
from nodes import services
from nodes.models import Node, NodeMetric
from nodes.tests.agent.conftest import TcpProxy, free_port, gone, wait_for
from nodes.tests.factories import ZoneFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SUPERNODE = str(Path(sys.executable).parent / "flower-supernode")


def _node(user) -> Node | None:
    return Node.objects.filter(registered_by=user).first()


def _agent_report(user) -> dict:
    node = _node(user)
    return ((node.metadata or {}).get("agent") or {}) if node else {}


def _supernode(user) -> dict:
    return _agent_report(user).get("supernode") or {}


def _state(tmp_path) -> dict:
    return json.loads((tmp_path / "state" / "state.json").read_text())


def test_the_agent_registers_once_and_its_heartbeats_store_real_metrics(live_server, agent_key, run_agent,
                                                                       tmp_path):
    user, key = agent_key
    zone = ZoneFactory(code="eu-par")
    args = ("--no-supernode", "--name", "edge-1", "--zone", "eu-par", "--region", "eu-west",
            "--location-name", "Paris", "--location-code", "par", "--lat", "48.85", "--lon", "2.35")
    agent = run_agent(live_server.url, key, *args)
    wait_for(lambda: NodeMetric.objects.filter(node__registered_by=user).count() >= 2, message="two samples",
             log=agent.log)
    assert agent.stop() == 0

    node = _node(user)
    assert node.name == "edge-1" and node.host == "127.0.0.1" and node.status == "connected"
    assert node.framework == "flwr" and node.framework_version == version("flwr")
    assert node.zone == zone and node.region == "eu-west"
    assert node.location == {"name": "Paris", "code": "par", "lat": 48.85, "lon": 2.35}
    assert node.capability["compute"] in ("cpu", "gpu")
    assert node.capability["memory_gb"] == pytest.approx(psutil.virtual_memory().total / 2**30, abs=0.01)
    assert node.resources["cpu_count"] == psutil.cpu_count()
    assert node.resources["memory_bytes"] == psutil.virtual_memory().total
    samples = list(NodeMetric.objects.filter(node=node))
    assert all(s.cpu_percent is not None and 0 <= s.cpu_percent <= 100 for s in samples)
    assert all(s.memory_percent is not None and 0 < s.memory_percent <= 100 for s in samples)
    assert all(s.disk_percent is not None and s.network_bytes_sent and s.network_bytes_recv for s in samples)
    # a metrics-only agent knows no FL counters and claims no status
    assert all(s.rounds_completed is None and s.updates_sent is None for s in samples)
    report = node.metadata["agent"]
    assert report["supernode"] is None and report["registrations"] == 1 and report["pid"] == agent.pid
    assert node.latest_metrics["memory_percent"] == samples[-1].memory_percent
    assert _state(tmp_path)["node_id"] == str(node.pk)

    # A second start (with the key in X-API-Key this time) is the same node, not a new one.
    before = len(samples)
    agent = run_agent(live_server.url, key, *args, "--auth-header", "x-api-key")
    wait_for(lambda: NodeMetric.objects.filter(node=node).count() >= before + 2, message="more samples",
             log=agent.log)
    assert agent.stop() == 0
    assert list(Node.objects.filter(registered_by=user).values_list("pk", flat=True)) == [node.pk]
    assert _agent_report(user)["registrations"] == 0

    # Pollen forgets the node: the agent notices at its first heartbeat and registers again.
    services.node_delete(node=node)
    agent = run_agent(live_server.url, key, *args)
    renewed = wait_for(lambda: NodeMetric.objects.filter(node__registered_by=user).exists() and _node(user),
                       message="the node registered again", log=agent.log)
    assert agent.stop() == 0
    assert renewed.pk != node.pk and Node.objects.filter(registered_by=user).count() == 1
    assert _state(tmp_path)["node_id"] == str(renewed.pk)
    assert "no longer knows node" in agent.log.read_text()


def test_a_refused_api_key_stops_the_agent_with_status_2(live_server, agent_key, run_agent):
    agent = run_agent(live_server.url, "pk_nope_" + "x" * 32, "--no-supernode")
    assert agent.process.wait(timeout=20) == 2
    assert "refused the registration: 401" in agent.log.read_text()
    assert not Node.objects.exists()


def test_the_agent_rides_out_a_server_outage(live_server, agent_key, run_agent):
    user, key = agent_key
    host, port = live_server.thread.host, live_server.thread.port
    proxy = TcpProxy((host, port))
    # Pollen is not there yet: registration backs off until it is.
    agent = run_agent(f"http://127.0.0.1:{proxy.port}", key, "--no-supernode")
    wait_for(lambda: "Cannot register" in agent.log.read_text(), message="a failed registration", log=agent.log)
    proxy.start()
    try:
        wait_for(lambda: NodeMetric.objects.filter(node__registered_by=user).count() >= 2, message="heartbeats",
                 log=agent.log)
        # Pollen goes away for a while: heartbeats fail, samples are buffered ...
        proxy.stop()
        down_at = timezone.now()
        wait_for(lambda: agent.log.read_text().count("Heartbeat failed") >= 2, message="failed heartbeats",
                 log=agent.log)
        time.sleep(1.5)
        up_at = timezone.now()
        proxy.start()
        # ... and delivered when it is back.
        wait_for(lambda: "Heartbeats resumed" in agent.log.read_text(), message="heartbeats to resume",
                 log=agent.log)
    finally:
        proxy.stop()
    assert agent.stop() == 0
    node = Node.objects.get(registered_by=user)
    during = NodeMetric.objects.filter(node=node, timestamp__gt=down_at, timestamp__lt=up_at)
    assert during.count() >= 3, list(during.values_list("timestamp", flat=True))
    assert node.metadata["agent"]["failed_heartbeats"] >= 2


def _gone(pid: int) -> bool:
    try:
        return gone(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


def _cmdline(pid: int) -> list[str]:
    return psutil.Process(pid).cmdline()


def _flag(cmdline: list[str], flag: str) -> str | None:
    return cmdline[cmdline.index(flag) + 1] if flag in cmdline else None


def test_the_agent_runs_restarts_and_stops_the_supernode(live_server, agent_key, run_agent, settings):
    user, key = agent_key
    # No SuperLink listens there: the SuperNode keeps retrying, which is all this test needs.
    settings.FLOWER_FLEET_ADDRESS = fleet = f"127.0.0.1:{free_port()}"
    agent = run_agent(live_server.url, key, "--supernode-bin", SUPERNODE, "--supernode-port", str(free_port()),
                      "--node-config", "partition-id=1 num-partitions=3")
    first = wait_for(lambda: _supernode(user).get("pid"), message="a SuperNode", log=agent.log)
    cmdline = _cmdline(first)
    assert cmdline[1:3] == [SUPERNODE, "--superlink"] and _flag(cmdline, "--superlink") == fleet, cmdline
    assert "--insecure" in cmdline
    assert _flag(cmdline, "--node-config") == "num-partitions=3 partition-id=1"
    assert psutil.Process(first).ppid() == agent.pid and os.getpgid(first) == first  # its own session
    assert "POLLEN_API_KEY" not in psutil.Process(first).environ()
    # it stays up without a SuperLink (Flower retries the connection)
    time.sleep(2)
    assert psutil.Process(first).is_running() and _supernode(user)["pid"] == first
    assert _node(user).status == "idle"  # the SuperNode is not connected to a SuperLink

    # Killed, it is restarted, and the heartbeats count the restart.
    os.kill(first, signal.SIGKILL)
    report = wait_for(lambda: (r := _supernode(user)).get("pid") not in (None, first) and r,
                      message="a restarted SuperNode", log=agent.log)
    assert report["restarts"] == 1 and report["exits"] == 1 and report["last_exit_code"] == -signal.SIGKILL
    second = report["pid"]
    assert _flag(_cmdline(second), "--superlink") == fleet

    # A per-node address in the assignment restarts it against that address (not counted as a crash).
    other = f"127.0.0.1:{free_port()}"
    Node.objects.filter(registered_by=user).update(assignment_config={"federation": {"address": other}})
    report = wait_for(lambda: (r := _supernode(user)).get("address") == other and r.get("pid") not in (None, second)
                      and r, message="a SuperNode for the new address", log=agent.log)
    third = report["pid"]
    assert _flag(_cmdline(third), "--superlink") == other and report["restarts"] == 1
    assert _gone(second)

    # Stopping the agent stops the SuperNode and its children.
    family = [psutil.Process(third), *psutil.Process(third).children(recursive=True)]
    assert agent.stop() == 0
    assert all(gone(p) for p in family), [(p.pid, p.name()) for p in family if not gone(p)]
    assert "Stopping the SuperNode" in agent.log.read_text()


@pytest.mark.timeout(240)
def test_the_supernode_joins_a_real_superlink_and_its_training_is_counted(live_server, agent_key, run_agent,
                                                                          django_capture_on_commit_callbacks):
    from django.test import override_settings

    from projects.tests.factories import ProjectFactory
    from accounts.tests.factories import UserFactory
    from training import services as training_services
    from training.choices import ExecutionStatus
    from training.deployed import callback_secret
    from training.engine.callback import SECRET_ENV
    from training.local_federation import LocalFederation

    from flwr.proto.control_pb2 import ListNodesRequest

    user, key = agent_key
    with LocalFederation(supernodes=0, port=free_port()) as federation, override_settings(
            FLOWER_SUPERLINK_ADDRESS=federation.address, FLOWER_CALLBACK_URL=live_server.url,
            FLOWER_POLL_SECONDS=0.5):
        # The ClientApp imports Pollen's engine from this checkout, as on a node that has it installed.
        agent = run_agent(live_server.url, key, "--supernode-port", str(free_port()),
                          "--node-config", "partition-id=0 num-partitions=1",
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[3]),
                               SECRET_ENV: callback_secret()})
        federation.wait_for_nodes(1, timeout=120)
        report = wait_for(lambda: (r := _supernode(user)).get("connected") and r, message="a connected SuperNode",
                          log=agent.log)
        client = federation.control_client()
        try:
            flower_ids = [str(n.node_id) for n in client.ListNodes(ListNodesRequest()).nodes_info]
        finally:
            client.close()
        assert report["flower_node_id"] in flower_ids
        assert wait_for(lambda: _node(user).status == "active", message="an active node", log=agent.log)

        owner = UserFactory()
        project = ProjectFactory(owner=owner, configuration={})
        with django_capture_on_commit_callbacks(execute=True):
            execution = training_services.execution_start(project=project, user=owner, config={
                "transport": "deployed", "rounds": 1, "clients": 1, "model_type": "logistic", "dataset": "digits",
                "local_epochs": 1, "seed": 3, "fraction_evaluate": 0.0})
        execution.refresh_from_db()
        assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
        latest = wait_for(lambda: (m := _node(user).latest_metrics).get("updates_sent") == 1 and m,
                          message="the update counted", log=agent.log)
        wait_for(lambda: _node(user).status == "active", message="the node active again", log=agent.log)
        assert agent.stop() == 0
    assert latest["rounds_completed"] == 1 and latest["avg_training_seconds"] > 0
    # the node was seen training while its ClientApp worked, and active again after
    node_id = str(_node(user).pk)
    statuses = [e.data["status"] for e in Event.objects.filter(event="node.status").order_by("created_at")
                if e.data.get("node_id") == node_id]
    assert "training" in statuses and statuses[-1] == "active", statuses


def test_a_supernode_left_behind_by_a_killed_agent_is_stopped_by_the_next(live_server, agent_key, run_agent,
                                                                          settings):
    user, key = agent_key
    settings.FLOWER_FLEET_ADDRESS = f"127.0.0.1:{free_port()}"
    port = str(free_port())
    agent = run_agent(live_server.url, key, "--supernode-port", port)
    orphan = wait_for(lambda: _supernode(user).get("pid"), message="a SuperNode", log=agent.log)
    agent.process.kill()  # no chance to clean up
    agent.process.wait()
    assert not _gone(orphan)  # its own session: it outlives the agent

    agent = run_agent(live_server.url, key, "--supernode-port", port)
    fresh = wait_for(lambda: (pid := _supernode(user).get("pid")) not in (None, orphan) and pid,
                     message="a new SuperNode", log=agent.log)
    assert _gone(orphan) and psutil.Process(fresh).ppid() == agent.pid
    assert "left running by a previous agent" in agent.log.read_text()
    assert agent.stop() == 0 and _gone(fresh)
    assert Node.objects.filter(registered_by=user).count() == 1


@pytest.mark.timeout(240)
def test_a_deployed_round_stops_waiting_for_a_node_whose_agent_died(live_server, agent_key, tmp_path,
                                                                   django_capture_on_commit_callbacks):
    """Two agents' SuperNodes on a real SuperLink; one host dies (agent and SuperNode killed) just
    before a deployed execution starts. The SuperLink still lists its SuperNode (Flower waits out
    two missed 30 s heartbeats), so the round sends to it; Pollen's registry sees the agent's
    heartbeats stop, and the round stops waiting for that node instead of Flower's patience or
    the round's timeout."""
    from django.test import override_settings

    from accounts.tests.factories import UserFactory
    from nodes.tests.agent.conftest import AgentProcess
    from projects.tests.factories import ProjectFactory
    from training import services as training_services
    from training.choices import ExecutionStatus
    from training.deployed import NODE_ID_MASK, callback_secret
    from training.engine.callback import SECRET_ENV
    from training.engine.grid import RemoteGrid
    from training.local_federation import LocalFederation
    from training.models import RoundClient

    user, key = agent_key
    agents = []
    try:
        with LocalFederation(supernodes=0, port=free_port()) as federation, override_settings(
                FLOWER_SUPERLINK_ADDRESS=federation.address, FLOWER_CALLBACK_URL=live_server.url,
                FLOWER_POLL_SECONDS=0.5, FLOWER_REPLY_POLL_SECONDS=0.5, FLOWER_LIVENESS_SECONDS=1):
            for n in range(2):
                agents.append(AgentProcess(
                    live_server.url, key, tmp_path / f"state-{n}", "--name", f"host-{n}", "--register-interval", "5",
                    "--supernode-port", str(free_port()), "--node-config", f"partition-id={n} num-partitions=2",
                    log=tmp_path / f"agent-{n}.log",
                    # Heartbeats every second: the live server's in-memory SQLite takes one writer at a time.
                    env={"PYTHONPATH": str(Path(__file__).resolve().parents[3]), SECRET_ENV: callback_secret(),
                         "POLLEN_HEARTBEAT_INTERVAL": "1"}))
            federation.wait_for_nodes(2, timeout=120)

            def flower_id(n):
                node = Node.objects.filter(registered_by=user, name=f"host-{n}").first()
                report = (((node.metadata or {}).get("agent") or {}).get("supernode") or {}) if node else {}
                return report.get("connected") and report.get("flower_node_id")

            alive, doomed = (wait_for(lambda n=n: flower_id(n), timeout=60, message=f"host-{n}'s SuperNode",
                                      log=agents[n].log) for n in range(2))
            agents[1].kill()  # the host is gone: no more heartbeats, no SuperNode
            owner = UserFactory()
            project = ProjectFactory(owner=owner, configuration={})
            started = time.monotonic()
            with django_capture_on_commit_callbacks(execute=True):
                execution = training_services.execution_start(project=project, user=owner, config={
                    "transport": "deployed", "rounds": 1, "clients": 2, "model_type": "logistic",
                    "dataset": "digits", "local_epochs": 1, "seed": 3, "fraction_evaluate": 0.0})
            elapsed = time.monotonic() - started
            execution.refresh_from_db()
            assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
            rows = {row.node_id: row for row in RoundClient.objects.filter(round__execution=execution, phase="train")}
            alive, doomed = (int(n) & NODE_ID_MASK for n in (alive, doomed))  # as the records keep them
            assert rows[alive].error == "" and rows[alive].num_examples > 0
            # Pollen's answer, not Flower's NODE_UNAVAILABLE reply nor the round's timeout.
            assert rows[doomed].error == RemoteGrid.OFFLINE
            assert execution.logs.filter(message__contains="the registry marked offline").exists()
            assert elapsed < 60, elapsed
            assert agents[0].stop() == 0
    finally:
        for agent in agents:
            agent.kill()
