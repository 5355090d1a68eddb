"""Fixtures of the training suites: the shared API helpers plus a project and its owner."""

import pytest

from accounts.tests.fixtures import *  # noqa: F401,F403
from accounts.tests.factories import UserFactory
from projects.tests.factories import ProjectFactory


@pytest.fixture
def owner(db):
    return UserFactory(roles=["user"])


@pytest.fixture
def project(owner):
    # No configuration: the factory's default names a model the engine may not have.
    return ProjectFactory(owner=owner, configuration={})


@pytest.fixture
def owner_api(api_for, owner):
    return api_for(owner)
