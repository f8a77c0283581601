"""PostgreSQL store through psycopg 3 (e.g. Supabase's Postgres, by its direct connection URL).

The same statements as SQLite (`store/sql.py`), the same migration versions in PostgreSQL's dialect
(`migrations/postgres/NNNN_*.sql`). Migrations run under a transaction-scoped advisory lock and re-read
the schema version, so several processes may open a fresh database at once. `schema` puts the tables in a
schema of their own (created if missing), as the tests do per run. One connection, guarded by a lock,
serves the graph's worker threads; every failure is a `StoreError` naming the database without its
password.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from labelrouter.errors import StoreError
from labelrouter.store.records import utcnow
from labelrouter.store.sql import SQLStore, migrations, statements

_MIGRATION_LOCK = 0x6C72_0001  # pg_advisory_xact_lock key: "lr" + 1
_TABLES = ("processed_messages", "examples", "example_vectors", "schema_migrations")


def _pg(sql: str) -> str:
    """The shared statements use `?`; psycopg wants `%s` (no statement of ours has a literal ? or %)."""
    return sql.replace("?", "%s")


class PostgresStore(SQLStore):
    def __init__(self, url: str, *, schema: str | None = None, store_text: bool = True, connect_timeout: int = 10):
        from labelrouter.store import redact

        self.where = redact(url) + (f" (schema {schema})" if schema else "")
        self.schema = schema
        self.store_text = store_text
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store {self.where}: "
                             f"{' '.join(str(exc).split())[:300]}") from None
        if schema:
            with self._guard("selecting the schema") as conn:
                # CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent create (two processes can
                # both pass the check and one fails on pg_namespace): take the migration lock for it.
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
                conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        self.migrate()
        self._check_tables()

    # -- errors --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            try:
                yield self._conn
            except psycopg.OperationalError as exc:
                raise StoreError(f"PostgreSQL store {self.where} is unreachable ({doing}: "
                                 f"{' '.join(str(exc).split())[:200]}); check that the server is up") from None
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL store {self.where} failed ({doing}: {' '.join(str(exc).split())[:200]}); if a "
                    "table was dropped or altered, restore the database from a backup"
                ) from None

    def _check_tables(self) -> None:
        rows = self._query("checking tables", "SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = current_schema()")
        missing = [t for t in _TABLES if t not in {r["table_name"] for r in rows}]
        if missing:
            raise StoreError(f"PostgreSQL store {self.where} is damaged (table {', '.join(missing)} missing); "
                             "restore it from a backup")

    # -- schema --------------------------------------------------------------------------------
    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        row = conn.execute("SELECT MAX(version) AS v FROM schema_migrations").fetchone()
        return int((row or {}).get("v") or 0)

    def schema_version(self) -> int:
        with self._guard("reading the schema version") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            return self._version(conn)

    def migrate(self) -> list[str]:
        known = migrations("postgres")
        applied = []
        for version, name, sql in known:
            with self._guard(f"migration {name}") as conn, conn.transaction():
                # Serialises migrating processes; released at the end of this transaction.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                current = self._version(conn)
                if known and current > known[-1][0]:
                    raise StoreError(
                        f"PostgreSQL store {self.where} has schema version {current}, newer than this labelrouter "
                        f"knows ({known[-1][0]}); upgrade labelrouter"
                    )
                if version <= current:
                    continue
                for statement in statements(sql):
                    conn.execute(statement)  # type: ignore[arg-type]
                conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                             (version, name, utcnow()))
            applied.append(name)
        return applied

    # -- primitives (statements themselves: store/sql.py) ------------------------------------
    def _query(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._guard(doing) as conn:
            return [_plain(r) for r in conn.execute(_pg(sql), params).fetchall()]  # type: ignore[arg-type]

    def _execute(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._guard(doing) as conn:
            return conn.execute(_pg(sql), params).rowcount  # type: ignore[arg-type]

    def _transaction(self, doing: str, statements_: list[tuple[str, list[tuple[Any, ...]]]]) -> list[int]:
        counts = []
        with self._guard(doing) as conn, conn.transaction(), conn.cursor() as cursor:
            for sql, param_rows in statements_:
                total = 0
                for params in param_rows:  # row by row: each INSERT must see the previous one's seq
                    cursor.execute(_pg(sql), params)  # type: ignore[arg-type]
                    total += max(cursor.rowcount, 0)
                counts.append(total)
        return counts

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """bytea comes back as bytes already; memoryview (older psycopg) is turned into bytes too."""
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()}
