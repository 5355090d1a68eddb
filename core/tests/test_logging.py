import logging

from django.test import RequestFactory

from core.logging import RequestIdFilter


def test_log_records_carry_the_request_id_of_the_request_they_mention():
    request = RequestFactory().get("/api/v1/projects")
    request.request_id = "req-123"
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), None)
    record.request = request
    assert RequestIdFilter().filter(record) is True
    assert record.request_id == "req-123"


def test_records_outside_a_request_have_no_id():
    record = logging.LogRecord("pollen", logging.INFO, __file__, 1, "hello", (), None)
    RequestIdFilter().filter(record)
    assert record.request_id is None
