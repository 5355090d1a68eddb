import logging

from core.context import current_request_id


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the id of the request being served (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True
