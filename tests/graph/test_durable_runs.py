"""Durable runs (`graph.checkpoints`): a run killed after `label_router` resumes at `apply` from its
checkpoint, in a new process in effect, without embedding again; the message ends with one label and
one row; checkpoints read back without LangGraph's unregistered-type warning (fast lane: stub encoder)."""

import json

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.demo import create_sample_mailbox
from labelrouter.graph import inference
from labelrouter.graph.checkpoints import open_checkpointer
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.mailbox_run import MailboxRun
from labelrouter.graph.wiring import build_context
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.store import SQLiteStore
from tests.e2e.test_crash_safety import assert_one_label_one_row

runner = CliRunner()


class Killed(Exception):
    """Stands for the process dying inside `apply`."""


def test_a_run_killed_after_the_router_resumes_at_apply_without_embedding_again(tmp_path, settings, stub_encoder,
                                                                              monkeypatch, caplog):
    expected = create_sample_mailbox(tmp_path / "Mail")
    box, store = LocalMaildir(tmp_path / "Mail", create=False), SQLiteStore(tmp_path / "s.sqlite3")
    victim = sorted(expected)[0]
    real_apply = inference.apply

    def dies_on_the_victim(state, runtime):
        if state.message.id == victim:
            raise Killed("killed inside apply")
        return real_apply(state, runtime)

    monkeypatch.setattr(inference, "apply", dies_on_the_victim)
    embedded = []
    real_encode = stub_encoder.encode
    monkeypatch.setattr(stub_encoder, "encode", lambda texts: embedded.extend(texts) or real_encode(texts))
    first = Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings,
                    checkpointer=open_checkpointer(settings))
    embedded.clear()  # the label descriptions
    report = MailboxRun(first).run_mailbox()
    assert report.count("failed") == 1 and len(report.outcomes) == len(expected)
    assert first.pending(victim) == ("apply",)
    assert first.pending(sorted(expected)[1]) == ()  # a finished message's thread is gone
    assert len(embedded) == len(expected)  # every message embedded once so far
    store.close()
    # The stored thread, as `replay --from-checkpoint` shows it: stopped before apply, the decision made.
    shown = runner.invoke(app, ["replay", "--from-checkpoint", victim],
                          env={"LABELROUTER_HOME": str(settings.home), "LABELROUTER_LABELS_PATH": str(settings.labels_path)})
    assert shown.exit_code == 0, shown.output
    thread = json.loads(shown.stdout)
    assert thread["next"] == ["apply"] and thread["steps"][-1]["next"] == ["apply"], thread
    assert thread["routing"]["label"] in first.ctx.labels.names and thread["routing"]["model_version"]
    assert "body" not in shown.stdout

    # The next run: a new process in effect (fresh store, mailbox, checkpointer), apply as it should be.
    monkeypatch.setattr(inference, "apply", real_apply)
    store2 = SQLiteStore(tmp_path / "s.sqlite3")
    box2 = LocalMaildir(tmp_path / "Mail", create=False)
    with caplog.at_level("WARNING"):
        second = Labeler(build_context(settings, mode="apply", mailbox=box2, store=store2), settings,
                         checkpointer=open_checkpointer(settings))
        embedded.clear()
        again = MailboxRun(second).run_mailbox()
    assert [o.message_id for o in again.outcomes] == [victim] and again.outcomes[0].status == "applied"
    assert embedded == []  # resumed at apply: summarize and label_router were not run again
    assert "unregistered type" not in caplog.text  # the state's types are allowed by name
    assert second.pending(victim) == ()
    assert_one_label_one_row(box2, store2, sorted(expected), second.ctx.labels)
    assert MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box2, store=store2), settings,
                   checkpointer=open_checkpointer(settings))).run_mailbox().outcomes == []  # nothing twice


def test_resuming_a_message_without_an_interrupted_run_is_a_clear_error(settings, stub_encoder):
    labeler = Labeler(build_context(settings), settings, checkpointer=open_checkpointer(settings))
    with pytest.raises(Exception, match="no interrupted run"):
        labeler.resume("never-seen")
    shown = runner.invoke(app, ["replay", "--from-checkpoint", "never-seen"],
                          env={"LABELROUTER_HOME": str(settings.home), "LABELROUTER_LABELS_PATH": str(settings.labels_path)})
    assert shown.exit_code != 0 and "no checkpointed run" in shown.output


def test_the_embedded_checkpointer_survives_a_killed_process_without_an_fsync_per_checkpoint(settings):
    # WAL with synchronous=NORMAL: a commit is in the log before the call returns (a killed process loses
    # nothing), without syncing the disk after each of the ~6 checkpoints a message writes.
    saver = open_checkpointer(settings)
    assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert saver.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


@pytest.fixture(params=["sqlite", "postgres"])
def durable_settings(request, settings):
    if request.param == "sqlite":
        return settings
    from tests.postgres import RUN_PREFIX, URL

    schemas = request.getfixturevalue("postgres_schemas")
    schema = f"{RUN_PREFIX}_cp{len(schemas)}"
    schemas.append(schema)
    return settings.model_copy(update={"database_url": URL, "database_schema": schema})


def test_a_checkpointed_run_resumes_on_either_backend(durable_settings, stub_encoder, monkeypatch):
    from labelrouter.state import EmailMessage

    message = EmailMessage(id="m-1", subject="Quarterly numbers", sender="cfo@corp.example",
                           body="The budget review moves to Friday; bring the Q3 forecast.")
    real_apply = inference.apply

    def dies(state, runtime):
        raise Killed("killed inside apply")

    monkeypatch.setattr(inference, "apply", dies)
    first = Labeler(build_context(durable_settings), durable_settings, checkpointer=open_checkpointer(durable_settings))
    with pytest.raises(Killed):
        first.label(message)
    assert first.pending("m-1") == ("apply",)
    monkeypatch.setattr(inference, "apply", real_apply)
    second = Labeler(build_context(durable_settings), durable_settings,
                     checkpointer=open_checkpointer(durable_settings))
    embedded = []
    real_encode = stub_encoder.encode
    monkeypatch.setattr(stub_encoder, "encode", lambda texts: embedded.extend(texts) or real_encode(texts))
    result = second.resume("m-1")
    assert embedded == [] and result["applied"].status == "skipped"  # decide mode: shown, not applied
    assert result["routing"].label in second.ctx.labels.names and result["message"].id == "m-1"
    assert second.pending("m-1") == ()
