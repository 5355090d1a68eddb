import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.services import tokens_issue
from accounts.tests.factories import UserFactory

API = "/api/v1/projects"


class Api:
    """A test client that speaks to the API as one user, with a real JWT access token."""

    def __init__(self, user):
        self.user = user
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {tokens_issue(user=user)['access_token']}"}

    def get(self, path, data=None, **extra):
        return self.client.get(path, data, **self.headers, **extra)

    def _send(self, method, path, body, **extra):
        return getattr(self.client, method)(path, json.dumps(body) if body is not None else None,
                                            content_type="application/json", **self.headers, **extra)

    def post(self, path, body=None, **extra):
        return self._send("post", path, body, **extra)

    def put(self, path, body=None, **extra):
        return self._send("put", path, body, **extra)

    def patch(self, path, body=None, **extra):
        return self._send("patch", path, body, **extra)

    def delete(self, path, **extra):
        return self.client.delete(path, **self.headers, **extra)

    def upload(self, project_id, content: bytes, name: str = "app.zip", field: str = "file"):
        return self.client.post(f"{API}/{project_id}/upload",
                                {field: SimpleUploadedFile(name, content, content_type="application/zip")},
                                **self.headers)


@pytest.fixture
def api_as(db):
    return Api


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def api(owner):
    return Api(owner)


def media_files() -> list[Path]:
    """Every file stored under MEDIA_ROOT."""
    root = Path(settings.MEDIA_ROOT)
    if not root.exists():
        return []
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]
