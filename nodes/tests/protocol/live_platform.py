"""The whole platform on loopback, as ``manage.py runplatform`` serves it: uvicorn (ASGI: HTTP and
the WebSocket), a Celery worker and beat, on a fresh SQLite file in a temporary folder. The devices'
gRPC service is left out (``--no-grpc``) unless asked for with ``grpc=True``; then it listens on a
free loopback port of its own (``platform.grpc_address``), never on the fixed default another
platform on the machine may hold.

Why not pytest-django's ``live_server``: it is a WSGI server (no WebSocket) sharing the test's
in-memory database between threads, and a device execution is driven by a long-running worker
task, which under eager Celery would block the very request that starts it. Here the web server
and the worker are separate processes sharing one SQLite file (WAL, busy timeout), exactly the
embedded deployment, and events cross from the worker to the sockets through the database.

The test talks to it only over HTTP, the WebSocket and gRPC; one bootstrap step (a user with an
operator API key and a device API key) runs through ``manage.py shell`` on the same database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[3]

# One process for the migrations and the bootstrap: each Django start-up costs seconds.
BOOTSTRAP = r"""
import json
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from accounts.models import Role, User
from accounts import services
user = User.objects.create_user(username="operator", email="operator@example.com", password="Corr3ct-horse-battery")
user.roles.set(Role.objects.filter(name__in=["user", "ml_engineer"]))
user.save()
user = User.objects.get(pk=user.pk)
_, operator_key = services.api_key_create(user=user, name="operator", scopes=[
    "read:projects", "write:projects", "start:training", "view:metrics"])
_, device_key = services.api_key_create(user=user, name="devices", scopes=["client:register"])
print("BOOTSTRAP" + json.dumps({"user_id": str(user.pk), "operator_key": operator_key, "device_key": device_key}))
"""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together, so never the same one twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LivePlatform:
    """``with LivePlatform(tmp_path) as platform:`` -> ``platform.url``, ``platform.credentials`` and,
    with ``grpc=True``, ``platform.grpc_address`` (answering its health check once started)."""

    def __init__(self, directory: Path, *, extra_env: dict[str, str] | None = None, startup_timeout: float = 90.0,
                 grpc: bool = False):
        self.directory = Path(directory)
        self.port, grpc_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_address = f"127.0.0.1:{grpc_port}" if grpc else None
        self.startup_timeout = startup_timeout
        self.log_path = self.directory / "platform.log"
        self.process: subprocess.Popen | None = None
        self.credentials: dict = {}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CELERY_", "DJANGO_", "PYTEST")) and k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update({
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "POLLEN_ENV": "development",
            "POLLEN_VAR_DIR": str(self.directory / "var"),
            "MEDIA_ROOT": str(self.directory / "var" / "media"),
            "DATABASE_URL": f"sqlite:///{self.directory / 'pollen.sqlite3'}",
            # No Redis: the in-memory channel layer, and the sockets read the worker's events from
            # the database (the cross-process path of the embedded deployment).
            "REDIS_URL": "",
            "EVENT_POLL_SECONDS": "0.3",
            "PYTHONUNBUFFERED": "1",
        })
        if self.grpc_address:
            env["DEVICE_GRPC_ADDRESS"] = self.grpc_address
        env.update(extra_env or {})
        self.env = env

    def _manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([sys.executable, str(REPO / "manage.py"), *args], cwd=REPO, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args[:1])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> LivePlatform:
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self._manage("shell", "-c", BOOTSTRAP)  # migrate, then a user and its API keys
        line = next(line for line in out.splitlines() if line.startswith("BOOTSTRAP"))
        self.credentials = json.loads(line[len("BOOTSTRAP"):])
        log = open(self.log_path, "wb")
        command = [sys.executable, str(REPO / "manage.py"), "runplatform", "--host", "127.0.0.1",
                   "--port", str(self.port), "--concurrency", "2"]
        if not self.grpc_address:
            command.append("--no-grpc")
        self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._wait_until(deadline, "the web server", self._http_answers)
            if self.grpc_address:
                # runplatform goes on without the gRPC service if it dies (its port taken, say):
                # that is a failure here, reported at once rather than at the timeout.
                self._wait_until(deadline, "the gRPC service", self._grpc_serves, died="grpc exited with")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until(self, deadline: float, what: str, answers, *, died: str | None = None) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the platform exited with {self.process.returncode}:\n{self.log_tail()}")
            if died and died in self.log_tail(1_000_000):
                raise RuntimeError(f"{what} did not start:\n{self.log_tail()}")
            if answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not answer within {self.startup_timeout}s:\n{self.log_tail()}")

    def _http_answers(self) -> bool:
        # A refused connection fails at once; an accepted request is waited for. The first one loads
        # the URLconf and the apps, and under ASGI Django runs sync views one at a time on one
        # thread: a short timeout abandons it on a busy machine and queues the retries behind it
        # (seen: 12 s from "Uvicorn running" to the first answer with 2 s, 3 s without).
        try:
            return httpx.get(f"{self.url}/health", timeout=30).status_code < 500
        except httpx.TransportError:
            return False

    def _grpc_serves(self) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.grpc_address) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="wia.federatedlearning.v1.FederatedLearning"), timeout=2)
            except grpc.RpcError:
                return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    def stop(self) -> None:
        """Kill the whole platform at once: every process of the session this harness started it in
        (runplatform, the web server, the worker and its pool, beat, the gRPC service), also when
        runplatform itself is already gone. Its database and files are thrown away, so nothing is
        owed a graceful stop, which costs seconds per test: on SIGTERM the Celery worker alone takes
        6-8 s to wind down on the filesystem broker (it notices the signal between 2 s broker polls,
        then joins its pool and timer threads). Where PID 1 reaps no orphans (some containers), the
        killed processes stay there as zombies: no memory, no ports, no files."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group is the session made for it in start()
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> LivePlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- the operator's side, over the API ---------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.credentials['operator_key']}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}/api/v1/{path.lstrip('/')}", headers=headers, timeout=30, **kwargs)
