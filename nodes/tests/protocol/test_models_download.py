"""GET /models/{version} (seed 002): the model body, its codings, ETag, ranges and errors."""

import gzip
import hashlib
import os
import uuid
from pathlib import Path

import brotli
import numpy as np
import pytest

from accounts.tests.fixtures import assert_error, assert_success
from nodes.models import DeviceModel
from nodes.tests.protocol.conftest import device_execution, open_first_round
from projects.tests.factories import ProjectFactory
from wia_fl import wire

pytestmark = pytest.mark.django_db


@pytest.fixture
def joined(open_round, make_device):
    device_round, arrays = open_round
    device = make_device()
    info = assert_success(device.current())["data"]
    return device, info, arrays


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_model_downloads_with_its_checksum_and_version(joined):
    device, info, arrays = joined
    assert info["global_model_url"].startswith("http://testserver/api/v1/models/")
    response = device.download(info["global_model_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    body = _body(response)
    assert len(body) == int(response["Content-Length"]) == info["model_size"]
    assert response["X-Model-Checksum"] == hashlib.sha256(body).hexdigest() == info["model_checksum"]
    assert response["X-Model-Version"] == info["model_version"]
    assert response["ETag"] == f'"{info["model_checksum"]}"' and "Content-Encoding" not in response
    decoded, meta = wire.decode_model(body)
    assert meta == {"format": wire.FORMAT, "version": info["model_version"], "round": 0}
    assert list(decoded) == list(arrays) == ["weight", "bias"]
    for name in arrays:
        np.testing.assert_array_equal(decoded[name], arrays[name])
    assert set(info["training_config"]["tensors"]) == {"weight", "bias"}


@pytest.mark.parametrize("coding, decompress", [("gzip", gzip.decompress), ("br", brotli.decompress)])
def test_gzip_and_br_by_accept_encoding_compressed_once(joined, coding, decompress):
    device, info, _ = joined
    plain = _body(device.download(info["model_version"]))
    response = device.download(info["model_version"], **{"Accept-Encoding": f"identity;q=0.5, {coding}"})
    assert response.status_code == 200 and response["Content-Encoding"] == coding
    assert "Accept-Encoding" in response["Vary"] and response["ETag"] == f'"{info["model_checksum"]}-{coding}"'
    assert response["X-Model-Checksum"] == info["model_checksum"]
    compressed = _body(response)
    assert int(response["Content-Length"]) == len(compressed) and decompress(compressed) == plain
    model = DeviceModel.objects.get(version=info["model_version"])
    cached = Path(model.file.path + {"gzip": ".gz", "br": ".br"}[coding])
    assert cached.exists()
    written = cached.stat().st_mtime_ns
    os.utime(cached, ns=(written, written))
    assert _body(device.download(info["model_version"], **{"Accept-Encoding": coding})) == compressed
    assert cached.stat().st_mtime_ns == written  # served from the cache, not compressed again


def test_br_is_preferred_and_q_zero_refuses_a_coding(joined):
    device, info, _ = joined
    assert device.download(info["model_version"], **{"Accept-Encoding": "gzip, deflate, br"})["Content-Encoding"] == "br"
    assert device.download(info["model_version"], **{"Accept-Encoding": "br;q=0, gzip"})["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in device.download(info["model_version"], **{"Accept-Encoding": "deflate"})


def test_if_none_match_answers_304(joined):
    device, info, _ = joined
    response = device.download(info["model_version"], **{"If-None-Match": f'"{info["model_checksum"]}"'})
    assert response.status_code == 304 and response.content == b""
    assert response["ETag"] == f'"{info["model_checksum"]}"' and response["X-Model-Version"] == info["model_version"]
    gz = device.download(info["model_version"], **{"If-None-Match": f'W/"{info["model_checksum"]}-gzip"',
                                                    "Accept-Encoding": "gzip"})
    assert gz.status_code == 304
    assert device.download(info["model_version"], **{"If-None-Match": '"something-else"'}).status_code == 200


def test_ranges_resume_a_download(joined):
    device, info, _ = joined
    whole = _body(device.download(info["model_version"]))
    size = len(whole)
    first = device.download(info["model_version"], Range="bytes=0-99")
    assert first.status_code == 206 and first["Content-Range"] == f"bytes 0-99/{size}"
    assert _body(first) == whole[:100] and first["Content-Length"] == "100"
    rest = device.download(info["model_version"], Range="bytes=100-")
    assert rest.status_code == 206 and _body(rest) == whole[100:]
    tail = device.download(info["model_version"], Range="bytes=-10")
    assert _body(tail) == whole[-10:]
    assert device.download(info["model_version"], Range="bytes=0-99", **{"If-Range": '"stale"'}).status_code == 200
    # ranges apply to the identity coding only
    coded = device.download(info["model_version"], Range="bytes=0-99", **{"Accept-Encoding": "gzip"})
    assert coded.status_code == 200 and coded["Content-Encoding"] == "gzip"
    response = device.download(info["model_version"], Range=f"bytes={size}-")
    assert_error(response, 416, "VALIDATION_ERROR")
    assert response["Content-Range"] == f"bytes */{size}"
    assert device.download(info["model_version"], Range="lines=1-2").status_code == 200


def test_unknown_versions_and_other_executions_models_are_404(joined, registrant):
    device, info, _ = joined
    assert_error(device.download("abcdef.77"), 404, "RESOURCE_NOT_FOUND")
    theirs = ProjectFactory(configuration={})
    other_round, _ = open_first_round(device_execution(theirs))
    assert_error(device.download(other_round.global_model.version), 404, "RESOURCE_NOT_FOUND")
    # a model of another of the registrant's executions is visible to the device
    mine = ProjectFactory(owner=registrant, configuration={})
    second, _ = open_first_round(device_execution(mine))
    assert device.download(second.global_model.version).status_code == 200


def test_a_uuid_is_the_registrys_path_not_a_version(joined):
    device, info, _ = joined
    response = device.download(str(uuid.uuid4()))
    assert response.status_code in (403, 404) and "X-Model-Version" not in response
    assert response.json()["success"] is False


def test_errors_stay_json_for_a_binary_accept_header(joined):
    device, info, _ = joined
    response = device.download("abcdef.77", Accept="application/octet-stream")
    assert_error(response, 404, "RESOURCE_NOT_FOUND")
    assert device.download(info["model_version"], Accept="application/octet-stream").status_code == 200


def test_downloads_are_limited_per_device_and_need_a_token(joined, settings, api_for, registrant):
    device, info, _ = joined
    settings.DEVICE_THROTTLE_RATES = {**settings.DEVICE_THROTTLE_RATES, "device_models": "2/min"}
    assert device.download(info["model_version"]).status_code == 200
    assert device.download(info["model_version"]).status_code == 200
    assert_error(device.download(info["model_version"]), 429, "RATE_LIMIT_EXCEEDED")
    assert_error(device.download(info["model_version"], Authorization=""), 401, "AUTHENTICATION_FAILED")



def test_people_download_the_versions_of_executions_they_can_see(joined, api_for, registrant):
    """A person's token or session is not a device's: the registrant (who sees the execution) gets the
    model, anyone else a 404, and nobody signed in a 401."""
    from accounts.tests.factories import UserFactory

    device, info, _ = joined
    path = f"/api/v1/models/{info['model_version']}"
    response = api_for(registrant).get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"".join(device.download(info["model_version"]).streaming_content)
    assert_error(api_for(UserFactory(roles=["user"])).get(path), 404, "RESOURCE_NOT_FOUND")
    assert_error(api_for(registrant).get("/api/v1/models/nope.1"), 404, "RESOURCE_NOT_FOUND")


# ---- under ASGI: an asynchronous body, never buffered by Django -------------------------------------

def _asgi_get(path: str, headers: dict) -> tuple[int, dict, list[bytes], list]:
    """GET ``path`` through the project's ASGI application (as uvicorn runs it): (status, headers,
    body messages, warnings raised meanwhile). The view runs in this thread (async_to_sync from a
    sync test), so it sees the test's database."""
    import asyncio
    import warnings

    from asgiref.sync import async_to_sync
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.asgi import application

    sent = []

    async def receive():
        if not sent and not getattr(receive, "done", False):
            receive.done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: Django cancels this once the response is sent

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
             "client": ("127.0.0.1", 40000), "server": ("testserver", 80)}
    # As Django's own test clients do: the test's transaction must outlive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async_to_sync(application)(scope, receive, send)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    start = sent[0]
    assert start["type"] == "http.response.start"
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    chunks = [m.get("body", b"") for m in sent[1:] if m["type"] == "http.response.body"]
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body")
    return start["status"], response_headers, chunks, [w for w in caught if "iterators" in str(w.message)]


def test_under_asgi_the_model_streams_in_chunks_without_buffering(joined, monkeypatch):
    from nodes.protocol import downloads

    device, info, _ = joined
    whole = _body(device.download(info["model_version"]))  # WSGI-style test client, for comparison
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 64)  # several chunks even for this small model
    path = f"/api/v1/models/{info['model_version']}"
    status, headers, chunks, warned = _asgi_get(path, device.auth())
    assert status == 200 and not warned, warned
    assert b"".join(chunks) == whole and len([c for c in chunks if c]) == -(-len(whole) // 64)
    assert headers["content-length"] == str(len(whole)) and headers["x-model-checksum"] == info["model_checksum"]
    assert headers["etag"] == f'"{info["model_checksum"]}"' and "content-encoding" not in headers
    assert headers["content-disposition"].startswith("attachment")
    assert headers["content-type"] == "application/octet-stream"
    # a range
    status, headers, chunks, warned = _asgi_get(path, {**device.auth(), "Range": "bytes=100-299"})
    assert status == 206 and not warned and b"".join(chunks) == whole[100:300]
    assert headers["content-range"] == f"bytes 100-299/{len(whole)}" and headers["content-length"] == "200"
    # a coding
    status, headers, chunks, warned = _asgi_get(path, {**device.auth(), "Accept-Encoding": "gzip"})
    assert status == 200 and not warned and headers["content-encoding"] == "gzip"
    assert gzip.decompress(b"".join(chunks)) == whole and headers["etag"] == f'"{info["model_checksum"]}-gzip"'
    # 304 and errors are ordinary responses
    status, _, chunks, warned = _asgi_get(path, {**device.auth(), "If-None-Match": f'"{info["model_checksum"]}"'})
    assert status == 304 and b"".join(chunks) == b"" and not warned
    status, _, chunks, _ = _asgi_get("/api/v1/models/abcdef.77", device.auth())
    assert status == 404 and b"RESOURCE_NOT_FOUND" in b"".join(chunks)
