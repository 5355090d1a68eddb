"""The Django admin of the device protocol: credentials (read-only, with a revoke action), rounds,
updates and models (read-only), list pages in a constant number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from nodes.models import DeviceCredential, DeviceModel, DeviceRound, DeviceUpdate
from nodes.tests.protocol.conftest import update_body

pytestmark = pytest.mark.django_db

LISTS = ["/admin/nodes/devicecredential/", "/admin/nodes/deviceround/", "/admin/nodes/deviceupdate/",
         "/admin/nodes/devicemodel/", "/admin/nodes/devicecredential/?revoked_at__isempty=1",
         "/admin/nodes/deviceround/?status__exact=open", "/admin/nodes/deviceupdate/?round__status__exact=open"]


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _send(devices, device_round, arrays):
    for i, device in enumerate(devices):
        assert_success(device.current())
        assert_success(device.submit(device_round.pk, update_body(arrays, shift=0.01 * (i + 1))), 202)


def _queries(staff, page) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert staff.get(page).status_code == 200, page
    return len(captured)


def test_protocol_pages_open_and_list_pages_cost_the_same_queries_for_more_rows(staff, open_round, make_device):
    device_round, arrays = open_round
    _send([make_device("first")], device_round, arrays)
    few = {page: _queries(staff, page) for page in LISTS}
    _send([make_device(f"more-{i}") for i in range(4)], device_round, arrays)
    assert DeviceUpdate.objects.count() == 5 and DeviceCredential.objects.count() == 5
    assert {page: _queries(staff, page) for page in LISTS} == few
    update = DeviceUpdate.objects.first()
    for page in (f"/admin/nodes/devicecredential/{DeviceCredential.objects.first().pk}/change/",
                 f"/admin/nodes/deviceround/{device_round.pk}/change/",
                 f"/admin/nodes/deviceupdate/{update.pk}/change/",
                 f"/admin/nodes/devicemodel/{DeviceModel.objects.first().pk}/change/"):
        assert staff.get(page).status_code == 200, page


def test_protocol_rows_are_read_only(staff, open_round, make_device):
    device_round, arrays = open_round
    device = make_device()
    _send([device], device_round, arrays)
    credential = DeviceCredential.objects.get(node_id=device.client_id)
    for model in ("devicecredential", "deviceround", "deviceupdate", "devicemodel"):
        assert staff.get(f"/admin/nodes/{model}/add/").status_code == 403, model
    key = credential.public_key
    page = staff.get(f"/admin/nodes/devicecredential/{credential.pk}/change/").content.decode()
    assert key in page and 'name="public_key"' not in page  # shown, not an input
    staff.post(f"/admin/nodes/devicecredential/{credential.pk}/change/", {"public_key": "A" * 44})
    credential.refresh_from_db()
    assert credential.public_key == key
    assert staff.post(f"/admin/nodes/deviceround/{device_round.pk}/change/", {"status": "failed"}).status_code == 403
    assert staff.post(f"/admin/nodes/deviceround/{device_round.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DeviceRound.objects.get(pk=device_round.pk).status == "open"


def test_the_revoke_action_revokes_through_the_service(staff, make_device):
    device, other = make_device("revoked"), make_device("kept")
    credential = DeviceCredential.objects.get(node_id=device.client_id)
    response = staff.post("/admin/nodes/devicecredential/",
                          {"action": "revoke_tokens", "_selected_action": [credential.pk]}, follow=True)
    assert response.status_code == 200 and "Revoked 1 device token(s)." in response.content.decode()
    credential.refresh_from_db()
    assert credential.revoked_at is not None and credential.token_jti == ""
    error = assert_error(device.current(), 401, "AUTHENTICATION_FAILED")["error"]
    assert error["details"]["reason"] == "token_revoked"
    assert_success(other.current())
