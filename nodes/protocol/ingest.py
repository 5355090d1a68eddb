"""Receiving an update body once: kept in memory or spooled to an unnamed temporary file while its
sha256 (``X-Update-Checksum``) and, when the signer's key and signature are known before the body,
the SHA-512 that the ed25519 verification hashes (``signatures.prehash``) are computed as the bytes
arrive.

``ReceivedBody`` is the received body and its digests. Two ways fill one:

* ``spool(stream, ...)`` reads a file-like body (WSGI's input, a gRPC ``ChunkReader``, a test's
  BytesIO) in 1 MiB chunks in the calling thread, into a file;
* ``receive(receive, ...)`` takes an ASGI request's body messages (the guard in
  ``nodes.protocol.asgi`` calls it for ``POST /api/v1/rounds/{id}/updates``), into memory when the
  declared length fits the process's memory budget, else into a file. The event loop only
  collects chunks; each full batch is queued to two hashing threads, one computing the sha256 and
  storing the bytes, the other the SHA-512 (hashlib releases the GIL), while the loop receives the
  next batches, so the hashing overlaps the transfer and the two hashes each other. Each thread
  takes batches in order (one long-lived thread per lane, first in, first out, shared by the
  process's requests); at most ``IN_FLIGHT`` batches wait, so what is in flight stays at a few MiB
  however large the body, and a slow sender holds no thread (a batch is queued only once it has
  fully arrived). The loop is woken by a thread only when it waits for one. ``receive`` returns as
  soon as the last byte is in; the threads may still be hashing the last batches, so that the
  request's first steps (authentication, the round, the device's key) run meanwhile: ``wait()``
  blocks until the digests are ready, and the service calls it before it reads them.

Either way the body is read once and stored once; the service then takes it as a buffer (a view
of the memory or a mapping of the file, ``buffer()``) for the signature check and the decoder,
which views the tensors in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mmap
import queue
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from nodes.protocol import signatures

CHUNK_BYTES = 1024 * 1024  # read per call from a file-like body
BATCH_BYTES = 512 * 1024  # ASGI chunks gathered before a batch is handed to the hashing threads
IN_FLIGHT = 2  # batches handed over and not yet hashed, per request, before the loop waits

logger = logging.getLogger("pollen.nodes.protocol")


class TooLarge(Exception):
    """The body passed the limit (nothing past ``limit + 1`` bytes was taken)."""

    def __init__(self, limit: int):
        super().__init__(f"An update may be at most {limit} bytes")
        self.limit = limit


class _MemoryBudget:
    """Bytes of update bodies this process holds in memory at once (the rest go to files)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.used = 0

    def reserve(self, size: int, budget: int) -> bool:
        with self._lock:
            if size <= 0 or self.used + size > budget:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size


memory_budget = _MemoryBudget()


