"""SQLite store (the embedded default), with versioned schema migrations.

Migrations are the numbered `migrations/NNNN_*.sql` files, applied in order, each in its own
transaction and recorded in `schema_migrations`; a database newer than this code is refused.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from labelrouter.errors import StoreError
from labelrouter.state import LabelingState
from labelrouter.store.records import failed_row, labeled_row, utcnow


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("labelrouter.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class SQLiteStore:
    def __init__(self, path: Path | str):
        self.path = Path(path) if str(path) != ":memory:" else path
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # graph.batch runs nodes in worker threads; one connection guarded by a lock serves them all.
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from None
        self._lock = threading.Lock()
        self.migrate()

    # -- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
            row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> list[str]:
        current = self.schema_version()
        known = migrations()
        if known and current > known[-1][0]:
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this labelrouter knows "
                f"({known[-1][0]}); upgrade labelrouter"
            )
        applied = []
        for version, name, sql in known:
            if version <= current:
                continue
            with self._lock:
                try:
                    self._conn.execute("BEGIN")
                    for statement in _statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (version, name, utcnow()),
                    )
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"migration {name} failed on {self.path}: {exc}") from None
            applied.append(name)
        return applied

    # -- writes --------------------------------------------------------------------------------
    def _upsert(self, row: dict[str, Any], *, only_over_failed: bool) -> bool:
        columns = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "message_id")
        sql = (
            f"INSERT INTO processed_messages ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (message_id) DO UPDATE SET {updates}, attempts = processed_messages.attempts + 1"
            + (" WHERE processed_messages.status = 'failed'" if only_over_failed else "")
        )
        with self._lock:
            cursor = self._conn.execute(sql, [row[c] for c in columns])
        return cursor.rowcount > 0

    def record_labeled(self, state: LabelingState) -> bool:
        """Persist a decision. A message already recorded as labeled is never overwritten (returns False)."""
        return self._upsert(labeled_row(state), only_over_failed=True)

    def record_failed(self, message_id: str, error: str, state: LabelingState | None = None) -> bool:
        """Record a failure; a labeled row stays labeled (a later failure must not erase a decision)."""
        return self._upsert(failed_row(state, message_id, error), only_over_failed=True)

    def add_examples(self, rows: list[dict[str, Any]]) -> int:
        """Insert examples in one transaction (all or nothing); an example id already stored is replaced."""
        if not rows:
            return 0
        columns = list(rows[0])
        sql = (f"INSERT OR REPLACE INTO examples ({', '.join(columns)}, seq) VALUES "
               f"({', '.join('?' * len(columns))}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM examples))")
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(sql, [[row[c] for c in columns] for row in rows])
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"could not store examples: {exc}") from None
        return len(rows)

    def examples(self, encoder_version: str) -> list[dict[str, Any]]:
        """Examples embedded by this encoder, oldest first."""
        sql = "SELECT * FROM examples WHERE encoder_version = ? ORDER BY occurred_at IS NULL, occurred_at, seq"
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, (encoder_version,))]

    def relabel(self, old: str, new: str) -> dict[str, int]:
        """A renamed or merged label: examples and decisions that name `old` name `new` (one transaction)."""
        statements = {
            "examples": "UPDATE examples SET label = ? WHERE label = ?",
            "examples_rejected": "UPDATE examples SET rejected_label = ? WHERE rejected_label = ?",
            "decisions": "UPDATE processed_messages SET label_applied = ? WHERE label_applied = ?",
            "top_labels": "UPDATE processed_messages SET top_label = ? WHERE top_label = ?",
        }
        counts = {}
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                for name, sql in statements.items():
                    counts[name] = self._conn.execute(sql, (new, old)).rowcount
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"could not relabel {old!r} → {new!r}: {exc}") from None
        return counts

    # -- reads ---------------------------------------------------------------------------------
    def labeled_ids(self) -> set[str]:
        with self._lock:
            rows = self._conn.execute("SELECT message_id FROM processed_messages WHERE status = 'labeled'")
            return {row[0] for row in rows}

    def get(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM processed_messages WHERE message_id = ?", (message_id,)).fetchone()
        return dict(row) if row else None

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM processed_messages" + (" WHERE status = ?" if status else "") + " ORDER BY processed_at"
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, (status,) if status else ())]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: r[1] for r in self._conn.execute("SELECT status, COUNT(*) FROM processed_messages GROUP BY status")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _statements(sql: str) -> Iterable[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
