"""Supervision of the node's Flower SuperNode.

The SuperNode runs as ``flower-supernode`` in a session of its own (``start_new_session``: a
Ctrl-C in the agent's terminal reaches the agent only, and the SuperNode's own children, the
SuperExec and the ClientApps, share its process group so that one signal reaches them all). The
supervisor starts it once it knows the SuperLink's address, restarts it with exponential backoff
when it dies, restarts it at once when the address changes, and stops it with SIGTERM, then
SIGKILL after a grace period.

Its output goes to a rotating log file and is read line by line for what Flower logs at INFO:
the Flower node id once connected, and each train message received and each reply sent, which
give the FL counters of the heartbeats (rounds completed, updates sent, average training time).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pollen_agent.backoff import Backoff

log = logging.getLogger("pollen_agent")

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NODE_CONFIG_PAIR = re.compile(r"(\S+?)=('[^']*'|\"[^\"]*\"|\S+)")
RUN_ROUND = re.compile(r"\[RUN (\S+?)(?:, ROUND (\S+?))?\]")
RECEIVING = re.compile(r"Receiving: (\S+) message")
SENDING = re.compile(r"Sending: (\S+) message")
NODE_ID = re.compile(r"SuperNode ID: (\S+)")
# Environment variables the SuperNode and its ClientApps have no business seeing.
PRIVATE_ENV = ("POLLEN_API_KEY",)


def toml_literal(value) -> str:
    """A node-config value as Flower parses it (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def merge_node_config(server: dict | None, local: str | None) -> tuple[tuple[str, str], ...]:
    """The server's ``node_config`` with the agent's own ``--node-config`` pairs over it (Flower
    refuses a key given twice, so they are merged here)."""
    pairs = {str(k): toml_literal(v) for k, v in (server or {}).items()}
    for key, raw in NODE_CONFIG_PAIR.findall(local or ""):
        pairs[key] = raw
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class Target:
    """Where and how the SuperNode connects; a change of any field restarts it."""

    address: str
    insecure: bool = True
    root_certificates: str | None = None  # path to a PEM file
    node_config: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        tls = "insecure" if self.insecure else ("TLS, own CA" if self.root_certificates else "TLS")
        return f"{self.address} ({tls})"


class FlowerLog:
    """What the SuperNode's output says: connection, Flower node id, and training counters.

    Counters are cumulative over the agent's lifetime, across SuperNode restarts. The training
    time of an update is from "Receiving: train message" to "Sending: train message", which is
    the ClientApp's work as the SuperNode sees it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, totals: dict | None = None):
        self._clock = clock
        self._lock = threading.Lock()
        self.connected = False
        self.flower_node_id: str | None = None
        totals = totals or {}
        self.updates_sent = int(totals.get("updates_sent", 0))
        self.rounds_completed = int(totals.get("rounds_completed", 0))
        self._training_total = float(totals.get("training_seconds_total", 0.0))
        self._rounds_seen: set[tuple[str, str]] = set()
        self._context: tuple[str, str | None] | None = None
        self._train_started: float | None = None
        self._train_context: tuple[str, str | None] | None = None
        self._pending: tuple[tuple[str, str | None] | None, float] | None = None

    def feed(self, line: str) -> None:
        text = ANSI.sub("", line)
        now = self._clock()
        with self._lock:
            if match := NODE_ID.search(text):
                self.connected, self.flower_node_id = True, match.group(1)
            elif "Connection attempt failed" in text:
                self.connected = False
            elif match := RUN_ROUND.search(text):
                self._context = (match.group(1), match.group(2))
            elif match := RECEIVING.search(text):
                if match.group(1) == "train":
                    self._train_started, self._train_context = now, self._context
            elif match := SENDING.search(text):
                if match.group(1) == "train" and self._train_started is not None:
                    self._pending = (self._train_context, now - self._train_started)
                    self._train_started = None
            elif "Sent successfully" in text and self._pending is not None:
                context, seconds = self._pending
                self._pending = None
                self.updates_sent += 1
                self._training_total += seconds
                if context is None or context[1] is None or context not in self._rounds_seen:
                    self.rounds_completed += 1
                    if context is not None and context[1] is not None:
                        self._rounds_seen.add(context)
            elif "is not in `RUNNING` status" in text:
                self._pending = None

    def process_ended(self) -> None:
        with self._lock:
            self.connected = False
            self._train_started = self._pending = None

    @property
    def training(self) -> bool:
        with self._lock:
            return self._train_started is not None or self._pending is not None

    def totals(self) -> dict:
        """The counters as the state file keeps them across restarts of the agent."""
        with self._lock:
            return {"rounds_completed": self.rounds_completed, "updates_sent": self.updates_sent,
                    "training_seconds_total": round(self._training_total, 3)}

    def counters(self) -> dict:
        with self._lock:
            result = {"rounds_completed": self.rounds_completed, "updates_sent": self.updates_sent}
            if self.updates_sent:
                result["avg_training_seconds"] = round(self._training_total / self.updates_sent, 3)
            return result


def _leader_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it: while it is a zombie its process
    group id cannot be reused, so signalling the group afterwards cannot hit a stranger."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class SuperNodeSupervisor:
    """Call ``set_target`` when the SuperLink is known or changes, ``poll`` often (it detects a
    death and starts the SuperNode when due), and ``stop`` at the end. Single-threaded except
    for the output reader."""

    def __init__(self, *, binary: str, workdir: Path, runtime_port: int | None = None,
                 auth_private_key: str | None = None, extra_args: list[str] | None = None,
                 initial_backoff: float = 1.0, max_backoff: float = 60.0, stop_timeout: float = 10.0,
                 stable_after: float = 60.0, on_process: Callable[[dict | None], None] | None = None,
                 totals: dict | None = None):
        self.binary = binary
        self.workdir = Path(workdir)
        self.runtime_port = runtime_port
        self.auth_private_key = auth_private_key
        self.extra_args = list(extra_args or [])
        self.stop_timeout = stop_timeout
        self.stable_after = stable_after
        self.on_process = on_process or (lambda info: None)
        self.flower = FlowerLog(totals=totals)
        self.target: Target | None = None
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.restarts = 0
        self.exits = 0
        self.last_exit_code: int | None = None
        self._backoff = Backoff(initial_backoff, max_backoff)
        self._start_at: float | None = None
        self._started_at = 0.0
        self._crashed = False
        self._reader: threading.Thread | None = None
        self._tail: deque[str] = deque(maxlen=20)
        self._output = self._output_logger()

    def _output_logger(self) -> logging.Logger:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(f"pollen_agent.supernode.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logging.handlers.RotatingFileHandler(self.workdir / "supernode.log", maxBytes=10 * 2**20,
                                                       backupCount=3)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        return logger

    @property
    def log_path(self) -> Path:
        return self.workdir / "supernode.log"

    # ---- what to run ----------------------------------------------------------------------------

    def command(self, target: Target) -> list[str]:
        command = [self.binary, "--superlink", target.address]
        if target.insecure:
            command.append("--insecure")
        elif target.root_certificates:
            command += ["--root-certificates", target.root_certificates]
        if self.auth_private_key:
            command += ["--auth-supernode-private-key", self.auth_private_key]
        if target.node_config:
            command += ["--node-config", " ".join(f"{k}={v}" for k, v in target.node_config)]
        if self.runtime_port:
            command += ["--port", str(self.runtime_port)]
        return command + self.extra_args

    def _environment(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        # flower-supernode starts flower-superexec by name: it must find the one beside it.
        bindir = str(Path(self.binary).absolute().parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
        return env

    # ---- the loop's entry points ---------------------------------------------------------------

    def set_target(self, target: Target | None) -> None:
        if target == self.target:
            return
        previous, self.target = self.target, target
        if self.process is not None:
            log.info("SuperLink changed from %s to %s: restarting the SuperNode",
                     previous.describe() if previous else None, target.describe() if target else None)
            self._terminate()
        self._backoff.reset()
        self._crashed = False
        self._start_at = time.monotonic() if target is not None else None
        if target is None and previous is not None:
            log.info("No SuperLink to join any more: the SuperNode stays stopped")

    def poll(self) -> None:
        now = time.monotonic()
        if self.process is not None and _leader_exited(self.process.pid):
            ran = now - self._started_at
            code = self._reap()
            self.exits += 1
            self.last_exit_code = code
            if ran >= self.stable_after:
                self._backoff.reset()
            delay = self._backoff.next()
            self._start_at, self._crashed = now + delay, True
            tail = " | ".join(list(self._tail)[-3:])
            log.warning("SuperNode exited with code %s after %.1f s; restarting in %.1f s%s", code, ran, delay,
                        f" (last output: {tail})" if tail else "")
        if self.process is None and self.target is not None and self._start_at is not None and now >= self._start_at:
            self._start()

    def stop(self) -> None:
        self._start_at = None
        if self.process is not None:
            log.info("Stopping the SuperNode (pid %d)", self.process.pid)
            self._terminate()

    @property
    def running(self) -> bool:
        return self.process is not None

    def report(self) -> dict:
        """The SuperNode's state for the heartbeat's ``agent`` block."""
        running = self.process is not None
        return {
            "running": running, "pid": self.process.pid if running else None,
            "address": self.target.address if self.target else None,
            "connected": running and self.flower.connected, "flower_node_id": self.flower.flower_node_id,
            "starts": self.starts, "restarts": self.restarts, "exits": self.exits,
            "last_exit_code": self.last_exit_code,
            "uptime_seconds": round(time.monotonic() - self._started_at, 1) if running else None,
        }

    # ---- processes ------------------------------------------------------------------------------

    def _start(self) -> None:
        command = self.command(self.target)
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, cwd=self.workdir, env=self._environment(),
                                       start_new_session=True)
        except OSError as exc:
            delay = self._backoff.next()
            self._start_at, self._crashed = time.monotonic() + delay, True
            log.error("Cannot start the SuperNode (%s): %s; trying again in %.1f s", command[0], exc, delay)
            return
        self.process = process
        self._started_at = time.monotonic()
        self._start_at = None
        self.starts += 1
        if self._crashed:
            self.restarts += 1
            self._crashed = False
        self._tail.clear()
        self._reader = threading.Thread(target=self._read, args=(process,), name="supernode-output", daemon=True)
        self._reader.start()
        try:
            import psutil

            created = psutil.Process(process.pid).create_time()
        except Exception:  # noqa: BLE001 - only a guard for the orphan cleanup
            created = None
        self.on_process({"pid": process.pid, "create_time": created})
        log.info("SuperNode started (pid %d) for SuperLink %s%s", process.pid, self.target.describe(),
                 f", restart {self.restarts}" if self.restarts else "")

    def _read(self, process: subprocess.Popen) -> None:
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._output.info("%s", ANSI.sub("", line))
            self._tail.append(ANSI.sub("", line).strip())
            self.flower.feed(line)
        process.stdout.close()

    def _terminate(self) -> None:
        """SIGTERM to the SuperNode's group, SIGKILL after ``stop_timeout``."""
        process = self.process
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while not _leader_exited(process.pid):
            if time.monotonic() >= deadline:
                log.warning("SuperNode (pid %d) still running %.0f s after SIGTERM: killing it", process.pid,
                            self.stop_timeout)
                _signal_group(process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        self._reap()

    def _reap(self) -> int | None:
        """Kill what is left of the SuperNode's group (its SuperExec and ClientApps outlive it
        otherwise), collect its exit code and its output reader."""
        process = self.process
        _signal_group(process.pid, signal.SIGKILL)
        code = process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        self._reader = None
        self.process = None
        self.flower.process_ended()
        self.on_process(None)
        return code


def stop_orphan(info: dict | None, *, timeout: float = 10.0) -> bool:
    """Stop a SuperNode left running by a previous agent that died without stopping it (its pid
    and start time are in the state file; a different start time means the pid was reused)."""
    if not info or not info.get("pid"):
        return False
    import psutil

    try:
        process = psutil.Process(int(info["pid"]))
        if info.get("create_time") is None or abs(process.create_time() - float(info["create_time"])) > 0.01:
            return False
        group = [p for p in psutil.process_iter() if _pgid(p.pid) == process.pid]
    except (psutil.Error, ValueError, TypeError):
        return False
    log.warning("Stopping the SuperNode (pid %d) left running by a previous agent", process.pid)
    _signal_group(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(group, timeout=timeout)
    if alive:
        _signal_group(process.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    return True


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
