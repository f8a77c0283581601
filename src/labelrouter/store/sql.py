"""What both SQL backends do, written once: every statement of the Store protocol.

Statements use `?` placeholders and SQL that SQLite (3.24+) and PostgreSQL both accept (`ON CONFLICT …
DO UPDATE … WHERE`). A backend supplies four primitives: `_query` (rows as dicts), `_execute` (row count),
`_transaction` (several statements, all or nothing) and its own connection, migrations and errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from labelrouter.state import ApplyResult, LabelingState, Routing
from labelrouter.store.records import decision_columns, failed_row, labeled_row
from labelrouter.store.rows import DecisionRow, ExampleRow, SyncUpdate, Verdict


def migrations(backend: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration of a backend, in order: `migrations/NNNN_*.sql`
    for SQLite, `migrations/postgres/NNNN_*.sql` for PostgreSQL (the same versions, each dialect's SQL)."""
    folder = resources.files("labelrouter.store").joinpath("migrations")
    if backend != "sqlite":
        folder = folder.joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def statements(sql: str) -> Iterable[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class SQLStore:
    store_text: bool = True

    # -- primitives a backend provides ----------------------------------------------------------
    def _query(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _execute(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> int:
        raise NotImplementedError

    def _transaction(self, doing: str, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> list[int]:
        """Run each (sql, [params, ...]) in one transaction; returns the row count of each statement."""
        raise NotImplementedError

    # -- decisions ------------------------------------------------------------------------------
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
        return self._execute("recording a decision", sql, tuple(row[c] for c in columns)) > 0

    def record_labeled(self, state: LabelingState) -> bool:
        """Persist a finished decision in one step. A message already recorded as labeled is never overwritten."""
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
        params = (applied.label, json.dumps(applied.label_ids_after, ensure_ascii=False), int(applied.archive),
                  message_id)
        return self._execute("completing a decision", sql, params) > 0

    def record_reapply(self, message_id: str, routing: Routing, label_id: str) -> bool:
        """A replayed decision about to be re-applied: an untouched labeled row becomes an 'applying' intent
        with the new decision, `label_applied` still naming the label the mailbox carries, so the repair of
        a crash finishes it either way (see `replay.reapply`). False when the row is not ours to change:
        a shadow or undone decision, or one the user has touched or given feedback on."""
        decision = decision_columns(routing)
        sets = ", ".join(f"{c} = ?" for c in decision)
        sql = (f"UPDATE processed_messages SET status = 'applying', intent_label_id = ?, {sets} "
               "WHERE message_id = ? AND status = 'labeled' AND COALESCE(shadow, 0) = 0 AND undone_at IS NULL "
               "AND touched_at IS NULL AND feedback IS NULL")
        return self._execute("recording a re-applied decision", sql, (label_id, *decision.values(), message_id)) > 0

    def abandon_intent(self, message_id: str, error: str) -> bool:
        """An intent that can never complete (the message is gone): recorded as failed, with why."""
        sql = "UPDATE processed_messages SET status = 'failed', error = ? WHERE message_id = ? AND status = 'applying'"
        return self._execute("abandoning a decision", sql, (error[:2000], message_id)) > 0

    def pending_intents(self) -> list[DecisionRow]:
        """Decisions recorded as 'applying' whose mailbox change was never confirmed (a crash, an error)."""
        return self.rows("applying")

    def record_failed(self, message_id: str, error: str, state: LabelingState | None = None) -> bool:
        """Record a failure. A labeled row stays labeled; an 'applying' row keeps its intent (the next run
        repairs it) and only notes the error."""
        row = failed_row(state, message_id, error)
        if self._upsert(row, over=("failed",)):
            return True
        self._execute("recording a failure", "UPDATE processed_messages SET error = ?, attempts = attempts + 1 "
                      "WHERE message_id = ? AND status = 'applying'", (row["error"], message_id))
        return False

    def purge_text(self, before: str) -> int:
        """Text retention: delete the stored text (embedded text, document, summary) of decisions processed
        and examples created before `before` (ISO time); labels, scores and embeddings stay."""
        counts = self._transaction("deleting old message text", [
            ("UPDATE processed_messages SET embedded_text = NULL, document = NULL, summary = NULL "
             "WHERE processed_at < ? AND (embedded_text IS NOT NULL OR document IS NOT NULL OR summary IS NOT NULL)",
             [(before,)]),
            ("UPDATE examples SET embedded_text = NULL, document = NULL WHERE created_at < ? "
             "AND (embedded_text IS NOT NULL OR document IS NOT NULL)", [(before,)]),
        ])
        return sum(counts)

    # -- examples -------------------------------------------------------------------------------
    def add_examples(self, rows: list[ExampleRow]) -> int:
        """Insert examples in one transaction (all or nothing); an example id already stored is replaced."""
        if not rows:
            return 0
        self._transaction("storing examples", [self._examples_insert(rows)])
        return len(rows)

    @staticmethod
    def _examples_insert(rows: list[ExampleRow]) -> tuple[str, list[tuple[Any, ...]]]:
        columns = list(rows[0])
        updates = ", ".join(f"{c} = excluded.{c}" for c in [*columns, "seq"] if c != "example_id")
        sql = (f"INSERT INTO examples ({', '.join(columns)}, seq) VALUES ({', '.join('?' * len(columns))}, "
               f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM examples)) "
               f"ON CONFLICT (example_id) DO UPDATE SET {updates}")
        return sql, [tuple(row[c] for c in columns) for row in rows]

    def examples(self, encoder_version: str) -> list[ExampleRow]:
        """Examples embedded by this encoder, oldest first."""
        sql = ("SELECT * FROM examples WHERE encoder_version = ? "
               "ORDER BY (occurred_at IS NULL), occurred_at, seq")
        return self._query("reading examples", sql, (encoder_version,))

    # -- vectors of other encoders -------------------------------------------------------------
    def put_example_vectors(self, encoder_version: str, rows: list[tuple[str, bytes, int]]) -> int:
        """Store (example id, embedding, dim) made by another encoder (a candidate's re-embedding), in one
        transaction; a vector already stored for the same example and encoder is replaced."""
        if not rows:
            return 0
        sql = ("INSERT INTO example_vectors (example_id, encoder_version, embedding, embedding_dim) "
               "VALUES (?, ?, ?, ?) ON CONFLICT (example_id, encoder_version) DO UPDATE SET "
               "embedding = excluded.embedding, embedding_dim = excluded.embedding_dim")
        self._transaction("storing example vectors", [(sql, [(i, encoder_version, e, d) for i, e, d in rows])])
        return len(rows)

    def example_vectors(self, encoder_version: str) -> dict[str, bytes]:
        """Example id → embedding, for the examples another encoder has embedded."""
        rows = self._query("reading example vectors",
                           "SELECT example_id, embedding FROM example_vectors WHERE encoder_version = ?",
                           (encoder_version,))
        return {str(r["example_id"]): bytes(r["embedding"]) for r in rows}

    def drop_example_vectors(self, encoder_version: str) -> int:
        """Forget one encoder's stored vectors (a candidate that was not promoted)."""
        return self._execute("dropping example vectors", "DELETE FROM example_vectors WHERE encoder_version = ?",
                             (encoder_version,))

    def switch_example_vectors(self, encoder_version: str) -> int:
        """Make `encoder_version`'s stored vectors the examples' own (a promoted encoder), keeping the vectors
        they replace under their encoder's version, in one transaction. Returns how many examples now carry
        the new encoder's vector; examples it never embedded keep their old one (and their old version)."""
        keep_old = ("INSERT INTO example_vectors (example_id, encoder_version, embedding, embedding_dim) "
                    "SELECT example_id, encoder_version, embedding, embedding_dim FROM examples "
                    "WHERE encoder_version <> ? AND example_id IN "
                    "(SELECT example_id FROM example_vectors WHERE encoder_version = ?) "
                    "ON CONFLICT (example_id, encoder_version) DO UPDATE SET "
                    "embedding = excluded.embedding, embedding_dim = excluded.embedding_dim")
        switch = ("UPDATE examples SET "
                  "embedding = (SELECT v.embedding FROM example_vectors v "
                  "WHERE v.example_id = examples.example_id AND v.encoder_version = ?), "
                  "embedding_dim = (SELECT v.embedding_dim FROM example_vectors v "
                  "WHERE v.example_id = examples.example_id AND v.encoder_version = ?), "
                  "encoder_version = ? "
                  "WHERE example_id IN (SELECT example_id FROM example_vectors WHERE encoder_version = ?)")
        drop = "DELETE FROM example_vectors WHERE encoder_version = ?"
        v = encoder_version
        counts = self._transaction(f"switching examples to encoder {v}",
                                   [(keep_old, [(v, v)]), (switch, [(v, v, v, v)]), (drop, [(v,)])])
        return counts[1]

    # -- feedback -------------------------------------------------------------------------------
    def sync_candidates(self, processed_since: str | None = None) -> list[DecisionRow]:
        """Labeled messages a sync looks at: never synced ones (incremental), or every one processed since
        `processed_since` (nightly)."""
        where = "processed_at >= ?" if processed_since is not None else "labels_synced_at IS NULL"
        sql = ("SELECT message_id, label_applied, label_ids_after, intent_label_id, archived, processed_at "
               f"FROM processed_messages WHERE status = 'labeled' AND undone_at IS NULL AND {where} "
               "ORDER BY processed_at, message_id")
        return self._query("reading messages to sync", sql, (processed_since,) if processed_since is not None else ())

    def record_sync(self, updates: list[SyncUpdate]) -> int:
        """What a sync read for each message (one transaction): current label ids, present/seen/in_inbox/
        important, when it was synced, and `touched_at` the first time a change was seen."""
        sql = ("UPDATE processed_messages SET label_ids_current = ?, labels_synced_at = ?, present = ?, seen = ?, "
               "in_inbox = ?, important = ?, touched_at = COALESCE(touched_at, ?) WHERE message_id = ?")
        params = [(json.dumps(u["label_ids_current"], ensure_ascii=False), u["synced_at"], int(u["present"]),
                   int(u["seen"]), int(u["in_inbox"]), int(u["important"]), u.get("touched_at"), u["message_id"])
                  for u in updates]
        return sum(self._transaction("recording a sync", [(sql, params)])) if params else 0

    def feedback_rows(self) -> list[DecisionRow]:
        """Labeled decisions with what mining needs: the decision, the synced state, the embedding."""
        sql = ("SELECT message_id, subject, sender, message_date, label_applied, top_label, fallback, confidence, margin, "
               "threshold, label_ids_after, label_ids_current, labels_synced_at, present, seen, in_inbox, important, "
               "archived, shadow, undone_at, touched_at, feedback, effective_label, embedding, embedding_dim, "
               "encoder_version, "
               "model_version, embedded_text, document, processed_at FROM processed_messages WHERE status = 'labeled' "
               "ORDER BY processed_at, message_id")
        return self._query("reading feedback", sql)

    def important_rows(self, encoder_version: str) -> list[DecisionRow]:
        """Decisions with an IMPORTANT flag read back by a sync, embedded by this encoder, oldest first."""
        sql = ("SELECT message_id, embedding, important, processed_at FROM processed_messages "
               "WHERE important IS NOT NULL AND embedding IS NOT NULL AND encoder_version = ? "
               "ORDER BY processed_at, message_id")
        return self._query("reading important flags", sql, (encoder_version,))

    def sync_cursor(self, mailbox: str) -> str | None:
        rows = self._query("reading a sync cursor", "SELECT cursor FROM sync_cursors WHERE mailbox = ?", (mailbox,))
        return str(rows[0]["cursor"]) if rows else None

    def set_sync_cursor(self, mailbox: str, cursor: str, when: str) -> None:
        self._execute("saving a sync cursor", "INSERT INTO sync_cursors (mailbox, cursor, updated_at) VALUES (?, ?, ?) "
                      "ON CONFLICT (mailbox) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                      (mailbox, cursor, when))

    def mark_undone(self, message_ids: list[str], when: str) -> int:
        """Record `labelrouter undo` before the mailbox changes (so mining never reads it as the user's)."""
        sql = "UPDATE processed_messages SET undone_at = COALESCE(undone_at, ?) WHERE message_id = ? AND status = 'labeled'"
        return sum(self._transaction("recording an undo", [(sql, [(when, m) for m in message_ids])])) if message_ids else 0

    def example_counts(self) -> dict[str, int]:
        rows = self._query("counting examples", "SELECT kind, COUNT(*) AS n FROM examples GROUP BY kind")
        return {str(r["kind"]): int(r["n"]) for r in rows}

    def record_feedback(self, verdicts: list[Verdict], examples: list[ExampleRow],
                        drop_example_ids: list[str]) -> None:
        """Mining's results in one transaction: each message's verdict, the examples it yields (replacing
        earlier ones of the same id), and the examples a changed verdict no longer supports."""
        statements: list[tuple[str, list[tuple[Any, ...]]]] = [
            ("UPDATE processed_messages SET feedback = ?, effective_label = ?, mined_at = ? WHERE message_id = ?",
             [(v["feedback"], v["effective_label"], v["mined_at"], v["message_id"]) for v in verdicts]),
        ]
        if drop_example_ids:
            statements.append(("DELETE FROM examples WHERE example_id = ?", [(i,) for i in drop_example_ids]))
        if examples:
            statements.append(self._examples_insert(examples))
        self._transaction("recording feedback", [s for s in statements if s[1]])

    def relabel(self, old: str, new: str) -> dict[str, int]:
        """A renamed or merged label: examples and decisions that name `old` name `new` (one transaction)."""
        statements = {
            "examples": "UPDATE examples SET label = ? WHERE label = ?",
            "examples_rejected": "UPDATE examples SET rejected_label = ? WHERE rejected_label = ?",
            "decisions": "UPDATE processed_messages SET label_applied = ? WHERE label_applied = ?",
            "top_labels": "UPDATE processed_messages SET top_label = ? WHERE top_label = ?",
        }
        counts = self._transaction(f"relabeling {old!r} → {new!r}",
                                   [(sql, [(new, old)]) for sql in statements.values()])
        return dict(zip(statements, counts, strict=True))

    # -- reads ----------------------------------------------------------------------------------
    def labeled_ids(self) -> set[str]:
        """Messages with a decision: labeled, or applying (a repair finishes those before labeling)."""
        rows = self._query("reading labeled messages",
                           "SELECT message_id FROM processed_messages WHERE status IN ('labeled', 'applying')")
        return {str(row["message_id"]) for row in rows}

    def get(self, message_id: str) -> DecisionRow | None:
        rows = self._query("reading a decision", "SELECT * FROM processed_messages WHERE message_id = ?",
                           (message_id,))
        return rows[0] if rows else None

    def rows(self, status: str | None = None) -> list[DecisionRow]:
        sql = ("SELECT * FROM processed_messages" + (" WHERE status = ?" if status else "")
               + " ORDER BY processed_at, message_id")
        return self._query("reading decisions", sql, (status,) if status else ())

    def report_rows(self) -> list[DecisionRow]:
        """What the quality report reads of every decision: no text, no vectors."""
        sql = ("SELECT message_id, status, message_date, processed_at, label_applied, fallback, confidence, shadow, "
               "feedback, effective_label, model_version, undone_at, labels_synced_at FROM processed_messages "
               "ORDER BY processed_at, message_id")
        return self._query("reading decisions for the report", sql)

    def counts(self) -> dict[str, int]:
        rows = self._query("counting decisions", "SELECT status, COUNT(*) AS n FROM processed_messages GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}
