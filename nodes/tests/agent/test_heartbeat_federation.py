"""What a heartbeat answers the node agent: the federation its SuperNode joins; and what it keeps of
the agent's own report."""

import pytest

from accounts.tests.fixtures import assert_error, assert_success
from nodes.models import NodeMetric

pytestmark = pytest.mark.django_db

NODES = "/api/v1/nodes"


def _beat(api, node, body=None, path=NODES):
    return assert_success(api.post(f"{path}/{node.pk}/heartbeat", body or {}))["data"]


def test_the_federation_defaults_to_the_superlink_pollen_uses(owner_api, node, settings):
    settings.FLOWER_FLEET_ADDRESS = ""
    settings.FLOWER_SUPERLINK_ADDRESS = "127.0.0.1:9093"
    settings.FLOWER_INSECURE = True
    data = _beat(owner_api, node)
    assert data["federation"] == {"address": "127.0.0.1:9093", "insecure": True, "root_certificates": None,
                                  "node_config": {}, "execution_id": None, "source": "settings"}
    assert data["id"] == str(node.pk)  # still the node, as before


@pytest.mark.parametrize("path", [NODES, "/api/v1/fl/clients"])
def test_the_fleet_address_and_the_ca_come_from_the_settings(owner_api, node, settings, tmp_path, path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings.FLOWER_FLEET_ADDRESS = "superlink.example.com:9093"
    settings.FLOWER_INSECURE = False
    settings.FLOWER_ROOT_CERTIFICATES = str(ca)
    federation = _beat(owner_api, node, path=path)["federation"]
    assert federation["address"] == "superlink.example.com:9093" and federation["insecure"] is False
    assert federation["root_certificates"] == ca.read_text()
    settings.FLOWER_ROOT_CERTIFICATES = str(tmp_path / "missing.pem")
    assert _beat(owner_api, node)["federation"]["root_certificates"] is None


def test_a_node_assignment_overrides_the_federation(owner_api, node, settings):
    settings.FLOWER_FLEET_ADDRESS = "superlink:9093"
    node.assignment_config = {"federation": {"address": "10.0.0.9:9093", "node_config": {"partition-id": 1},
                                             "insecure": "no", "root_certificates": ""}, "epochs": 3}
    node.save()
    federation = _beat(owner_api, node)["federation"]
    assert federation["address"] == "10.0.0.9:9093" and federation["node_config"] == {"partition-id": 1}
    assert federation["source"] == "assignment"
    assert federation["insecure"] is settings.FLOWER_INSECURE  # a value of the wrong type is ignored
    node.assignment_config = {"federation": "10.0.0.9:9093"}
    node.save()
    assert _beat(owner_api, node)["federation"]["source"] == "settings"


def test_the_agents_report_is_kept_in_metadata_next_to_the_rest(owner_api, node):
    node.metadata = {"rack": "b2", "agent": {"version": "0.0.1"}}
    node.save()
    report = {"version": "0.1.0", "supernode": {"pid": 4242, "restarts": 2}}
    data = _beat(owner_api, node, {"agent": report, "metrics": {"cpu_percent": 12.5}})
    assert data["metadata"] == {"rack": "b2", "agent": report}
    node.refresh_from_db()
    assert node.metadata["agent"]["supernode"]["restarts"] == 2
    # a heartbeat without a report leaves the last one
    _beat(owner_api, node)
    node.refresh_from_db()
    assert node.metadata["agent"] == report


def test_an_oversized_agent_report_is_refused_and_nothing_is_stored(owner_api, node):
    response = owner_api.post(f"{NODES}/{node.pk}/heartbeat", {"agent": {"blob": "x" * 20_000},
                                                                  "metrics": {"cpu_percent": 1}})
    assert_error(response, 400, "VALIDATION_ERROR")
    assert not NodeMetric.objects.filter(node=node).exists()
