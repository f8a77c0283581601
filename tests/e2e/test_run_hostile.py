"""`run` and `label` over hostile mail: ordinary messages are labeled, hostile ones labeled or recorded, none stalls."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.mailbox_run import MailboxRun
from labelrouter.graph.wiring import build_context
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.store import SQLiteStore
from tests import hostile
from tests.conftest import LABELS_JSON
from tests.helpers import eml

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}


def test_run_over_a_maildir_of_hostile_and_ordinary_mail(tmp_path, env, encoder):
    from labelrouter.demo import sample_messages

    box = LocalMaildir(tmp_path / "Mail")
    ordinary = {box.deliver(raw): expected for expected, raw in sample_messages()[:12]}
    bad = {box.deliver(raw): (name, outcome) for name, (raw, outcome) in hostile.hostile_messages().items()}
    result = runner.invoke(app, ["run", "--mailbox", str(tmp_path / "Mail"), "--json"], env=env)
    assert result.exit_code == 1, result.output  # some hostile messages failed, and the exit code says so
    outcomes = {o["message_id"]: o for o in map(json.loads, result.stdout.splitlines())}
    assert set(outcomes) == set(ordinary) | set(bad)
    assert all(outcomes[mid]["status"] == "applied" for mid in ordinary)
    store = SQLiteStore(tmp_path / "home" / "labelrouter.sqlite3")
    for mid, (name, expected) in bad.items():
        row = store.get(mid)
        assert row is not None, name  # recorded, never dropped
        assert row["status"] == ("labeled" if expected == "labeled" else "failed"), (name, row["error"])
        assert (outcomes[mid]["status"] == "failed") == (expected == "failed"), name
    by_name = {name: mid for mid, (name, _) in bad.items()}
    assert store.get(by_name["hidden-html-text"])["label_applied"] == "🔔-updates-security"
    assert store.get(by_name["alert-below-reply-marker"])["label_applied"] == "🔔-updates-security"
    assert "MIME bomb" in store.get(by_name["mime-1000-deep"])["error"]
    for created in (tmp_path / "home", tmp_path / "home" / "labelrouter.sqlite3", tmp_path / "home" / "cache"):
        assert created.stat().st_mode & 0o077 == 0, created  # owner-only


def test_an_exception_anywhere_in_the_graph_fails_only_that_message(tmp_path, settings, encoder):
    class Exploding:
        def summarize(self, message):
            if "explode" in message.subject:
                raise ZeroDivisionError("summarizer bug")
            from labelrouter.summarize import offline_summary
            return offline_summary(message), []

    box = LocalMaildir(tmp_path / "Mail")
    ok = box.deliver(eml("Your order has shipped", "Tracking number 1Z999 for your parcel."))
    boom = box.deliver(eml("please explode", "anything"))
    store = SQLiteStore(tmp_path / "s.sqlite3")
    ctx = build_context(settings, mode="apply", mailbox=box, store=store)
    ctx.summarizer = Exploding()
    report = MailboxRun(Labeler(ctx, settings)).run_mailbox()
    status = {o.message_id: o for o in report.outcomes}
    assert status[ok].status == "applied"
    assert status[boom].status == "failed" and "ZeroDivisionError" in status[boom].error
    assert store.get(boom)["status"] == "failed" and box.label_ids(boom) == ["INBOX"]


def test_parse_time_budget_records_a_stall_as_failure(tmp_path, settings, encoder, monkeypatch):
    import labelrouter.graph.labeler as pipeline

    def stuck(*args, **kwargs):
        while True:
            pass

    monkeypatch.setattr(pipeline, "parse_message", stuck)
    box = LocalMaildir(tmp_path / "Mail")
    mid = box.deliver(eml("a", "b"))
    store = SQLiteStore(tmp_path / "s.sqlite3")
    settings = settings.model_copy(update={"message_time_budget_s": 0.05})
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert report.outcomes[0].status == "failed" and "budget" in report.outcomes[0].error
    assert store.get(mid)["status"] == "failed"


def test_an_mbox_with_one_bad_message_labels_the_others(tmp_path, env, encoder):
    mbox = b"".join(b"From sender@example.com Mon Jun  3 10:00:00 2024\n" + raw + b"\n" for raw in (
        eml("Your order has shipped", "Tracking number 1Z999 for your parcel."),
        hostile.deep_mime(300),
        eml("Flight booking confirmation", "Your flight to Lisbon is confirmed."),
    ))
    path = tmp_path / "in.mbox"
    path.write_bytes(mbox)
    result = runner.invoke(app, ["label", str(path), "--compact"], env=env)
    assert result.exit_code == 1  # one failed: said in the exit code, the others still labeled
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [("error" in item) for item in lines] == [False, True, False]
    assert lines[1]["index"] == 1 and "MIME bomb" in lines[1]["error"]
    assert lines[2]["label"] == "✈️-travel-bookings"


def test_unusable_input_is_refused_before_the_model_loads(tmp_path, env, monkeypatch):
    import labelrouter.models.encoder as encoders  # where every entry point gets its encoder from

    def no_model(*args, **kwargs):
        raise AssertionError("the encoder must not load for input that is refused")

    monkeypatch.setattr(encoders, "encoder_for", no_model)
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["label", str(empty)], env=env)
    assert result.exit_code == 2 and "empty message" in result.stderr and "Traceback" not in result.output


def test_no_message_text_is_logged_above_debug(tmp_path, settings, encoder, caplog):
    import logging

    box = LocalMaildir(tmp_path / "Mail")
    box.deliver(eml("Quarterly numbers", "TOPSECRET-BODY-TEXT the revenue figures are attached."))
    box.deliver(b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=rot13\r\n\r\nTOPSECRET-BODY-TEXT")
    box.deliver(hostile.deep_mime(300) + b"TOPSECRET-BODY-TEXT")
    store = SQLiteStore(tmp_path / "s.sqlite3")
    with caplog.at_level(logging.INFO):
        MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert caplog.records  # the failure was logged...
    assert not any("TOPSECRET" in r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
    assert not any("TOPSECRET" in (row["error"] or "") for row in store.rows())
