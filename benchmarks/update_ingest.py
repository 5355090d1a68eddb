"""Ingest of device updates (seed 002 ``POST /api/v1/rounds/{round_id}/updates``) against a server
that only reads the same bytes, and the server's peak memory while it ingests.

    .venv/bin/python benchmarks/update_ingest.py [--updates 200] [--model-mb 20] [--tensors 4]
                                                 [--block 25] [--checkpoint 50] [--connections 1] [--profile]

What runs, all on 127.0.0.1, in one run:

1. Setup, in this process, through Pollen's own code: a fresh database (SQLite in a temporary
   POLLEN_VAR_DIR, or with ``DATABASE_URL=postgres://...`` a ``pollen_bench_ingest`` database next
   to it, dropped at the end), migrated; a user, a project and a running execution with transport
   ``device`` (fedavg); its initial model published from ``--model-mb`` MiB of random float32 tensors
   (``nodes.protocol.rounds.publish_model``) and round 1 opened by the worker's own
   ``rounds.open_round`` with a deadline an hour away and a target above the number of updates (so
   nothing aggregates mid-run); ``--updates + 1`` devices registered by ``device_register``, each with
   its own ed25519 key, and joined to the execution by ``device_current_round``. The update body is
   ``wia_fl.wire.encode_update`` of the model's tensors plus a small shift; each device's
   ``X-Client-Signature`` is signed before the clock starts, ``X-Update-Checksum`` is its sha256.
2. Two servers, both uvicorn with one worker and the same flags, both kept up for the whole run:
   the baseline, a tiny ASGI app (``raw_app`` below: reads the request body chunk by chunk, drops
   it, answers 202 with a small JSON body), and Pollen, ``config.asgi:application`` with the device
   throttles raised by environment variables (THROTTLE_DEVICE_UPDATES etc.).
3. One unmeasured warm-up update to each, then ``--updates`` updates in blocks of ``--block``,
   alternating: a block to the baseline, the same block (same bytes, same headers) to Pollen, and
   so on, so that a change of the machine's load hits both alike. Every answer must be 202; Pollen
   takes each device's update once and folds it into the round's running sum.

Memory: each server's VmRSS when idle (after ``/health``, or ``GET /`` for the raw app) and after the
warm-up, then its peak (VmHWM, reset through ``/proc/<pid>/clear_refs`` after the warm-up) after
``--checkpoint`` updates and after all of them, as MiB above the warm RSS and as multiples of the
model size; the warm-up's own peak is printed apart. Afterwards the round is checked: every update
stored once, the running sum's count and its mean equal to the update sent.

``--profile`` adds an in-process breakdown of one update's server-side work (the ASGI front's
receive, the service's steps) to show where time goes.

Prints the tables and last ``RATIO ingest/raw = x.xx`` and ``PEAK_RSS ... = x.xx x model``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:  # imported as benchmarks.<name> (the servers it starts), or run as a script from benchmarks/
    from benchmarks.local_servers import HOST, free_port, start_uvicorn, stop_server
    from benchmarks.throwaway_db import drop_database, prepare_database
except ImportError:
    from local_servers import HOST, free_port, start_uvicorn, stop_server
    from throwaway_db import drop_database, prepare_database

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DB = "pollen_bench_ingest"
MiB = 1024 * 1024


# ---- the baseline server: an ASGI app that only reads the body --------------------------------------

async def raw_app(scope, receive, send):
    """Reads every chunk of the request body, keeps none of it, answers 202 (uvicorn's lifespan and
    anything that is not HTTP are refused)."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            if message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
        return
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    payload = json.dumps({"success": True, "data": {"received": size, "status": "accepted"}}).encode()
    await send({"type": "http.response.start", "status": 202 if scope["method"] == "POST" else 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


# ---- arguments ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="measured updates, one per device (200)")
    parser.add_argument("--model-mb", type=float, default=20.0, help="model size in MiB of float32 (20)")
    parser.add_argument("--tensors", type=int, default=4, help="tensors the model is split into (4)")
    parser.add_argument("--checkpoint", type=int, default=50,
                        help="also report the peak memory after this many updates (50)")
    parser.add_argument("--block", type=int, default=25,
                        help="updates per block; blocks alternate between the two servers (25)")
    parser.add_argument("--connections", type=int, default=1,
                        help="concurrent client connections (1: one update after the other)")
    parser.add_argument("--profile", action="store_true",
                        help="time the server-side steps of one update in this process, and print them")
    args = parser.parse_args(argv)
    if min(args.updates, args.connections, args.tensors, args.block) < 1 or args.model_mb <= 0:
        parser.error("--updates, --block, --connections, --tensors and --model-mb must be positive")
    args.checkpoint = max(1, min(args.checkpoint, args.updates))
    return args


# ---- setup through Pollen's services --------------------------------------------------------------------

def model_arrays(model_mb: float, tensors: int) -> dict:
    import numpy as np

    total = int(model_mb * MiB) // 4
    per = total // tensors
    cols = 1024 if per >= 1024 else 1
    rng = np.random.default_rng(0)
    return {f"layer{i}.weight": rng.standard_normal((per // cols, cols), dtype=np.float32) * 0.05
            for i in range(tensors)}


def setup(env: dict, args) -> dict:
    """Migrate, then create the execution, its open round and the devices (in this process, through
    Pollen's code). Returns what the clients need."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env,
                   check=True)
    os.environ.clear()  # exactly the server's environment
    os.environ.update(env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    import numpy as np
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Role, User
    from nodes.protocol import rounds, services, signatures
    from projects.models import Project
    from training.choices import ExecutionStatus, Transport
    from training.models import Execution
    from training.runner import ExecutionObserver
    from wia_fl import wire

    devices = args.updates + 1  # one more for the warm-up
    user = User.objects.create_user(username="bench", email="bench@example.com", password=None)
    user.roles.set(Role.objects.filter(name="ml_engineer"))
    project = Project.objects.create(owner=user, name="Update ingest", configuration={})
    execution = Execution.objects.create(
        project=project, created_by=user, model_type="logistic", dataset="digits", algorithm="fedavg",
        transport=Transport.DEVICE, status=ExecutionStatus.RUNNING, total_rounds=1, min_clients=1,
        started_at=timezone.now(),
        config={"rounds": 1, "clients": devices + 1, "model_type": "logistic", "dataset": "digits",
                "local_epochs": 1, "batch_size": 32, "learning_rate": 0.1, "seed": 0, "round_timeout": 3600})
    arrays = model_arrays(args.model_mb, args.tensors)
    model = rounds.publish_model(execution, 0, arrays)
    observer = ExecutionObserver(execution)
    device_round = rounds.open_round(execution, observer, 1, model, list(observer.audience))

    body = wire.encode_update({k: v + np.float32(0.01) for k, v in arrays.items()}, num_examples=100,
                              metrics={"loss": 0.5, "accuracy": 0.9})
    started = time.monotonic()
    clients = []
    for i in range(devices):
        key = signatures.new_private_key()
        registration = services.device_register(
            user=user, device_id=f"bench-device-{i:04d}", platform="linux",
            capabilities={"max_model_size_mb": 500, "supported_frameworks": ["numpy"], "compute_capability": "high"},
            public_key=signatures.public_key_b64(key))
        info = services.device_current_round(node=registration.node)  # joins the execution, as a device does
        assert info["round_id"] == str(device_round.pk), info
        clients.append({"token": registration.token, "signature": signatures.sign_b64(key, body)})
    print(f"registered {devices} devices and signed their updates in {time.monotonic() - started:.1f} s",
          flush=True)
    connection.close()
    return {"round_id": str(device_round.pk), "body": body, "checksum": hashlib.sha256(body).hexdigest(),
            "clients": clients, "model_bytes": sum(a.nbytes for a in arrays.values())}


def verify_round(setup_data: dict, expected: int) -> str:
    """Every update stored once, the running sum folded ``expected`` times and its mean the update."""
    import numpy as np
    from django.db import connection

    from nodes.models import DeviceRound, DeviceUpdate
    from nodes.protocol import selectors
    from nodes.protocol.aggregate import RunningSum
    from wia_fl import wire

    device_round = DeviceRound.objects.select_related("global_model").get(pk=setup_data["round_id"])
    stored = DeviceUpdate.objects.filter(round=device_round).count()
    running = RunningSum(Path(device_round.state_dir), selectors.tensor_spec(device_round.global_model))
    if stored != expected or device_round.updates_received != expected or running.count != expected:
        raise SystemExit(f"expected {expected} updates; stored {stored}, counted {device_round.updates_received}, "
                         f"folded {running.count}")
    sent = wire.decode_update(setup_data["body"]).arrays
    mean = running.mean(device_round.total_weight)
    worst = max(float(np.max(np.abs(mean[name] - sent[name]))) for name in sent)
    if worst > 1e-4:
        raise SystemExit(f"the running mean differs from the update sent by up to {worst}")
    connection.close()
    return f"{stored} updates stored once, {running.count} folded, mean = update within {worst:.1e}"


# ---- servers ----------------------------------------------------------------------------------------------

def wait_ready(port: int, path: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"uvicorn did not answer {path} within {timeout} s:\n{log_path.read_text()[-3000:]}")


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                out[name] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


# ---- posting ----------------------------------------------------------------------------------------------

def post_all(port: int, path: str, body: bytes, headers: list[dict], connections: int,
             on_done=None) -> tuple[float, list[float]]:
    """POST ``body`` once per entry of ``headers`` (in order, over ``connections`` keep-alive
    connections); every answer must be 202. Returns (seconds, latencies). ``on_done(n)`` is called
    after each answer with the number answered so far (from the posting thread)."""
    lock = threading.Lock()
    queue = list(enumerate(headers))
    latencies: list[float] = []
    failures: list[str] = []
    answered = 0

    def worker():
        nonlocal answered
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        try:
            while True:
                with lock:
                    if not queue or failures:
                        return
                    _, extra = queue.pop(0)
                started = time.perf_counter()
                conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream", **extra})
                response = conn.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status != 202:
                        failures.append(f"{response.status}: {answer[:400]!r}")
                        return
                    latencies.append(elapsed)
                    answered += 1
                    count = answered
                if on_done is not None:
                    on_done(count)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"a POST to {path} failed with {failures[0]}")
    return seconds, latencies


class Server:
    """One uvicorn process (one worker) and its memory readings."""

    def __init__(self, name: str, app: str, env: dict, log_path: Path, ready_path: str):
        self.name, self.log_path = name, log_path
        self.port = free_port()
        self.proc = start_uvicorn(app, env, self.port, log_path, "--lifespan", "off")
        self.ready_path = ready_path
        self.latencies: list[float] = []
        self.cpu = 0.0  # CPU seconds the server spent on the measured updates
        self.seconds = 0.0
        self.count = 0
        self.peaks: dict[int, int] = {}

    def ready(self) -> None:
        wait_ready(self.port, self.ready_path, self.proc, self.log_path)
        self.idle = memory(self.proc.pid)["VmRSS"]

    def warm_up(self, path: str, body: bytes, headers: list[dict]) -> None:
        # The first update loads the code behind the endpoint (numpy, the protocol, the training
        # engine it imports): its cost is the server's, once, not the ingest's. Peaks are taken
        # from the RSS after it; the peak of the warm-up itself is reported apart.
        if not reset_peak(self.proc.pid):
            print("note: cannot reset VmHWM; peaks include the server's start", flush=True)
        post_all(self.port, path, body, headers, 1)
        after = memory(self.proc.pid)
        self.warmup_peak, self.warm = after["VmHWM"], after["VmRSS"]
        reset_peak(self.proc.pid)

    def post(self, path: str, body: bytes, headers: list[dict], connections: int, checkpoints) -> float:
        done_before = self.count

        def on_done(count):
            if done_before + count in checkpoints:
                self.peaks[done_before + count] = memory(self.proc.pid)["VmHWM"]

        cpu_before = cpu_seconds(self.proc.pid)
        seconds, latencies = post_all(self.port, path, body, headers, connections, on_done)
        self.cpu += cpu_seconds(self.proc.pid) - cpu_before
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name}: uvicorn died during the run:\n{self.log_path.read_text()[-3000:]}")
        self.seconds += seconds
        self.latencies += latencies
        self.count += len(headers)
        return len(headers) / seconds

    def stop(self) -> None:
        stop_server(self.proc)


# ---- the in-process profile -------------------------------------------------------------------------------

def profile_one(setup_data: dict, runs: int = 5) -> list[tuple[str, float]]:
    """Median seconds of each server-side step of one update, run in this process on the bytes of the
    benchmark's update: what the ASGI front (``nodes.protocol.asgi``) does with the body as it
    arrives (receive it once, sha256 and the ed25519 pre-hash in threads), then the steps of
    ``device_update_submit``."""
    import asyncio
    import io

    import numpy as np
    from django.conf import settings
    from django.db import connection

    from nodes.models import DeviceRound
    from nodes.protocol import ingest, selectors, services, signatures
    from nodes.protocol.aggregate import RunningSum
    from wia_fl import wire

    body = setup_data["body"]
    device_round = DeviceRound.objects.select_related("global_model", "execution").get(pk=setup_data["round_id"])
    spec = selectors.tensor_spec(device_round.global_model)
    key = signatures.new_private_key()
    public = signatures.public_key_b64(key)
    raw_signature = signatures.parse_signature(signatures.sign_b64(key, body))
    signer = (signatures.raw_public_key(public), raw_signature)
    reference = wire.decode_update(body).arrays
    steps: dict[str, list[float]] = {}

    def timed(name, fn):
        started = time.perf_counter()
        result = fn()
        steps.setdefault(name, []).append(time.perf_counter() - started)
        return result

    async def arrive(received_chunks):
        async def receive():
            chunk = received_chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(received_chunks)}

        received = await ingest.receive(receive, directory=services.update_dir(), limit=len(body) + 1,
                                        signer=signer, size_hint=len(body),
                                        memory_budget_bytes=settings.DEVICE_UPDATE_MEMORY_BYTES)
        return await asyncio.to_thread(received.wait)

    scratch = Path(tempfile.mkdtemp(prefix="ingest-profile-", dir=settings.MEDIA_ROOT))
    running = RunningSum(scratch, spec)  # one accumulator for all runs, as a round's is
    view = memoryview(body)
    try:
        for _ in range(runs):
            # uvicorn hands over about 64 KiB at a time; the chunks are cut before the clock starts
            chunks = [bytes(view[offset:offset + 64 * 1024]) for offset in range(0, len(body), 64 * 1024)]
            received = timed("1 ASGI front: receive + sha256 + ed25519 pre-hash (64 KiB chunks)",
                             lambda: asyncio.run(arrive(chunks)))
            with received:
                assert received.sha256 == setup_data["checksum"]
                assert timed("2 service: ed25519 check from the pre-hash",
                             lambda: received.verify(public, raw_signature))
                timed("  (reference: ed25519 verify over the whole body)",
                      lambda: signatures.verify(public, raw_signature, received.buffer()))
                update = timed("3 service: decode (views of the received body, finite check)",
                               lambda: wire.view_update(received.buffer(), spec=spec))
            timed("4 service: fold into the running sum (saxpy)", lambda: running.fold(update.arrays, 100.0))
            del update
            spooled = timed("  (reference: one-pass spool of a file-like body, as under WSGI)",
                            lambda: services._spool(io.BytesIO(body), len(body) + 1, signer=signer))
            spooled.close()
            timed("  (reference: sha256 of the body in memory)", lambda: hashlib.sha256(body).hexdigest())
            timed("  (reference: one pass np.add over the model)",
                  lambda: [np.add(a, a, out=np.empty_like(a)) for a in reference.values()])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        connection.close()
    return [(name, statistics.median(values)) for name, values in sorted(steps.items())]


# ---- the run -------------------------------------------------------------------------------------------------

def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def _mb(value: float) -> str:
    return f"{value / MiB:.1f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    admin_url = os.environ.get("DATABASE_URL") or None
    tmp = Path(tempfile.mkdtemp(prefix="pollen-bench-ingest-"))
    (tmp / "staticfiles").mkdir()
    database_created = False
    try:
        database_url = prepare_database(admin_url, BENCH_DB)
        database_created = database_url is not None
        many = "1000000/min"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "POLLEN_VAR_DIR": str(tmp),
            "THROTTLE_GENERAL": many,
            "THROTTLE_DEVICE_UPDATES": many,
            "THROTTLE_DEVICE_ROUNDS": many,
            "THROTTLE_DEVICE_MODELS": many,
            "DEVICE_UPDATE_MAX_BYTES": str(int(args.model_mb * MiB) * 2 + MiB),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")])),
        }
        env.pop("DEBUG", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        else:
            env.pop("DATABASE_URL", None)
        database = f"PostgreSQL ({BENCH_DB})" if database_url else "SQLite"
        load = os.getloadavg()[0]
        print(f"database: {database}; {args.updates} updates of a {args.model_mb:g} MiB model "
              f"({args.tensors} float32 tensors); {args.connections} connection(s); load average {load:.2f}",
              flush=True)
        if load > 0.5:
            print("note: other work on this machine skews the figures", flush=True)

        started = time.monotonic()
        data = setup(env, args)
        body = data["body"]
        print(f"setup in {time.monotonic() - started:.1f} s; update body {len(body)} bytes "
              f"(model {data['model_bytes']} bytes)", flush=True)

        def device_headers(client):
            return {"Authorization": f"Bearer {client['token']}", "X-Update-Checksum": data["checksum"],
                    "X-Client-Signature": client["signature"]}

        headers = [device_headers(c) for c in data["clients"]]
        path = f"/api/v1/rounds/{data['round_id']}/updates"
        raw_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
        # Both servers stay up; blocks of updates alternate between them, so that a change in the
        # machine's load between blocks hits both alike.
        servers: list[Server] = []
        block_ratios = []
        try:
            raw = Server("raw", "benchmarks.update_ingest:raw_app", raw_env, tmp / "raw.log", "/")
            servers.append(raw)
            ingest = Server("ingest", "config.asgi:application", env, tmp / "pollen.log", "/health")
            servers.append(ingest)
            for server in servers:
                server.ready()
            for server in servers:
                server.warm_up(path, body, headers[:1])
            checkpoints = {args.checkpoint, args.updates}
            measured = headers[1:]
            for start in range(0, args.updates, args.block):
                block = measured[start:start + args.block]
                raw_rate = raw.post(path, body, block, args.connections, checkpoints)
                ingest_rate = ingest.post(path, body, block, args.connections, checkpoints)
                block_ratios.append(ingest_rate / raw_rate)
                print(f"  updates {start + 1}-{start + len(block)}: raw {raw_rate:.2f}/s, ingest {ingest_rate:.2f}/s, "
                      f"ratio {block_ratios[-1]:.2f}", flush=True)
        except SystemExit as exc:
            if isinstance(exc.code, str):  # a failed check, not a signal: the servers may say why
                for server in servers:
                    print(f"{server.name} server log (last lines):\n{server.log_path.read_text()[-3000:]}",
                          file=sys.stderr)
            raise
        finally:
            for server in servers:
                server.stop()
        check = verify_round(data, args.updates + 1)

        model = data["model_bytes"]
        print()
        print(f"{'server':<7} {'updates':>7} {'seconds':>8} {'updates/s':>10} {'MiB/s':>7} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'cpu ms':>7} | RSS MiB: {'idle':>6} {'warm-up':>8} {'warm':>6} "
              f"{f'peak@{args.checkpoint}':>8} {f'peak@{args.updates}':>8}")
        for r in servers:
            cuts = sorted(r.latencies)
            p99 = cuts[min(len(cuts) - 1, int(round(0.99 * (len(cuts) - 1))))]
            print(f"{r.name:<7} {r.count:>7} {r.seconds:>8.2f} {r.count / r.seconds:>10.2f} "
                  f"{r.count * len(body) / MiB / r.seconds:>7.1f} {statistics.median(cuts) * 1000:>7.1f} "
                  f"{p99 * 1000:>7.1f} {r.cpu / r.count * 1000:>7.1f} |          {_mb(r.idle):>6} "
                  f"{_mb(r.warmup_peak):>8} {_mb(r.warm):>6} "
                  f"{_mb(r.peaks[args.checkpoint]):>8} {_mb(r.peaks[args.updates]):>8}")
        print("(cpu ms: the server's CPU time per update, all its threads; idle: VmRSS before any update; warm-up: "
              "VmHWM during the first, unmeasured update; warm: VmRSS after it; peak@n: VmHWM since then, after n "
              "measured updates)")
        print(f"(the round afterwards: {check})")

        if args.profile:
            print()
            print("one update's server-side steps, in this process (median of 5):")
            for name, seconds in profile_one(data):
                print(f"  {name:<58} {seconds * 1000:8.1f} ms")

        ratio = (ingest.count / ingest.seconds) / (raw.count / raw.seconds)
        above = {n: ingest.peaks[n] - ingest.warm for n in (args.checkpoint, args.updates)}
        print()
        print(f"RATIO ingest/raw = {ratio:.2f}  (aim >= 0.5; per block of {args.block}: "
              f"{', '.join(f'{r:.2f}' for r in block_ratios)}; median {statistics.median(block_ratios):.2f})")
        for n, value in above.items():
            print(f"PEAK_RSS above warm after {n} updates = {_mb(value)} MiB = {value / model:.2f} x model "
                  f"(aim < 4)")
        first = ingest.warmup_peak - ingest.idle
        print(f"(the first update, loading the endpoint's code, took the RSS {_mb(first)} MiB above idle "
              f"= {first / model:.2f} x model; {_mb(ingest.warm - ingest.idle)} MiB of it stays)")
        return 0
    finally:
        if database_created:
            drop_database(admin_url, BENCH_DB)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
