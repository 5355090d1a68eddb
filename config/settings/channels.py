from config.env import env

_redis_url = env.str("REDIS_URL", default="")

# One channel layer for live events: Redis when configured, in-process otherwise. The database
# stays the source of truth, so a broken layer loses live messages, never data.
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_url], "capacity": 1500, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# With the in-memory layer, events written by another process (the Celery worker running a
# training) never reach this process's sockets; consumers then also read new stored events this
# often. With Redis the layer carries them and polling is off.
EVENT_POLL_SECONDS = env.float("EVENT_POLL_SECONDS", default=0.0 if _redis_url else 1.0)
