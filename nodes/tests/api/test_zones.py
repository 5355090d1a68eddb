"""/fl/zones and /fl/clusters (seed 004)."""

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import assert_error, assert_success
from nodes.models import Cluster, Zone
from nodes.tests.factories import NodeFactory, ZoneFactory

pytestmark = pytest.mark.django_db

ZONES, CLUSTERS = "/api/v1/fl/zones", "/api/v1/fl/clusters"


@pytest.fixture
def engineer_api(api_for):
    return api_for(UserFactory(roles=["ml_engineer"]))


def test_zone_crud(engineer_api):
    zone = assert_success(engineer_api.post(ZONES, {"name": "EU West", "code": "eu-west", "region": "eu"}), 201)["data"]
    assert assert_success(engineer_api.get(f"{ZONES}/{zone['id']}"))["data"] == zone
    assert assert_success(engineer_api.put(f"{ZONES}/{zone['id']}", {"name": "EU W", "code": "eu-west"}))[
        "data"]["name"] == "EU W"
    assert assert_success(engineer_api.patch(f"{ZONES}/{zone['id']}", {"region": "west"}))["data"]["region"] == "west"
    assert [z["code"] for z in assert_success(engineer_api.get(ZONES))["data"]] == ["eu-west"]
    assert_error(engineer_api.post(ZONES, {"name": "Dup", "code": "eu-west"}), 400, "VALIDATION_ERROR")
    assert_error(engineer_api.post(ZONES, {"name": "Bad", "code": "no spaces!"}), 400, "VALIDATION_ERROR")
    assert_error(engineer_api.get(f"{ZONES}/999999"), 404, "RESOURCE_NOT_FOUND")
    assert_error(engineer_api.get(f"{ZONES}/abc"), 404, "RESOURCE_NOT_FOUND")
    assert engineer_api.delete(f"{ZONES}/{zone['id']}").status_code == 204
    assert not Zone.objects.exists()


def test_cluster_crud_and_clients(engineer_api, api_for):
    zone = ZoneFactory(code="z1")
    cluster = assert_success(engineer_api.post(CLUSTERS, {"name": "racks", "zone": "z1"}), 201)["data"]
    assert cluster["zone"]["code"] == "z1"
    assert_error(engineer_api.post(CLUSTERS, {"name": "racks", "zone": str(zone.pk)}), 400, "VALIDATION_ERROR")
    assert_error(engineer_api.post(CLUSTERS, {"name": "x", "zone": "nowhere"}), 400, "VALIDATION_ERROR")
    owner = UserFactory(roles=["user"])
    mine = NodeFactory(registered_by=owner, cluster_id=cluster["id"], zone=zone)
    NodeFactory(cluster_id=cluster["id"], zone=zone)  # someone else's
    listed = assert_success(api_for(owner).get(f"{CLUSTERS}/{cluster['id']}/clients"))["data"]
    assert [n["id"] for n in listed] == [str(mine.pk)]
    other_zone = ZoneFactory(code="z2")
    moved = assert_success(engineer_api.patch(f"{CLUSTERS}/{cluster['id']}", {"zone": "z2"}))["data"]
    assert moved["zone"]["code"] == "z2"
    mine.refresh_from_db()
    assert mine.zone_id == other_zone.pk
    assert_error(engineer_api.delete(f"{ZONES}/{other_zone.pk}"), 409, "RESOURCE_CONFLICT")
    assert engineer_api.delete(f"{CLUSTERS}/{cluster['id']}").status_code == 204
    mine.refresh_from_db()
    assert mine.cluster_id is None and not Cluster.objects.exists()


def test_a_user_reads_zones_but_does_not_change_them(api_for):
    api = api_for(UserFactory(roles=["user"]))
    ZoneFactory()
    assert_success(api.get(ZONES))
    assert_success(api.get(CLUSTERS))
    assert_error(api.post(ZONES, {"name": "n", "code": "n"}), 403, "AUTHORIZATION_FAILED")
    assert Zone.objects.count() == 1


def test_out_of_range_ids_are_404_or_400(engineer_api):
    huge = "9" * 30
    assert_error(engineer_api.get(f"{ZONES}/{huge}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(engineer_api.get(f"{CLUSTERS}/{huge}/clients"), 404, "RESOURCE_NOT_FOUND")
    assert_error(engineer_api.post(CLUSTERS, {"name": "x", "zone": huge}), 400, "VALIDATION_ERROR")
    assert assert_success(engineer_api.get("/api/v1/fl/clients", {"zone": huge}))["data"] == []
    assert_error(engineer_api.get("/api/v1/fl/clients", {"cluster": huge}), 400, "VALIDATION_ERROR")
