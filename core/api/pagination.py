import math

from django.core.paginator import InvalidPage
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from core.api.envelope import DEFAULT_MESSAGE, success_envelope
from core.exceptions import ValidationFailed


class PageLimitPagination(PageNumberPagination):
    """``?page=&limit=`` (seed 000) answered with ``pagination`` and ``links`` (seed 002)."""

    page_query_param = "page"
    page_size_query_param = "limit"
    page_size = 20
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed("limit must be a whole number", field="limit")
        if value < 1:
            raise ValidationFailed("limit must be at least 1", field="limit")
        return min(value, self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        raw_page = request.query_params.get(self.page_query_param, "1") or "1"
        try:
            number = int(raw_page)
        except ValueError:
            raise ValidationFailed("page must be a whole number", field="page")
        if number < 1:
            raise ValidationFailed("page must be at least 1", field="page")
        self.request = request
        page_size = self.get_page_size(request)
        paginator = self.django_paginator_class(queryset, page_size)
        # A page past the end is an empty page, not an error: clients walk until has_next is false.
        self.total = paginator.count
        self.pages = max(1, math.ceil(self.total / page_size))
        self.number = number
        self.limit = page_size
        if number > self.pages:
            self.page = None
            return []
        try:
            self.page = paginator.page(number)
        except InvalidPage:  # pragma: no cover - guarded above
            self.page = None
            return []
        return list(self.page)

    def _link(self, number: int):
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.page_query_param, number)
        return replace_query_param(url, self.page_size_query_param, self.limit)

    def get_paginated_response(self, data):
        has_next = self.number < self.pages
        has_prev = self.number > 1
        body = success_envelope(
            data,
            DEFAULT_MESSAGE,
            pagination={
                "page": self.number,
                "limit": self.limit,
                "total": self.total,
                "pages": self.pages,
                "has_next": has_next,
                "has_prev": has_prev,
            },
            links={
                "first": self._link(1),
                "prev": self._link(min(self.number - 1, self.pages)) if has_prev else None,
                "next": self._link(self.number + 1) if has_next else None,
                "last": self._link(self.pages),
            },
        )
        return Response(body)

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data", "pagination", "links"],
            "properties": {
                "success": {"type": "boolean", "example": True},
                "data": schema,
                "message": {"type": "string"},
                "pagination": {
                    "type": "object",
                    "properties": {
                        "page": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "total": {"type": "integer"},
                        "pages": {"type": "integer"},
                        "has_next": {"type": "boolean"},
                        "has_prev": {"type": "boolean"},
                    },
                },
                "links": {
                    "type": "object",
                    "properties": {k: {"type": "string", "nullable": True, "format": "uri"}
                                   for k in ("first", "prev", "next", "last")},
                },
                "timestamp": {"type": "string", "format": "date-time"},
                "request_id": {"type": "string"},
            },
        }

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for p in params:
            if p["name"] == "limit":
                p["schema"]["maximum"] = self.max_page_size
        return params
