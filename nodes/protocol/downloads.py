"""Serving a model file: content coding by ``Accept-Encoding`` (br, gzip), ETag / If-None-Match,
single byte ranges on the identity coding, always streamed from disk.

A compressed copy is made once per file, next to it (``<file>.gz``, ``<file>.br``), written under a
temporary name and renamed into place, so that concurrent first requests never serve half a file.
``X-Model-Checksum`` is the sha256 of the uncompressed body whatever the coding.

Streaming depends on the server. Under WSGI the body is a ``FileResponse`` (the server may send it
with ``wsgi.file_wrapper``) or a generator of chunks. Under ASGI Django consumes a synchronous
iterator by reading it all into memory first (with the warning "StreamingHttpResponse must consume
synchronous iterators"), so there the body is an asynchronous generator that reads one chunk at a
time in a worker thread (``asyncio.to_thread``) while the event loop sends the previous one.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import uuid
from pathlib import Path

from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from core.exceptions import ApplicationError

CHUNK_BYTES = 256 * 1024
SUFFIX = {"br": ".br", "gzip": ".gz"}
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _brotli():
    try:
        import brotli
    except ImportError:  # brotli is optional: without it, gzip or identity
        return None
    return brotli


def choose_coding(accept_encoding: str) -> str:
    """The best coding the client accepts: br, then gzip, else identity (RFC 9110 q-values)."""
    offered = {}
    for part in (accept_encoding or "").split(","):
        pieces = [p.strip() for p in part.split(";")]
        name = pieces[0].lower()
        if not name:
            continue
        q = 1.0
        for param in pieces[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        offered[name] = q
    candidates = ["br", "gzip"] if _brotli() is not None else ["gzip"]
    best, best_q = "identity", 0.0
    for coding in candidates:
        q = offered[coding] if coding in offered else offered.get("*", 0.0)
        if q > best_q:
            best, best_q = coding, q
    return best


def encoded_path(path: Path, coding: str) -> Path:
    """The file compressed with ``coding`` (made on first use), or the file itself for identity."""
    if coding == "identity":
        return path
    target = path.with_name(path.name + SUFFIX[coding])
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(path, "rb") as src, open(partial, "wb") as out:
            if coding == "gzip":
                with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
                    for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
                        gz.write(chunk)
            else:
                compressor = _brotli().Compressor(quality=5)
                for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
                    out.write(compressor.process(chunk))
                out.write(compressor.finish())
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def etag(checksum: str, coding: str) -> str:
    return f'"{checksum}"' if coding == "identity" else f'"{checksum}-{coding}"'


def _matches(header: str, checksum: str) -> bool:
    """If-None-Match against any coding of this content (weak comparison)."""
    if header.strip() == "*":
        return True
    known = {etag(checksum, c).strip('"') for c in ("identity", "gzip", "br")}
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') in known:
            return True
    return False


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one ``bytes=`` range; None to ignore the header (malformed or
    several ranges: the whole body is a valid answer); 416 when it cannot be satisfied."""
    match = RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApplicationError:
    return ApplicationError("VALIDATION_ERROR", "The requested range is outside the model",
                            details={"field": "Range", "size": size}, http_status=416,
                            headers={"Content-Range": f"bytes */{size}"})


def _iter_range(path: Path, start: int, end: int):
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


async def _aiter_file(fh, start: int, length: int):
    """``length`` bytes of the open file ``fh`` from ``start``, read a chunk at a time off the event
    loop. Closes ``fh`` when done, stopped early or abandoned (the client went away)."""
    try:
        await asyncio.to_thread(fh.seek, start)
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _streamed(request, path: Path, start: int, length: int, status: int) -> StreamingHttpResponse:
    """A streaming response of ``length`` bytes of ``path`` from ``start``: asynchronous under ASGI,
    synchronous otherwise."""
    if isinstance(request, ASGIRequest):
        fh = open(path, "rb")  # opened here, so that a missing file fails before any header is sent
        response = StreamingHttpResponse(_aiter_file(fh, start, length), status=status,
                                         content_type="application/octet-stream")
        response._resource_closers.append(fh.close)  # if the body is never iterated
        return response
    return StreamingHttpResponse(_iter_range(path, start, start + length - 1), status=status,
                                 content_type="application/octet-stream")


def model_response(request, *, path: Path, checksum: str, version: str, size: int):
    """The response for a model download (see the module docstring)."""
    coding = choose_coding(request.META.get("HTTP_ACCEPT_ENCODING", ""))
    headers = {"X-Model-Checksum": checksum, "X-Model-Version": version, "Vary": "Accept-Encoding",
               "Cache-Control": "private, max-age=31536000, immutable"}
    tag = etag(checksum, coding)
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match and _matches(if_none_match, checksum):
        response = HttpResponse(status=304)
        for key, value in {**headers, "ETag": tag}.items():
            response[key] = value
        return response
    if coding == "identity":
        headers["Accept-Ranges"] = "bytes"
        requested = request.META.get("HTTP_RANGE")
        if_range = request.META.get("HTTP_IF_RANGE")
        if requested and (not if_range or if_range.strip() == tag):
            byte_range = _byte_range(requested, size)
            if byte_range is not None:
                start, end = byte_range
                response = _streamed(request, path, start, end - start + 1, 206)
                response["Content-Length"] = str(end - start + 1)
                response["Content-Range"] = f"bytes {start}-{end}/{size}"
                response["ETag"] = tag
                for key, value in headers.items():
                    response[key] = value
                return response
    served = encoded_path(path, coding)
    length = served.stat().st_size
    filename = f"model-{version}.npz"
    if isinstance(request, ASGIRequest):
        response = _streamed(request, served, 0, length, 200)
        response["Content-Disposition"] = content_disposition_header(True, filename)
    else:
        response = FileResponse(open(served, "rb"), content_type="application/octet-stream", as_attachment=True,
                                filename=filename)
    # FileResponse guesses a coding from the file name (.gz); the coding is the one negotiated.
    if coding == "identity":
        if "Content-Encoding" in response:
            del response["Content-Encoding"]
    else:
        response["Content-Encoding"] = coding
    response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(length)
    response["ETag"] = tag
    for key, value in headers.items():
        response[key] = value
    return response
