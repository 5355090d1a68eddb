"""The agent's loop: register once, heartbeat every interval, keep the SuperNode where Pollen says.

One thread does everything but reading the SuperNode's output. A signal only sets a flag; the
loop notices it within a tick, stops the SuperNode and returns. Pollen being unreachable is
never fatal: registration and heartbeats back off exponentially, samples keep being taken at the
node's interval and are sent together (up to 100, the server's limit) once Pollen answers
again. A refused API key is fatal (exit status 2): retrying cannot fix it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from pollen_agent import __version__
from pollen_agent.api import ApiError, PollenApi, Unreachable
from pollen_agent.backoff import Backoff
from pollen_agent.state import StateFile
from pollen_agent.supernode import SuperNodeSupervisor, Target, merge_node_config, stop_orphan
from pollen_agent.system import SystemSampler, capability, resources

log = logging.getLogger("pollen_agent")

MAX_BUFFERED_SAMPLES = 100  # what one heartbeat may carry
MIN_SERVER_INTERVAL = 5  # the smallest heartbeat interval Pollen stores for a node


class FatalError(Exception):
    """Something retrying will not fix (a refused API key, a registration Pollen rejects)."""


@dataclass
class AgentConfig:
    server_url: str
    api_key: str
    state_dir: Path
    auth_header: str = "bearer"
    name: str = field(default_factory=socket.gethostname)
    host: str | None = None
    node_type: str = "client"
    interval: float | None = None  # None: the node's own interval, as Pollen stores it
    register_interval: int = 30
    region: str | None = None
    zone: str | None = None
    location: dict = field(default_factory=dict)
    project_id: str | None = None
    dataset: str | None = None
    compute: str | None = None
    disk_path: str = "/"
    supernode: bool = True
    supernode_bin: str | None = None
    superlink: str | None = None
    superlink_insecure: bool = False
    root_certificates: str | None = None
    auth_private_key: str | None = None
    node_config: str | None = None
    supernode_port: int | None = None
    supernode_args: list[str] = field(default_factory=list)
    max_backoff: float = 60.0
    stop_timeout: float = 10.0
    http_timeout: float = 10.0
    verify_tls: bool | str = True


def framework_version(binary: str | None) -> str:
    """flwr's version: from the installed distribution, or else from ``flower-supernode --version``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("flwr")
    except PackageNotFoundError:
        pass
    if binary:
        import subprocess

        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
            words = (out.stdout or out.stderr).split()
            return words[-1] if words else ""
        except (OSError, subprocess.SubprocessError):
            pass
    return ""


