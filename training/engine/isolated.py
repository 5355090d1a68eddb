"""Runs an uploaded Flower app in a child process, away from the worker and the database.

The parent (``training.runner``) extracts the stored archive, starts
``python -m training.engine.isolated`` under a memory and CPU limit and talks to it over two
dedicated pipes (the app's own stdout and stderr stay free for its prints, which become logs).
The child imports the app's ServerApp and ClientApp, drives them over the in-process Grid and
reports what the Grid sees as JSON lines; before each round it asks the parent whether to go on.
Model arrays travel as base64 ``.npz`` read with ``allow_pickle=False``: nothing the child sends
is ever unpickled by the parent. This module must not import Django.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
from dataclasses import asdict

import numpy as np

PROTOCOL_VERSION = 1


def encode_arrays(arrays) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"arr_{i}": a for i, a in enumerate(arrays.to_numpy_ndarrays())})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_arrays(text: str) -> list[np.ndarray]:
    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]


def load_component(ref: str):
    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


class PipeObserver:
    def __init__(self, out, inp):
        self.out = out
        self.inp = inp

    def send(self, kind: str, **payload) -> None:
        self.out.write(json.dumps({"kind": kind, **payload}) + "\n")
        self.out.flush()

    def before_round(self, round_number: int) -> None:
        from training.engine.grid import ExecutionInterrupted

        self.send("before_round", round=round_number)
        answer = json.loads(self.inp.readline() or '{"action": "stop"}')
        if answer.get("action") in ("stop", "suspend"):
            raise ExecutionInterrupted(answer["action"], round_number - 1)

    def on_replies(self, round_number, phase, results):
        self.send("replies", round=round_number, phase=phase, results=[asdict(r) for r in results])

    def on_global_arrays(self, round_number, arrays):
        self.send("arrays", round=round_number, arrays=encode_arrays(arrays))

    def on_round_end(self, round_number):
        self.send("round_end", round=round_number)


def apply_limits() -> None:
    """Memory (address space) and CPU-time limits, set before any of the app's code is imported."""
    import resource

    memory = int(os.environ.get("POLLEN_LIMIT_MEMORY_BYTES", "0"))
    cpu = int(os.environ.get("POLLEN_LIMIT_CPU_SECONDS", "0"))
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def main() -> int:
    apply_limits()
    out = os.fdopen(int(os.environ["POLLEN_PIPE_OUT"]), "w", buffering=1)
    inp = os.fdopen(int(os.environ["POLLEN_PIPE_IN"]), "r")
    spec = json.loads(inp.readline())
    observer = PipeObserver(out, inp)
    sys.path.insert(0, spec["app_dir"])
    os.chdir(spec["app_dir"])
    from training.engine.grid import ExecutionInterrupted, InProcessGrid, server_context, server_identity

    try:
        server_app = load_component(spec["serverapp"])
        client_app = load_component(spec["clientapp"])
        nodes = {int(k): v for k, v in spec["nodes"].items()}
        grid = InProcessGrid(client_app=client_app, nodes=nodes, run_config=spec["run_config"],
                             run_id=spec["run_id"], observer=observer, round_offset=int(spec.get("round_offset", 0)))
        if spec.get("resume_arrays"):
            from flwr.app import ArrayRecord

            grid.resume_arrays = ArrayRecord(decode_arrays(spec["resume_arrays"]))
        server_identity(spec["run_id"])
        server_app(grid, server_context(spec["run_id"], spec["run_config"]))
        grid.finish()
    except ExecutionInterrupted as interrupt:
        observer.send("interrupted", action=interrupt.action, round=interrupt.completed_round)
        return 0
    except BaseException as exc:  # the app's failure is reported, not raised into the parent
        observer.send("failed", error=f"{exc.__class__.__name__}: {exc}"[:2000])
        return 1
    observer.send("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
