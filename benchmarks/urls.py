"""Pollen's URLconf with one extra route: the baseline the benchmarks measure against.

``bench/minimal`` is the least a Django view can do (no DRF, no authentication, no query) but it
runs in the same process, behind the same middleware, as the endpoint under test. It comes first
so that the baseline does not pay for walking Pollen's routes.
"""

from django.http import JsonResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as pollen_urlpatterns


def minimal_view(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/minimal", minimal_view, name="bench-minimal"), *pollen_urlpatterns]
