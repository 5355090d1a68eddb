"""Errors outside DRF views (unknown URLs, crashes in pages) in the right shape for the caller."""

import logging

from django.http import JsonResponse
from django.shortcuts import render

from core.api.envelope import error_envelope

logger = logging.getLogger("pollen.errors")


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_envelope("RESOURCE_NOT_FOUND", "Requested resource not found"), status=404)
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(error_envelope("INTERNAL_ERROR", "Unexpected server error"), status=500)
    return render(request, "errors/500.html", status=500)


def permission_denied(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_envelope("AUTHORIZATION_FAILED", "Insufficient permissions"), status=403)
    return render(request, "errors/403.html", status=403)


def bad_request(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_envelope("VALIDATION_ERROR", "Bad request"), status=400)
    return render(request, "errors/400.html", status=400)
