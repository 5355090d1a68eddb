"""The Redis cache shares one connection pool per process across Django's per-request backends."""

import contextvars
import threading

import pytest
from django.conf import settings
from django.core.cache import caches

from core.cache import SharedPoolRedisCache

OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}


def _backend(location="redis://127.0.0.1:6379/5", options=OPTIONS):
    # What Django builds for each request context (nothing connects until a command is sent).
    return SharedPoolRedisCache(location, {"OPTIONS": dict(options)})


def test_backends_built_for_different_requests_share_their_pools():
    first, second = _backend(), _backend()
    assert first is not second and first._cache is not second._cache
    assert first._cache._get_connection_pool(write=True) is second._cache._get_connection_pool(write=True)


def test_backends_built_in_other_threads_share_them_too():
    pools = []

    def build():
        pools.append(_backend()._cache._get_connection_pool(write=False))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(pool) for pool in pools}) == 1


def test_another_server_or_other_options_get_their_own_pool():
    base = _backend()._cache._get_connection_pool(write=True)
    assert _backend("redis://127.0.0.1:6379/6")._cache._get_connection_pool(write=True) is not base
    assert _backend(options={**OPTIONS, "socket_timeout": 5})._cache._get_connection_pool(write=True) is not base


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the suite's PostgreSQL/Redis run)")
def test_many_request_contexts_use_one_redis_connection():
    def one_request(n):
        cache = caches["default"]  # a new backend per context, as under ASGI
        cache.set(f"shared-pool-{n}", n)
        return cache

    pool = caches["default"]._cache._get_connection_pool(write=True)
    before = pool._created_connections  # earlier tests of the process may have opened some
    backends = [contextvars.Context().run(one_request, n) for n in range(20)]
    assert len({id(b) for b in backends}) == 20
    assert {id(b._cache._get_connection_pool(write=True)) for b in backends} == {id(pool)}
    assert pool._created_connections <= max(before, 1)
    assert caches["default"].get("shared-pool-7") == 7
