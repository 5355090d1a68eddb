import logging

from core.context import current_request_id


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the id of the request being served (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs a 5xx after the middleware has finished; it passes the request.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", None) or current_request_id()
        return True
