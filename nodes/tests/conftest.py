"""Fixtures of the nodes suites: the shared API helpers plus a user, their project and their node."""

import pytest

from accounts.tests.factories import UserFactory
from accounts.tests.fixtures import *  # noqa: F401,F403
from nodes.tests.factories import NodeFactory
from projects.tests.factories import ProjectFactory


@pytest.fixture
def owner(db):
    return UserFactory(roles=["user"])


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, configuration={})


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)


@pytest.fixture
def node(owner, project):
    return NodeFactory(registered_by=owner, project=project)


@pytest.fixture
def fresh_channel_layer():
    """A new channel layer instance for this test (its locks bind to this test's event loop)."""
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.pop("default", None)
    yield get_channel_layer("default")
    channel_layers.backends.pop("default", None)
