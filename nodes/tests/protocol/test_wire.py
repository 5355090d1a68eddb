"""The "pollen-tensors/1" format (wia_fl.wire): round trips, every refusal with its details, and
hostile bodies (pickles, size lies, zip bombs, truncation, garbage)."""

import io
import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from wia_fl import wire
from wia_fl.wire import FORMAT, WireFormatError

ARRAYS = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
          "conv.bias": np.array([1.5, -2.0], dtype=np.float32),
          "scale": np.float32(0.25)}
META_UPDATE = {"format": FORMAT, "num_examples": 10, "metrics": {"loss": 0.5}}


def raw_npz(entries: dict, meta=META_UPDATE, compressed=False) -> bytes:
    """An npz written by numpy itself (not by wire), to feed the decoder whatever we like."""
    if meta is not None:
        raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        entries = {"__meta__": np.frombuffer(raw, dtype=np.uint8), **entries}
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **entries)
    return buffer.getvalue()


def refusal(data, **kwargs) -> WireFormatError:
    with pytest.raises(WireFormatError) as info:
        wire.decode_update(data, **kwargs)
    return info.value


def details(data, **kwargs) -> tuple:
    error = refusal(data, **kwargs)
    return error.field, error.expected, error.received


# ---- round trips --------------------------------------------------------------------------------

def test_update_round_trip_keeps_names_shapes_values_and_meta():
    body = wire.encode_update(ARRAYS, num_examples=10, metrics={"loss": 0.5, "steps": 3})
    update = wire.decode_update(body, spec=wire.spec_of(ARRAYS))
    assert update.num_examples == 10
    assert update.metrics == {"loss": 0.5, "steps": 3}
    assert set(update.arrays) == set(ARRAYS)
    for name, array in ARRAYS.items():
        got = update.arrays[name]
        assert got.dtype == np.float32 and got.shape == np.shape(array) and got.flags.c_contiguous
        assert got.flags.writeable
        np.testing.assert_array_equal(got, array)


def test_model_round_trip():
    body = wire.encode_model(ARRAYS, version="r3-abc", round_number=3)
    arrays, meta = wire.decode_model(body)
    assert meta == {"format": FORMAT, "version": "r3-abc", "round": 3}
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(arrays[name], array)


def test_the_body_is_a_plain_npz_numpy_reads_without_pickle():
    body = wire.encode_update(ARRAYS, num_examples=4)
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        assert set(npz.files) == {"__meta__", *ARRAYS}
        meta = json.loads(npz["__meta__"].tobytes())
        np.testing.assert_array_equal(npz["conv.weight"], ARRAYS["conv.weight"])
    assert meta == {"format": FORMAT, "num_examples": 4, "metrics": {}}
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_numpy_written_bodies_decode():
    update = wire.decode_update(raw_npz(dict(ARRAYS)))
    np.testing.assert_array_equal(update.arrays["conv.weight"], ARRAYS["conv.weight"])


def test_encoding_is_deterministic():
    first = wire.encode_update(ARRAYS, num_examples=1, metrics={"b": 1, "a": 2.0})
    assert first == wire.encode_update(ARRAYS, num_examples=1, metrics={"a": 2.0, "b": 1})


def test_float64_and_int_tensors_are_cast_to_float32_on_encoding():
    body = wire.encode_update({"a": np.ones(3), "b": np.arange(3), "c": [[1.0, 2.0]]}, num_examples=1)
    update = wire.decode_update(body)
    assert {a.dtype for a in update.arrays.values()} == {np.dtype(np.float32)}
    assert update.arrays["c"].shape == (1, 2)


def test_fortran_ordered_input_is_written_in_c_order():
    array = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    update = wire.decode_update(wire.encode_update({"w": array}, num_examples=1))
    assert update.arrays["w"].flags.c_contiguous
    np.testing.assert_array_equal(update.arrays["w"], array)


