"""The "pollen-tensors/1" binary format: named float32 tensors plus a small JSON header.

One implementation for both ends: devices encode updates and decode models with it, and the
server decodes updates and encodes models with it. It depends on numpy only.

A body is an uncompressed numpy ``.npz`` archive (a ZIP of ``.npy`` files, what ``np.savez``
writes and ``np.load(..., allow_pickle=False)`` reads):

* one entry ``<name>.npy`` per tensor: float32, little-endian, C order;
* one entry ``__meta__.npy``: a 1-D uint8 array holding UTF-8 JSON,
  an update ``{"format": "pollen-tensors/1", "num_examples": int > 0, "metrics": {str: number}}``,
  a model ``{"format": "pollen-tensors/1", "version": str, "round": int >= 0}``;
* names starting with ``__`` are reserved.

Versioning: the ``format`` key names the version. A reader accepts exactly the versions it knows
and rejects others with field ``format``; a future "pollen-tensors/2" gets a new value, so an
old reader fails loudly instead of misreading. New *optional* meta keys may be added within
version 1 (readers ignore keys they do not know).

Decoding never unpickles (object arrays are refused from their header, before any data is read),
refuses compressed entries (no decompression bombs), checks every entry's declared size against
its header and against the size of the body before allocating, reads each tensor once straight
into its final array, checks the ZIP CRC, and rejects NaN and infinities. Every refusal is a
``WireFormatError`` with ``field``, ``expected`` and ``received`` (the server turns it into
422 INVALID_MODEL_FORMAT with those as details).

``view_update`` is ``decode_update`` without copying, for a body already in memory or mapped from
a file: its arrays are read-only views of the body. It makes every check above except the CRC, so
it is for bodies whose integrity is established otherwise (the server checks an update's sha256
and the device's ed25519 signature of it first). The encoder places every entry's data at a
multiple of 64 bytes in the body (padding in the entry's ZIP extra field, as Android's zipalign
does; readers ignore it), so each tensor can be viewed in place, aligned; a tensor that is not
aligned (another encoder's body) is copied.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "FORMAT", "META", "WireFormatError", "Update", "encode_model", "decode_model", "encode_update",
    "decode_update", "view_update", "write_model", "write_update", "spec_of",
]

FORMAT = "pollen-tensors/1"
META = "__meta__"
RESERVED_PREFIX = "__"
DTYPE = np.dtype("<f4")
MAX_META_BYTES = 64 * 1024
MAX_TENSORS = 10_000
MAX_NPY_HEADER = 64 * 1024
_CHUNK = 1 << 20  # bytes read per call: the transient buffer zipfile hands over stays this small
_FINITE_CHUNK = 1 << 16  # elements per min/max step of the finiteness check (stays in the CPU's cache)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same tensors always encode to the same bytes
# Entry data alignment in the body, and the ZIP extra field that pads to it (Android zipalign's id:
# 2 bytes of alignment, then zeros). numpy pads an .npy header to 64 bytes, so the tensor data that
# follows is aligned too.
ALIGNMENT = 64
_ALIGN_EXTRA_ID = 0xD935
_ZIP64_LOCAL_EXTRA = 20  # the zip64 sizes zipfile appends to a local header (force_zip64)
# A ZIP local file header (PKWARE APPNOTE 4.3.7): signature, versions, flags, method, time, date,
# CRC, sizes, name length, extra length.
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"

Spec = Mapping[str, tuple[tuple[int, ...], str]]


class WireFormatError(ValueError):
    """A body that is not valid "pollen-tensors/1". ``details`` is the 422 envelope's details."""

    def __init__(self, field: str, expected: Any, received: Any, message: str | None = None):
        self.field = field
        self.expected = expected
        self.received = received
        super().__init__(message or f"{field}: expected {expected}, received {received}")

    @property
    def details(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "received": self.received}


@dataclass
class Update:
    arrays: dict[str, np.ndarray]
    num_examples: int
    metrics: dict[str, float | int] = field(default_factory=dict)


