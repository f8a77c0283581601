"""SQLite-only store behaviour: a damaged file, file permissions. Everything both backends share is in
tests/store/test_store_contract.py."""

from pathlib import Path

import pytest

from labelrouter.errors import StoreError
from labelrouter.store import SQLiteStore
from tests.store.test_store_contract import _state


def test_a_damaged_store_is_one_actionable_error(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    for i in range(200):
        store.record_failed(f"m{i}", "x" * 500)
    store.close()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[4096 * 2: 4096 * 4] = b"\xde\xad" * 4096  # scribble over table pages
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is damaged .*restore it from a backup"):
        s = SQLiteStore(path)
        s.rows()
    garbage = tmp_path / "not.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not.sqlite3"):
        SQLiteStore(garbage)


def test_the_store_is_readable_by_its_owner_only(tmp_path: Path):
    store = SQLiteStore(tmp_path / "home" / "s.sqlite3")
    store.record_labeled(_state())
    for item in (tmp_path / "home").iterdir():
        assert item.stat().st_mode & 0o077 == 0, item
    assert (tmp_path / "home").stat().st_mode & 0o077 == 0
    loose = tmp_path / "old.sqlite3"  # a store made by an earlier version, world-readable
    SQLiteStore(loose).close()
    loose.chmod(0o644)
    SQLiteStore(loose).close()
    assert loose.stat().st_mode & 0o077 == 0
