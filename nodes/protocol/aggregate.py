"""Aggregating device updates with memory that does not grow with the number of updates.

Two paths, chosen by ``is_streaming(strategy)``:

* ``RunningSum`` (FedAvg, FedProx, and the server optimisers FedAdam, FedYogi, FedAdagrad, FedAvgM,
  which all start from the weighted mean): each update is folded into ``sum(w_i * x_i)`` the moment
  it arrives, in whichever web process received it, and the update is then dropped. The sum lives in
  one file under the round's directory; a worker reads the mean at the end of the round.
* ``UpdateStore`` (FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan, which need every update at
  once): each update is kept as one flat float32 file and the aggregate is computed in column
  chunks over memory-mapped files, so at most ``BLOCK_BYTES`` of update data is in memory at a time.

``server_step`` then applies FedAdam/FedYogi/FedAdagrad/FedAvgM's server optimiser to the mean,
with its state (moments, momentum, step count) kept in a dict of arrays that the caller persists
with ``save_state``/``load_state``.

Every aggregate follows Flower 1.41's strategy of the same name (``flwr.serverapp.strategy``): the
same parameter names and defaults, the same arithmetic in the same order, so the tests compare the
results with Flower's own functions on the same arrays.

Fold cost. A fold is one pass over the update: BLAS ``saxpy`` (one thread) straight into a shared
memory mapping of the sum file, which a process keeps between folds. Measured alternatives for 20 MB
updates: the same through a fresh mapping per fold (page faults: about 5 ms instead of about 1.3 ms),
``pread`` + ``saxpy`` + ``pwrite`` in chunks (about 4.5 ms), a copy-on-write file per fold (about
15 ms), and numpy ``multiply`` + ``add`` in cache-sized chunks (two passes: about half saxpy's speed).

Numeric precision. Updates and results are float32 (the wire format's dtype). The running sum is a
float32 accumulator updated with BLAS ``saxpy`` (a fused multiply-add per element on current
CPUs): it is read and written once per fold, half the bytes of a float64 accumulator, and its
rounding error is of the order of ``n * 2**-24`` relative to ``sum(|w_i x_i|)`` in the worst case
(about ``sqrt(n) * 2**-24`` typically), which is below what float32 weights can express for the
round sizes we run (for 1,000 updates, at most 6e-5 relative and typically 2e-6). Flower's FedAvg
accumulates in float32 too. The total weight is kept in float64 (exact for integer example counts
below 2**53). The robust strategies reproduce Flower's float32 arithmetic exactly; Krum's Gram
matrix sums per-chunk float32 products in float64.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import re
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

try:  # scipy comes with scikit-learn; numpy does the same work (two passes instead of one) without it
    from scipy.linalg.blas import saxpy as _saxpy
except ImportError:  # pragma: no cover
    _saxpy = None
try:  # comes with scikit-learn too
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

__all__ = [
    "RunningSum", "UpdateStore", "AggregationStateError", "is_streaming", "server_step", "save_state",
    "load_state", "STREAMING", "ROBUST", "BLOCK_BYTES",
]

STREAMING = frozenset({"fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "fedavgm"})
ROBUST = frozenset({"fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"})
ALIASES = {"fedopt": "fedadam"}
BLOCK_BYTES = 16 * 1024 * 1024  # update bytes held at once by UpdateStore (one column block)
_FOLD_CHUNK = 1 << 20  # elements per numpy step when scipy is missing
_BLAS_CHUNK = 1 << 30  # elements per saxpy call
_ZERO_CHUNK = 4 << 20  # bytes per write when creating a running sum

Spec = Mapping[str, tuple[Sequence[int], str]]


class AggregationStateError(RuntimeError):
    """The on-disk aggregation state disagrees with what the caller expects (an interrupted fold,
    a fold whose transaction rolled back, another model's files)."""


def resolve(strategy: str) -> str:
    key = ALIASES.get(strategy.lower(), strategy.lower())
    if key not in STREAMING and key not in ROBUST:
        raise ValueError(f"Unsupported strategy for device rounds: {strategy!r}; "
                         f"supported: {sorted(STREAMING | ROBUST | set(ALIASES))}")
    return key


def is_streaming(strategy: str) -> bool:
    """True when the round can fold updates into a ``RunningSum`` as they arrive."""
    return resolve(strategy) in STREAMING


# ---- layout -------------------------------------------------------------------------------------

class _Layout:
    """Where each tensor lives in a flat float32 vector: names in sorted order, so every process
    derives the same offsets from the same spec whatever order its dict is in."""

    def __init__(self, spec: Spec):
        if not spec:
            raise ValueError("an empty spec")
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.offsets: dict[str, int] = {}
        offset = 0
        for name in sorted(spec):
            shape, dtype = spec[name]
            if np.dtype(dtype) != np.float32:
                raise ValueError(f"tensor {name!r}: only float32 is aggregated, not {dtype}")
            shape = tuple(int(d) for d in shape)
            self.shapes[name] = shape
            self.offsets[name] = offset
            offset += math.prod(shape)
        self.size = offset
        text = ";".join(f"{name}:{','.join(map(str, shape))}" for name, shape in self.shapes.items())
        self.digest = hashlib.sha256(text.encode()).digest()

    def flat(self, arrays: Mapping[str, np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, flat float32 view) of each tensor; raises ValueError on a mismatch."""
        if set(arrays) != set(self.shapes):
            raise ValueError(f"tensors {sorted(arrays)} do not match the round's {sorted(self.shapes)}")
        for name, shape in self.shapes.items():
            array = np.asarray(arrays[name], dtype=np.float32)  # no copy for float32 input
            if array.shape != shape:
                raise ValueError(f"tensor {name!r} has shape {array.shape}, the round's is {shape}")
            yield self.offsets[name], array.reshape(-1)  # a view unless the input is not contiguous

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {name: flat[offset:offset + math.prod(shape)].reshape(shape)
                for (name, shape), offset in zip(self.shapes.items(), self.offsets.values(), strict=True)}


# ---- RunningSum ---------------------------------------------------------------------------------

_MAGIC = b"PLNSUM1\x00"
_HEADER = struct.Struct("<8s32sQQdQ")  # magic, layout digest, size, count, total weight, folding flag
_DATA_OFFSET = 4096  # one page: the accumulator is page-aligned in the file and in the mapping
_IDLE, _FOLDING = 0, 1


class _Mappings:
    """A few writable shared mappings of accumulator files, kept per process.

    Writing through a fresh mapping of an ext4 file costs a page fault and a journal call for every
    4 KiB page (about 13 ms for 20 MB here, four times the arithmetic), so a process keeps the
    mappings of the rounds it folds into. Shared mappings of one file see the same page-cache pages
    in every process, so folds from different processes stay coherent. A mapping is reused only
    while the path still names the same file (device, inode, size; the mapping keeps its inode
    alive, so the number cannot be reused meanwhile), and at most ``LIMIT`` are kept, so a deleted
    round's file is released soon.
    """

    LIMIT = 4

    def __init__(self):
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[tuple, mmap.mmap]] = OrderedDict()

    def get(self, path: Path) -> mmap.mmap:
        key = str(path)
        stat = os.stat(path)
        identity = (stat.st_dev, stat.st_ino, stat.st_size)
        with self._lock:
            cached = self._open.get(key)
            if cached is not None and cached[0] == identity:
                self._open.move_to_end(key)
                return cached[1]
        fd = os.open(path, os.O_RDWR)
        try:
            mapping = mmap.mmap(fd, stat.st_size, flags=mmap.MAP_SHARED)
        finally:
            os.close(fd)
        with self._lock:
            self._open[key] = (identity, mapping)
            self._open.move_to_end(key)
            while len(self._open) > self.LIMIT:
                self._open.popitem(last=False)  # unmapped once no array views it any more
        return mapping

    def forget(self, path: Path | None = None) -> None:
        with self._lock:
            if path is None:
                self._open.clear()
            else:
                self._open.pop(str(path), None)


_mappings = _Mappings()


class RunningSum:
    """``sum(w_i * x_i)`` over the updates folded so far, in ``directory/running_sum.f32``.

    The file is a 4 KiB header (layout digest, number of folds, total weight, an in-progress flag)
    and the float32 accumulator. Any process may construct one on the same directory; folds must be
    serialised by the caller (hold the round's row lock). Memory: a fold adds nothing beyond the
    update it is given; ``mean`` returns one model's worth of arrays.
    """

    FILENAME = "running_sum.f32"

    def __init__(self, directory: Path, spec: Spec):
        self.directory = Path(directory)
        self.layout = _Layout(spec)
        self.path = self.directory / self.FILENAME
        if not self.path.exists():
            self._create()
        self._check_header(self._read_header())

    def _create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".running_sum.")
        closed = False
        try:
            # Real zeros rather than a sparse file, written in large writes at aligned offsets (the
            # header inside the first one): such pages sit in large page-cache folios, and writing
            # through a new mapping then faults once per folio instead of once per 4 KiB page.
            # Measured on ext4 for 20 MB: 3-5 ms per fold from a new mapping, against 15-50 ms with
            # a sparse file or with writes that are not aligned.
            total = _DATA_OFFSET + 4 * self.layout.size
            first = bytearray(min(_ZERO_CHUNK, total))
            first[:_HEADER.size] = _HEADER.pack(_MAGIC, self.layout.digest, self.layout.size, 0, 0.0, _IDLE)
            zeros = bytes(min(_ZERO_CHUNK, total))
            written = 0
            while written < total:
                chunk = first if written == 0 else zeros
                written += os.pwrite(fd, memoryview(chunk)[:min(len(chunk), total - written)], written)
            os.close(fd)
            closed = True
            try:
                os.link(tmp, self.path)  # no-clobber: a racing creator's file (maybe folded into) wins
            except FileExistsError:
                pass
        finally:
            if not closed:
                os.close(fd)
            os.unlink(tmp)

    def _read_header(self) -> tuple:
        with open(self.path, "rb") as fh:
            raw = fh.read(_HEADER.size)
        if len(raw) != _HEADER.size:
            raise AggregationStateError(f"{self.path}: truncated header")
        return _HEADER.unpack(raw)

    def _check_header(self, header: tuple) -> None:
        magic, digest, size = header[:3]
        if magic != _MAGIC or digest != self.layout.digest or size != self.layout.size:
            raise AggregationStateError(f"{self.path} holds the sum of another model's tensors")

    @property
    def count(self) -> int:
        """Folds completed so far."""
        return self._read_header()[3]

    @property
    def total_weight(self) -> float:
        """Sum of the weights folded so far."""
        return self._read_header()[4]

    def fold(self, arrays: Mapping[str, np.ndarray], weight: float) -> None:
        """Add ``weight * arrays`` to the sum. Call holding the round's row lock: folds must not
        overlap. Raises ValueError on tensors that do not match the spec or a weight that is not
        finite and positive, before touching the file."""
        weight = float(weight)
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight must be finite and > 0, not {weight}")
        pieces = list(self.layout.flat(arrays))
        mapping = _mappings.get(self.path)
        magic, digest, size, count, total, state = _HEADER.unpack(mapping[:_HEADER.size])
        self._check_header((magic, digest, size))
        if state != _IDLE:
            raise AggregationStateError(f"{self.path}: an earlier fold was interrupted; the sum is unusable")
        # The flag is up while the accumulator is being changed: a process killed mid-fold leaves it
        # set, and ``mean`` then refuses the partial sum instead of averaging it.
        mapping[:_HEADER.size] = _HEADER.pack(magic, digest, size, count, total, _FOLDING)
        accumulator = np.frombuffer(mapping, dtype=np.float32, count=self.layout.size, offset=_DATA_OFFSET)
        with _one_blas_thread():
            for offset, values in pieces:
                _axpy(weight, values, accumulator[offset:offset + values.size])
        mapping[:_HEADER.size] = _HEADER.pack(magic, digest, size, count + 1, total + weight, _IDLE)
        del accumulator

    def mean(self, total_weight: float) -> dict[str, np.ndarray]:
        """The weighted mean ``sum / total_weight`` as float32 arrays of the spec's shapes.
        ``total_weight`` is the caller's record of the weights folded; it must agree with the
        file's own (a mismatch means a fold was lost or a rolled-back one was kept)."""
        _, _, _, count, total, state = self._read_header()
        if state != _IDLE:
            raise AggregationStateError(f"{self.path}: a fold was interrupted; the sum is unusable")
        if count == 0 or total <= 0:
            raise AggregationStateError(f"{self.path}: nothing has been folded")
        if not math.isclose(float(total_weight), total, rel_tol=1e-9):
            raise AggregationStateError(
                f"{self.path}: the caller counts a total weight of {total_weight}, the sum holds {total} "
                f"from {count} folds")
        flat = np.empty(self.layout.size, dtype=np.float32)
        if self.layout.size:
            # One pass: divide straight out of a read-only mapping of the page cache into the result.
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size != _DATA_OFFSET + 4 * self.layout.size:
                    raise AggregationStateError(f"{self.path}: truncated accumulator")
                mapping = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
            try:
                accumulator = np.frombuffer(mapping, dtype=np.float32, count=self.layout.size, offset=_DATA_OFFSET)
                np.divide(accumulator, total, out=flat)
                del accumulator
            finally:
                mapping.close()
        return self.layout.split(flat)

    def close(self) -> None:
        """Drop this process's cached mapping of the file (e.g. before deleting the directory)."""
        _mappings.forget(self.path)


_blas_lock = threading.Lock()
_blas = {"controller": None, "limiter": None, "users": 0}


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS limited to one thread while folding. saxpy is memory-bound: a second thread gains
    little on an idle machine (measured 18 -> 23 GB/s) and, on a loaded one (a web server), the
    threads wait for each other's time slices: 16 ms instead of 1.2 ms per 20 MB fold, measured.
    The limit is process-wide, so overlapping folds in threads share one limit and the last one
    out restores the original."""
    if ThreadpoolController is None or _saxpy is None:
        yield
        return
    with _blas_lock:
        if _blas["controller"] is None:
            _blas["controller"] = ThreadpoolController()  # finds the loaded BLAS libraries once (a few ms)
        if _blas["users"] == 0:
            _blas["limiter"] = _blas["controller"].limit(limits=1, user_api="blas")  # about 25 us
        _blas["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas["users"] -= 1
            if _blas["users"] == 0:
                _blas["limiter"].restore_original_limits()
                _blas["limiter"] = None


def _axpy(weight: float, x: np.ndarray, y: np.ndarray) -> None:
    """y += weight * x in place, one pass (BLAS saxpy), or in cache-sized numpy steps without scipy."""
    if x.size == 0:
        return
    if _saxpy is not None and x.flags.c_contiguous:
        for start in range(0, x.size, _BLAS_CHUNK):  # BLAS counts in 32-bit integers
            stop = min(start + _BLAS_CHUNK, x.size)
            target = y[start:stop]
            result = _saxpy(x[start:stop], target, a=weight)
            if not np.shares_memory(result, target):  # pragma: no cover - f2py would have copied
                target[...] = result
        return
    scratch = np.empty(min(_FOLD_CHUNK, x.size), dtype=np.float32)
    for start in range(0, x.size, _FOLD_CHUNK):
        stop = min(start + _FOLD_CHUNK, x.size)
        part = scratch[:stop - start]
        np.multiply(x[start:stop], np.float32(weight), out=part)
        np.add(y[start:stop], part, out=y[start:stop])


# ---- UpdateStore --------------------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class UpdateStore:
    """Updates kept as files (``directory/updates/<key>.f32``: the tensors in sorted-name order, flat
    float32) and aggregated in column blocks of at most ``block_bytes`` over memory maps."""

    def __init__(self, directory: Path, spec: Spec, *, block_bytes: int = BLOCK_BYTES):
        self.directory = Path(directory)
        self.layout = _Layout(spec)
        self.block_bytes = int(block_bytes)
        self.updates = self.directory / "updates"

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"update key {key!r}: use letters, digits, '_', '-' and '.' (at most 128)")
        return self.updates / f"{key}.f32"

    def add(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store one update under ``key`` (written to a temporary file, then renamed: a reader sees
        the whole update or none of it; adding a key again replaces it)."""
        path = self._path(key)
        pieces = list(self.layout.flat(arrays))
        self.updates.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.updates, prefix=".incoming.")
        try:
            with os.fdopen(fd, "wb") as out:
                for _, values in pieces:
                    out.write(memoryview(np.ascontiguousarray(values)).cast("B"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def keys(self) -> list[str]:
        return sorted(p.name[:-4] for p in self.updates.glob("*.f32")) if self.updates.exists() else []

    def discard(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _open(self, keys: Sequence[str]) -> list[np.ndarray]:
        maps = []
        for key in keys:
            path = self._path(key)
            if not path.exists():
                raise KeyError(f"no stored update {key!r}")
            if path.stat().st_size != 4 * self.layout.size:
                raise AggregationStateError(f"{path}: not an update of this round's tensors")
            maps.append(np.memmap(path, dtype=np.float32, mode="r", shape=(self.layout.size,))
                        if self.layout.size else np.empty(0, np.float32))
        return maps

    def _blocks(self, rows: int) -> Iterator[tuple[int, int]]:
        width = max(1, self.block_bytes // (4 * max(rows, 1)))
        for start in range(0, self.layout.size, width):
            yield start, min(start + width, self.layout.size)

    def _gather(self, maps: list[np.ndarray], start: int, stop: int, out: np.ndarray) -> np.ndarray:
        block = out[:, :stop - start]
        for row, values in enumerate(maps):
            block[row] = values[start:stop]
        return block

    def aggregate(self, strategy: str, params: dict | None, weights: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Aggregate the updates named by ``weights`` (key -> weight, e.g. its num_examples; the
        order of ``weights`` is the replies' order, which Krum's ties follow) with ``strategy``
        and Flower's parameter names: fedtrimmedavg ``beta`` (0.2), krum/multikrum/bulyan
        ``num_malicious_nodes`` (0), multikrum ``num_nodes_to_select`` (1). The streaming
        strategies return the weighted mean. Returns float32 arrays of the spec's shapes."""
        key = resolve(strategy)
        params = dict(params or {})
        keys = list(weights)
        if not keys:
            raise ValueError("no updates to aggregate")
        factors = _weights(weights)
        maps = self._open(keys)
        if key == "fedmedian":
            flat = self._columns(maps, lambda block: np.median(block, axis=0))
        elif key == "fedtrimmedavg":
            beta = float(params.get("beta", 0.2))
            if not 0.0 <= beta < 0.5:
                raise ValueError("beta must be in [0, 0.5)")
            flat = self._columns(maps, lambda block: _trim_mean(block, beta))
        elif key in {"krum", "multikrum"}:
            f = int(params.get("num_malicious_nodes", 0))
            select = 1 if key == "krum" else int(params.get("num_nodes_to_select", 1))
            chosen = _select_multikrum(self._gram(maps), f, select)
            flat = self._weighted_mean([maps[i] for i in chosen], [factors[i] for i in chosen])
        elif key == "bulyan":
            f = int(params.get("num_malicious_nodes", 0))
            if len(maps) < 4 * f + 3:
                raise ValueError(f"bulyan needs at least 4*num_malicious_nodes + 3 = {4 * f + 3} updates, "
                                 f"got {len(maps)}")
            theta = len(maps) - 2 * f
            chosen = _select_multikrum(self._gram(maps), f, theta)
            flat = self._columns([maps[i] for i in chosen], lambda block: _closest_mean(block, theta - 2 * f))
        else:
            flat = self._weighted_mean(maps, factors)
        return self.layout.split(flat)

    def _columns(self, maps: list[np.ndarray], reduce) -> np.ndarray:
        """``reduce`` (over axis 0) of the stacked updates, one column block at a time."""
        flat = np.empty(self.layout.size, dtype=np.float32)
        buffer = None
        for start, stop in self._blocks(len(maps)):
            if buffer is None:
                buffer = np.empty((len(maps), stop - start), dtype=np.float32)
            flat[start:stop] = reduce(self._gather(maps, start, stop, buffer))
        return flat

    def _weighted_mean(self, maps: list[np.ndarray], factors: list[float]) -> np.ndarray:
        """Flower's ``aggregate_arrayrecords``: x_0 * f_0 + x_1 * f_1 + ... with f_i = w_i / sum(w),
        in float32, in the same order, a column block at a time."""
        total = sum(factors)
        fractions = [w / total for w in factors]
        flat = np.empty(self.layout.size, dtype=np.float32)
        width = max(1, self.block_bytes // 8)
        scratch = np.empty(min(width, max(self.layout.size, 1)), dtype=np.float32)
        for start in range(0, self.layout.size, width):
            stop = min(start + width, self.layout.size)
            out, tmp = flat[start:stop], scratch[:stop - start]
            np.multiply(maps[0][start:stop], fractions[0], out=out)
            for values, fraction in zip(maps[1:], fractions[1:], strict=True):
                np.multiply(values[start:stop], fraction, out=tmp)
                out += tmp
        return flat

    def _gram(self, maps: list[np.ndarray]) -> np.ndarray:
        """Squared L2 distances between the updates (Flower's ``compute_distances``), from the Gram
        matrix accumulated over column blocks."""
        n = len(maps)
        gram = np.zeros((n, n), dtype=np.float64)
        buffer = None
        for start, stop in self._blocks(n):
            if buffer is None:
                buffer = np.empty((n, stop - start), dtype=np.float32)
            block = self._gather(maps, start, stop, buffer)
            gram += block @ block.T
        norms = np.diag(gram)
        return norms[:, None] + norms[None, :] - 2 * gram


def _weights(weights: Mapping[str, float]) -> list[float]:
    values = [float(w) for w in weights.values()]
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ValueError("weights must be finite, >= 0 and not all zero")
    return values


def _trim_mean(array: np.ndarray, cut_fraction: float) -> np.ndarray:
    """Flower's ``fedtrimmedavg.trim_mean`` along axis 0."""
    nobs = array.shape[0]
    lowercut = int(cut_fraction * nobs)
    uppercut = nobs - lowercut
    partitioned = np.partition(array, (lowercut, uppercut - 1), 0)
    return np.mean(partitioned[lowercut:uppercut], axis=0)


def _closest_mean(stack: np.ndarray, beta: int) -> np.ndarray:
    """Flower's Bulyan ``aggregate_n_closest_weights`` for one column block."""
    reference = np.median(stack, axis=0)
    diffs = np.abs(stack - reference)
    index = np.argpartition(diffs, beta - 1, axis=0)[:beta]
    return np.mean(np.take_along_axis(stack, index, axis=0), axis=0)


def _select_multikrum(distances: np.ndarray, num_malicious_nodes: int, num_nodes_to_select: int) -> list[int]:
    """Flower's ``select_multikrum`` on a distance matrix: indices of the best updates, best first."""
    n = len(distances)
    num_closest = max(1, n - num_malicious_nodes - 2)
    scores = [np.sum(distances[i, np.argsort(distances[i])[1:num_closest + 1]]) for i in range(n)]
    return [int(i) for i in np.argsort(scores)[:num_nodes_to_select]]


# ---- server optimisers --------------------------------------------------------------------------

# Flower 1.41's defaults, per strategy
_DEFAULTS = {
    "fedadam": {"eta": 1e-1, "eta_l": 1e-1, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedyogi": {"eta": 1e-2, "eta_l": 0.0316, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
    "fedadagrad": {"eta": 1e-1, "eta_l": 1e-1, "beta_1": 0.0, "beta_2": 0.0, "tau": 1e-3},
    "fedavgm": {"server_learning_rate": 1.0, "server_momentum": 0.0},
}


def server_step(strategy: str, params: dict | None, global_arrays: Mapping[str, np.ndarray],
                mean_arrays: Mapping[str, np.ndarray], state: dict, *,
                server_round: int | None = None) -> dict[str, np.ndarray]:
    """The next global model from the round's weighted mean, as Flower's strategy computes it.

    FedAdam/FedYogi/FedAdagrad: ``delta = mean - global``, moments ``m``/``v`` updated, then
    ``global + eta * m / (sqrt(v) + tau)`` (FedAdam with Flower's bias-corrected ``eta``).
    FedAvgM: ``global - server_learning_rate * momentum`` with ``momentum = server_momentum *
    momentum + (global - mean)`` (or the mean itself when both are at their defaults). Other
    strategies: the mean. ``state`` is updated in place (``"m"``, ``"v"``, ``"momentum"``: dicts
    of float32 arrays; ``"step"``: server steps taken); persist it with ``save_state``.
    ``server_round`` is Flower's 1-based round number (FedAdam's bias correction uses it); by
    default, ``state["step"] + 1``. Arrays come back float32.
    """
    key = resolve(strategy)
    t = int(server_round) if server_round is not None else int(state.get("step", 0)) + 1
    if key not in _DEFAULTS:
        state["step"] = t
        return {name: np.asarray(array, dtype=np.float32) for name, array in mean_arrays.items()}
    p = {**_DEFAULTS[key], **{k: float(v) for k, v in (params or {}).items() if k in _DEFAULTS[key]}}
    if set(global_arrays) != set(mean_arrays):
        raise ValueError(f"the mean's tensors {sorted(mean_arrays)} are not the model's {sorted(global_arrays)}")
    current = {k: np.asarray(global_arrays[k], dtype=np.float32) for k in global_arrays}
    mean = {k: np.asarray(mean_arrays[k], dtype=np.float32) for k in global_arrays}
    for k in current:
        if current[k].shape != mean[k].shape:
            raise ValueError(f"tensor {k!r}: mean {mean[k].shape} vs model {current[k].shape}")

    if key == "fedavgm":
        lr, momentum = p["server_learning_rate"], p["server_momentum"]
        state["step"] = t
        if momentum == 0.0 and lr == 1.0:
            return mean
        pseudo_gradient = {k: current[k] - mean[k] for k in current}
        if momentum > 0.0:
            previous = state.get("momentum")
            if previous:
                pseudo_gradient = {k: momentum * previous[k] + pseudo_gradient[k] for k in current}
            state["momentum"] = pseudo_gradient
        return {k: (current[k] - lr * pseudo_gradient[k]).astype(np.float32, copy=False) for k in current}

    beta_1, beta_2, eta, tau = p["beta_1"], p["beta_2"], p["eta"], p["tau"]
    delta = {k: mean[k] - current[k] for k in current}
    m = state.get("m") or {k: np.zeros_like(v) for k, v in mean.items()}
    m = {k: beta_1 * m[k] + (1 - beta_1) * delta[k] for k in current}
    v = state.get("v") or {k: np.zeros_like(x) for k, x in mean.items()}
    if key == "fedadam":
        v = {k: beta_2 * v[k] + (1 - beta_2) * (delta[k] ** 2) for k in current}
        eta = eta * math.sqrt(1 - beta_2 ** (t + 1.0)) / (1 - beta_1 ** (t + 1.0))
    elif key == "fedyogi":
        v = {k: v[k] - (1.0 - beta_2) * (delta[k] ** 2) * np.sign(v[k] - delta[k] ** 2) for k in current}
    else:  # fedadagrad
        v = {k: v[k] + delta[k] ** 2 for k in current}
    state.update(m=m, v=v, step=t)
    # Flower's FedAdam multiplies by a float64 scalar and so returns float64; the step is computed
    # in float64 here too, then stored as float32 (the format's dtype).
    return {k: (current[k] + eta * m[k].astype(np.float64) / (np.sqrt(v[k]) + tau)).astype(np.float32)
            for k in current}


_STATE_FILE = "server_state.npz"


def save_state(directory: Path, state: dict) -> None:
    """Write ``state`` (as ``server_step`` leaves it) to ``directory/server_state.npz``: arrays only,
    never pickled; replaced atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = {"step": np.asarray(int(state.get("step", 0)), dtype=np.int64)}
    for group in ("m", "v", "momentum"):
        for name, array in (state.get(group) or {}).items():
            entries[f"{group}/{name}"] = np.asarray(array, dtype=np.float32)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".server_state.")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **entries)
        os.replace(tmp, directory / _STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(directory: Path) -> dict:
    """The state ``save_state`` wrote, or ``{}`` (a first step) when there is none."""
    path = Path(directory) / _STATE_FILE
    if not path.exists():
        return {}
    state: dict = {}
    with np.load(path, allow_pickle=False) as npz:
        for entry in npz.files:
            if entry == "step":
                state["step"] = int(npz[entry])
            else:
                group, name = entry.split("/", 1)
                state.setdefault(group, {})[name] = npz[entry]
    return state