class ReceivedBody:
    """An update body with its size and sha256, and the ed25519 pre-hash for one (public key,
    signature) pair when that pair was given up front. ``size`` is known once the body is received;
    the digests after ``wait()``.

    The bytes go to a temporary file without a name (O_TMPFILE where the file system has it, else
    unlinked at once: a server killed mid-upload leaves nothing behind), or, when the body's size
    is declared up front (``size_hint``) and fits what is left of the process's ``memory_budget``,
    to memory: no write to and read back from the page cache. A body that turns out larger than
    declared moves to a file. Either way ``close`` drops it."""

    def __init__(self, directory: Path, *, signer: tuple[bytes, bytes] | None = None,
                 size_hint: int | None = None, memory_budget_bytes: int = 0):
        self._directory = directory
        self._memory: bytearray | None = None
        self._reserved = 0
        self.file = None
        if size_hint and memory_budget.reserve(size_hint, memory_budget_bytes):
            self._memory, self._reserved = bytearray(size_hint), size_hint
        else:
            self.file = self._new_file()
        self._written = 0
        self.size = 0
        self.sha256 = ""  # hex, once hashed
        self._sha256 = hashlib.sha256()
        self._signer = signer
        self._sha512 = signatures.prehash(*signer) if signer is not None else None
        self._ed25519_digest: bytes | None = None
        self._lock = threading.Lock()  # a hashing thread may still write while the request fails
        self._closed = False
        self._hashed = threading.Event()
        self._error: BaseException | None = None

    def _new_file(self):
        return tempfile.TemporaryFile(dir=self._directory, prefix="update-", suffix=".npz")

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def _store(self, chunk: bytes) -> None:
        end = self._written + len(chunk)
        if self._memory is not None and end > len(self._memory):  # more than declared: to a file
            self.file = self._new_file()
            self.file.write(memoryview(self._memory)[:self._written])
            self._drop_memory()
        if self._memory is not None:
            self._memory[self._written:end] = chunk
        else:
            self.file.write(chunk)
        self._written = end

    def _drop_memory(self) -> None:
        self._memory = None
        if self._reserved:
            memory_budget.release(self._reserved)
            self._reserved = 0

    # -- filling: each lane in order, the two lanes side by side --

    def add(self, chunks: list[bytes]) -> None:
        """Both lanes' work on a batch, in the calling thread."""
        self.add_checksum(chunks)
        self.add_prehash(chunks)

    def add_checksum(self, chunks: list[bytes]) -> None:
        """sha256 and the stored bytes (lane 1)."""
        with self._lock:
            if self._closed:
                return
            for chunk in chunks:
                self._sha256.update(chunk)
                self._store(chunk)

    def add_prehash(self, chunks: list[bytes]) -> None:
        """The ed25519 pre-hash, if any (lane 2: touches nothing lane 1 does)."""
        if self._sha512 is not None and not self._closed:
            for chunk in chunks:
                self._sha512.update(chunk)

    @property
    def prehashing(self) -> bool:
        return self._sha512 is not None

    def finish(self, error: BaseException | None = None) -> ReceivedBody:
        """Every byte is hashed (or hashing failed with ``error``): the digests are final."""
        with self._lock:
            if error is None and not self._closed:
                if self.file is not None:
                    self.file.flush()
                self.sha256 = self._sha256.hexdigest()
                if self._sha512 is not None:
                    self._ed25519_digest = self._sha512.digest()
            self._error = error
        self._hashed.set()
        return self

    def wait(self) -> ReceivedBody:
        """Block until the digests are ready; raises what stopped the hashing (a write error)."""
        self._hashed.wait()
        if self._error is not None:
            raise self._error
        return self

    # -- reading --

    def ed25519_digest(self, public_key: bytes, signature: bytes) -> bytes | None:
        """``SHA-512(R || A || body)`` if the body was pre-hashed for exactly this key and signature."""
        if self._signer is None or self._ed25519_digest is None:
            return None
        key, raw_signature = self._signer
        if bytes(key) != bytes(public_key) or bytes(raw_signature) != bytes(signature):
            return None
        return self._ed25519_digest

    def verify(self, public_key_b64: str, signature: bytes) -> bool:
        """Whether ``signature`` is the key's ed25519 signature of the body: from the pre-hash when
        there is one for this pair, else over the mapped file."""
        public_key = signatures.raw_public_key(public_key_b64)
        digest = self.ed25519_digest(public_key, signature) if public_key is not None else None
        if digest is not None and signatures.verify_prehashed(public_key, signature, digest):
            return True
        if self.file is None:
            return signatures.verify(public_key_b64, signature, self.buffer())
        return signatures.verify_file(public_key_b64, signature, self.file)

    def buffer(self):
        """The body as a read-only buffer: a view of the memory, or a mapping of the file (nothing is
        read into memory). Arrays made from it keep it alive after ``close``."""
        if self.size == 0:
            return b""
        if self._memory is not None:
            return memoryview(self._memory)[:self.size].toreadonly()
        return mmap.mmap(self.file.fileno(), self.size, access=mmap.ACCESS_READ)

    def close(self) -> None:
        """Drop the body (a batch being written finishes first; queued ones are skipped)."""
        with self._lock:
            self._closed = True
            self._drop_memory()
            if self.file is not None:
                self.file.close()

    def __enter__(self) -> ReceivedBody:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spool(stream: BinaryIO, *, directory: Path, limit: int, signer: tuple[bytes, bytes] | None = None
          ) -> ReceivedBody:
    """Read ``stream`` to its end into a ReceivedBody, in chunks; TooLarge past ``limit`` (nothing
    beyond ``limit + 1`` bytes is read)."""
    body = ReceivedBody(directory, signer=signer)
    try:
        while True:
            chunk = stream.read(min(CHUNK_BYTES, limit + 1 - body.size))
            if not chunk:
                break
            body.size += len(chunk)
            if body.size > limit:
                raise TooLarge(limit)
            body.add([chunk])
        return body.finish()
    except BaseException:
        body.close()
        raise


