import secrets
from pathlib import Path
from datetime import timedelta

from config.env import BASE_DIR, IS_PRODUCTION, POLLEN_ENV, VAR_DIR, env

VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if IS_PRODUCTION:
        raise env.ImproperlyConfigured("SECRET_KEY must be set when POLLEN_ENV=production")
    # Embedded default: one random key per installation, kept so sessions survive restarts.
    path = VAR_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# DEBUG is off unless asked for, even in development: hostile input must never see a traceback.
DEBUG = False if IS_PRODUCTION else env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise env.ImproperlyConfigured("ALLOWED_HOSTS must be set when POLLEN_ENV=production")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "csp",
    "channels",
    "core",
    "accounts",
    "projects",
    "training",
    "nodes",
    "budgets",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Innermost and sync-only on purpose: every middleware outside it then runs synchronously, so
    # under ASGI a request crosses between the event loop and a worker thread once, not at each layer.
    "core.middleware.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'pollen.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in its own context, so Django's persistent connections are never
    # reused (they pile up until PostgreSQL refuses clients). psycopg's pool hands each request a warm
    # connection instead; CONN_MAX_AGE must then stay 0.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=10),
        "timeout": env.int("DB_POOL_TIMEOUT", default=10),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the worker share one SQLite file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Uploaded archives above this stay on disk while they are validated, never in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "pollen",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pollen"}}

# ---- REST API --------------------------------------------------------------------------------
THROTTLE_RATES = {
    "auth": env.str("THROTTLE_AUTH", default="5/min"),
    "general": env.str("THROTTLE_GENERAL", default="100/min"),
    "upload": env.str("THROTTLE_UPLOAD", default="10/min"),
    "training": env.str("THROTTLE_TRAINING", default="20/min"),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "nodes.protocol.auth.DeviceTokenAuthentication",
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "core.api.renderers.EnvelopeJSONRenderer",
        "core.api.renderers.VendorEnvelopeJSONRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.PageLimitPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttles.GeneralRateThrottle"],
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_VERSIONING_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pollen API",
    "DESCRIPTION": "Federated-learning operations: projects, Flower apps, training, nodes, budgets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProjectStatusEnum": "projects.choices.ProjectStatus",
        "UploadStatusEnum": "projects.choices.UploadStatus",
        "DatasetTaskEnum": "projects.choices.DatasetTask",
        "ColumnTypeEnum": "projects.choices.ColumnType",
        "ExecutionStatusEnum": "training.choices.ExecutionStatus",
        "NodeStatusEnum": "nodes.choices.NodeStatus",
        "NodeTypeEnum": "nodes.choices.NodeType",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.envelope_postprocessing_hook",
    ],
}

ACCESS_TOKEN_MINUTES = env.int("ACCESS_TOKEN_MINUTES", default=15)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("REFRESH_TOKEN_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "type",
}

# Login lock-out: failures counted per account and per client address.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_ADDRESS_MAX_FAILURES = env.int("LOGIN_ADDRESS_MAX_FAILURES", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)

# Flower-app archives (seed 000 upload). Validated as untrusted input before anything is stored.
UPLOAD_MAX_ARCHIVE_BYTES = env.int("UPLOAD_MAX_ARCHIVE_BYTES", default=20 * 1024 * 1024)
UPLOAD_MAX_UNPACKED_BYTES = env.int("UPLOAD_MAX_UNPACKED_BYTES", default=100 * 1024 * 1024)
UPLOAD_MAX_FILES = env.int("UPLOAD_MAX_FILES", default=500)
UPLOAD_MAX_COMPRESSION_RATIO = env.int("UPLOAD_MAX_COMPRESSION_RATIO", default=100)
# CSV data sets uploaded to a project (validated before anything is stored).
PROJECT_DATASET_MAX_BYTES = env.int("PROJECT_DATASET_MAX_BYTES", default=50 * 1024 * 1024)
PROJECT_DATASET_MAX_ROWS = env.int("PROJECT_DATASET_MAX_ROWS", default=1_000_000)
PROJECT_DATASET_MAX_COLUMNS = env.int("PROJECT_DATASET_MAX_COLUMNS", default=1_000)

# Services whose failure makes /health answer 503.
HEALTH_REQUIRED_SERVICES = env.list("HEALTH_REQUIRED_SERVICES", default=["database", "cache", "storage"])
# Training: a running execution's worker stamps a heartbeat this often; a run silent for longer
# than the timeout is failed by the reaper (and can be resumed from its last checkpoint).
TRAINING_HEARTBEAT_SECONDS = env.int("TRAINING_HEARTBEAT_SECONDS", default=5)
TRAINING_HEARTBEAT_TIMEOUT_SECONDS = env.int("TRAINING_HEARTBEAT_TIMEOUT_SECONDS", default=60)
# Uploaded Flower apps run in a child process under these limits.
TRAINING_UPLOADED_APP_MEMORY_MB = env.int("TRAINING_UPLOADED_APP_MEMORY_MB", default=8192)
TRAINING_UPLOADED_APP_CPU_SECONDS = env.int("TRAINING_UPLOADED_APP_CPU_SECONDS", default=3600)
TRAINING_UPLOADED_APP_TIMEOUT_SECONDS = env.int("TRAINING_UPLOADED_APP_TIMEOUT_SECONDS", default=3600)
# Deployed federation (executions with transport "deployed"): the SuperLink whose Control API
# takes the runs, how to reach it, and how its ServerApp reaches Pollen back. The callback secret
# is shared with the SuperLink host only (it signs the round reports); by default it is derived
# from SECRET_KEY. `manage.py flower_federation` starts a local SuperLink and SuperNodes with these.
FLOWER_SUPERLINK_ADDRESS = env.str("FLOWER_SUPERLINK_ADDRESS", default="127.0.0.1:9093")
FLOWER_INSECURE = env.bool("FLOWER_INSECURE", default=True)
FLOWER_ROOT_CERTIFICATES = env.str("FLOWER_ROOT_CERTIFICATES", default="")
FLOWER_FEDERATION = env.str("FLOWER_FEDERATION", default="")
FLOWER_CALLBACK_URL = env.str("FLOWER_CALLBACK_URL", default="http://127.0.0.1:8000")
FLOWER_CALLBACK_SECRET = env.str("FLOWER_CALLBACK_SECRET", default="")
FLOWER_POLL_SECONDS = env.float("FLOWER_POLL_SECONDS", default=1.0)
FLOWER_CALLBACK_MAX_BYTES = env.int("FLOWER_CALLBACK_MAX_BYTES", default=256 * 1024 * 1024)
FLOWER_RUN_TIMEOUT_SECONDS = env.int("FLOWER_RUN_TIMEOUT_SECONDS", default=6 * 3600)
# While a deployed round waits for replies, the ServerApp pulls them every FLOWER_REPLY_POLL_SECONDS
# (Flower's own pace) and asks Pollen every FLOWER_LIVENESS_SECONDS which of the nodes it waits for
# the registry knows to be offline, so it stops waiting for those.
FLOWER_REPLY_POLL_SECONDS = env.float("FLOWER_REPLY_POLL_SECONDS", default=3.0)
FLOWER_LIVENESS_SECONDS = env.float("FLOWER_LIVENESS_SECONDS", default=5.0)
POLLEN_VERSION = "0.1.0"
POLLEN_ENVIRONMENT = POLLEN_ENV
