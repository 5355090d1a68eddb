"""What the host is (registration) and how busy it is (heartbeats), from psutil."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

import psutil


def _has_gpu() -> bool:
    """An NVIDIA driver exposes its devices under /proc; that is enough to call the node a GPU node."""
    try:
        return any(os.scandir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False


def _bandwidth_mbps() -> float | None:
    """The fastest non-loopback interface that is up (psutil reports its link speed in Mb/s)."""
    try:
        stats = psutil.net_if_stats()
    except OSError:
        return None
    speeds = [s.speed for name, s in stats.items() if s.isup and s.speed > 0 and not name.startswith("lo")]
    return float(max(speeds)) if speeds else None


def capability(*, compute: str | None = None) -> dict:
    """Seed 001's capability block: compute (cpu or gpu), memory_gb, bandwidth_mbps, gpu."""
    gpu = _has_gpu()
    result = {"compute": compute or ("gpu" if gpu else "cpu"), "gpu": gpu,
              "memory_gb": round(psutil.virtual_memory().total / 2**30, 2)}
    bandwidth = _bandwidth_mbps()
    if bandwidth is not None:
        result["bandwidth_mbps"] = bandwidth
    return result


def resources(*, disk_path: str = "/") -> dict:
    """The host's size, for ``resources``: CPU counts, memory and disk bytes, platform."""
    result = {"cpu_count": psutil.cpu_count(logical=True), "cpu_count_physical": psutil.cpu_count(logical=False),
              "memory_bytes": psutil.virtual_memory().total, "platform": platform.platform(),
              "machine": platform.machine(), "python": platform.python_version()}
    try:
        result["disk_bytes"] = psutil.disk_usage(disk_path).total
    except OSError:
        pass
    return result


def _network_bytes() -> tuple[int, int]:
    """Bytes sent and received since boot on the host's real interfaces (all of them if it has
    only loopback, as a container on a test host may)."""
    counters = psutil.net_io_counters(pernic=True)
    real = {name: c for name, c in counters.items() if not name.startswith("lo")} or counters
    return sum(c.bytes_sent for c in real.values()), sum(c.bytes_recv for c in real.values())


class SystemSampler:
    """Takes samples for heartbeats. CPU percent is measured since the previous sample (psutil's
    non-blocking mode), so the first call primes it; a sample taken too soon after blocks 0.1 s."""

    def __init__(self, *, disk_path: str = "/"):
        self.disk_path = disk_path
        psutil.cpu_percent(interval=None)
        self._primed_at = time.monotonic()

    def sample(self) -> dict:
        if time.monotonic() - self._primed_at < 0.1:
            cpu = psutil.cpu_percent(interval=0.1)
        else:
            cpu = psutil.cpu_percent(interval=None)
        self._primed_at = time.monotonic()
        sent, received = _network_bytes()
        result = {"timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                  "cpu_percent": round(cpu, 2), "memory_percent": round(psutil.virtual_memory().percent, 2),
                  "network_bytes_sent": sent, "network_bytes_recv": received}
        try:
            result["disk_percent"] = round(psutil.disk_usage(self.disk_path).percent, 2)
        except OSError:
            pass
        return result