def spec_of(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, "float32"): what ``decode_update(spec=...)`` demands of an update."""
    return {name: (tuple(int(d) for d in np.shape(a)), "float32") for name, a in arrays.items()}


# ---- encoding -----------------------------------------------------------------------------------

def encode_model(arrays: Mapping[str, np.ndarray], *, version: str, round_number: int) -> bytes:
    buffer = io.BytesIO()
    write_model(buffer, arrays, version=version, round_number=round_number)
    return buffer.getvalue()


def encode_update(arrays: Mapping[str, np.ndarray], *, num_examples: int, metrics: Mapping | None = None) -> bytes:
    buffer = io.BytesIO()
    write_update(buffer, arrays, num_examples=num_examples, metrics=metrics)
    return buffer.getvalue()


def write_model(file: BinaryIO, arrays: Mapping[str, np.ndarray], *, version: str, round_number: int) -> None:
    """``encode_model`` into a writable binary file (a model file on disk need not pass through memory)."""
    _write(file, arrays, {"format": FORMAT, "version": _check_version(version),
                          "round": _check_round(round_number)})


def write_update(file: BinaryIO, arrays: Mapping[str, np.ndarray], *, num_examples: int,
                 metrics: Mapping | None = None) -> None:
    _write(file, arrays, {"format": FORMAT, "num_examples": _check_num_examples(num_examples),
                          "metrics": _check_metrics(metrics if metrics is not None else {})})


def _write(file: BinaryIO, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    # Integer and float64 tensors are cast to float32 (the format's only dtype); anything else
    # (object, complex, bool, strings) is refused rather than guessed at.
    tensors = [(_check_name(name), _as_float32(name, value)) for name, value in arrays.items()]
    if not tensors:
        raise WireFormatError("weights", "at least one tensor", [])
    if len(tensors) > MAX_TENSORS:
        raise WireFormatError("weights", f"at most {MAX_TENSORS} tensors", len(tensors))
    header = json.dumps(meta, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        start = archive.fp.tell()  # where the body begins in ``file``: alignment is relative to it
        _write_entry(archive, start, META, np.frombuffer(header, dtype=np.uint8))
        for name, array in tensors:
            _write_entry(archive, start, name, array)


def _write_entry(archive: zipfile.ZipFile, start: int, name: str, array: np.ndarray) -> None:
    info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    # The local header is 30 bytes, the name, the extra field (this padding, then the zip64 sizes):
    # pad so that the entry's data starts at a multiple of ALIGNMENT from the body's start.
    offset = archive.fp.tell() - start  # zipfile writes the next local header here
    fixed = _LOCAL_HEADER.size + len(info.filename.encode("utf-8")) + 6 + _ZIP64_LOCAL_EXTRA
    pad = -(offset + fixed) % ALIGNMENT
    info.extra = struct.pack("<HHH", _ALIGN_EXTRA_ID, 2 + pad, ALIGNMENT) + bytes(pad)
    with archive.open(info, "w", force_zip64=True) as out:
        header = np.lib.format.header_data_from_array_1_0(array)
        try:
            np.lib.format.write_array_header_1_0(out, header)
        except ValueError:  # a shape too long for a 1.0 header
            np.lib.format.write_array_header_2_0(out, header)
        if array.size:
            out.write(memoryview(array.reshape(-1)).cast("B"))  # no copy: the array's own buffer


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX) or "\x00" in name:
        raise WireFormatError("weights", "tensor names: non-empty strings not starting with '__'", repr(name))
    return name


def _as_float32(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise WireFormatError(f"weights.{name}.dtype", "float32", _dtype_name(array.dtype))
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
        array = np.asarray(array, dtype=DTYPE, order="C")  # copies only if not float32 C order already
    if not _all_finite(array.reshape(-1)):
        raise WireFormatError(f"weights.{name}", "finite", "nan or inf")
    return array


def _check_num_examples(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise WireFormatError("num_examples", "integer > 0", _jsonable(value))
    return int(value)


def _check_metrics(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise WireFormatError("metrics", "object of str -> number", type(value).__name__)
    checked = {}
    for key, number in value.items():
        if not isinstance(key, str):
            raise WireFormatError("metrics", "object of str -> number", f"key {key!r}")
        if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number):
            raise WireFormatError(f"metrics.{key}", "finite number", _jsonable(number))
        checked[key] = int(number) if isinstance(number, numbers.Integral) else float(number)
    return checked


def _check_version(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise WireFormatError("version", "non-empty string", _jsonable(value))
    return value


def _check_round(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise WireFormatError("round", "integer >= 0", _jsonable(value))
    return int(value)


# ---- decoding -----------------------------------------------------------------------------------

def decode_model(data: bytes | BinaryIO) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a model body; meta has "format", "version" and "round"."""
    arrays, meta = _read(data, spec=None, check_meta=_model_meta)
    return arrays, meta