def test_empty_and_scalar_tensors():
    arrays = {"empty": np.zeros((0, 3), np.float32), "scalar": np.float32(2)}
    update = wire.decode_update(wire.encode_update(arrays, num_examples=1), spec=wire.spec_of(arrays))
    assert update.arrays["empty"].shape == (0, 3) and update.arrays["scalar"].shape == ()


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "bytesio", "file", "unseekable"])
def test_decode_accepts_bytes_and_binary_files(kind, tmp_path):
    body = wire.encode_update(ARRAYS, num_examples=2)
    path = tmp_path / "update.npz"
    path.write_bytes(body)

    class Stream(io.RawIOBase):  # a socket-like body: read only, no seek
        def __init__(self):
            self._inner = io.BytesIO(body)

        def readable(self):
            return True

        def readinto(self, b):
            return self._inner.readinto(b)

    sources = {"bytes": lambda: body, "bytearray": lambda: bytearray(body), "memoryview": lambda: memoryview(body),
               "bytesio": lambda: io.BytesIO(body), "file": lambda: open(path, "rb"), "unseekable": Stream}
    source = sources[kind]()
    try:
        update = wire.decode_update(source, spec=wire.spec_of(ARRAYS))
    finally:
        if hasattr(source, "close"):
            source.close()
    assert update.num_examples == 2
    np.testing.assert_array_equal(update.arrays["conv.bias"], ARRAYS["conv.bias"])


