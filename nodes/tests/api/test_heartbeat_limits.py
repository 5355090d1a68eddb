"""Heartbeats are rate limited per node and per caller, not against the caller's general limit:
a fleet of agents sharing one API key must not starve itself."""

import pytest

from accounts.tests.fixtures import assert_error, assert_success
from nodes.tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

NODES = "/api/v1/nodes"
CLIENTS = "/api/v1/fl/clients"


@pytest.fixture
def limits(settings):
    def apply(node="2/min", fleet="100/min", general="3/min"):
        settings.NODE_HEARTBEAT_THROTTLE_RATES = {"node_heartbeat": node, "heartbeat_fleet": fleet}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "general": general}}
        from rest_framework.settings import api_settings
        from rest_framework.throttling import SimpleRateThrottle

        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES

    yield apply
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def test_each_node_has_its_own_heartbeat_allowance_beyond_the_general_limit(owner_api, owner, project, limits):
    limits(node="2/min", fleet="100/min", general="3/min")
    nodes = [NodeFactory(registered_by=owner, project=project) for _ in range(3)]
    for node in nodes:  # six heartbeats from one caller whose general limit is three
        for path in (NODES, CLIENTS):
            response = owner_api.post(f"{path}/{node.pk}/heartbeat", {})
            assert_success(response)
    assert response["X-RateLimit-Limit"] == "2" and response["X-RateLimit-Remaining"] == "0"
    body = assert_error(owner_api.post(f"{NODES}/{str(nodes[0].pk).upper()}/heartbeat", {}), 429,
                        "RATE_LIMIT_EXCEEDED")  # the same node however its id is spelled
    assert body["error"]["details"]["retry_after"] > 0
    # The general limit was not spent by the heartbeats.
    listing = owner_api.get(NODES)
    assert_success(listing)
    assert listing["X-RateLimit-Limit"] == "3" and listing["X-RateLimit-Remaining"] == "2"


def test_a_caller_has_a_heartbeat_allowance_across_its_nodes(owner_api, owner, project, limits):
    limits(node="100/min", fleet="3/min", general="100/min")
    nodes = [NodeFactory(registered_by=owner, project=project) for _ in range(4)]
    for node in nodes[:3]:
        assert_success(owner_api.post(f"{NODES}/{node.pk}/heartbeat", {}))
    assert_error(owner_api.post(f"{NODES}/{nodes[3].pk}/heartbeat", {}), 429, "RATE_LIMIT_EXCEEDED")
