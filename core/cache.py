"""Django's Redis cache with one connection pool per process.

Django builds a cache backend object per request context (``caches`` is an asgiref ``Local``), and
its ``RedisCacheClient`` keeps its connection pools on itself: under ASGI every request that touches
the cache (every API call: the rate limits count there) opened a new TCP connection to Redis and
left it for the garbage collector. Here the pools live at module level, keyed by server and
options, and are shared by every backend object of the process (redis-py's pools are thread-safe).
A forked child (a Celery worker process) starts with fresh pools: redis-py resets a pool it finds in
another process.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_POOLS: dict[tuple, dict] = {}
_LOCK = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        key = (tuple(servers), repr(sorted(options.items())))
        with _LOCK:
            self._pools = _POOLS.setdefault(key, {})

    def _get_connection_pool(self, write):
        with _LOCK:  # one pool per server, however many threads ask at once
            return super()._get_connection_pool(write)


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
