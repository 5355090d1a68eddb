"""/fl/clients (seeds 001, 004) and /nodes (seed 000): happy paths, documented errors, bad input."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.fixtures import assert_error, assert_success
from core.models import Event
from nodes.choices import NodeStatus
from nodes.models import Node, NodeDataset, NodeMetric
from nodes.tests.factories import ClusterFactory, NodeDatasetFactory, NodeFactory, NodeMetricFactory, ZoneFactory
from training.tests.api.factories import ExecutionFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"
CLIENTS = f"{API}/fl/clients"
NODES = f"{API}/nodes"


def register_body(**extra):
    return {"name": "edge-7", "type": "client", "host": "10.1.2.3",
            "capability": {"compute": "gpu", "memory_gb": 16, "bandwidth_mbps": 500, "gpu": True},
            "dataProfile": {"samples": 1200, "quality": "high", "distribution": {"0": 600, "1": 600}},
            "location": {"name": "Lyon", "code": "lys", "lat": 45.76, "lon": 4.84, "region": "eu-west"},
            "framework": "pytorch", "framework_version": "2.4", "heartbeat_interval_seconds": 10, **extra}


# ---- register, read, update, delete ------------------------------------------------------------

def test_register_and_read_back(owner_api, project):
    zone = ZoneFactory(code="eu-1")
    body = assert_success(owner_api.post(CLIENTS, register_body(projectId=str(project.pk), zone="eu-1")), 201)
    data = body["data"]
    assert data["status"] == "connected" and data["region"] == "eu-west" and data["zone"]["id"] == zone.pk
    assert data["data_profile"]["samples"] == 1200 and data["capability"]["gpu"] is True
    assert data["project_id"] == str(project.pk) and data["heartbeat_interval_seconds"] == 10
    got = assert_success(owner_api.get(f"{CLIENTS}/{data['id']}"))["data"]
    assert got == data


def test_update_patch_and_delete(owner_api, node):
    cluster = ClusterFactory()
    data = assert_success(owner_api.patch(f"{CLIENTS}/{node.pk}", {"clusterId": cluster.pk, "host": "h2"}))["data"]
    assert data["cluster"]["id"] == cluster.pk and data["zone"]["id"] == cluster.zone_id and data["host"] == "h2"
    data = assert_success(owner_api.put(f"{CLIENTS}/{node.pk}", {"name": "renamed"}))["data"]
    assert data["name"] == "renamed"
    assert_error(owner_api.put(f"{CLIENTS}/{node.pk}", {"host": "x"}), 400, "VALIDATION_ERROR")
    assert owner_api.delete(f"{CLIENTS}/{node.pk}").status_code == 204
    assert not Node.objects.exists()
    assert Event.objects.filter(event="client.left").count() == 1


def test_a_cluster_of_another_zone_is_refused(owner_api, node):
    cluster = ClusterFactory()
    body = assert_error(owner_api.patch(f"{CLIENTS}/{node.pk}", {"zone": ZoneFactory().code, "cluster": cluster.pk}),
                        400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "cluster"
    node.refresh_from_db()
    assert node.cluster_id is None and node.zone_id is None


# ---- status ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["put", "patch"])
def test_status_change_and_invalid_transition(owner_api, node, method):
    send = getattr(owner_api, method)
    data = assert_success(send(f"{CLIENTS}/{node.pk}/status", {"status": "offline", "metadata": {"why": "maint"}}))
    assert data["data"]["status"] == "offline" and data["data"]["metadata"] == {"why": "maint"}
    body = assert_error(send(f"{CLIENTS}/{node.pk}/status", {"status": "training"}), 409, "RESOURCE_CONFLICT")
    assert body["error"]["details"] == {"field": "status", "from": "offline", "to": "training"}
    assert_error(send(f"{CLIENTS}/{node.pk}/status", {"status": "asleep"}), 400, "VALIDATION_ERROR")
    assert Event.objects.filter(event="node.status").count() == 1


# ---- heartbeats and metrics --------------------------------------------------------------------

@pytest.mark.parametrize("path", [NODES, CLIENTS])
def test_heartbeat_writes_metrics(owner_api, node, path):
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)
    body = {"metrics": {"cpu_usage": 45.2, "memory_usage": 67.8, "disk_usage": 23.1, "bytes_sent": 1024},
            "samples": [{"cpu_percent": 30, "timestamp": (timezone.now() - timedelta(seconds=30)).isoformat()}]}
    data = assert_success(owner_api.post(f"{path}/{node.pk}/heartbeat", body))["data"]
    assert data["status"] == "connected" and data["metrics"]["cpu_usage"] == 45.2
    assert list(NodeMetric.objects.values_list("cpu_percent", flat=True)) == [30.0, 45.2]
    assert NodeMetric.objects.get(cpu_percent=45.2).network_bytes_sent == 1024


def test_a_bad_heartbeat_stores_nothing(owner_api, node):
    before = node.last_seen
    for body in ({"metrics": {"cpu_percent": 140}}, {"samples": [{"cpu_percent": 1}] * 101},
                 {"status": "offline"}, {"metrics": {"network_bytes_sent": -1}}, ["not", "an", "object"]):
        response = owner_api.post(f"{NODES}/{node.pk}/heartbeat", body)
        assert_error(response, 400, "VALIDATION_ERROR")
        assert response.json()["error"]["details"]["field"]
    node.refresh_from_db()
    assert node.last_seen == before and not NodeMetric.objects.exists()


def test_seed_000_node_list_and_metrics(owner_api, node):
    NodeMetricFactory(node=node, timestamp=timezone.now() - timedelta(hours=2), cpu_percent=10)
    NodeMetricFactory(node=node, timestamp=timezone.now() - timedelta(minutes=5), cpu_percent=20)
    assert_success(owner_api.post(f"{NODES}/{node.pk}/heartbeat", {"metrics": {"cpu_usage": 30, "disk_usage": 5}}))
    body = assert_success(owner_api.get(NODES))
    assert body["pagination"]["total"] == 1
    item = body["data"][0]
    assert set(item) == {"id", "node_id", "name", "type", "host", "status", "last_seen", "metrics"}
    assert item["metrics"] == {"cpu_usage": 30.0, "memory_usage": None, "disk_usage": 5.0}
    report = assert_success(owner_api.get(f"{NODES}/{node.pk}/metrics", {"period": "1h"}))["data"]
    assert report["node_id"] == str(node.pk) and report["metrics"]["system"]["cpu_usage"] == 30.0
    assert [p["cpu_usage"] for p in report["series"]] == [20.0, 30.0]
    day = assert_success(owner_api.get(f"{NODES}/{node.pk}/metrics", {"period": "24h", "metrics": "cpu"}))["data"]
    assert len(day["series"]) == 3 and set(day["series"][0]) == {"timestamp", "cpu_usage"}
    assert_error(owner_api.get(f"{NODES}/{node.pk}/metrics", {"period": "1y"}), 400, "VALIDATION_ERROR")
    assert_error(owner_api.get(f"{NODES}/{node.pk}/metrics", {"metrics": "cpu,gpu"}), 400, "VALIDATION_ERROR")


def test_client_metrics_by_period(owner_api, node):
    NodeMetricFactory(node=node, rounds_completed=2, updates_sent=2, cpu_percent=40)
    NodeMetricFactory(node=node, rounds_completed=5, updates_sent=6, cpu_percent=60)
    NodeDatasetFactory(node=node, name="part-0")
    data = assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/metrics", {"period": "7d"}))["data"]
    assert data["performance"]["cpu_avg"] == 50.0 and data["performance"]["samples"] == 2
    assert data["contribution"]["rounds_completed"] == 3 and data["contribution"]["updates_sent"] == 4
    assert data["data_quality"]["datasets"][0]["name"] == "part-0"
    only = assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/metrics", {"metrics": "contribution"}))["data"]
    assert "performance" not in only and "contribution" in only
    assert_error(owner_api.get(f"{CLIENTS}/{node.pk}/metrics", {"metrics": "speed"}), 400, "VALIDATION_ERROR")


# ---- assignment --------------------------------------------------------------------------------

def test_assign_and_unassign(owner_api, node, project):
    execution = ExecutionFactory(project=project, status="running")
    body = {"executionId": str(execution.pk), "role": "validator", "config": {"epochs": 1}}
    data = assert_success(owner_api.post(f"{CLIENTS}/{node.pk}/assign", body))["data"]
    assert data["current_execution"] == str(execution.pk) and data["role"] == "validator"
    assert assert_success(owner_api.get(CLIENTS, {"execution": str(execution.pk)}))["pagination"]["total"] == 1
    data = assert_success(owner_api.post(f"{CLIENTS}/{node.pk}/unassign"))["data"]
    assert data["current_execution"] is None and data["role"] is None
    assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/unassign"), 409, "RESOURCE_CONFLICT")


def test_assign_errors(owner_api, node, project):
    finished = ExecutionFactory(project=project, status="completed")
    theirs = ExecutionFactory(status="running")
    mine = ExecutionFactory(project=project, status="pending")
    assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/assign", {"executionId": str(finished.pk)}), 404, "FL001")
    assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/assign", {"executionId": str(theirs.pk)}), 404, "FL001")
    body = assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/assign", {"executionId": str(mine.pk), "role": "boss"}),
                        400, "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "role"
    body = assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/assign", {"executionId": "nope"}), 400,
                        "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "executionId"
    assert_error(owner_api.post(f"{CLIENTS}/{node.pk}/assign", {"executionId": str(mine.pk),
                                                                "role": "aggregator"}), 400, "VALIDATION_ERROR")
    node.refresh_from_db()
    assert node.current_execution_id is None


# ---- lists, filters, groupings -----------------------------------------------------------------

def test_filters(owner_api, owner):
    zone = ZoneFactory(code="z1")
    NodeFactory(registered_by=owner, name="gpu-box", capability={"compute": "gpu", "memory_gb": 64, "gpu": True},
                region="us-east", zone=zone)
    NodeFactory(registered_by=owner, name="phone", capability={"compute": "mobile", "memory_gb": 4},
                status=NodeStatus.OFFLINE)
    NodeFactory(registered_by=owner, name="cpu-box")

    def names(**params):
        return sorted(n["name"] for n in assert_success(owner_api.get(CLIENTS, params))["data"])

    assert names(capability="gpu") == ["gpu-box"]
    assert names(capability="mobile") == ["phone"]
    assert names(min_memory_gb=8) == ["cpu-box", "gpu-box"]
    assert names(gpu="true") == ["gpu-box"]
    assert names(region="US-EAST") == ["gpu-box"]
    assert names(zone="z1") == names(zone=str(zone.pk)) == ["gpu-box"]
    assert names(status="offline") == ["phone"]
    assert names(search="box") == ["cpu-box", "gpu-box"]
    data = assert_success(owner_api.get(CLIENTS, {"sort": "-name"}))["data"]
    assert [n["name"] for n in data] == ["phone", "gpu-box", "cpu-box"]
    for bad in ({"status": "asleep"}, {"capability": "tpu"}, {"min_memory_gb": "lots"}, {"sort": "password"}):
        assert_error(owner_api.get(CLIENTS, bad), 400, "VALIDATION_ERROR")


def test_by_location_and_by_zone(owner_api, owner):
    zone = ZoneFactory(code="z1")
    NodeFactory.create_batch(2, registered_by=owner, zone=zone)
    NodeFactory(registered_by=owner, location={"name": "Oslo", "code": "osl"})
    by_location = assert_success(owner_api.get(f"{CLIENTS}/by-location"))["data"]
    assert [(g["key"], g["count"]) for g in by_location] == [("osl", 1), ("par", 2)]
    assert by_location[1]["location"]["name"] == "Paris" and len(by_location[1]["clients"]) == 2
    by_zone = assert_success(owner_api.get(f"{CLIENTS}/by-zone"))["data"]
    assert [(g["key"], g["count"]) for g in by_zone] == [("z1", 2), (None, 1)]
    assert by_zone[0]["zone"]["code"] == "z1" and by_zone[1]["zone"] is None
    assert assert_success(owner_api.get(f"{CLIENTS}/by-zone", {"zone": "z1"}))["data"][0]["count"] == 2


# ---- hostile input -----------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"),
    ({}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "n", "type": "router"}, "type"),
    ({"name": "n", "capability": {"compute": "quantum"}}, "capability.compute"),
    ({"name": "n", "capability": {"memory_gb": -1}}, "capability.memory_gb"),
    ({"name": "n", "capability": "fast"}, "capability"),
    ({"name": "n", "location": {"lat": 91}}, "location.lat"),
    ({"name": "n", "dataProfile": {"quality": "great"}}, "dataProfile.quality"),
    ({"name": "n", "heartbeat_interval_seconds": 0}, "heartbeat_interval_seconds"),
    ({"name": "n", "resources": {"blob": "x" * 20000}}, "resources"),
    ({"name": "n", "resources": [1, 2]}, "resources"),
    ({"name": "n", "zone": "nowhere"}, "zone"),
    ({"name": "n", "cluster": 999999}, "cluster"),
    ({"name": "n", "projectId": "not-a-uuid"}, "projectId"),
])
def test_hostile_registration_stores_nothing(owner_api, body, field):
    response = owner_api.post(CLIENTS, body)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert response.json()["error"]["details"]["field"] == field
    assert not Node.objects.exists() and not Event.objects.exists()


def test_non_json_body(owner_api):
    response = owner_api.client.post(CLIENTS, "{broken", content_type="application/json",
                                     headers=owner_api.headers)
    assert_error(response, 400, "VALIDATION_ERROR")
    assert not Node.objects.exists()


def test_registering_for_someone_elses_project_is_404(owner_api):
    from projects.tests.factories import ProjectFactory

    other = ProjectFactory(configuration={})
    assert_error(owner_api.post(CLIENTS, register_body(projectId=str(other.pk))), 404, "RESOURCE_NOT_FOUND")
    assert not Node.objects.exists()


# ---- datasets (seed 004) -----------------------------------------------------------------------

def test_client_dataset_paths(owner_api, node):
    data = assert_success(owner_api.put(f"{CLIENTS}/{node.pk}/dataset", {"name": "train", "rows": 500,
                                                                          "features": 4, "classes": 3}))["data"]
    assert data["name"] == "train" and data["client_id"] == str(node.pk)
    node.refresh_from_db()
    assert node.dataset == "train"
    assert_success(owner_api.post(f"{CLIENTS}/{node.pk}/datasets", {"name": "holdout", "rows": 50}), 201)
    assert_success(owner_api.post(f"{CLIENTS}/{node.pk}/datasets", {"name": "holdout", "rows": 60}), 200)
    names = [d["name"] for d in assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/dataset"))["data"]]
    assert names == ["holdout", "train"]
    assert [d["rows"] for d in assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/datasets"))["data"]] == [60, 500]
    assert_error(owner_api.put(f"{CLIENTS}/{node.pk}/dataset", {"name": "x", "rows": -5}), 400, "VALIDATION_ERROR")


def test_datasets_assign_list_unassign(owner_api, node):
    body = {"clientId": str(node.pk), "name": "part-1", "rows": 10}
    assert_success(owner_api.post(f"{API}/fl/datasets/assign", body), 201)
    NodeDatasetFactory()  # someone else's
    listed = assert_success(owner_api.get(f"{API}/fl/datasets"))
    assert [d["name"] for d in listed["data"]] == ["part-1"]
    assert owner_api.client.delete(f"{API}/fl/datasets/unassign?clientId={node.pk}&name=part-1",
                                   headers=owner_api.headers).status_code == 204
    assert not NodeDataset.objects.filter(node=node).exists()
    assert_error(owner_api.client.delete(f"{API}/fl/datasets/unassign?clientId={node.pk}&name=part-1",
                                         headers=owner_api.headers), 404, "RESOURCE_NOT_FOUND")
    assert_error(owner_api.client.delete(f"{API}/fl/datasets/unassign", headers=owner_api.headers), 400,
                 "VALIDATION_ERROR")


# ---- clusters of a client ----------------------------------------------------------------------

def test_client_cluster(owner_api, node):
    assert assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/cluster"))["data"] is None
    cluster = ClusterFactory()
    assert_success(owner_api.put(f"{CLIENTS}/{node.pk}/cluster", {"clusterId": cluster.pk}))
    assert assert_success(owner_api.get(f"{CLIENTS}/{node.pk}/cluster"))["data"]["id"] == cluster.pk
    assert_error(owner_api.put(f"{CLIENTS}/{node.pk}/cluster", {"cluster": 0}), 400, "VALIDATION_ERROR")


# ---- registering again with the same Idempotency-Key ------------------------------------------------

def test_a_registration_sent_again_with_its_idempotency_key_returns_the_first_node(owner_api, api_for):
    first = owner_api.post(CLIENTS, register_body(), headers={"Idempotency-Key": "agent-7f3a"})
    node_id = assert_success(first, 201)["data"]["id"]
    again = owner_api.post(CLIENTS, register_body(name="edge-7-renamed"), headers={"Idempotency-Key": "agent-7f3a"})
    body = assert_success(again, 200)
    assert body["data"]["id"] == node_id and body["data"]["name"] == "edge-7" and body["message"] == \
        "Client already registered"
    assert Node.objects.count() == 1
    assert Event.objects.filter(event="client.joined").count() == 1  # announced once
    # Another key, no key, or another user's same key: new nodes.
    assert_success(owner_api.post(CLIENTS, register_body(), headers={"Idempotency-Key": "agent-other"}), 201)
    assert_success(owner_api.post(CLIENTS, register_body()), 201)
    assert_success(owner_api.post(CLIENTS, register_body()), 201)
    from accounts.tests.fixtures import UserFactory

    stranger = UserFactory(roles=["admin"])
    assert_success(api_for(stranger).post(CLIENTS, register_body(), headers={"Idempotency-Key": "agent-7f3a"}), 201)
    assert Node.objects.count() == 5


@pytest.mark.parametrize("key", ["x" * 101, "line\nbreak"])
def test_a_malformed_idempotency_key_is_refused_and_nothing_is_registered(owner_api, key):
    body = assert_error(owner_api.post(CLIENTS, register_body(), headers={"Idempotency-Key": key}), 400,
                        "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "Idempotency-Key"
    assert not Node.objects.exists()


def test_two_registrations_racing_with_one_key_make_one_node(owner, monkeypatch):
    from nodes import services
    from nodes.models import Node as NodeModel

    first, created = services.node_register_once(user=owner, name="a", registration_key="k1")
    assert created
    # The second request checked before the first had stored its node: the database's constraint
    # turns its insert away and it answers with the first node.
    real_filter = NodeModel.objects.filter
    calls = []

    def filter_missing_once(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            return NodeModel.objects.none()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(NodeModel.objects, "filter", filter_missing_once)
    second, created = services.node_register_once(user=owner, name="b", registration_key="k1")
    assert not created and second.pk == first.pk and len(calls) == 2
    monkeypatch.undo()
    assert NodeModel.objects.filter(registration_key="k1").count() == 1
