"""Aggregation throughput of device updates: Pollen's RunningSum against a plain numpy pass and
Flower 1.41's FedAvg aggregation, on the same arrays in the same run.

    .venv/bin/python benchmarks/aggregate.py [--updates 50] [--elements 5000000] [--tensors 1]
                                             [--repeats 5] [--dir PATH] [--skip-decode]

The work: ``--updates`` float32 updates of ``--elements`` values each (split into ``--tensors``
tensors), with integer weights (example counts), averaged. GB/s = bytes of the updates (4 x
elements x updates) / seconds. Measured, alternating, ``--repeats`` times each; medians reported:

* plain: ``np.add(acc, x, out=acc)`` over every tensor of every update, the accumulator in memory
  (no weights, no division): the speed of one pass over the bytes.
* pollen: what a round does, in this process: for each update ``RunningSum(dir, spec).fold(update,
  weight)`` (constructed per update, as each request does), then ``mean(total)``; the accumulator is
  the file in a fresh directory under ``--dir``. The process keeps its mapping of the file between
  folds, as a web process does while folding a burst of uploads.
* pollen, new mapping per fold: the same with the mapping dropped before every fold, as when every
  update lands in a different process (page faults of the shared file mapping included).
* pollen, decode + fold: ``wia_fl.wire.decode_update(body, spec=...)`` of each update's request
  body (bytes), then the fold: the server's whole path from body to sum.
* flower: ``flwr.serverapp.strategy.strategy_utils.aggregate_arrayrecords`` (what FedAvg's
  ``aggregate_train`` calls) on RecordDicts holding each update as an ArrayRecord and its weight as
  ``num-examples`` in a MetricRecord, as Flower's replies carry them (Arrays hold serialised bytes;
  Flower deserialises each one with ``Array.numpy()`` as it aggregates).

Then, unmeasured, the heap peak (tracemalloc) of a pollen fold loop and of Flower's aggregation,
and the largest difference between their means. Prints the machine's load average first and, last,
``RATIO pollen/plain = x.xx`` and ``RATIO pollen/flower = x.xx`` (GB/s over GB/s).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from nodes.protocol import aggregate  # noqa: E402
from nodes.protocol.aggregate import RunningSum  # noqa: E402
from wia_fl import wire  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=50, help="updates per aggregation (50)")
    parser.add_argument("--elements", type=int, default=5_000_000, help="float32 values per update (5,000,000)")
    parser.add_argument("--tensors", type=int, default=1, help="tensors each update is split into (1)")
    parser.add_argument("--repeats", type=int, default=5, help="measured runs of each; medians reported (5)")
    parser.add_argument("--dir", default=None, help="where the running sums are written (a temporary folder)")
    parser.add_argument("--skip-decode", action="store_true", help="skip the decode + fold measurement")
    args = parser.parse_args(argv)
    if min(args.updates, args.elements, args.tensors, args.repeats) < 1 or args.tensors > args.elements:
        parser.error("--updates, --elements, --tensors and --repeats must be at least 1, tensors <= elements")
    return args


def make_work(updates: int, elements: int, tensors: int):
    rng = np.random.default_rng(0)
    sizes = [elements // tensors + (1 if i < elements % tensors else 0) for i in range(tensors)]
    names = [f"layer{i:02d}" for i in range(tensors)]
    work = [{name: rng.standard_normal(size, dtype=np.float32) for name, size in zip(names, sizes)}
            for _ in range(updates)]
    weights = [int(w) for w in rng.integers(10, 1000, size=updates)]
    return work, weights, wire.spec_of(work[0])


def flower_records(work, weights):
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

    return [RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in update.items()}),
                        "metrics": MetricRecord({"num-examples": weight})})
            for update, weight in zip(work, weights)]


def run_plain(work, accumulators):
    for acc in accumulators.values():
        acc.fill(0)
    started = time.perf_counter()
    for update in work:
        for name, values in update.items():
            np.add(accumulators[name], values, out=accumulators[name])
    return time.perf_counter() - started


def run_pollen(work, weights, spec, directory: Path, *, new_mapping=False, bodies=None):
    shutil.rmtree(directory, ignore_errors=True)
    aggregate._mappings.forget()
    started = time.perf_counter()
    for index, weight in enumerate(weights):
        if new_mapping:
            aggregate._mappings.forget()
        update = wire.decode_update(bodies[index], spec=spec).arrays if bodies is not None else work[index]
        RunningSum(directory, spec).fold(update, weight)
    mean = RunningSum(directory, spec).mean(sum(weights))
    seconds = time.perf_counter() - started
    aggregate._mappings.forget()
    return seconds, mean


def run_flower(records):
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    started = time.perf_counter()
    result = aggregate_arrayrecords(records, "num-examples")
    seconds = time.perf_counter() - started
    return seconds, result


def heap_peak(function) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None):
    args = parse_args(argv)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores; load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
          flush=True)
    import flwr
    import scipy

    axpy = "scipy BLAS saxpy" if aggregate._saxpy is not None else "numpy multiply + add (no scipy)"
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, flwr {flwr.__version__}; RunningSum folds with {axpy}")
    work, weights, spec = make_work(args.updates, args.elements, args.tensors)
    nbytes = 4 * args.elements * args.updates
    print(f"work: {args.updates} updates x {args.elements:,} float32 in {args.tensors} tensor(s) = "
          f"{nbytes / 1e9:.2f} GB, weights 10..999")
    records = flower_records(work, weights)
    bodies = None if args.skip_decode else [wire.encode_update(u, num_examples=w) for u, w in zip(work, weights)]
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="pollen-aggregate-"))
    root.mkdir(parents=True, exist_ok=True)
    directory = root / "round"
    print(f"running sums under {root}", flush=True)
    accumulators = {name: np.zeros(shape, np.float32) for name, (shape, _) in spec.items()}

    measures = {"plain": lambda: run_plain(work, accumulators),
                "pollen": lambda: run_pollen(work, weights, spec, directory)[0],
                "pollen, new mapping per fold": lambda: run_pollen(work, weights, spec, directory, new_mapping=True)[0],
                "flower": lambda: run_flower(records)[0]}
    if bodies is not None:
        measures["pollen, decode + fold"] = lambda: run_pollen(work, weights, spec, directory, bodies=bodies)[0]
    for function in measures.values():  # warm-up: page cache, BLAS threads, first-touch of buffers
        function()
    times: dict[str, list[float]] = {name: [] for name in measures}
    try:
        for repeat in range(args.repeats):
            for name, function in measures.items():
                times[name].append(function())
            print(f"  run {repeat + 1}: " + "  ".join(f"{name} {nbytes / times[name][-1] / 1e9:.2f}"
                                                      for name in measures) + " GB/s", flush=True)

        _, ours = run_pollen(work, weights, spec, directory)
        _, theirs = run_flower(records)
        difference = max(float(np.max(np.abs(ours[k] - theirs[k].numpy())) / np.max(np.abs(theirs[k].numpy())))
                         for k in spec)
        fold_peak = heap_peak(lambda: run_pollen(work, weights, spec, directory))
        flower_peak = heap_peak(lambda: run_flower(records))
    finally:
        aggregate._mappings.forget()
        shutil.rmtree(directory, ignore_errors=True)
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)

    speed = {name: nbytes / statistics.median(values) / 1e9 for name, values in times.items()}
    print()
    print(f"{'aggregation':<30} {'median s':>9} {'GB/s':>7}  runs (s)")
    for name, values in times.items():
        print(f"{name:<30} {statistics.median(values):>9.3f} {speed[name]:>7.2f}  "
              + " ".join(f"{v:.3f}" for v in values))
    update_bytes = 4 * args.elements
    print(f"heap peak (tracemalloc): pollen fold loop + mean {fold_peak / 1e6:.1f} MB "
          f"({fold_peak / update_bytes:.2f} x one update; the running sum itself is a file in the page cache), "
          f"flower {flower_peak / 1e6:.1f} MB ({flower_peak / update_bytes:.2f} x)")
    print(f"pollen's mean vs flower's: max |difference| / max |value| = {difference:.2e}")
    print(f"RATIO pollen/plain = {speed['pollen'] / speed['plain']:.2f}")
    print(f"RATIO pollen/flower = {speed['pollen'] / speed['flower']:.2f}")


if __name__ == "__main__":
    main()
