"""Persistence of processed messages (SQLite by default)."""

from labelrouter.store.records import decode_embedding
from labelrouter.store.sqlite import SQLiteStore, migrations

__all__ = ["SQLiteStore", "decode_embedding", "migrations"]
