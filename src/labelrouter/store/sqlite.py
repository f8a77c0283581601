"""SQLite store (the embedded default), with versioned schema migrations.

Migrations are the numbered `migrations/NNNN_*.sql` files, applied in order, each in its own
`BEGIN IMMEDIATE` transaction that re-reads the schema version first, so several processes opening a
fresh store at once apply each migration exactly once. A database newer than this code is refused.

Every statement runs through `_guard`: a damaged file, a dropped table or a busy database is a
`StoreError` naming the file and what to do, never a traceback. The file is created readable by its
owner only (it holds subjects, senders and decisions).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labelrouter.errors import StoreError
from labelrouter.store.records import utcnow
from labelrouter.store.sql import SQLStore, migrations, statements
from labelrouter.util.files import private_dir

_TABLES = ("processed_messages", "examples", "example_vectors", "schema_migrations")


def create_private_file(path: Path) -> None:
    """Create `path` (and a missing parent directory) readable by its owner only; tighten an existing one."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for item in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(item.stat().st_mode) & 0o077:
                item.chmod(0o600)


class SQLiteStore(SQLStore):
    def __init__(self, path: Path | str, *, store_text: bool = True):
        self.path = Path(path) if str(path) != ":memory:" else path
        self.store_text = store_text
        self._lock = threading.Lock()
        try:
            if isinstance(self.path, Path):
                create_private_file(self.path)
            # The labeler runs the graph in worker threads; one connection guarded by a lock serves them all.
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                         timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout=30000")  # before WAL: switching needs the lock
            self._conn.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from None
        self.migrate()
        self._check_tables()

    # -- errors --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[sqlite3.Connection]:
        """Hold the connection lock; turn every SQLite failure into one actionable StoreError."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise self._error(doing, exc) from None

    def _error(self, doing: str, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreError(f"store {self.path} is busy ({doing}: {text}); another process holds it, try again")
        return StoreError(
            f"store {self.path} is damaged ({doing}: {text}); restore it from a backup, or move it aside "
            f"and run again to start a fresh store (its decision history is then lost)"
        )

    def _check_tables(self) -> None:
        with self._guard("checking tables") as conn:
            present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _TABLES if t not in present]
        if missing:
            raise StoreError(
                f"store {self.path} is damaged (table {', '.join(missing)} missing); restore it from a backup, or "
                f"move it aside and run again to start a fresh store"
            )

    # -- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._guard("reading the schema version") as conn:
            return self._version(conn)

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> list[str]:
        known = migrations()
        applied = []
        for version, name, sql in known:
            with self._guard(f"migration {name}") as conn:
                conn.execute("BEGIN IMMEDIATE")  # the version is read under the write lock
                current = self._version(conn)
                if known and current > known[-1][0]:
                    conn.execute("ROLLBACK")
                    raise StoreError(
                        f"store {self.path} has schema version {current}, newer than this labelrouter knows "
                        f"({known[-1][0]}); upgrade labelrouter"
                    )
                if version <= current:
                    conn.execute("COMMIT")
                    continue
                for statement in statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                             (version, name, utcnow()))
                conn.execute("COMMIT")
            applied.append(name)
        return applied

    # -- primitives (statements themselves: store/sql.py) ------------------------------------
    def _query(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._guard(doing) as conn:
            return [dict(r) for r in conn.execute(sql, params)]

    def _execute(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._guard(doing) as conn:
            return conn.execute(sql, params).rowcount

    def _transaction(self, doing: str, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> list[int]:
        counts = []
        with self._guard(doing) as conn:
            conn.execute("BEGIN")
            for sql, param_rows in statements:
                counts.append(conn.executemany(sql, param_rows).rowcount)
            conn.execute("COMMIT")
        return counts

    def close(self) -> None:
        with self._lock:
            self._conn.close()
