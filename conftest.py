import shutil
import time

import pytest
from django.conf import settings
from django.core.cache import cache

from core.api.throttles import CategoryRateThrottle


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Each test gets its own media folder and an empty cache (throttles, lock-outs, revocations)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()
    shutil.rmtree(tmp_path / "media", ignore_errors=True)


@pytest.fixture(autouse=True)
def _throttle_clock(monkeypatch):
    """Rate limits count in fixed windows; a test whose requests straddle a window's edge would see
    its count start again. The throttles' clock runs from one second past the next full hour, so
    every test has (nearly) a whole window of any rate to itself and ``reset`` is still ahead."""
    started = time.time()
    base = (started // 3600 + 1) * 3600 + 1
    monkeypatch.setattr(CategoryRateThrottle, "timer", lambda self: base + (time.time() - started))