def test_decoding_reads_each_array_once_into_place():
    arrays = {"big": np.random.default_rng(0).random(2_000_000, dtype=np.float32)}
    body = wire.encode_update(arrays, num_examples=1)
    tracemalloc.start()
    try:
        update = wire.decode_update(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = arrays["big"].nbytes
    assert peak < size + 3 * (1 << 20), f"peak {peak} for an {size}-byte tensor: something copied it"
    np.testing.assert_array_equal(update.arrays["big"], arrays["big"])


def test_write_update_to_a_file_matches_encode(tmp_path):
    path = tmp_path / "u.npz"
    with open(path, "wb") as out:
        wire.write_update(out, ARRAYS, num_examples=3)
    assert path.read_bytes() == wire.encode_update(ARRAYS, num_examples=3)


def test_spec_of():
    assert wire.spec_of(ARRAYS) == {"conv.weight": ((2, 3, 4), "float32"), "conv.bias": ((2,), "float32"),
                                    "scale": ((), "float32")}


def test_error_details_are_the_422_details():
    error = WireFormatError("weights.encoding", "float32", "float64")
    assert isinstance(error, ValueError)
    assert error.details == {"field": "weights.encoding", "expected": "float32", "received": "float64"}
    assert "weights.encoding" in str(error)


# ---- the spec ----------------------------------------------------------------------------------

def test_missing_tensor_names_both_sorted_lists():
    body = wire.encode_update({"conv.weight": ARRAYS["conv.weight"], "scale": ARRAYS["scale"]}, num_examples=1)
    assert details(body, spec=wire.spec_of(ARRAYS)) == (
        "weights", ["conv.bias", "conv.weight", "scale"], ["conv.weight", "scale"])


def test_extra_tensor():
    body = wire.encode_update({**ARRAYS, "extra": np.zeros(1)}, num_examples=1)
    assert details(body, spec=wire.spec_of(ARRAYS)) == (
        "weights", ["conv.bias", "conv.weight", "scale"], ["conv.bias", "conv.weight", "extra", "scale"])


def test_wrong_shape():
    body = wire.encode_update({**ARRAYS, "conv.bias": np.zeros(3)}, num_examples=1)
    assert details(body, spec=wire.spec_of(ARRAYS)) == ("weights.conv.bias.shape", [2], [3])


def test_spec_shapes_given_as_json_lists():
    spec = {name: (list(shape), dtype) for name, (shape, dtype) in wire.spec_of(ARRAYS).items()}
    wire.decode_update(wire.encode_update(ARRAYS, num_examples=1), spec=spec)


# ---- dtype, order, values -----------------------------------------------------------------------

def test_float64_body_is_refused_with_the_seed_details():
    body = raw_npz({"w": np.zeros(3, dtype=np.float64)})
    assert details(body) == ("weights.w.dtype", "float32", "float64")


def test_big_endian_float32_is_refused():
    body = raw_npz({"w": np.zeros(3, dtype=">f4")})
    assert details(body) == ("weights.w.dtype", "float32", "float32 (big-endian)")


def test_integer_tensor_in_a_body_is_refused():
    assert details(raw_npz({"w": np.zeros(3, dtype=np.int32)})) == ("weights.w.dtype", "float32", "int32")


def test_fortran_order_body_is_refused():
    body = raw_npz({"w": np.asfortranarray(np.zeros((2, 3), np.float32))})
    assert details(body) == ("weights.w.order", "C", "F")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_when_decoding(bad):
    values = np.zeros(3_000_000, np.float32)
    values[-1] = bad  # in the last chunk read
    assert details(raw_npz({"w": values})) == ("weights.w", "finite", "nan or inf")


def test_huge_but_finite_values_are_taken():
    # Their sum of squares overflows float32: the quick check cannot tell, the exact one does.
    values = np.full(1000, 3e38, np.float32)
    values[::2] *= -1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow warning for the server's log
        decoded = wire.decode_update(raw_npz({"w": values}))
    assert np.array_equal(decoded.arrays["w"], values)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_when_encoding(bad):
    with pytest.raises(WireFormatError) as info:
        wire.encode_update({"w": np.array([1.0, bad])}, num_examples=1)
    assert info.value.details == {"field": "weights.w", "expected": "finite", "received": "nan or inf"}


def test_float64_too_large_for_float32_is_refused_when_encoding():
    with pytest.raises(WireFormatError) as info:
        wire.encode_update({"w": np.array([1e300])}, num_examples=1)
    assert info.value.field == "weights.w"


@pytest.mark.parametrize("value, received", [(np.array(["a"]), "str32"), (np.array([1 + 2j]), "complex128"),
                                             (np.array([True]), "bool"), (np.array([{}], dtype=object), "object")])
def test_encoding_refuses_non_numeric_tensors(value, received):
    with pytest.raises(WireFormatError) as info:
        wire.encode_update({"w": value}, num_examples=1)
    assert (info.value.field, info.value.received) == ("weights.w.dtype", received)


@pytest.mark.parametrize("name", ["__meta__", "__x", "", 3, "a\x00b"])
def test_encoding_refuses_reserved_or_bad_names(name):
    with pytest.raises(WireFormatError) as info:
        wire.encode_update({name: np.zeros(1)}, num_examples=1)
    assert info.value.field == "weights"


def test_encoding_needs_a_tensor():
    with pytest.raises(WireFormatError) as info:
        wire.encode_update({}, num_examples=1)
    assert info.value.details == {"field": "weights", "expected": "at least one tensor", "received": []}


# ---- the meta entry -----------------------------------------------------------------------------

@pytest.mark.parametrize("num_examples", [0, -3, "5", 5.0, True, None])
def test_bad_num_examples(num_examples):
    body = raw_npz({"w": np.zeros(1, np.float32)}, meta={**META_UPDATE, "num_examples": num_examples})
    error = refusal(body)
    assert (error.field, error.expected) == ("num_examples", "integer > 0")
    with pytest.raises(WireFormatError):
        wire.encode_update({"w": np.zeros(1)}, num_examples=num_examples)


def test_missing_num_examples():
    meta = {"format": FORMAT, "metrics": {}}
    assert details(raw_npz({"w": np.zeros(1, np.float32)}, meta=meta)) == ("num_examples", "integer > 0", None)


@pytest.mark.parametrize("metrics, field", [([1], "metrics"), ({"loss": "low"}, "metrics.loss"),
                                            ({"loss": None}, "metrics.loss"), ({"ok": True}, "metrics.ok")])
def test_bad_metrics(metrics, field):
    body = raw_npz({"w": np.zeros(1, np.float32)}, meta={**META_UPDATE, "metrics": metrics})
    assert refusal(body).field == field


def test_non_finite_metric_is_refused():
    body = raw_npz({"w": np.zeros(1, np.float32)}, meta=b'{"format": "pollen-tensors/1", "num_examples": 1, '
                                                        b'"metrics": {"loss": NaN}}')
    assert details(body) == ("metrics.loss", "finite number", "nan")
    with pytest.raises(WireFormatError):
        wire.encode_update({"w": np.zeros(1)}, num_examples=1, metrics={"loss": float("inf")})


def test_other_format_version_is_refused():
    body = raw_npz({"w": np.zeros(1, np.float32)}, meta={**META_UPDATE, "format": "pollen-tensors/2"})
    assert details(body) == ("format", FORMAT, "pollen-tensors/2")


def test_missing_meta_is_refused():
    assert details(raw_npz({"w": np.zeros(1, np.float32)}, meta=None)) == ("format", FORMAT, None)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_unreadable_meta_is_refused(raw):
    assert refusal(raw_npz({"w": np.zeros(1, np.float32)}, meta=raw)).field == "format"


def test_meta_of_the_wrong_dtype_is_refused():
    body = io.BytesIO()
    np.savez(body, __meta__=np.zeros(3, np.float32), w=np.zeros(1, np.float32))
    assert refusal(body.getvalue()).field == "format"


def test_huge_meta_is_refused():
    meta = {**META_UPDATE, "pad": "x" * (wire.MAX_META_BYTES + 1)}
    assert refusal(raw_npz({"w": np.zeros(1, np.float32)}, meta=meta)).field == "format"


def test_unknown_meta_keys_are_ignored():
    meta = {**META_UPDATE, "device": "pixel-8"}
    assert wire.decode_update(raw_npz({"w": np.zeros(1, np.float32)}, meta=meta)).num_examples == 10


def test_reserved_tensor_name_in_a_body():
    body = raw_npz({"w": np.zeros(1, np.float32), "__secret": np.zeros(1, np.float32)})
    assert details(body) == ("weights", "tensor names not starting with '__'", ["__secret"])


def test_body_without_tensors():
    assert details(raw_npz({})) == ("weights", "at least one tensor", [])


def test_model_meta_is_checked():
    update_body = wire.encode_update(ARRAYS, num_examples=1)
    with pytest.raises(WireFormatError) as info:
        wire.decode_model(update_body)
    assert info.value.field == "version"
    body = raw_npz({"w": np.zeros(1, np.float32)}, meta={"format": FORMAT, "version": "v", "round": -1})
    with pytest.raises(WireFormatError) as info:
        wire.decode_model(body)
    assert info.value.field == "round"
    with pytest.raises(WireFormatError):
        wire.encode_model(ARRAYS, version="", round_number=1)


# ---- hostile bodies -----------------------------------------------------------------------------

class Detonator:
    """Unpickling this would call ``detonate``: the test checks that it never happens."""

    fired = False

    def __reduce__(self):
        return (detonate, ())


def detonate():
    Detonator.fired = True
    return "boom"


def test_a_pickle_inside_the_npz_is_never_unpickled():
    Detonator.fired = False
    body = raw_npz({"w": np.array([Detonator()], dtype=object)})
    assert b"detonate" in body  # the pickle really is in there
    assert details(body) == ("weights.w.dtype", "float32", "object")
    assert not Detonator.fired
    with pytest.raises(WireFormatError):
        wire.decode_model(raw_npz({"w": np.array([Detonator()], dtype=object)},
                                  meta={"format": FORMAT, "version": "v", "round": 1}))
    assert not Detonator.fired


def test_a_raw_pickle_as_an_entry_is_refused():
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("__meta__.npy", _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8)))
        archive.writestr("w.npy", b"\x80\x04\x95" + b"\x00" * 20)
    assert details(body.getvalue()) == ("weights.w", "an .npy array", "unreadable npy header")


