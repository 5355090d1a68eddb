"""``GET /health`` (seed 002 section 8.1): one status per service, 503 when a required one is down."""

import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.api.envelope import now_iso
from core.context import current_request_id

STARTED_AT = time.monotonic()


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache():
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", 5)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return what was written")
    cache.delete(key)


def check_channel_layer():
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "health.ping"})
    message = async_to_sync(layer.receive)(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned a different message")


def check_broker():
    from config.celery import app

    if app.conf.task_always_eager:
        return "eager"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return None


def check_storage():
    name = default_storage.save(f"health/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as fh:
            if fh.read() != b"ok":
                raise RuntimeError("storage did not return what was written")
    finally:
        default_storage.delete(name)


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
    "storage": check_storage,
}


def run_checks() -> tuple[str, dict, dict]:
    services, details = {}, {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            note = check()
            services[name] = "healthy"
            details[name] = {"latency_ms": round((time.perf_counter() - started) * 1000, 2)}
            if note:
                details[name]["mode"] = note
        except Exception as exc:  # any failure of a probe is that service being down
            services[name] = "unhealthy"
            details[name] = {"error": exc.__class__.__name__}
    required = set(settings.HEALTH_REQUIRED_SERVICES)
    if any(services[n] != "healthy" for n in required if n in services):
        overall = "unhealthy"
    elif any(v != "healthy" for v in services.values()):
        overall = "degraded"
    else:
        overall = "healthy"
    return overall, services, details


@never_cache
@require_GET
def health(request):
    overall, services, details = run_checks()
    body = {
        "status": overall,
        "version": settings.POLLEN_VERSION,
        "uptime_seconds": int(time.monotonic() - STARTED_AT),
        "services": services,
        "checks": details,
        "required": sorted(settings.HEALTH_REQUIRED_SERVICES),
        "timestamp": now_iso(),
        "request_id": current_request_id(),
    }
    return JsonResponse(body, status=503 if overall == "unhealthy" else 200)
