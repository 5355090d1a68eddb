"""The throwaway PostgreSQL database a benchmark runs its server against (none: SQLite)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql", "postgis")


def _postgres_admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(urlunsplit(("postgresql", *urlsplit(url)[1:])), autocommit=True) as conn:
        conn.execute(statement)


def prepare_database(admin_url: str | None, name: str) -> str | None:
    """A fresh database ``name`` beside ``admin_url``'s, as a DATABASE_URL (None: SQLite)."""
    if not admin_url:
        return None
    if not is_postgres(admin_url):
        raise SystemExit(f"Only PostgreSQL URLs (or none, for SQLite) are supported, not {urlsplit(admin_url).scheme}")
    _postgres_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _postgres_admin(admin_url, f'CREATE DATABASE "{name}"')
    return with_dbname(admin_url, name)


def drop_database(admin_url: str | None, name: str) -> None:
    """Drop ``name`` (after closing this process's Django connections to it, if any)."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # Django not set up in this process
        pass
    if admin_url and is_postgres(admin_url):
        _postgres_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