def _npy_bytes(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _npy_header_only(shape) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return out.getvalue()


def test_an_entry_declaring_a_huge_array_is_refused_without_allocating():
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("__meta__.npy", _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8)))
        archive.writestr("w.npy", _npy_header_only((1 << 40,)) + b"\x00" * 16)
    tracemalloc.start()
    try:
        error = refusal(body.getvalue())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.field == "weights.w" and error.expected.endswith(" bytes") and error.received.endswith(" bytes")
    assert peak < 1 << 20


def test_a_central_directory_lying_about_entry_sizes_is_refused():
    body = bytearray(wire.encode_update({"w": np.zeros(4, np.float32)}, num_examples=1))
    # Every central-directory record claims 4 GB (compressed and uncompressed) for its entry.
    position = 0
    while (position := body.find(b"PK\x01\x02", position)) != -1:
        body[position + 20:position + 28] = struct.pack("<II", 0xFFFF_FFFE, 0xFFFF_FFFE)
        position += 4
    assert details(bytes(body))[0] == "body"


def test_a_compressed_bomb_is_refused_without_inflating():
    # 400 MB of zeros deflate to well under a megabyte
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__meta__.npy", _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8)))
        with archive.open("w.npy", "w", force_zip64=True) as out:
            out.write(_npy_header_only((100_000_000,)))
            zeros = bytes(1 << 24)
            for _ in range(24):
                out.write(zeros)
    data = body.getvalue()
    assert len(data) < 2_000_000
    tracemalloc.start()
    try:
        field, expected, received = details(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (field, expected) == ("body", "uncompressed npz entries (np.savez)")
    assert peak < 1 << 20


def test_np_savez_compressed_is_refused():
    assert details(raw_npz({"w": np.zeros(3, np.float32)}, compressed=True))[0] == "body"


@pytest.mark.parametrize("cut", [1, 10, 100, 0.5, -1, -22])
def test_truncated_bodies_are_refused(cut):
    body = wire.encode_update({"w": np.ones(1000, np.float32)}, num_examples=1)
    end = int(len(body) * cut) if isinstance(cut, float) else cut
    assert refusal(body[:end]).field in {"body", "weights.w", "format"}


def test_corrupted_tensor_bytes_fail_the_crc():
    values = np.arange(1, 1001, dtype=np.float32)
    body = bytearray(wire.encode_update({"w": values}, num_examples=1))
    at = body.index(values.tobytes()) + 2000
    body[at] ^= 0x01  # a low mantissa bit: still finite, only the CRC can tell
    error = refusal(bytes(body))
    assert error.field == "weights.w" and error.expected == "an intact .npy entry"


def test_declared_shape_disagreeing_with_the_entry_size():
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("__meta__.npy", _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8)))
        archive.writestr("w.npy", _npy_header_only((10,)) + b"\x00" * 12)
    field, expected, received = details(body.getvalue())
    assert (field, expected, received) == ("weights.w", "168 bytes", "140 bytes")