def local_address(server_url: str) -> str:
    """The address this host uses to reach Pollen (no packet is sent), else its hostname."""
    parts = urlsplit(server_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET,
                           socket.SOCK_DGRAM) as probe:
            probe.connect((parts.hostname, port))
            return probe.getsockname()[0]
    except (OSError, TypeError):
        return socket.gethostname()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Agent:
    TICK = 0.2

    def __init__(self, config: AgentConfig, *, api: PollenApi | None = None):
        self.config = config
        self.api = api or PollenApi(config.server_url, config.api_key, header=config.auth_header,
                                    timeout=config.http_timeout, verify=config.verify_tls)
        self.state = StateFile(Path(config.state_dir) / "state.json")
        self.sampler = SystemSampler(disk_path=config.disk_path)
        self.started_at = _now_iso()
        self.node_id: str | None = None
        self.interval = float(config.interval or config.register_interval)
        self.registrations = 0
        self.heartbeats = 0
        self.failed_heartbeats = 0
        self._failures = 0
        self._buffer: deque[dict] = deque(maxlen=MAX_BUFFERED_SAMPLES)
        self._register_backoff = Backoff(1.0, config.max_backoff)
        self._send_backoff = Backoff(1.0, config.max_backoff)
        self._next_register = self._next_sample = self._next_send = 0.0
        self._federation: dict | None = None
        self._saved_totals: dict | None = None
        self._stopping: str | bool = False
        self.supervisor: SuperNodeSupervisor | None = None
        state = self.state.load()
        if config.supernode:
            binary = config.supernode_bin or "flower-supernode"
            self.supervisor = SuperNodeSupervisor(
                binary=binary, workdir=Path(config.state_dir), runtime_port=config.supernode_port,
                auth_private_key=config.auth_private_key, extra_args=config.supernode_args,
                max_backoff=config.max_backoff, stop_timeout=config.stop_timeout,
                on_process=lambda info: self.state.update(supernode=info), totals=state.get("fl_totals"))

    # ---- lifecycle ------------------------------------------------------------------------------

    def request_stop(self, signum=None, frame=None) -> None:
        self._stopping = signal.Signals(signum).name if signum else "request"

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)

    def run(self) -> int:
        """Run until a signal (exit status 0) or a fatal error (2)."""
        try:
            self._resume()
            while not self._stopping:
                try:
                    self.step(time.monotonic())
                except FatalError:
                    raise
                except Exception:  # noqa: BLE001 - a node agent outlives its own bugs; the log shows them
                    log.exception("Unexpected error in the agent's loop; carrying on")
                    time.sleep(min(5.0, self.config.max_backoff))
                time.sleep(self.TICK)
            log.info("Stopping on %s", self._stopping)
            return 0
        except FatalError as exc:
            log.error("%s", exc)
            return 2
        finally:
            if self.supervisor is not None:
                self.supervisor.stop()
            self.api.close()

    def _resume(self) -> None:
        state = self.state.load()
        if self.supervisor is not None:
            stop_orphan(state.get("supernode"), timeout=self.config.stop_timeout)
            self.state.update(supernode=None)
        if state.get("node_id") and state.get("server_url") == self.api.root:
            self.node_id = state["node_id"]
            log.info("Node %s (from %s); %s", self.node_id, self.state.path,
                     "supervising its SuperNode" if self.supervisor else "metrics only")
            if self.supervisor is not None and state.get("federation"):
                # Pollen may be down while the SuperLink is up: rejoin the last known federation.
                self._apply_federation(state["federation"])
        elif state.get("node_id"):
            log.info("The state file names a node of %s, not of %s: registering anew", state.get("server_url"),
                     self.api.root)

    def step(self, now: float) -> None:
        if self.node_id is None and now >= self._next_register:
            self._register(now)
        if self.node_id is not None:
            if now >= self._next_sample:
                self._buffer.append(self._sample())
                self._next_sample = now + self.interval
            if now >= self._next_send:
                self._heartbeat(now)
        if self.supervisor is not None:
            self.supervisor.poll()

    # ---- registration ---------------------------------------------------------------------------

    def registration(self) -> dict:
        c = self.config
        body = {
            "name": c.name, "type": c.node_type, "host": c.host or local_address(c.server_url),
            "capability": capability(compute=c.compute), "resources": resources(disk_path=c.disk_path),
            "framework": "flwr", "framework_version": framework_version(c.supernode_bin),
            "heartbeat_interval_seconds": max(MIN_SERVER_INTERVAL, int(c.register_interval)),
            "metadata": {"agent": {"version": __version__}},
        }
        location = {k: v for k, v in c.location.items() if v not in (None, "")}
        if location:
            body["location"] = location
        for key, value in (("region", c.region), ("zone", c.zone), ("project_id", c.project_id),
                           ("dataset", c.dataset)):
            if value:
                body[key] = value
        return body

    def _registration_key(self) -> str:
        """The Idempotency-Key of this registration, in the state file before the first attempt: if
        Pollen registered the node but its answer was lost (or the agent was killed before it wrote
        the node down), the next attempt gets that node back instead of registering a second one."""
        state = self.state.load()
        key = state.get("registration_key")
        if not key or state.get("registration_server_url") != self.api.root:
            key = uuid.uuid4().hex
            self.state.update(registration_key=key, registration_server_url=self.api.root)
        return key

    def _register(self, now: float) -> None:
        try:
            node = self.api.register(self.registration(), idempotency_key=self._registration_key())
        except Unreachable as exc:
            delay = exc.retry_after or self._register_backoff.next()
            self._next_register = now + delay
            log.warning("Cannot register with %s (%s); trying again in %.1f s", self.api.root, exc, delay)
            return
        except ApiError as exc:
            raise FatalError(f"Pollen refused the registration: {exc}") from exc
        self._register_backoff.reset()
        self.node_id = str(node["id"])
        self.registrations += 1
        self.state.update(server_url=self.api.root, node_id=self.node_id, node_name=node.get("name"),
                          registered_at=_now_iso(), federation=None)
        log.info("Registered as node %s (%s)", self.node_id, node.get("name"))
        self._apply_node(node)
        self._next_sample = self._next_send = now  # the first heartbeat says which federation to join

    # ---- heartbeats -----------------------------------------------------------------------------

    def _sample(self) -> dict:
        sample = self.sampler.sample()
        if self.supervisor is not None:
            sample.update(self.supervisor.flower.counters())
            totals = self.supervisor.flower.totals()
            if totals != self._saved_totals:
                self.state.update(fl_totals=totals)
                self._saved_totals = totals
        return sample

    def status(self) -> str | None:
        """What the node is doing, when the agent knows: training while its ClientApp works on a
        train message, active while its SuperNode is connected, idle otherwise. A metrics-only
        agent does not say, and Pollen keeps the status it has."""
        if self.supervisor is None:
            return None
        if self.supervisor.flower.training:
            return "training"
        return "active" if self.supervisor.running and self.supervisor.flower.connected else "idle"

    def report(self) -> dict:
        return {"version": __version__, "pid": os.getpid(), "started_at": self.started_at,
                "hostname": socket.gethostname(), "interval_seconds": self.interval,
                "heartbeats": self.heartbeats, "failed_heartbeats": self.failed_heartbeats,
                "registrations": self.registrations,
                "supernode": self.supervisor.report() if self.supervisor is not None else None}

    def _heartbeat(self, now: float) -> None:
        body = {"samples": list(self._buffer), "agent": self.report()}
        status = self.status()
        if status:
            body["status"] = status
        try:
            try:
                node = self.api.heartbeat(self.node_id, body)
            except ApiError as exc:
                if exc.status != 409 or "status" not in body:
                    raise
                # e.g. "training" reported for a node Pollen marked offline: be seen first.
                node = self.api.heartbeat(self.node_id, {k: v for k, v in body.items() if k != "status"})
        except Unreachable as exc:
            self._failures += 1
            self.failed_heartbeats += 1
            delay = exc.retry_after or self._send_backoff.next()
            self._next_send = now + delay
            log.warning("Heartbeat failed (%s); %d sample(s) buffered, trying again in %.1f s", exc,
                        len(self._buffer), delay)
            return
        except ApiError as exc:
            if exc.status == 404:
                log.warning("Pollen no longer knows node %s: registering again", self.node_id)
                self.node_id = None
                self.state.update(node_id=None, federation=None, registration_key=None)
                self._next_register = now
                return
            if exc.status in (401, 403):
                raise FatalError(f"Pollen refused the heartbeat: {exc}") from exc
            log.warning("Pollen refused the heartbeat (%s); dropping %d sample(s)", exc, len(self._buffer))
            self._buffer.clear()
            self._next_send = self._next_sample
            return
        if self._failures:
            log.info("Heartbeats resumed after %d failed attempt(s); %d sample(s) delivered", self._failures,
                     len(body["samples"]))
        self._failures = 0
        self._send_backoff.reset()
        self.heartbeats += 1
        self._buffer.clear()
        self._apply_node(node)
        self._next_send = self._next_sample

    def _apply_node(self, node: dict) -> None:
        if self.config.interval is None and node.get("heartbeat_interval_seconds"):
            interval = float(node["heartbeat_interval_seconds"])
            if interval != self.interval:
                self._next_sample = min(self._next_sample, time.monotonic() + interval)
                self.interval = interval
        if self.supervisor is not None and "federation" in node:
            federation = node.get("federation") or None
            if federation != self._federation:
                self.state.update(federation=federation)
            self._apply_federation(federation)

    # ---- the SuperNode's target -----------------------------------------------------------------

    def _apply_federation(self, federation: dict | None) -> None:
        self._federation = federation
        self.supervisor.set_target(self.target(federation))

    def target(self, federation: dict | None) -> Target | None:
        """Where the SuperNode connects: ``--superlink`` if given, else the address Pollen names;
        TLS as given locally, else as Pollen says (its CA written next to the state file)."""
        federation = federation or {}
        address = self.config.superlink or federation.get("address")
        if not address:
            return None
        if self.config.superlink_insecure:
            insecure, root = True, None
        elif self.config.root_certificates:
            insecure, root = False, self.config.root_certificates
        else:
            insecure = bool(federation.get("insecure", False))
            pem = federation.get("root_certificates")
            root = self._write_ca(pem) if pem and not insecure else None
        return Target(address=address, insecure=insecure, root_certificates=root,
                      node_config=merge_node_config(federation.get("node_config"), self.config.node_config))

    def _write_ca(self, pem: str) -> str:
        path = Path(self.config.state_dir) / "superlink-ca.pem"
        try:
            current = path.read_text()
        except OSError:
            current = None
        if current != pem:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(pem)
            os.replace(tmp, path)
        return str(path)
