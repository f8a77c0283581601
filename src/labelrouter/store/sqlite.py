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
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from labelrouter.errors import StoreError
from labelrouter.fsutil import private_dir
from labelrouter.state import ApplyResult, LabelingState
from labelrouter.store.records import failed_row, labeled_row, utcnow

_TABLES = ("processed_messages", "examples", "schema_migrations")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("labelrouter.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def create_private_file(path: Path) -> None:
    """Create `path` (and a missing parent directory) readable by its owner only; tighten an existing one."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for item in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(item.stat().st_mode) & 0o077:
                item.chmod(0o600)


class SQLiteStore:
    def __init__(self, path: Path | str, *, store_text: bool = True):
        self.path = Path(path) if str(path) != ":memory:" else path
        self.store_text = store_text
        self._lock = threading.Lock()
        try:
            if isinstance(self.path, Path):
                create_private_file(self.path)
            # graph.batch runs nodes in worker threads; one connection guarded by a lock serves them all.
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
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                             (version, name, utcnow()))
                conn.execute("COMMIT")
            applied.append(name)
        return applied

    # -- writes --------------------------------------------------------------------------------
    def _upsert(self, row: dict[str, Any], *, over: tuple[str, ...]) -> bool:
        """Insert the row, or update an existing one whose status is in `over`; True if written."""
        columns = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "message_id")
        allowed = ", ".join(f"'{s}'" for s in over)
        sql = (
            f"INSERT INTO processed_messages ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (message_id) DO UPDATE SET {updates}, attempts = processed_messages.attempts + 1 "
            f"WHERE processed_messages.status IN ({allowed})"
        )
        with self._guard("recording a decision") as conn:
            cursor = conn.execute(sql, [row[c] for c in columns])
        return cursor.rowcount > 0

    def record_labeled(self, state: LabelingState) -> bool:
        """Persist a finished decision. A message already recorded as labeled is never overwritten."""
        return self._upsert(labeled_row(state, store_text=self.store_text), over=("failed",))

    def record_intent(self, state: LabelingState, label_id: str) -> bool:
        """Before the mailbox changes: record the decision as 'applying'. False when the message already has
        a labeled or applying row (another run owns it): then the mailbox must not be touched."""
        row = labeled_row(state, status="applying", intent_label_id=label_id, store_text=self.store_text)
        return self._upsert(row, over=("failed",))

    def complete(self, message_id: str, applied: ApplyResult) -> bool:
        """After the mailbox changed: the 'applying' row becomes 'labeled' with what the mailbox now carries."""
        sql = ("UPDATE processed_messages SET status = 'labeled', error = NULL, label_applied = ?, "
               "label_ids_after = ?, archived = ? WHERE message_id = ? AND status = 'applying'")
        with self._guard("completing a decision") as conn:
            cursor = conn.execute(sql, (applied.label, json.dumps(applied.label_ids_after, ensure_ascii=False),
                                        int(applied.archive), message_id))
        return cursor.rowcount > 0

    def abandon_intent(self, message_id: str, error: str) -> bool:
        """An intent that can never complete (the message is gone): recorded as failed, with why."""
        with self._guard("abandoning a decision") as conn:
            cursor = conn.execute("UPDATE processed_messages SET status = 'failed', error = ? "
                                  "WHERE message_id = ? AND status = 'applying'", (error[:2000], message_id))
        return cursor.rowcount > 0

    def pending_intents(self) -> list[dict[str, Any]]:
        """Decisions recorded as 'applying' whose mailbox change was never confirmed (a crash, an error)."""
        return self.rows("applying")

    def record_failed(self, message_id: str, error: str, state: LabelingState | None = None) -> bool:
        """Record a failure. A labeled row stays labeled; an 'applying' row keeps its intent (the next run
        repairs it) and only notes the error."""
        row = failed_row(state, message_id, error)
        if self._upsert(row, over=("failed",)):
            return True
        with self._guard("recording a failure") as conn:
            conn.execute("UPDATE processed_messages SET error = ?, attempts = attempts + 1 "
                         "WHERE message_id = ? AND status = 'applying'", (row["error"], message_id))
        return False

    def add_examples(self, rows: list[dict[str, Any]]) -> int:
        """Insert examples in one transaction (all or nothing); an example id already stored is replaced."""
        if not rows:
            return 0
        columns = list(rows[0])
        sql = (f"INSERT OR REPLACE INTO examples ({', '.join(columns)}, seq) VALUES "
               f"({', '.join('?' * len(columns))}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM examples))")
        with self._guard("storing examples") as conn:
            conn.execute("BEGIN")
            conn.executemany(sql, [[row[c] for c in columns] for row in rows])
            conn.execute("COMMIT")
        return len(rows)

    def examples(self, encoder_version: str) -> list[dict[str, Any]]:
        """Examples embedded by this encoder, oldest first."""
        sql = "SELECT * FROM examples WHERE encoder_version = ? ORDER BY occurred_at IS NULL, occurred_at, seq"
        with self._guard("reading examples") as conn:
            return [dict(r) for r in conn.execute(sql, (encoder_version,))]

    def relabel(self, old: str, new: str) -> dict[str, int]:
        """A renamed or merged label: examples and decisions that name `old` name `new` (one transaction)."""
        statements = {
            "examples": "UPDATE examples SET label = ? WHERE label = ?",
            "examples_rejected": "UPDATE examples SET rejected_label = ? WHERE rejected_label = ?",
            "decisions": "UPDATE processed_messages SET label_applied = ? WHERE label_applied = ?",
            "top_labels": "UPDATE processed_messages SET top_label = ? WHERE top_label = ?",
        }
        counts = {}
        with self._guard(f"relabeling {old!r} → {new!r}") as conn:
            conn.execute("BEGIN")
            for name, sql in statements.items():
                counts[name] = conn.execute(sql, (new, old)).rowcount
            conn.execute("COMMIT")
        return counts

    # -- reads ---------------------------------------------------------------------------------
    def labeled_ids(self) -> set[str]:
        """Messages with a decision: labeled, or applying (a repair finishes those before labeling)."""
        with self._guard("reading labeled messages") as conn:
            rows = conn.execute("SELECT message_id FROM processed_messages WHERE status IN ('labeled', 'applying')")
            return {str(row[0]) for row in rows}

    def get(self, message_id: str) -> dict[str, Any] | None:
        with self._guard("reading a decision") as conn:
            row = conn.execute("SELECT * FROM processed_messages WHERE message_id = ?", (message_id,)).fetchone()
        return dict(row) if row else None

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM processed_messages" + (" WHERE status = ?" if status else "") + " ORDER BY processed_at"
        with self._guard("reading decisions") as conn:
            return [dict(r) for r in conn.execute(sql, (status,) if status else ())]

    def counts(self) -> dict[str, int]:
        with self._guard("counting decisions") as conn:
            return {r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM processed_messages GROUP BY status")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _statements(sql: str) -> Iterable[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
