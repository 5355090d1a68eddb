"""The one place settings read the environment.

With no variables at all Pollen runs on its embedded defaults (SQLite, local-memory cache,
in-memory channel layer, a filesystem Celery broker). ``POLLEN_ENV=production`` turns on the
production rules: a secret key must be given, DEBUG stays off, cookies and HSTS are strict.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env") if (BASE_DIR / ".env").exists() else None

POLLEN_ENV = env.str("POLLEN_ENV", default="development")
if POLLEN_ENV not in {"development", "production", "test"}:
    raise environ.ImproperlyConfigured(
        f"POLLEN_ENV must be development, production or test, not {POLLEN_ENV!r}"
    )
IS_PRODUCTION = POLLEN_ENV == "production"

# Everything the embedded runtime writes (SQLite file, uploads, broker folders) lives here.
VAR_DIR = Path(env.str("POLLEN_VAR_DIR", default=str(BASE_DIR / "var")))
