"""The stream protocol on a small labeled set with the stub encoder: the real run, sync, mining and
training loop, with baselines retrained at the same points."""

from __future__ import annotations

import random

import numpy as np

from labelrouter.evaluation.stream import StreamConfig, run_stream
from labelrouter.labels import Label, LabelSet
from labelrouter.training.importer import LabeledSet

TOPICS = {"invoices": "invoice payment amount due bank transfer", "travel": "flight hotel booking itinerary trip",
          "recruiting": "candidate interview resume hiring role"}


def _rows(n: int) -> list[dict]:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = TOPICS[label].split()
        body = " ".join(rng.choice(words) for _ in range(12))
        rows.append({"id": f"r{i}", "subject": "", "sender": "", "body": body, "label": label,
                     "date": f"2025-01-{1 + i // 10:02d}T{i % 10:02d}:00:00+00:00"})
    return rows


def test_the_stream_learns_from_corrections_through_the_real_loop(tmp_path, stub_encoder):
    taxonomy = LabelSet(tuple(Label(name, None, "") for name in TOPICS))  # names only: the cold start is weak
    data = LabeledSet("toy", taxonomy, _rows(150))
    report = run_stream(data, stub_encoder, tmp_path, StreamConfig(correction_rate=1.0, train_every=30))
    windows = report["windows"]
    assert report["n"] == 150 and len(windows) == 5
    assert report["corrections"] > 0
    assert report["promotions"] >= 1 and len(report["training_decisions"]) == 5
    later = np.mean([w["accuracy"] for w in windows[2:]])
    assert later > windows[0]["accuracy"] + 0.3  # it learned from the user's moves
    assert set(report["baselines"]) == {"tfidf_svm", "frozen_lr"} and windows[0]["tfidf_svm"] == 0.0
    assert 0.0 <= report["coverage"] <= 1.0
    # The top label is right at least as often as the decision (the fallback only takes labels away), and
    # every decision says which rule it was under.
    assert report["top_label_accuracy"] >= report["prequential_accuracy"]
    assert sum(report["decisions_on"].values()) == 150 and set(report["decisions_on"]) <= {"confidence", "margin"}
    assert set(report["aurc"]) == {"confidence", "margin"}


def test_the_user_reads_what_they_look_at_so_right_labels_become_confirmations(tmp_path, stub_encoder):
    taxonomy = LabelSet(tuple(Label(name, None, "") for name in TOPICS))
    data = LabeledSet("toy", taxonomy, _rows(90))
    (tmp_path / "reads").mkdir(), (tmp_path / "no-reads").mkdir()
    reading = run_stream(data, stub_encoder, tmp_path / "reads", StreamConfig(train_every=30))
    assert reading["reads"] and reading["examples"]["confirmation"] > 0
    # Every message looked at (R = 1.0) is an example: confirmed where it was right, corrected where not.
    assert sum(reading["examples"].values()) == 90 and reading["examples"]["correction"] == reading["corrections"]
    not_reading = run_stream(data, stub_encoder, tmp_path / "no-reads", StreamConfig(train_every=30, reads=False))
    assert set(not_reading["examples"]) == {"correction"}


def test_eval_protocol_stream_writes_its_report_and_curve(tmp_path, stub_encoder):
    import json

    from typer.testing import CliRunner

    from labelrouter.cli.app import app

    messages = tmp_path / "messages.jsonl"
    messages.write_text("".join(json.dumps(r) + "\n" for r in _rows(60)))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps({"dataset": "toy", "nodes": [], "labels": [{"name": n} for n in TOPICS]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--messages", str(messages), "--taxonomy", str(taxonomy),
                                      "--protocol", "stream", "--train-every", "20", "--correction-rate", "0.5",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["correction_rate"] == 0.5 and report["n"] == 60 and len(report["windows"]) == 3
    assert (out / "stream.png").read_bytes()[:4] == b"\x89PNG" and "| messages |" in (out / "report.md").read_text()
    # Each baseline with a fallback of its own at labelrouter's coverage, for a fair look at the fallback.
    assert set(report["baselines_at_coverage"]) == {"tfidf_svm", "frozen_lr"}
    assert len(report["risk_coverage"]) == 20 and len(report["baselines_risk_coverage"]["tfidf_svm"]) == 20
    assert "by its own margin: tfidf_svm" in (out / "report.md").read_text()
    mixed = CliRunner().invoke(app, ["eval", "--messages", str(messages), "--taxonomy", str(taxonomy),
                                     "--protocol", "stream,full"])
    assert mixed.exit_code == 2 and "on its own" in mixed.stderr


def test_a_kept_stream_leaves_a_home_the_report_reads(tmp_path, stub_encoder, monkeypatch):
    import json

    from typer.testing import CliRunner

    from labelrouter.cli.app import app

    messages = tmp_path / "messages.jsonl"
    messages.write_text("".join(json.dumps(r) + "\n" for r in _rows(40)))
    taxonomy = tmp_path / "taxonomy.json"
    taxonomy.write_text(json.dumps({"dataset": "toy", "nodes": [], "labels": [{"name": n} for n in TOPICS]}))
    kept = tmp_path / "kept"
    args = ["eval", "--messages", str(messages), "--taxonomy", str(taxonomy), "--protocol", "stream",
            "--train-every", "20", "--out", str(tmp_path / "out"), "--keep", str(kept)]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)  # a kept stream is never run over
    assert again.exit_code == 2 and "new (or empty) directory" in again.stderr
    monkeypatch.setenv("LABELROUTER_HOME", str(kept / "home"))
    monkeypatch.setenv("LABELROUTER_LABELS_PATH", str(kept / "labels.json"))
    made = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "report.html")])
    assert made.exit_code == 0 and "40 messages labeled over 1 week," in made.stdout, made.output


def test_a_baseline_at_a_coverage_keeps_the_decisions_it_is_surest_of():
    from labelrouter.evaluation.stream import at_coverage

    margins, right = np.array([0.9, 0.1, 0.5, 0.3]), np.array([True, False, True, False])
    assert at_coverage(margins, right, 0.5) == 1.0 and at_coverage(margins, right, 0.75) == 2 / 3
    assert at_coverage(margins, right, 1.0) == 0.5 and at_coverage(np.array([]), np.array([]), 0.5) is None
