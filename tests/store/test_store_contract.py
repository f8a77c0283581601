"""The Store contract, run against every backend: SQLite always, PostgreSQL on the local server.

Each Postgres test gets a schema of its own under this run's prefix; all are dropped when the session ends.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from labelrouter.errors import StoreError
from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing, Summary
from labelrouter.store import SQLiteStore, decode_embedding, migrations
from tests.postgres import RUN_PREFIX, URL


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """open_store(name) → a store; the same name opens the same database again."""
    if request.param == "sqlite":
        yield lambda name="s", **kw: SQLiteStore(tmp_path / f"{name}.sqlite3", **kw)
        return
    schemas = request.getfixturevalue("postgres_schemas")
    from labelrouter.store.postgres import PostgresStore

    names: dict[str, str] = {}

    def make(name="s", **kw):
        if name not in names:
            names[name] = f"{RUN_PREFIX}_{len(schemas)}"
            schemas.append(names[name])
        return PostgresStore(URL, schema=names[name], **kw)

    yield make


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


def test_migrations_apply_once_and_are_recorded(open_store):
    store = open_store()
    assert store.schema_version() == migrations()[-1][0]
    assert store.migrate() == []
    store.close()
    assert open_store().migrate() == []  # reopening applies nothing


def test_labeled_row_keeps_the_explanation_and_embedding(open_store):
    store = open_store()
    assert store.record_labeled(_state())
    row = store.get("m1")
    assert row["status"] == "labeled" and row["label_applied"] == "work" and row["encoder_version"] == "enc@1"
    np.testing.assert_array_equal(decode_embedding(row["embedding"]), np.array([0.5, -0.25, 1.0], np.float32))
    assert row["labels_hash"] == "abc" and row["label_ids_after"] == '["INBOX", "work"]'
    assert row["confidence"] == pytest.approx(0.8) and row["fallback"] == 0 and row["fallback_on"] == "confidence"
    assert not store.record_labeled(_state(label="news"))  # a second decision never overwrites the first
    assert not store.record_failed("m1", "boom")
    assert store.get("m1")["label_applied"] == "work" and store.get("m1")["status"] == "labeled"
    assert store.get("nope") is None


def test_failed_then_labeled_counts_attempts(open_store):
    store = open_store()
    assert store.record_failed("m1", "parse error")
    assert store.record_failed("m1", "parse error again")
    assert store.get("m1")["attempts"] == 2
    assert store.record_labeled(_state())
    assert store.get("m1")["status"] == "labeled" and store.get("m1")["attempts"] == 3
    assert store.counts() == {"labeled": 1}
    assert store.labeled_ids() == {"m1"}


def test_intent_then_complete_and_no_second_owner(open_store):
    store = open_store()
    assert store.record_intent(_state(), "work")
    assert store.get("m1")["status"] == "applying" and store.get("m1")["intent_label_id"] == "work"
    assert "m1" in store.labeled_ids() and [r["message_id"] for r in store.pending_intents()] == ["m1"]
    assert not store.record_intent(_state(label="news"), "news")  # another run owns it: hands off
    assert not store.record_failed("m1", "later error")  # keeps the intent, notes the error
    assert store.get("m1")["status"] == "applying" and store.get("m1")["error"] == "later error"
    assert store.complete("m1", ApplyResult(status="applied", label="work", archive=True, label_ids_after=["work"]))
    row = store.get("m1")
    assert row["status"] == "labeled" and row["archived"] == 1 and row["error"] is None
    assert not store.complete("m1", ApplyResult(status="applied", label="x", archive=False))
    assert store.record_intent(_state("m2"), "work") and store.abandon_intent("m2", "message left the mailbox")
    assert store.get("m2")["status"] == "failed" and store.pending_intents() == []


def test_store_text_off_keeps_no_body_derived_text(open_store):
    store = open_store(store_text=False)
    store.record_labeled(_state())
    row = store.get("m1")
    assert row["summary"] is None and row["subject"] == "s"


def _example(i: int, label: str, occurred: str | None, encoder="enc@1") -> dict:
    return {"example_id": f"gold:{i}", "message_id": str(i), "label": label, "kind": "gold", "rejected_label": None,
            "source": "test", "split": None, "subject": f"s{i}", "embedding": np.full(3, i, "<f4").tobytes(),
            "embedding_dim": 3, "encoder_version": encoder, "occurred_at": occurred, "created_at": "2024"}


def test_examples_are_time_ordered_replaced_by_id_and_relabeled(open_store):
    store = open_store()
    store.add_examples([_example(1, "a", "2024-02"), _example(2, "b", None), _example(3, "a", "2024-01"),
                        _example(4, "a", "2024-01", encoder="other@2")])
    assert [r["example_id"] for r in store.examples("enc@1")] == ["gold:3", "gold:1", "gold:2"]
    store.add_examples([_example(1, "b", "2023-12")])  # same id: replaced
    rows = store.examples("enc@1")
    assert [r["example_id"] for r in rows] == ["gold:1", "gold:3", "gold:2"] and rows[0]["label"] == "b"
    assert decode_embedding(rows[0]["embedding"]).tolist() == [1.0, 1.0, 1.0]
    store.record_labeled(_state(label="a"))
    counts = store.relabel("a", "z")
    assert counts == {"examples": 2, "examples_rejected": 0, "decisions": 1, "top_labels": 1}
    assert {r["label"] for r in store.examples("enc@1")} == {"b", "z"}


def test_a_promoted_encoders_vectors_become_the_examples_own_and_the_old_ones_are_kept(open_store):
    store = open_store()
    store.add_examples([_example(i, "a", f"2024-0{i}") for i in (1, 2, 3)])
    vector = lambda x: np.full(3, x, "<f4").tobytes()  # noqa: E731
    # The candidate re-embedded two of the three (the third's text had expired, say).
    assert store.put_example_vectors("tuned@9", [("gold:1", vector(10), 3), ("gold:2", vector(20), 3)]) == 2
    store.put_example_vectors("tuned@9", [("gold:2", vector(22), 3)])  # replaced, not duplicated
    assert {k: decode_embedding(v).tolist()[0] for k, v in store.example_vectors("tuned@9").items()} == \
        {"gold:1": 10.0, "gold:2": 22.0}
    assert store.examples("tuned@9") == []  # nothing switched yet: training still reads the old encoder's
    assert store.switch_example_vectors("tuned@9") == 2
    assert [(r["example_id"], decode_embedding(r["embedding"]).tolist()[0]) for r in store.examples("tuned@9")] == \
        [("gold:1", 10.0), ("gold:2", 22.0)]
    assert [r["example_id"] for r in store.examples("enc@1")] == ["gold:3"]  # never re-embedded: left as it was
    assert store.example_vectors("tuned@9") == {}
    kept = {k: decode_embedding(v).tolist()[0] for k, v in store.example_vectors("enc@1").items()}
    assert kept == {"gold:1": 1.0, "gold:2": 2.0}  # a rollback switches back without embedding again
    assert store.switch_example_vectors("enc@1") == 2
    assert [r["example_id"] for r in store.examples("enc@1")] == ["gold:1", "gold:2", "gold:3"]
    assert set(store.example_vectors("tuned@9")) == {"gold:1", "gold:2"}
    assert store.drop_example_vectors("tuned@9") == 2 and store.example_vectors("tuned@9") == {}


def test_newer_schema_is_refused(open_store):
    store = open_store()
    store._execute("test", "INSERT INTO schema_migrations VALUES (999, 'future', 'now')")
    store.close()
    with pytest.raises(StoreError, match="newer than this labelrouter knows"):
        open_store()


def test_a_dropped_table_is_one_actionable_error(open_store):
    store = open_store()
    store._execute("test", "DROP TABLE processed_messages")
    store.close()
    with pytest.raises(StoreError, match="table processed_messages missing"):
        open_store()


def _open_and_close(args: tuple[str, str]) -> int:
    kind, where = args
    if kind == "sqlite":
        SQLiteStore(Path(where)).close()
    else:
        from labelrouter.store.postgres import PostgresStore

        PostgresStore(URL, schema=where).close()
    return 0


def test_several_processes_opening_a_fresh_store_migrate_it_once(open_store, tmp_path, request):
    kind = request.node.callspec.params["open_store"]
    ctx = multiprocessing.get_context("spawn")
    for trial in range(2):
        if kind == "sqlite":
            where = str(tmp_path / f"fresh{trial}.sqlite3")
        else:
            schemas = request.getfixturevalue("postgres_schemas")
            where = f"{RUN_PREFIX}_fresh{trial}_{len(schemas)}"
            schemas.append(where)
        with ctx.Pool(4) as pool:
            assert pool.map(_open_and_close, [(kind, where)] * 4) == [0] * 4
        store = SQLiteStore(Path(where)) if kind == "sqlite" else _pg_store(where)
        assert [r["version"] for r in store._query("t", "SELECT version FROM schema_migrations ORDER BY version")] \
            == [m[0] for m in migrations()]


def _pg_store(schema: str):
    from labelrouter.store.postgres import PostgresStore

    return PostgresStore(URL, schema=schema)


def test_open_store_is_chosen_by_one_url(tmp_path):
    from labelrouter.errors import ConfigError
    from labelrouter.settings import load_settings
    from labelrouter.store import open_store, redact

    default = load_settings(home=tmp_path / "h")
    assert open_store(default, create=False) is None and not (tmp_path / "h").exists()  # nothing created
    assert isinstance(open_store(default), SQLiteStore) and (tmp_path / "h" / "labelrouter.sqlite3").exists()
    for url in (f"sqlite:///{tmp_path}/u.sqlite3", str(tmp_path / "p.sqlite3")):
        assert isinstance(open_store(load_settings(database_url=url)), SQLiteStore)
    assert (tmp_path / "u.sqlite3").exists() and (tmp_path / "p.sqlite3").exists()
    with pytest.raises(ConfigError, match="unsupported database URL scheme"):
        open_store(load_settings(database_url="mysql://root:pw@localhost/x"))
    assert redact("postgresql://user:s3cret@db.example.co:5432/postgres") == "postgresql://user:***@db.example.co:5432/postgres"
    with pytest.raises(StoreError, match=r"postgres:\*\*\*@127.0.0.1:1/x") as info:
        open_store(load_settings(database_url="postgresql://postgres:s3cret@127.0.0.1:1/x"))
    assert "s3cret" not in str(info.value)


def test_run_on_postgres_records_one_row_per_message(tmp_path, postgres_schemas, encoder):
    import json

    from typer.testing import CliRunner

    from labelrouter.cli.app import app
    from labelrouter.demo import sample_messages
    from labelrouter.mail.maildir import LocalMaildir
    from labelrouter.store.postgres import PostgresStore
    from tests.conftest import LABELS_JSON

    schema = f"{RUN_PREFIX}_cli"
    postgres_schemas.append(schema)
    box = LocalMaildir(tmp_path / "Mail")
    ids = [box.deliver(raw) for _, raw in sample_messages()[:6]]
    env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON),
           "LABELROUTER_DATABASE_URL": URL, "LABELROUTER_DATABASE_SCHEMA": schema}
    first = CliRunner().invoke(app, ["run", "--mailbox", str(tmp_path / "Mail"), "--json"], env=env)
    assert first.exit_code == 0, first.output
    assert sorted(json.loads(line)["message_id"] for line in first.stdout.splitlines()) == sorted(ids)
    second = CliRunner().invoke(app, ["run", "--mailbox", str(tmp_path / "Mail"), "--json"], env=env)
    assert second.exit_code == 0 and second.stdout.strip() == ""  # nothing twice
    store = PostgresStore(URL, schema=schema)
    assert store.counts() == {"labeled": 6} and store.labeled_ids() == set(ids)
    assert not (tmp_path / "home" / "labelrouter.sqlite3").exists()


def test_embedded_text_is_kept_until_retention_deletes_it(open_store):
    store = open_store()
    state = _state().model_copy(update={"embedded_text": "s\nthe body snippet that was embedded",
                                        "document": "from: ann@example.com\n\ns\nthe whole body"})
    store.record_labeled(state)
    store.add_examples([{**_example(1, "a", None), "embedded_text": "example text", "document": "example doc"}])
    assert store.get("m1")["embedded_text"] == "s\nthe body snippet that was embedded"
    assert store.get("m1")["document"] == "from: ann@example.com\n\ns\nthe whole body"
    assert store.examples("enc@1")[0]["embedded_text"] == "example text"
    assert store.examples("enc@1")[0]["document"] == "example doc"
    assert store.purge_text("2000-01-01T00:00:00+00:00") == 0  # nothing that old
    assert store.purge_text("2999-01-01T00:00:00+00:00") == 2
    row = store.get("m1")
    assert row["embedded_text"] is None and row["summary"] is None and row["document"] is None
    assert row["label_applied"] == "work" and row["embedding"] is not None  # labels and vectors stay
    assert store.examples("enc@1")[0]["embedded_text"] is None and store.examples("enc@1")[0]["label"] == "a"
    assert store.examples("enc@1")[0]["document"] is None
    off = open_store("off", store_text=False)
    off.record_labeled(state)
    assert off.get("m1")["embedded_text"] is None
