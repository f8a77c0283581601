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