# ---- the ASGI side: hashing threads --------------------------------------------------------------------

class _Lane:
    """One long-lived hashing thread taking jobs in order from a queue. Handing a batch over is a
    queue put, not a future per batch: the event loop hears back only when it waits (``_Flow``)."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def put(self, job) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:  # pragma: no cover - a job records its own errors
                logger.exception("update ingest: a hashing job failed")


_lanes: tuple[_Lane, _Lane] | None = None
_lanes_lock = threading.Lock()


def lanes() -> tuple[_Lane, _Lane]:
    """The two hashing threads of this process (sha256 and the file; SHA-512), shared by its
    requests: one thread each, so that every lane takes a request's batches in order."""
    global _lanes
    with _lanes_lock:
        if _lanes is None:
            _lanes = (_Lane("pollen-update-sha256"), _Lane("pollen-update-sha512"))
        return _lanes


class _Flow:
    """A request's jobs in the lanes: how many are not done, the first error, a future the event
    loop waits on until at most so many remain, and the body to finish when the last one is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, body: ReceivedBody):
        self.loop = loop
        self.body = body
        self.lock = threading.Lock()
        self.pending = 0
        self.sealed = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._wake_at = 0

    def submit(self, lane: _Lane, work, batch: list[bytes]) -> None:
        with self.lock:
            self.pending += 1
        lane.put(lambda: self._run(work, batch))

    def seal(self) -> None:
        """No more batches: the body is finished when the queued ones are hashed."""
        with self.lock:
            self.sealed = True
            done = self.pending == 0
        if done:
            self.body.finish(self.error)

    def _run(self, work, batch: list[bytes]) -> None:
        try:
            work(batch)
        except BaseException as exc:
            with self.lock:
                self.error = self.error or exc
        with self.lock:
            self.pending -= 1
            finished = self.sealed and self.pending == 0
            waiter = self._waiter if self._waiter is not None and self.pending <= self._wake_at else None
            if waiter is not None:
                self._waiter = None
        if finished:
            self.body.finish(self.error)
        if waiter is not None:
            try:
                self.loop.call_soon_threadsafe(_resolve, waiter)
            except RuntimeError:  # the loop is gone (the server stopped)
                pass

    async def wait(self, at_most: int) -> None:
        """Until at most ``at_most`` jobs are not done; raises the first job's error."""
        with self.lock:
            waiter = None
            if self.pending > at_most and self.error is None:
                waiter = self._waiter = self.loop.create_future()
                self._wake_at = at_most
        if waiter is not None:
            await waiter
        if self.error is not None:
            raise self.error


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def receive(receive, *, directory: Path, limit: int, signer: tuple[bytes, bytes] | None = None,
                  size_hint: int | None = None, memory_budget_bytes: int = 0) -> ReceivedBody | None:
    """The body of an ASGI HTTP request (its ``http.request`` messages) in a ReceivedBody, returned
    once the last byte is in (``wait()`` for its digests); None when the client disconnected first;
    TooLarge as soon as it passes ``limit``. ``size_hint`` (the declared Content-Length) lets the
    body be kept in memory within ``memory_budget_bytes`` for the whole process."""
    checksum_lane, prehash_lane = lanes()
    body = ReceivedBody(directory, signer=signer, size_hint=size_hint, memory_budget_bytes=memory_budget_bytes)
    flow = _Flow(asyncio.get_running_loop(), body)
    jobs_per_batch = 2 if body.prehashing else 1
    batch: list[bytes] = []
    batch_bytes = 0
    try:
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return None
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                body.size += len(chunk)
                if body.size > limit:
                    raise TooLarge(limit)
                batch.append(chunk)
                batch_bytes += len(chunk)
            if batch and (batch_bytes >= BATCH_BYTES or not more):
                # Backpressure: with IN_FLIGHT batches not yet hashed, stop receiving until one is.
                await flow.wait((IN_FLIGHT - 1) * jobs_per_batch)
                flow.submit(checksum_lane, body.add_checksum, batch)
                if body.prehashing:
                    flow.submit(prehash_lane, body.add_prehash, batch)
                batch, batch_bytes = [], 0
        flow.seal()
        return body
    except BaseException:
        body.close()  # waits for a batch being written, then drops the file
        raise
