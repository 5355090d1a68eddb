"""Throughput of ``GET /api/v1/projects?page=1&limit=20`` against a minimal Django view.

Both run in one uvicorn process (one worker) in the same run, so the ratio says what DRF,
JWT authentication, permissions, throttling, filtering, pagination, serialization and the
envelope cost on top of Django's own request path and middleware.

    .venv/bin/python benchmarks/api_list.py [--duration 10] [--connections 16] [--projects 10000]

With no DATABASE_URL the data lives in a fresh SQLite file in a temporary folder. With
``DATABASE_URL=postgres://user@host:port/anydb`` that URL is used as the admin connection: the
script creates the database ``pollen_bench`` next to it and drops it at the end.

The load comes from wrk when it is installed (``-t2 -c<connections>``), else from a bounded
asyncio httpx loop. Every request goes to 127.0.0.1 only. Prints a table and, last,
``RATIO api_list/minimal = 0.xx`` (Pollen's requests per second over the baseline's).
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

try:  # imported as benchmarks.<name> (the servers it starts), or run as a script from benchmarks/
    from benchmarks.local_servers import HOST, free_port, start_uvicorn, stop_server
    from benchmarks.throwaway_db import drop_database, prepare_database
except ImportError:
    from local_servers import HOST, free_port, start_uvicorn, stop_server
    from throwaway_db import drop_database, prepare_database

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DB = "pollen_bench"
API_PATH = "/api/v1/projects?page=1&limit=20"
MINIMAL_PATH = "/bench/minimal"
WRK = shutil.which("wrk")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per endpoint (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load per endpoint first (2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--projects", type=int, default=10_000, help="projects owned by the benchmark user (10000)")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests per endpoint for the httpx fallback (default: 300 x connections)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two endpoints this many times and report medians (1); "
                             "more rounds steady the ratio on a busy machine")
    parser.add_argument("--no-wrk", action="store_true", help="use the httpx fallback even when wrk exists")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        args.threads = args.connections
    return args


# ---- the database ------------------------------------------------------------------------------

def migrate(env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env,
                   check=True)


def seed(env: dict, projects: int) -> str:
    """Create the benchmark user and its projects; return a JWT access token for that user."""
    os.environ.clear()  # exactly the server's environment (a blank DATABASE_URL must not linger)
    os.environ.update(env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Role, User
    from accounts.services import tokens_issue
    from projects.models import Project

    user = User.objects.create_user(username="bench", email="bench@example.com", password=None)
    user.roles.set(Role.objects.filter(name="user"))
    batch = 1000
    for start in range(0, projects, batch):
        Project.objects.bulk_create(
            Project(owner=user, name=f"Benchmark project {i:05d}",
                    description=f"Project {i} of the list benchmark, with a description of typical length.",
                    configuration={"model_type": "cnn", "dataset": "digits",
                                   "privacy_settings": {"differential_privacy": i % 2 == 0,
                                                        "secure_aggregation": False}})
            for i in range(start, min(start + batch, projects))
        )
    token = tokens_issue(user=User.objects.get(pk=user.pk))["access_token"]
    connection.close()
    return token


# ---- the server --------------------------------------------------------------------------------

def get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(base: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            status, _ = get(f"{base}/health", timeout=5)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"uvicorn did not answer /health within {timeout} s:\n{log_path.read_text()[-3000:]}")


def check_endpoints(base: str, headers: dict, projects: int) -> None:
    status, body = get(base + MINIMAL_PATH)
    if status != 200 or json.loads(body) != {"ok": True}:
        raise SystemExit(f"{MINIMAL_PATH} answered {status}: {body[:300]!r}")
    status, body = get(base + API_PATH, headers)
    data = json.loads(body)
    expected = min(20, projects)
    if status != 200 or len(data.get("data") or []) != expected or data["pagination"]["total"] != projects:
        raise SystemExit(f"{API_PATH} answered {status}: {body[:300]!r}")


# ---- the load ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, headers: dict, *, duration: int, connections: int, threads: int, latency: bool = True) -> dict:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    if latency:
        cmd.append("--latency")
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    if not latency:
        return {}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if bad or errors:
        raise SystemExit(f"wrk saw failed requests against {url}:\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }


async def _httpx_load(url: str, headers: dict, *, total: int, connections: int) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    remaining = iter(range(total))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10) as client:
        async def worker():
            nonlocal failures
            for _ in remaining:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                failures += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} of {total} requests to {url} failed")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"rps": total / elapsed, "p50": cuts[49], "p99": cuts[98], "requests": total}


def measure(url: str, headers: dict, args) -> dict:
    if WRK and not args.no_wrk:
        if args.warmup:
            run_wrk(url, headers, duration=args.warmup, connections=args.connections, threads=args.threads,
                    latency=False)
        return run_wrk(url, headers, duration=args.duration, connections=args.connections, threads=args.threads)
    total = args.requests or 300 * args.connections
    asyncio.run(_httpx_load(url, headers, total=max(args.connections * 10, total // 5), connections=args.connections))
    return asyncio.run(_httpx_load(url, headers, total=total, connections=args.connections))


def _median(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# ---- the run -----------------------------------------------------------------------------------

def _exit_on_signal(signum, frame):
    # Turns SIGTERM/SIGHUP into an exception, so the finally below still stops the server.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    admin_url = os.environ.get("DATABASE_URL") or None
    tmp = Path(tempfile.mkdtemp(prefix="pollen-bench-"))
    (tmp / "staticfiles").mkdir()  # STATIC_ROOT; WhiteNoise warns when it is missing
    proc = None
    database_created = False
    try:
        database_url = prepare_database(admin_url, BENCH_DB)
        database_created = database_url is not None
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "POLLEN_VAR_DIR": str(tmp),
            "THROTTLE_GENERAL": "1000000/min",
            "LOG_LEVEL": "WARNING",
            # The token must outlive every round of both endpoints, with room to spare.
            "ACCESS_TOKEN_MINUTES": str(60 + 2 * max(1, args.rounds) * (args.duration + args.warmup) // 60),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")])),
        }
        env.pop("DEBUG", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        else:
            env.pop("DATABASE_URL", None)
        database = f"PostgreSQL ({BENCH_DB})" if database_url else f"SQLite ({tmp / 'pollen.sqlite3'})"
        print(f"database: {database}; cache: {'Redis' if env.get('REDIS_URL') else 'local memory'}; "
              f"load: {'wrk' if WRK and not args.no_wrk else 'httpx'}; {args.connections} connections, "
              f"{args.duration} s per endpoint", flush=True)
        load = os.getloadavg()[0]
        if load > 0.5:
            print(f"note: load average {load:.2f} before the run; other work on this machine skews both figures",
                  flush=True)

        started = time.monotonic()
        migrate(env)
        token = seed(env, args.projects)
        print(f"migrated and seeded {args.projects} projects in {time.monotonic() - started:.1f} s", flush=True)

        port = free_port()
        base = f"http://{HOST}:{port}"
        log_path = tmp / "uvicorn.log"
        proc = start_uvicorn("config.asgi:application", env, port, log_path)
        wait_healthy(base, proc, log_path)
        auth = {"Authorization": f"Bearer {token}"}
        check_endpoints(base, auth, args.projects)

        rounds: dict[str, list[dict]] = {"minimal": [], "api_list": []}
        try:
            for _ in range(max(1, args.rounds)):
                rounds["minimal"].append(measure(base + MINIMAL_PATH, {}, args))
                rounds["api_list"].append(measure(base + API_PATH, auth, args))
        except SystemExit as exc:
            if isinstance(exc.code, str):  # a failed check, not a signal: the server may say why
                print(f"server log (last lines):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
            raise
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn died during the run:\n{log_path.read_text()[-3000:]}")

        results = {name: _median(runs) for name, runs in rounds.items()}
        print()
        print(f"{'endpoint':<10} {'path':<34} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for name, path in (("minimal", MINIMAL_PATH), ("api_list", API_PATH)):
            r = results[name]
            print(f"{name:<10} {path:<34} {int(r['requests']):>9} {r['rps']:>9.1f} {r['p50']:>8.2f} {r['p99']:>8.2f}")
        ratio = results["api_list"]["rps"] / results["minimal"]["rps"]
        if len(rounds["minimal"]) > 1:
            per_round = [a["rps"] / m["rps"] for m, a in zip(rounds["minimal"], rounds["api_list"])]
            print(f"(medians of {len(per_round)} rounds; ratio per round: "
                  f"{', '.join(f'{r:.2f}' for r in per_round)})")
        print()
        print(f"RATIO api_list/minimal = {ratio:.2f}")
        return 0
    finally:
        stop_server(proc)
        if database_created:
            drop_database(admin_url, BENCH_DB)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