@pytest.mark.parametrize("data", [b"", b"hello", b"PK\x03\x04garbage", b"\x93NUMPY" + b"\x00" * 50,
                                  json.dumps({"weights": [1, 2]}).encode()])
def test_non_npz_bytes(data):
    assert details(data) == ("body", FORMAT, "not an npz archive")


def test_zip_with_a_non_npy_entry():
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("readme.txt", b"hi")
    assert details(body.getvalue())[0] == "body"


def test_duplicate_entries():
    body = io.BytesIO()
    meta = _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8))
    with zipfile.ZipFile(body, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("__meta__.npy", meta)
        archive.writestr("w.npy", _npy_bytes(np.zeros(1, np.float32)))
        archive.writestr("w.npy", _npy_bytes(np.zeros(1, np.float32)))
    assert details(body.getvalue()) == ("weights", "unique tensor names", "'w' twice")


def test_not_bytes_at_all():
    with pytest.raises(TypeError):
        wire.decode_update("a string")


# ---- view_update: the same checks, without copying (for bodies authenticated otherwise) ---------------

def _data_offsets(body: bytes) -> dict[str, int]:
    """Where each entry's data starts in the body (from its local header)."""
    offsets = {}
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        for info in archive.infolist():
            start = info.header_offset
            name_length, extra_length = struct.unpack("<2H", body[start + 26:start + 30])
            offsets[info.filename[:-4]] = start + 30 + name_length + extra_length
    return offsets


@pytest.mark.parametrize("names", [["a"], ["conv.weight", "conv.bias", "scale"], ["x" * 61, "yy", "z" * 200]])
def test_encoded_entries_start_at_multiples_of_64_bytes(names):
    arrays = {name: np.full((3, i + 1), i, np.float32) for i, name in enumerate(names)}
    update_body = wire.encode_update(arrays, num_examples=1)
    for body in (update_body, wire.encode_model(arrays, version="v", round_number=1)):
        offsets = _data_offsets(body)
        assert set(offsets) == {"__meta__", *names}
        assert all(offset % wire.ALIGNMENT == 0 for offset in offsets.values()), offsets
    # and so is the tensor data after each .npy header (numpy pads its header to 64 bytes)
    base = np.frombuffer(update_body, np.uint8).ctypes.data
    assert all((a.ctypes.data - base) % 64 == 0 for a in wire.view_update(update_body).arrays.values())


def test_view_update_gives_read_only_views_of_the_body():
    body = wire.encode_update(ARRAYS, num_examples=7, metrics={"loss": 0.25})
    update = wire.view_update(body, spec=wire.spec_of(ARRAYS))
    assert update.num_examples == 7 and update.metrics == {"loss": 0.25}
    whole = np.frombuffer(body, np.uint8)
    for name, array in ARRAYS.items():
        got = update.arrays[name]
        np.testing.assert_array_equal(got, array)
        assert got.dtype == np.float32 and got.shape == np.shape(array) and got.flags.c_contiguous
        assert not got.flags.writeable and got.flags.aligned
        if got.size:
            assert np.shares_memory(got, whole)


def test_view_update_copies_nothing_of_a_large_body():
    arrays = {"big": np.random.default_rng(1).random(2_000_000, dtype=np.float32)}
    body = wire.encode_update(arrays, num_examples=1)
    tracemalloc.start()
    try:
        update = wire.view_update(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak {peak}: something copied the tensor"
    np.testing.assert_array_equal(update.arrays["big"], arrays["big"])


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "mmap"])
def test_view_update_takes_any_buffer(kind, tmp_path):
    import mmap

    body = wire.encode_update(ARRAYS, num_examples=2)
    path = tmp_path / "update.npz"
    path.write_bytes(body)
    with open(path, "rb") as fh:
        buffers = {"bytes": lambda: body, "bytearray": lambda: bytearray(body), "memoryview": lambda: memoryview(body),
                   "mmap": lambda: mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)}
        update = wire.view_update(buffers[kind](), spec=wire.spec_of(ARRAYS))
        np.testing.assert_array_equal(update.arrays["conv.weight"], ARRAYS["conv.weight"])
    del update
    with pytest.raises(TypeError):
        wire.view_update("a string")


