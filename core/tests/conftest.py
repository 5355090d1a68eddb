import pytest
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings

from accounts.tests.fixtures import *  # noqa: F401,F403


@pytest.fixture
def fresh_channel_layer():
    """A new instance of the configured channel layer for this test.

    Each test runs its scenario in its own event loop. channels_redis keeps asyncio locks on the
    layer instance (one receive lock shared by every consumer of the process); a lock left bound to
    a finished test's loop breaks the next test. Production has one loop per process.
    """
    alias = "default"
    assert alias in settings.CHANNEL_LAYERS
    channel_layers.backends.pop(alias, None)
    yield get_channel_layer(alias)
    channel_layers.backends.pop(alias, None)
