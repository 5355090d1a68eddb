import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from nodes.choices import NodeStatus
from nodes.models import Cluster, Node, NodeDataset, NodeMetric, Zone


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone

    name = factory.Sequence(lambda n: f"Zone {n}")
    code = factory.Sequence(lambda n: f"zone-{n}")
    region = "eu-west"


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"Cluster {n}")
    zone = factory.SubFactory(ZoneFactory)


class NodeFactory(factory.django.DjangoModelFactory):
    """A node as a heartbeat leaves it: connected, seen just now."""

    class Meta:
        model = Node

    name = factory.Sequence(lambda n: f"node-{n}")
    host = factory.Sequence(lambda n: f"10.0.0.{n % 250 + 1}")
    status = NodeStatus.CONNECTED
    capability = factory.LazyFunction(lambda: {"compute": "cpu", "memory_gb": 8, "bandwidth_mbps": 100, "gpu": False})
    location = factory.LazyFunction(lambda: {"name": "Paris", "code": "par", "lat": 48.85, "lon": 2.35})
    region = "eu-west"
    registered_by = factory.SubFactory(UserFactory)
    last_seen = factory.LazyFunction(timezone.now)
    stale_at = factory.LazyAttribute(lambda o: o.last_seen + timezone.timedelta(seconds=60) if o.last_seen else None)


class NodeDatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodeDataset

    node = factory.SubFactory(NodeFactory)
    name = factory.Sequence(lambda n: f"partition-{n}")
    rows = 1000
    features = 30
    classes = 2


class NodeMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodeMetric

    node = factory.SubFactory(NodeFactory)
    timestamp = factory.LazyFunction(timezone.now)
    cpu_percent = 40.0
    memory_percent = 60.0
    disk_percent = 20.0
    network_bytes_sent = 1000
    network_bytes_recv = 2000
    rounds_completed = 1
    updates_sent = 1
    avg_training_seconds = 12.5
