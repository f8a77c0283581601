"""SQLite store: migrations are versioned and applied once; labeled rows are never overwritten."""

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from labelrouter.errors import StoreError
from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing, Summary
from labelrouter.store import SQLiteStore, decode_embedding, migrations


def _state(mid="m1", label="work") -> LabelingState:
    routing = Routing(label=label, top_label=label, router_weights={label: 80.0}, head_weights={label: 1.0},
                      final_scores={label: 80.0}, candidates=[], confidence=0.8, margin=30.0, threshold=0.35,
                      fallback=False, reason="argmax", model_version="enc@1+head:cold-start",
                      encoder_version="enc@1", labels_hash="abc")
    return LabelingState(
        message=EmailMessage(id=mid, subject="s", body="b"), summary=Summary(text="s", source="offline"),
        routing=routing, embedding=[0.5, -0.25, 1.0],
        applied=ApplyResult(status="applied", label=label, archive=False, label_ids_before=["INBOX"],
                            label_ids_after=["INBOX", label]),
    )


def test_migrations_apply_once_and_are_recorded(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    assert store.schema_version() == migrations()[-1][0]
    assert store.migrate() == []  # nothing left to apply
    store.close()
    versions = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    assert [v for (v,) in versions] == [m[0] for m in migrations()]


def test_labeled_row_keeps_the_explanation_and_embedding(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    assert store.record_labeled(_state())
    row = store.get("m1")
    assert row["status"] == "labeled" and row["label_applied"] == "work" and row["encoder_version"] == "enc@1"
    np.testing.assert_array_equal(decode_embedding(row["embedding"]), np.array([0.5, -0.25, 1.0], np.float32))
    assert row["labels_hash"] == "abc" and row["label_ids_after"] == '["INBOX", "work"]'
    assert not store.record_labeled(_state(label="news"))  # a second decision never overwrites the first
    assert not store.record_failed("m1", "boom")
    assert store.get("m1")["label_applied"] == "work" and store.get("m1")["status"] == "labeled"


def test_failed_then_labeled_counts_attempts(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    assert store.record_failed("m1", "parse error")
    assert store.record_failed("m1", "parse error again")
    assert store.get("m1")["attempts"] == 2
    assert store.record_labeled(_state())
    assert store.get("m1")["status"] == "labeled" and store.get("m1")["attempts"] == 3
    assert store.counts() == {"labeled": 1}


def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'now')")
    with pytest.raises(StoreError, match="newer than this labelrouter knows"):
        SQLiteStore(path)


def _open_store(path: str) -> int:
    SQLiteStore(Path(path)).close()
    return 0


def test_several_processes_opening_a_fresh_store_migrate_it_once(tmp_path: Path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for trial in range(3):
        path = tmp_path / f"fresh{trial}.sqlite3"
        with ctx.Pool(4) as pool:
            assert pool.map(_open_store, [str(path)] * 4) == [0] * 4
        versions = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
        assert [v for (v,) in versions] == [m[0] for m in migrations()]


def test_a_damaged_store_is_one_actionable_error(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    for i in range(200):
        store.record_failed(f"m{i}", "x" * 500)
    store.close()
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


def test_a_dropped_table_is_one_actionable_error(tmp_path: Path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE processed_messages")
    with pytest.raises(StoreError, match="table processed_messages missing"):
        SQLiteStore(path)


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


def test_store_text_off_keeps_no_body_derived_text(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.sqlite3", store_text=False)
    store.record_labeled(_state())
    row = store.get("m1")
    assert row["summary"] is None and row["subject"] == "s"
    assert SQLiteStore(tmp_path / "t.sqlite3").record_labeled(_state())


def test_intent_then_complete_and_no_second_owner(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    assert store.record_intent(_state(), "work")
    assert store.get("m1")["status"] == "applying" and store.get("m1")["intent_label_id"] == "work"
    assert "m1" in store.labeled_ids() and [r["message_id"] for r in store.pending_intents()] == ["m1"]
    assert not store.record_intent(_state(label="news"), "news")  # another run owns it: hands off
    assert not store.record_failed("m1", "later error")  # keeps the intent, notes the error
    assert store.get("m1")["status"] == "applying" and store.get("m1")["error"] == "later error"
    assert store.complete("m1", ApplyResult(status="applied", label="work", archive=True,
                                            label_ids_after=["work"]))
    row = store.get("m1")
    assert row["status"] == "labeled" and row["archived"] == 1 and row["error"] is None
    assert not store.complete("m1", ApplyResult(status="applied", label="x", archive=False))
