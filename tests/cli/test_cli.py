"""The CLI in-process (Typer's CliRunner): JSON contract, bad input as one line, run exactly once, demo."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.store import SQLiteStore
from tests.conftest import LABELS_JSON
from tests.helpers import eml

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}


def _label(tmp_path: Path, env, raw: bytes, *args: str):
    path = tmp_path / "in.eml"
    path.write_bytes(raw)
    return runner.invoke(app, ["label", str(path), *args], env=env)


def _assert_one_line_error(result, fragment: str):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_label_prints_the_full_score_breakdown(tmp_path, env, encoder):
    result = _label(tmp_path, env, eml("Flight booking confirmation", "Your flight to Lisbon is confirmed. Booking reference QX7."))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    labels = load_label_set(LABELS_JSON)
    assert data["label"] == "✈️-travel-bookings" and not data["fallback"]
    assert set(data["router_weights"]) == set(labels.names)
    for name in labels.names:
        r, h, f = data["router_weights"][name], data["head_weights"][name], data["final_scores"][name]
        assert 0 <= r <= 100 and 0 <= h <= 1 and f == pytest.approx(r * h, abs=1e-6)
    assert data["top_label"] == max(data["final_scores"], key=data["final_scores"].get)
    assert data["confidence"] >= data["threshold"]
    assert data["summary"]["source"] == "offline" and data["applied"]["status"] == "skipped"
    assert len(data["candidates"]) == 18 and "similarity" in data["candidates"][0]
    assert "body" not in data["message"]  # bodies are not printed
    # label decides and explains: no store, no mailbox (only derived label vectors are cached)
    assert not (tmp_path / "home" / "labelrouter.sqlite3").exists() and not (tmp_path / "home" / "mailbox").exists()


def test_label_reads_stdin_and_mbox(tmp_path, env, encoder):
    result = runner.invoke(app, ["label", "-", "--compact"], input=eml("Your payslip for March", "Your payslip has been published in the employee portal: salary, tax and pension deductions."), env=env)
    assert result.exit_code == 0 and json.loads(result.stdout)["label"] == "💼-work-admin"
    mbox = b"".join(b"From sender@example.com Mon Jun  3 10:00:00 2024\n" + eml(f"m{i}", "hello there") + b"\n"
                    for i in range(2))
    result = runner.invoke(app, ["label", "-", "--compact"], input=mbox, env=env)
    assert [json.loads(line)["message"]["subject"] for line in result.stdout.splitlines()] == ["m0", "m1"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [(b"", "empty message"), (b"\x00\x01garbage\xff", "not an RFC 822 message")],
)
def test_unusable_input_is_one_line(tmp_path, env, raw, fragment, encoder):
    _assert_one_line_error(_label(tmp_path, env, raw), fragment)


def test_missing_file_is_one_line(env):
    _assert_one_line_error(runner.invoke(app, ["label", "/no/such/file.eml"], env=env), "cannot read")


def test_an_unknown_training_stage_is_one_line(env):
    _assert_one_line_error(runner.invoke(app, ["train", "--stages", "distill"], env=env), "head, retrieval, rerank or all")


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        (eml("Broken", "no boundary", content_type='multipart/mixed; boundary="q"'),
         lambda d: d["message"]["parse_warnings"] and d["label"]),
        (b"From: a@example.com\r\nSubject: Rechnung f\xfcr April\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n"
         b"Ihre Stromrechnung f\xfcr April betr\xe4gt 84 EUR.", lambda d: d["message"]["subject"].endswith("für April")),
        (eml("Sale", "<html><body><h1>40% off</h1><p>Coupon inside</p></body></html>",
             content_type="text/html; charset=utf-8"), lambda d: d["label"] == "🛒-shopping-promotions"),
        (eml("", ""), lambda d: d["reason"] == "no-content" and d["label"] == "other"),
        (eml("Huge newsletter", "Our weekly newsletter digest. " * 180_000), lambda d: d["message"]["truncated"]),
    ],
    ids=["malformed-mime", "non-utf8", "html-only", "empty-body", "5MB"],
)
def test_odd_but_readable_input_gets_a_clear_result(tmp_path, env, raw, check, encoder):
    result = _label(tmp_path, env, raw)
    assert result.exit_code == 0, result.output
    assert check(json.loads(result.stdout))


def test_broken_labels_json_is_one_line_and_writes_nothing(tmp_path, env):
    broken = tmp_path / "labels.json"
    broken.write_text(json.dumps({"fallback": "other", "labels": [{"name": "other"}, {"name": "x", "parent": "nope"}]}))
    mailbox = tmp_path / "Mail"
    LocalMaildir(mailbox).deliver(eml("a", "b"))
    before = sorted(p.name for p in mailbox.rglob("*"))
    result = runner.invoke(app, ["run", "--mailbox", str(mailbox), "--labels", str(broken)], env=env)
    _assert_one_line_error(result, "labels[1] ('x'): unknown parent 'nope'")
    assert sorted(p.name for p in mailbox.rglob("*")) == before
    assert not (tmp_path / "home").exists()
    broken.write_text("{oops")
    _assert_one_line_error(_label(tmp_path, env, eml("a", "b"), "--labels", str(broken)), "invalid JSON at line 1")


def test_run_twice_labels_each_message_exactly_once(tmp_path, env, encoder):
    from labelrouter.demo import sample_messages

    mailbox_dir = tmp_path / "Mail"
    box = LocalMaildir(mailbox_dir)
    ids = [box.deliver(raw) for _, raw in sample_messages()[:10]]
    bad = box.deliver(b"\x00\x01 not a message")
    result = runner.invoke(app, ["run", "--mailbox", str(mailbox_dir), "--json"], env=env)
    assert result.exit_code == 1  # one message failed: recorded, not dropped, and the exit code says so
    outcomes = {o["message_id"]: o for o in map(json.loads, result.stdout.splitlines())}
    assert outcomes[bad]["status"] == "failed" and "not an RFC 822" in outcomes[bad]["error"]
    assert all(outcomes[i]["status"] == "applied" for i in ids)

    labels = load_label_set(LABELS_JSON)
    store = SQLiteStore(tmp_path / "home" / "labelrouter.sqlite3")
    for mid in ids:
        carried = [lid for lid in box.label_ids(mid) if lid != "INBOX"]
        assert len(carried) == 1  # exactly one label
        row = store.get(mid)
        # Archived exactly when the label archives and the decision cleared its archive threshold.
        should = labels.get(row["label_applied"]).archive and row["confidence"] >= row["archive_threshold"]
        assert bool(row["archived"]) is should
        assert ("INBOX" in box.label_ids(mid)) is not should
    assert box.label_ids(bad) == ["INBOX"]  # the failed message is untouched

    snapshot = sorted(str(p) for p in mailbox_dir.rglob("*") if p.is_file())
    again = runner.invoke(app, ["run", "--mailbox", str(mailbox_dir), "--json"], env=env)
    outcomes2 = [json.loads(line) for line in again.stdout.splitlines()]
    assert [o["message_id"] for o in outcomes2] == [bad]  # only the failed one is retried
    assert sorted(str(p) for p in mailbox_dir.rglob("*") if p.is_file()) == snapshot

    assert store.counts() == {"labeled": 10, "failed": 1}
    assert store.get(bad)["attempts"] == 2
    row = store.get(ids[0])
    assert row["embedding_dim"] == 384 and row["encoder_version"] == encoder.version
    assert row["embedded_text"].startswith(row["subject"])  # what was embedded, for retraining
    assert json.loads(row["label_ids_before"]) == ["INBOX"] and row["labels_hash"]


def test_dry_run_changes_nothing(tmp_path, env, encoder):
    from labelrouter.demo import sample_messages

    mailbox_dir = tmp_path / "Mail"
    box = LocalMaildir(mailbox_dir)
    for _, raw in sample_messages()[:4]:
        box.deliver(raw)
    snapshot = sorted(str(p) for p in mailbox_dir.rglob("*"))
    result = runner.invoke(app, ["run", "--mailbox", str(mailbox_dir), "--dry-run", "--json"], env=env)
    assert result.exit_code == 0
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["dry-run"] * 4
    assert sorted(str(p) for p in mailbox_dir.rglob("*")) == snapshot  # not even label folders created
    assert not (tmp_path / "home" / "labelrouter.sqlite3").exists()  # a dry run creates no store


def test_graph_command_formats(tmp_path):
    mermaid = runner.invoke(app, ["graph", "--format", "mermaid"])
    assert mermaid.exit_code == 0
    # The installed graph: the shipped sender-rules extension sits before the router, the important head
    # after it.
    assert "summarize --> sender_rules" in mermaid.stdout and "sender_rules --> label_router" in mermaid.stdout
    assert "label_router --> important" in mermaid.stdout and "important --> apply" in mermaid.stdout
    assert "label_router" in runner.invoke(app, ["graph", "--format", "ascii"]).stdout
    png = tmp_path / "g.png"
    assert runner.invoke(app, ["graph", "--format", "png", "--output", str(png)]).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    _assert_one_line_error(runner.invoke(app, ["graph", "--format", "svg"]), "unknown format")


def test_demo_labels_the_sample_mailbox(tmp_path, env, encoder):
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "38 processed: 38 labeled" in result.stdout
    correct = int(result.stdout.split("matches the label we expected for ")[1].split("/")[0])
    assert correct >= 28, result.stdout  # zero-shot quality floor on mail we wrote; can fail


def test_text_retention_deletes_old_text_at_the_start_of_a_run(tmp_path, env, encoder):
    import sqlite3

    from labelrouter.demo import sample_messages

    box = LocalMaildir(tmp_path / "Mail")
    old = box.deliver(sample_messages()[0][1])
    assert runner.invoke(app, ["run", "--mailbox", str(tmp_path / "Mail")], env=env).exit_code == 0
    db = tmp_path / "home" / "labelrouter.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE processed_messages SET processed_at = '2020-01-01T00:00:00+00:00'")
    new = box.deliver(sample_messages()[1][1])
    result = runner.invoke(app, ["run", "--mailbox", str(tmp_path / "Mail")],
                           env={**env, "LABELROUTER_TEXT_RETENTION_DAYS": "30"})
    assert result.exit_code == 0
    store = SQLiteStore(db)
    assert store.get(old)["embedded_text"] is None and store.get(old)["summary"] is None
    assert store.get(old)["label_applied"] and store.get(old)["embedding"] is not None
    assert store.get(new)["embedded_text"]  # this run's decision keeps its text
