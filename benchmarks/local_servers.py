"""The uvicorn servers a benchmark starts on loopback, and how it stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

HOST = "127.0.0.1"
BASE_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_uvicorn(app: str, env: dict, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    """``app`` under uvicorn with one worker, in its own session, its output in ``log_path``."""
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--workers", "1",
         "--no-access-log", "--log-level", "warning", *extra],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
