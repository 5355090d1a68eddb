"""Chunked transfer over gRPC streams: a model file out as ModelChunks, an update in from UpdateChunks.

Both directions number chunks from 0 and say how many there are (``total_chunks``; an uploader may
send 0 when it does not know). Neither side holds more than a chunk in memory: the model is read
from its file, and the update's chunks are handed to ``device_update_submit`` as the file-like body
it reads, so that it spools them to disk with its own size limit and checksum, exactly as it does a
REST request's body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol

from core.exceptions import ApplicationError, ValidationFailed


class Chunk(Protocol):
    data: bytes
    chunk_index: int
    total_chunks: int


def too_large(limit: int) -> ApplicationError:
    """The service's own 413 for a body over DEVICE_UPDATE_MAX_BYTES."""
    return ApplicationError("PAYLOAD_TOO_LARGE", f"An update may be at most {limit} bytes",
                            details={"limit": limit}, http_status=413)


def count_chunks(size: int, chunk_bytes: int) -> int:
    """How many chunks ``size`` bytes make: at least one, so that an empty body is still answered."""
    return max(1, math.ceil(size / chunk_bytes))


def read_chunks(fh: BinaryIO, *, size: int, chunk_bytes: int, offset: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(chunk_index, total_chunks, data)`` for the bytes of ``fh`` from ``offset`` to ``size``."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    if offset < 0 or offset > size:
        raise ValidationFailed(f"offset must be between 0 and the model's size ({size} bytes)", field="offset")
    remaining = size - offset
    total = count_chunks(remaining, chunk_bytes)
    fh.seek(offset)
    for index in range(total):
        data = fh.read(min(chunk_bytes, remaining))
        if remaining and not data:
            raise OSError("The model file is shorter than its recorded size")
        remaining -= len(data)
        yield index, total, data


class ChunkReader:
    """The bytes of a stream of UpdateChunks as a readable file (``read(n)``), pulled from the
    stream only as they are read.

    Chunks must come numbered 0, 1, 2...; ``total_chunks`` may be 0 but, when given, must be the
    same on every chunk and match the number that arrived (400 otherwise). More than ``limit``
    bytes is 413 at the chunk that crosses it: the rest of the stream is never read.
    """

    def __init__(self, chunks: Iterable[Chunk], *, limit: int):
        self._chunks = iter(chunks)
        self.limit = limit
        self.received = 0  # bytes taken from the stream
        self.chunks = 0
        self._total = 0
        self._buffer = memoryview(b"")
        self._done = False

    def _next(self) -> bool:
        """Take the next chunk into the buffer; False at the end of the stream."""
        chunk = next(self._chunks, None)
        if chunk is None:
            self._done = True
            if self._total and self.chunks != self._total:
                raise ValidationFailed(f"The stream ended after {self.chunks} of {self._total} chunks",
                                       field="total_chunks")
            return False
        if chunk.chunk_index != self.chunks:
            raise ValidationFailed(f"Chunk {chunk.chunk_index} arrived where chunk {self.chunks} was expected",
                                   field="chunk_index")
        if chunk.total_chunks:
            if self._total and chunk.total_chunks != self._total:
                raise ValidationFailed(f"total_chunks changed from {self._total} to {chunk.total_chunks}",
                                       field="total_chunks")
            self._total = chunk.total_chunks
            if self.chunks >= self._total:
                raise ValidationFailed(f"More chunks than the {self._total} announced", field="total_chunks")
        self.received += len(chunk.data)
        if self.received > self.limit:
            raise too_large(self.limit)
        self.chunks += 1
        self._buffer = memoryview(chunk.data)
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [bytes(self._buffer)]
            self._buffer = memoryview(b"")
            while not self._done and self._next():
                parts.append(bytes(self._buffer))
            self._buffer = memoryview(b"")
            return b"".join(parts)
        while not self._buffer and not self._done:
            self._next()
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(taken)

    def readable(self) -> bool:
        return True
