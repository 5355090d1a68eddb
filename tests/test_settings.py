"""The two runtimes: embedded defaults with no variables, production rules when asked for."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, env_extra=None, tmp_path=None):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "POLLEN_ENV",
                        "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}}
    env["POLLEN_VAR_DIR"] = str(tmp_path)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _manage("check", env_extra={"POLLEN_ENV": "production", "ALLOWED_HOSTS": "pollen.example.com"},
                     tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env_extra={"POLLEN_ENV": "production", "SECRET_KEY": "x" * 20 + "-Production-Secret-Key-With-Entropy-0123456789",
                   "ALLOWED_HOSTS": "pollen.example.com"},
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_keeps_debug_off_even_when_asked(tmp_path):
    result = _manage(
        "shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG, settings.SESSION_COOKIE_SECURE)",
        env_extra={"POLLEN_ENV": "production", "DEBUG": "true", "SECRET_KEY": "k" * 60 + "ABCDEFGH",
                   "ALLOWED_HOSTS": "pollen.example.com"},
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG False True" in result.stdout


def test_embedded_defaults_need_no_variables(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    result = _manage("shell", "-c", code, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == [
        "django.db.backends.sqlite3", "django.core.cache.backends.locmem.LocMemCache",
        "channels.layers.InMemoryChannelLayer", "filesystem://", "False",
    ]
    # A secret key was generated once and kept for the installation.
    assert (tmp_path / ".secret_key").exists()


def test_service_urls_switch_to_postgres_and_redis(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL)"
    )
    result = _manage("shell", "-c", code, tmp_path=tmp_path, env_extra={
        "DATABASE_URL": "postgres://u@db.invalid:5432/pollen", "REDIS_URL": "redis://cache.invalid:6379/0",
        "CELERY_BROKER_URL": "redis://cache.invalid:6379/2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-4:] == [
        "django.db.backends.postgresql", "core.cache.SharedPoolRedisCache",
        "channels_redis.core.RedisChannelLayer", "redis://cache.invalid:6379/2",
    ]
