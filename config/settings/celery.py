from celery.schedules import crontab

from config.env import VAR_DIR, env

_redis_url = env.str("REDIS_URL", default="")
_broker_dir = VAR_DIR / "celery-broker"

# Embedded default: a filesystem broker, so the run command's worker and beat need no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_redis_url or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "accounts-flush-expired-tokens": {
        "task": "accounts.tasks.tokens_flush_expired",
        "schedule": crontab(minute=17, hour="*/6"),
    },
    "training-reap-executions": {
        "task": "training.tasks.executions_reap",
        "schedule": 30.0,
    },
    "nodes-mark-offline": {
        "task": "nodes.tasks.nodes_mark_offline",
        "schedule": 15.0,
    },
    "core-prune-events": {
        "task": "core.tasks.events_prune",
        "schedule": crontab(minute=42, hour=3),
    },
}
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=30)
NODE_METRICS_RETENTION_DAYS = env.int("NODE_METRICS_RETENTION_DAYS", default=7)
