"""The test suite's settings: the same platform, with work run eagerly and limits raised.

Services still come from the environment, so the same suite runs on SQLite and in-memory layers
(no variables) and on PostgreSQL and Redis (DATABASE_URL, REDIS_URL).
"""

from config.settings import *  # noqa: F401,F403
from config.settings import REST_FRAMEWORK, VAR_DIR

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"
# Throttling has its own tests, which lower these; everything else must not trip over them.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"auth": "10000/min", "general": "10000/min", "upload": "10000/min",
                               "training": "10000/min"},
}
THROTTLE_RATES = REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

# The in-memory test database is shared between threads under a table lock; the heartbeat thread
# has its own test (training/tests) and otherwise stays quiet.
TRAINING_HEARTBEAT_SECONDS = 3600
# The device protocol's per-device limits (seed 002), raised like the others; its own tests lower them.
DEVICE_THROTTLE_RATES = {"device_models": "10000/min", "device_updates": "10000/min", "device_rounds": "10000/min"}
NODE_HEARTBEAT_THROTTLE_RATES = {"node_heartbeat": "10000/min", "heartbeat_fleet": "10000/min"}
DEVICE_ROUND_POLL_SECONDS = 0.05
