from accounts.tests.fixtures import *  # noqa: F401,F403