def test_view_update_copies_a_tensor_another_encoder_left_unaligned():
    values = np.arange(12, dtype=np.float32)
    for length in range(1, 9):  # np.savez aligns nothing: some name length puts the data off a 4-byte boundary
        body = raw_npz({"w" * length: values})
        offset = _data_offsets(body)["w" * length] + 128  # numpy's 1.0 header here: 128 bytes
        if offset % 4:
            break
    else:
        pytest.skip("no unaligned layout found")
    update = wire.view_update(body)
    got = update.arrays["w" * length]
    assert got.flags.aligned and not np.shares_memory(got, np.frombuffer(body, np.uint8))
    np.testing.assert_array_equal(got, values)


def _hostile_bodies() -> dict:
    meta = _npy_bytes(np.frombuffer(json.dumps(META_UPDATE).encode(), np.uint8))

    def zipped(*entries, compression=zipfile.ZIP_STORED):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
        return out.getvalue()

    lying = bytearray(wire.encode_update({"w": np.zeros(4, np.float32)}, num_examples=1))
    position = 0
    while (position := lying.find(b"PK\x01\x02", position)) != -1:
        lying[position + 20:position + 28] = struct.pack("<II", 0xFFFF_FFFE, 0xFFFF_FFFE)
        position += 4
    renamed = bytearray(wire.encode_update({"w": np.zeros(4, np.float32)}, num_examples=1))
    at = renamed.index(b"w.npy")  # the first occurrence: the local header's name, not the central one
    renamed[at] = ord("v")
    nan, inf = np.zeros(300_000, np.float32), np.zeros(5, np.float32)
    nan[-1], inf[0] = np.nan, -np.inf
    good = wire.encode_update({"w": np.ones(1000, np.float32)}, num_examples=1)
    cases = {
        "float64": raw_npz({"w": np.zeros(3)}), "big-endian": raw_npz({"w": np.zeros(3, ">f4")}),
        "int": raw_npz({"w": np.zeros(3, np.int32)}),
        "fortran": raw_npz({"w": np.asfortranarray(np.zeros((2, 3), np.float32))}),
        "nan": raw_npz({"w": nan}), "inf": raw_npz({"w": inf}),
        "object": raw_npz({"w": np.array([1, "x"], dtype=object)}),
        "raw pickle": zipped(("__meta__.npy", meta), ("w.npy", b"\x80\x04\x95" + b"\x00" * 20)),
        "huge declared": zipped(("__meta__.npy", meta), ("w.npy", _npy_header_only((1 << 40,)) + b"\x00" * 16)),
        "shape vs size": zipped(("__meta__.npy", meta), ("w.npy", _npy_header_only((10,)) + b"\x00" * 12)),
        "lying directory": bytes(lying), "local name differs": bytes(renamed),
        "compressed": raw_npz({"w": np.zeros(3, np.float32)}, compressed=True),
        "non-npy entry": zipped(("readme.txt", b"hi")), "not a zip": b"hello", "empty": b"",
        "no meta": raw_npz({"w": np.zeros(1, np.float32)}, meta=None),
        "bad meta": raw_npz({"w": np.zeros(1, np.float32)}, meta=b"\xff not json"),
        "reserved name": raw_npz({"__x": np.zeros(1, np.float32)}), "no tensor": raw_npz({}),
        "num_examples 0": raw_npz({"w": np.zeros(1, np.float32)}, meta={**META_UPDATE, "num_examples": 0}),
        "other format": raw_npz({"w": np.zeros(1, np.float32)}, meta={**META_UPDATE, "format": "pollen-tensors/9"}),
    }
    for cut in (1, 100, len(good) // 2, len(good) - 1, len(good) - 22):
        cases[f"truncated at {cut}"] = good[:cut]
    return cases


@pytest.mark.parametrize("name", list(_hostile_bodies()))
def test_view_update_refuses_every_hostile_body_as_decode_update_does(name):
    body = _hostile_bodies()[name]
    copied = refusal(body)
    with pytest.raises(WireFormatError) as viewed:
        wire.view_update(body)
    assert viewed.value.details == copied.details or (
        name == "local name differs" and viewed.value.field == copied.field == "weights.w"), (
        viewed.value.details, copied.details)


def test_view_update_checks_the_spec_as_decode_update_does():
    spec = wire.spec_of(ARRAYS)
    for arrays in ({"conv.weight": ARRAYS["conv.weight"]}, {**ARRAYS, "extra": np.zeros(1)},
                   {**ARRAYS, "conv.bias": np.zeros(3)}):
        body = wire.encode_update(arrays, num_examples=1)
        with pytest.raises(WireFormatError) as viewed:
            wire.view_update(body, spec=spec)
        assert viewed.value.details == refusal(body, spec=spec).details


def test_view_update_leaves_the_crc_to_the_bodys_checksum_and_signature():
    # What the CRC would catch (a flipped low mantissa bit, still finite) is the server's sha256
    # and ed25519 checks' to catch: the view decoder is only ever given an authenticated body.
    values = np.arange(1, 1001, dtype=np.float32)
    body = bytearray(wire.encode_update({"w": values}, num_examples=1))
    body[body.index(values.tobytes()) + 2000] ^= 0x01
    assert refusal(bytes(body)).expected == "an intact .npy entry"
    assert wire.view_update(bytes(body)).arrays["w"][500] != values[500]
