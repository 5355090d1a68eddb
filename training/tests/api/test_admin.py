"""The Django admin of executions, rounds, per-client results and logs."""

import numpy as np
import pytest

from accounts.tests.factories import UserFactory
from training.tests.api.factories import (ExecutionFactory, ExecutionLogFactory, RoundClientFactory, RoundFactory,
                                          store_checkpoint)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_every_training_admin_page_opens(admin_client):
    execution = ExecutionFactory(name="Admin run", status="completed")
    round_obj = RoundFactory(execution=execution, number=1)
    store_checkpoint(round_obj, [np.ones((2, 2))])
    client_row = RoundClientFactory(round=round_obj)
    log = ExecutionLogFactory(execution=execution, message="Round 1 completed")
    pages = [
        "/admin/training/execution/", f"/admin/training/execution/{execution.pk}/change/",
        "/admin/training/round/", f"/admin/training/round/{round_obj.pk}/change/",
        "/admin/training/roundclient/", f"/admin/training/roundclient/{client_row.pk}/change/",
        "/admin/training/executionlog/", f"/admin/training/executionlog/{log.pk}/change/",
        "/admin/training/execution/?status__exact=completed", "/admin/training/executionlog/?q=completed",
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page
    detail = admin_client.get(f"/admin/training/execution/{execution.pk}/change/").content.decode()
    assert "Admin run" in detail and round_obj.checkpoint_checksum in detail  # the rounds inline
    listing = admin_client.get("/admin/training/executionlog/?q=completed").content.decode()
    assert "Round 1 completed" in listing


def test_engine_fields_are_read_only(admin_client):
    execution = ExecutionFactory(status="running")
    response = admin_client.get(f"/admin/training/execution/{execution.pk}/change/")
    form = response.context["adminform"].form
    for name in ("status", "current_round", "metrics", "error_message", "worker"):
        assert name not in form.fields
    assert "name" in form.fields