def decode_update(data: bytes | BinaryIO, *, spec: Spec | None = None) -> Update:
    """The update in ``data`` (bytes or a binary file object, read from its start). With ``spec``
    (see ``spec_of``) the tensor names, shapes and dtypes must match it exactly."""
    arrays, meta = _read(data, spec=spec, check_meta=_update_meta)
    return Update(arrays=arrays, num_examples=meta["num_examples"], metrics=meta["metrics"])


def view_update(buffer, *, spec: Spec | None = None) -> Update:
    """``decode_update`` of a body in memory (bytes, a memoryview, an ``mmap``) without copying it:
    the arrays are read-only views of ``buffer`` (a tensor whose data is not aligned in it is
    copied), valid as long as ``buffer`` is. Every check of ``decode_update`` is made except the
    ZIP CRC-32: use it for a body whose integrity is already established (by a checksum or a
    signature of the whole body)."""
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise TypeError("view_update needs a contiguous buffer")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    arrays, meta = _read(None, spec=spec, check_meta=_update_meta, view=view)
    return Update(arrays=arrays, num_examples=meta["num_examples"], metrics=meta["metrics"])


def _update_meta(meta: dict) -> dict:
    if "num_examples" not in meta:
        raise WireFormatError("num_examples", "integer > 0", None)
    return {**meta, "num_examples": _check_num_examples(meta["num_examples"]),
            "metrics": _check_metrics(meta.get("metrics", {}))}


def _model_meta(meta: dict) -> dict:
    return {**meta, "version": _check_version(meta.get("version")), "round": _check_round(meta.get("round"))}


def _read(data, *, spec: Spec | None, check_meta, view: memoryview | None = None) -> tuple[dict[str, np.ndarray], dict]:
    if view is not None:
        file, size, spooled = _BufferFile(view), view.nbytes, False
    else:
        file, size, spooled = _as_file(data)
    try:
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError):
            raise WireFormatError("body", FORMAT, "not an npz archive") from None
        with archive:
            entries = _entries(archive, size)
            if META not in entries:
                raise WireFormatError("format", FORMAT, None, f"no {META} entry: not a {FORMAT} body")
            meta = check_meta(_read_meta(archive, entries.pop(META)))
            reserved = sorted(name for name in entries if name.startswith(RESERVED_PREFIX))
            if reserved:
                raise WireFormatError("weights", "tensor names not starting with '__'", reserved)
            if not entries:
                raise WireFormatError("weights", "at least one tensor", [])
            wanted = None
            if spec is not None:
                wanted = {name: tuple(int(d) for d in shape) for name, (shape, _dtype) in spec.items()}
                if set(wanted) != set(entries):
                    raise WireFormatError("weights", sorted(wanted), sorted(entries))
            arrays = {}
            for name, info in entries.items():
                shape = None if wanted is None else wanted[name]
                arrays[name] = (_read_tensor(archive, name, info, shape) if view is None
                                else _view_tensor(view, name, info, shape))
            return arrays, meta
    finally:
        if spooled:
            file.close()


