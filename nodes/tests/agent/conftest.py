"""Helpers of the node agent's suites: an API key holding exactly the agent's scopes, the agent
run as ``python -m pollen_agent`` in a child process, and a TCP proxy to take Pollen away."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from accounts import services as account_services
from accounts.models import Role
from accounts.tests.factories import UserFactory
from training.local_federation import free_port  # noqa: F401 - the agent tests take it from here

ROOT = Path(__file__).resolve().parents[3]
AGENT_SCOPES = ["client:register", "training:participate"]


def wait_for(predicate, *, timeout: float = 20.0, every: float = 0.1, message: str = "condition", log: Path | None = None):
    """``predicate()``'s first truthy value, or fail after ``timeout`` seconds (with the agent's log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}\n--- agent log ---\n{tail}")
        time.sleep(every)


class AgentProcess:
    """One run of the agent. ``stop()`` sends SIGTERM as systemd would and returns the exit status."""

    def __init__(self, server_url: str, api_key: str, state_dir: Path, *args: str, log: Path,
                 env: dict | None = None):
        extra, env = env or {}, {k: v for k, v in os.environ.items()
                                 if not k.startswith("POLLEN_") and k != "DJANGO_SETTINGS_MODULE"}
        env.update({"POLLEN_SERVER_URL": server_url, "POLLEN_API_KEY": api_key,
                    "POLLEN_AGENT_STATE_DIR": str(state_dir), "POLLEN_AGENT_MAX_BACKOFF": "1",
                    "POLLEN_HEARTBEAT_INTERVAL": "0.5", "POLLEN_SUPERNODE_STOP_TIMEOUT": "5", **extra})
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "pollen_agent", *args], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """Last-resort cleanup: the agent and everything it started."""
        for proc in [*self.descendants()]:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def run_agent(tmp_path):
    """``run_agent(url, key, *args, env=...)``: start the agent; every run is stopped at the end."""
    started: list[AgentProcess] = []

    def start(server_url: str, api_key: str, *args: str, env: dict | None = None) -> AgentProcess:
        agent = AgentProcess(server_url, api_key, tmp_path / "state", *args, log=tmp_path / "agent.log", env=env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture
def agent_key(transactional_db):
    """A user whose role holds only what a node needs, and an API key with those scopes."""
    Role.objects.get_or_create(name="node-agent", defaults={"permissions": AGENT_SCOPES})
    user = UserFactory(roles=["node-agent"])
    _, raw = account_services.api_key_create(user=user, name="node agent", scopes=AGENT_SCOPES)
    return user, raw


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class TcpProxy:
    """Forwards a local port to ``target``; ``stop()`` closes it and every open connection, as a
    restarting server would, and ``start()`` opens it again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)  # a blocked accept() would outlive close()
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            time.sleep(0.2)  # the accept loop sees it is no longer current
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
