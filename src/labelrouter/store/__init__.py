"""Persistence of processed messages and training examples: SQLite (default) or PostgreSQL.

`open_store(settings)` is the one place a concrete store is built, chosen by `LABELROUTER_DATABASE_URL`:
unset → the SQLite file `<home>/labelrouter.sqlite3` (or `LABELROUTER_DB_PATH`); a path or `sqlite:///path`
→ SQLite there; `postgresql://…` (or `postgres://…`) → PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelrouter.errors import ConfigError
from labelrouter.store.base import Store
from labelrouter.store.records import decode_embedding
from labelrouter.store.sql import migrations
from labelrouter.store.sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" in url:
        raise ConfigError(f"unsupported database URL scheme in {redact(url)!r}: use a file path, sqlite:///PATH "
                          "or postgresql://USER@HOST:PORT/DB")
    return Path(url)


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"


def open_store(settings: Any, *, create: bool = True) -> Store | None:
    """The store the settings name. With `create=False` a SQLite file that does not exist yet gives None
    (nothing is created); a PostgreSQL database is always opened (and migrated)."""
    url = settings.database_url
    if url and url.startswith(POSTGRES_SCHEMES):
        from labelrouter.store.postgres import PostgresStore

        return PostgresStore(url, schema=settings.database_schema, store_text=settings.store_text)
    path = sqlite_path(url) if url else settings.resolved_db_path
    if not create and not path.exists():
        return None
    return SQLiteStore(path, store_text=settings.store_text)


__all__ = ["SQLiteStore", "Store", "decode_embedding", "migrations", "open_store", "redact"]