def _as_file(data) -> tuple[BinaryIO, int, bool]:
    """A seekable binary file over ``data`` and its size. Bytes are wrapped without a copy
    (BytesIO shares an immutable bytes object); an unseekable stream is spooled to a temp file."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        # (BytesIO.getbuffer() would force a private copy of shared bytes: take the size here)
        return io.BytesIO(data), memoryview(data).nbytes, False
    if not hasattr(data, "read"):
        raise TypeError(f"expected bytes or a binary file object, got {type(data).__name__}")
    spooled = False
    if not (getattr(data, "seekable", lambda: False)()):
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        shutil.copyfileobj(data, spool, _CHUNK)
        data, spooled = spool, True
    size = data.seek(0, io.SEEK_END)
    data.seek(0)
    return data, size, spooled


class _BufferFile(io.RawIOBase):
    """A read-only, seekable file over a memoryview, for zipfile and numpy's header reader: reads
    copy only what they are asked for (headers, the central directory), never the whole body."""

    def __init__(self, view: memoryview):
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._view.nbytes}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        count = max(0, min(target.nbytes, self._view.nbytes - self._position))
        target[:count] = self._view[self._position:self._position + count]
        self._position += count
        return count


def _entries(archive: zipfile.ZipFile, size: int) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_TENSORS + 1:
        raise WireFormatError("weights", f"at most {MAX_TENSORS} tensors", len(infos) - 1)
    entries: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise WireFormatError("body", FORMAT, f"entry {info.filename!r} is not an .npy array")
        name = info.filename[:-4]
        if name in entries:
            raise WireFormatError("weights", "unique tensor names", f"{name!r} twice")
        if info.compress_type != zipfile.ZIP_STORED:
            raise WireFormatError("body", "uncompressed npz entries (np.savez)",
                                  f"entry {name!r} compressed (method {info.compress_type})")
        # A stored entry occupies its declared size in the body: a larger claim is a lie (or a
        # truncated body), refused before anything is allocated for it.
        declared += info.file_size
        if info.compress_size != info.file_size or declared > size:
            raise WireFormatError("body", "entry sizes within the body",
                                  f"entry {name!r} declares {info.file_size} bytes in a {size}-byte body")
        entries[name] = info
    return entries


def _read_meta(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict:
    if info.file_size > MAX_META_BYTES:
        raise WireFormatError("format", f"{META} of at most {MAX_META_BYTES} bytes", f"{info.file_size} bytes")
    try:
        with archive.open(info) as fh:
            shape, dtype, fortran = _npy_header(fh)
            if dtype != np.dtype(np.uint8) or len(shape) != 1:
                raise WireFormatError("format", f"{META}: 1-D uint8 JSON", _dtype_name(dtype))
            raw = fh.read(shape[0])
            if len(raw) != shape[0] or fh.read(1):
                raise WireFormatError("format", f"{META}: 1-D uint8 JSON", "wrong length")
        meta = json.loads(raw.decode("utf-8"))
    except WireFormatError:
        raise
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, EOFError, OSError):
        raise WireFormatError("format", f"{META}: UTF-8 JSON object", "unreadable") from None
    if not isinstance(meta, dict):
        raise WireFormatError("format", f"{META}: UTF-8 JSON object", type(meta).__name__)
    if meta.get("format") != FORMAT:
        raise WireFormatError("format", FORMAT, _jsonable(meta.get("format")))
    return meta


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return _unpack(np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_NPY_HEADER))
    if version == (2, 0):
        return _unpack(np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_NPY_HEADER))
    raise ValueError(f"npy version {version}")


def _unpack(header) -> tuple[tuple[int, ...], np.dtype, bool]:
    shape, fortran, dtype = header
    return tuple(shape), dtype, fortran


def _read_tensor(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo,
                 wanted_shape: tuple[int, ...] | None) -> np.ndarray:
    field_name = f"weights.{name}"
    try:
        with archive.open(info) as fh:
            try:
                shape, dtype, fortran = _npy_header(fh)
            except (ValueError, SyntaxError, TypeError, EOFError):
                raise WireFormatError(field_name, "an .npy array", "unreadable npy header") from None
            nbytes = _check_tensor_header(field_name, info, shape, dtype, fortran, wanted_shape, fh.tell())
            array = np.empty(shape, dtype=DTYPE)
            flat = array.reshape(-1)
            buffer = memoryview(flat).cast("B")
            done = checked = 0
            while done < nbytes:
                got = fh.readinto(buffer[done:done + _CHUNK])
                if not got:
                    raise WireFormatError(field_name, f"{nbytes} bytes of data", f"{done} bytes")
                done += got
                upto = done // DTYPE.itemsize
                if not _all_finite(flat[checked:upto]):  # checked while the chunk is still in cache
                    raise WireFormatError(field_name, "finite", "nan or inf")
                checked = upto
            fh.read(1)  # reach the end of the entry so zipfile verifies its CRC-32
    except WireFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise WireFormatError(field_name, "an intact .npy entry", str(exc) or type(exc).__name__) from None
    return array


def _check_tensor_header(field_name: str, info: zipfile.ZipInfo, shape, dtype, fortran, wanted_shape,
                         header_bytes: int) -> int:
    """The checks of a tensor entry's .npy header; returns the byte size of its data."""
    # The dtype is judged from the header: an object (pickled) array is never loaded.
    if dtype != DTYPE:
        raise WireFormatError(f"{field_name}.dtype", "float32", _dtype_name(dtype))
    if fortran and len(shape) > 1:
        raise WireFormatError(f"{field_name}.order", "C", "F")
    if wanted_shape is not None and shape != wanted_shape:
        raise WireFormatError(f"{field_name}.shape", list(wanted_shape), list(shape))
    nbytes = math.prod(shape) * DTYPE.itemsize
    expected_size = header_bytes + nbytes
    if info.file_size != expected_size:
        raise WireFormatError(field_name, f"{expected_size} bytes", f"{info.file_size} bytes")
    return nbytes


