"""Oversized bodies are refused from their declared length, in the envelope, with nothing stored."""

import json

import pytest

from projects.models import Project, ProjectUpload
from projects.tests.archives import flower_zip
from projects.tests.conftest import API, media_files
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_an_upload_declaring_more_than_the_limit_is_refused_unread(api, owner, settings):
    settings.UPLOAD_MAX_ARCHIVE_BYTES = 10_000
    project = ProjectFactory(owner=owner)
    archive = flower_zip() + b"\0" * 200_000  # bigger than limit plus the multipart allowance
    response = api.upload(project.pk, archive)
    assert response.status_code == 413
    body = response.json()
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert body["error"]["details"]["reason"] == "too_large"
    assert ProjectUpload.objects.count() == 0 and media_files() == []


def test_a_json_body_over_the_request_limit_is_413_not_500(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    response = api.client.post(API, json.dumps({"name": "big", "description": "a" * 100_000}),
                               content_type="application/json", **api.headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert not Project.objects.filter(name="big").exists()