def _data_offset(view: memoryview, name: str, info: zipfile.ZipInfo) -> int:
    """Where the entry's data starts in the body, from its local header (which must name the same
    entry as the central directory, as zipfile demands), and within the body."""
    field_name = f"weights.{name}"
    start = info.header_offset
    raw = bytes(view[start:start + _LOCAL_HEADER.size])
    if start < 0 or len(raw) != _LOCAL_HEADER.size:
        raise WireFormatError(field_name, "an intact .npy entry", "truncated local header")
    (signature, _, _, flags, _, _, _, _, _, _, name_length, extra_length) = _LOCAL_HEADER.unpack(raw)
    if signature != _LOCAL_SIGNATURE:
        raise WireFormatError(field_name, "an intact .npy entry", "bad local header")
    if flags & 0x1 or info.flag_bits & 0x1:
        raise WireFormatError(field_name, "an intact .npy entry", "encrypted")
    name_start = start + _LOCAL_HEADER.size
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    try:
        local_name = bytes(view[name_start:name_start + name_length]).decode(encoding)
    except UnicodeDecodeError:
        local_name = None
    if local_name != info.orig_filename:
        raise WireFormatError(field_name, "an intact .npy entry", "local and central names differ")
    data_start = name_start + name_length + extra_length
    if data_start + info.file_size > view.nbytes:
        raise WireFormatError(field_name, "an intact .npy entry", "data beyond the end of the body")
    return data_start


def _view_tensor(view: memoryview, name: str, info: zipfile.ZipInfo,
                 wanted_shape: tuple[int, ...] | None) -> np.ndarray:
    field_name = f"weights.{name}"
    start = _data_offset(view, name, info)
    entry = _BufferFile(view[start:start + info.file_size])
    try:
        shape, dtype, fortran = _npy_header(entry)
    except (ValueError, SyntaxError, TypeError, EOFError):
        raise WireFormatError(field_name, "an .npy array", "unreadable npy header") from None
    header_bytes = entry.tell()
    nbytes = _check_tensor_header(field_name, info, shape, dtype, fortran, wanted_shape, header_bytes)
    begin = start + header_bytes
    array = np.frombuffer(view, dtype=DTYPE, count=nbytes // DTYPE.itemsize, offset=begin).reshape(shape)
    if not array.flags.aligned:  # another encoder's body (or an odd buffer): one aligned copy
        array = array.copy()
    if not _all_finite(array.reshape(-1)):
        raise WireFormatError(field_name, "finite", "nan or inf")
    return array


def _all_finite(values: np.ndarray) -> bool:
    # The sum of squares (one BLAS pass) is finite only if every value is. It can also overflow for
    # finite values (beyond ~1e17): only then do min and max decide, which propagate NaN and expose
    # +-inf without allocating a boolean mask; in blocks, so that max reads what min just brought
    # into the cache.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.dot(values, values)):
            return True
    for start in range(0, values.size, _FINITE_CHUNK):
        block = values[start:start + _FINITE_CHUNK]
        if not (np.isfinite(block.min()) and np.isfinite(block.max())):
            return False
    return True


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.kind == "f" and dtype.itemsize == 4 and dtype.byteorder == ">":
        return "float32 (big-endian)"
    if dtype.hasobject:
        return "object"
    return dtype.name


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return repr(value)
