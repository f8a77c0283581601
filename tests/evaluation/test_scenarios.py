"""Drift scenarios through the real loop (`labelrouter.evaluation.scenarios`, `stream.run_stream`, the stub encoder):
each holds the loop to a bound that fails when it stops learning what the user just taught it. And the
split and the gate on their own: a label only among the newest examples is learned, and a new user's first
few dozen corrections promote a head."""

from __future__ import annotations

import json
from collections import Counter
from email.message import EmailMessage as Mime

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.evaluation.scenarios import SCENARIOS, lessons, scenario
from labelrouter.evaluation.splits import learnable_holdout
from labelrouter.evaluation.stream import StreamConfig, run_stream
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir, folder_name
from labelrouter.settings import load_settings
from labelrouter.store import open_store
from labelrouter.training import build_training_context, run_training
from tests.conftest import LABELS_JSON
from tests.feedback.test_feedback import move
from tests.helpers import separable_examples

N, EVERY = 400, 40  # ten retrainings; the change starts at message 160 (the fifth window)
# A stream of hundreds of messages through the real loop takes 10-20 s: out of the fast lane.
streams = pytest.mark.slow


def _run(name: str, tmp_path, encoder) -> tuple[dict, dict]:
    case = scenario(name, n=N)
    report = run_stream(case.data, encoder, tmp_path, StreamConfig(train_every=EVERY, record=True,
                                                                  correction_rate=case.correction_rate),
                        events=case.events)
    return report, lessons(report, case)


def test_every_scenario_is_a_dated_stream_of_our_own_templates():
    for name in SCENARIOS:
        case = scenario(name, n=N)
        dates = [r["date"] for r in case.data.rows]
        assert dates == sorted(dates) and len(case.data.rows) == N
        assert {r["label"] for r in case.data.rows} <= set(case.data.taxonomy.names) | {"atlas"}
        if case.watch and name not in ("retired", "renamed"):
            first = min(i for i, r in enumerate(case.data.rows) if r["label"] == case.watch and
                        (name != "newsletter" or "briefing" in r["body"].lower()))
            assert first >= case.start  # the change begins where the scenario says
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("nope")


@streams
def test_a_burst_into_a_new_folder_is_learned_within_two_retrainings(tmp_path, stub_encoder):
    report, found = _run("burst", tmp_path, stub_encoder)
    assert found["retrainings_to_learn"] is not None and found["retrainings_to_learn"] <= 2, found
    assert found["watched_accuracy_after"] >= 0.9, found
    assert not any(d.startswith("kept") for d in report["training_decisions"][5:]), report["training_decisions"]


@streams
def test_a_label_added_mid_stream_is_learned_within_three_retrainings(tmp_path, stub_encoder):
    _, found = _run("added", tmp_path, stub_encoder)
    assert found["retrainings_to_learn"] is not None and found["retrainings_to_learn"] <= 3, found
    assert found["watched_accuracy_after"] >= 0.8, found


@streams
def test_a_retired_label_stops_being_given(tmp_path, stub_encoder):
    _, found = _run("retired", tmp_path, stub_encoder)
    assert found["retired_given_after"] <= 0.05, found


@streams
def test_a_newsletter_that_changes_its_template_is_relearned_within_two_retrainings(tmp_path, stub_encoder):
    _, found = _run("newsletter", tmp_path, stub_encoder)
    assert found["retrainings_to_learn"] is not None and found["retrainings_to_learn"] <= 2, found


@streams
def test_a_renamed_folder_keeps_its_mail_from_the_next_message_on(tmp_path, stub_encoder):
    """`labels rename` relabels what was learned: the first window under the new name is already right."""
    report, found = _run("renamed", tmp_path, stub_encoder)
    assert found["retrainings_to_learn"] == 0, found
    assert "atlas" not in load_label_set(tmp_path / "labels.json").names
    assert not any(o["label"] == "atlas" for o in report["outcomes"][found_start(report):])


def found_start(report: dict) -> int:
    return next(i for i, o in enumerate(report["outcomes"]) if o["truth"] == "atlas-platform")


@streams
def test_a_user_who_corrects_a_third_of_the_mistakes_still_teaches_it(tmp_path, stub_encoder):
    report, found = _run("partial", tmp_path, stub_encoder)
    windows = [w["accuracy"] for w in report["windows"]]
    assert sum(windows[-4:]) / 4 >= windows[0] + 0.3, windows
    assert found["prequential_accuracy"] >= found["tfidf_svm"] - 0.02, found


def test_validation_never_holds_more_of_a_label_than_training():
    """A label the user has only just begun to file into alternates between training and validation; one
    the model knows validates on all its new mail."""
    labels = ["a"] * 30 + ["new"] * 10
    new = [False] * 30 + [True] * 10
    train, val = learnable_holdout(range(40), [f"{i:03d}" for i in range(40)], labels, new, 0.2, at_least=50)
    assert sorted(val) == [31, 33, 35, 37, 39] and set(train) == set(range(40)) - set(val)
    # Only new examples validate; a label with one example, new to the model too, validates on it.
    _, val = learnable_holdout(range(6), list("abcdef"), ["a", "a", "b", "c", "c", "d"], [True] * 6, 0.5)
    assert val == [2, 4, 5]  # a's and c's second, and d's lone example (b's trains: val is full)
    _, val = learnable_holdout(range(14), [f"{i:02d}" for i in range(14)], ["a"] * 14, [False] * 10 + [True] * 4,
                               0.2, at_least=50)
    assert val == [10, 11, 12, 13]


def test_a_label_only_among_the_newest_examples_is_learned_by_the_next_run(tmp_path, stub_encoder, settings):
    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names
    store.add_examples(separable_examples(stub_encoder, names[:3], per_label=20))
    assert run_training(build_training_context(settings, store)).promoted
    burst = [e for e in separable_examples(stub_encoder, names[:4], per_label=24) if e["label"] == names[3]]
    for e in burst:  # newer than anything learned, as a burst is
        e["occurred_at"] = e["occurred_at"].replace("2025", "2026")
    store.add_examples(burst)
    state = run_training(build_training_context(settings, store))
    by_id = {e["example_id"]: e["label"] for e in store.examples(stub_encoder.version)}
    assert Counter(by_id[i] for i in state.train_ids)[names[3]] == 12
    assert Counter(by_id[i] for i in state.val_ids)[names[3]] == 12
    assert state.promoted, state.decision
    assert state.metrics["candidate"]["top1"] > state.metrics["current"]["top1"]


def test_a_candidate_misled_by_its_training_data_is_measurably_worse_and_kept(tmp_path, stub_encoder, settings):
    """Silver examples only train: a flood of them with wrong labels makes a candidate that the gate, judging
    on what the user confirmed, finds measurably worse than the current head."""
    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names[:4]
    gold = separable_examples(stub_encoder, names, per_label=30)
    store.add_examples([e for e in gold if int(e["example_id"].rsplit(":", 1)[-1]) < 20])
    assert run_training(build_training_context(settings, store)).promoted
    store.add_examples([e for e in gold if int(e["example_id"].rsplit(":", 1)[-1]) >= 20])
    misled = []
    for e in separable_examples(stub_encoder, names, per_label=150):  # each label's mail called the next one's
        wrong = names[(names.index(e["label"]) + 1) % len(names)]
        misled.append({**e, "example_id": f"silver:{e['example_id']}", "message_id": f"s:{e['message_id']}",
                       "kind": "silver", "label": wrong})
    store.add_examples(misled)
    state = run_training(build_training_context(settings, store))
    assert not state.promoted and state.decision.startswith("kept "), state.decision
    assert state.metrics["candidate"]["top1"] < state.metrics["current"]["top1"] - state.metrics["candidate"]["noise"]


def _deliver(box: LocalMaildir, row: dict, i: int) -> str:
    mail = Mime()
    mail["From"], mail["To"], mail["Subject"] = row["sender"], "me@example.com", row["subject"]
    mail["Date"] = f"Mon, {1 + i // 24:02d} Jun 2026 {i % 24:02d}:00:00 +0000"
    mail.set_content(row["body"])
    return box.deliver(mail.as_bytes())


def test_a_new_users_first_25_corrections_promote_a_head_that_gets_them_right(tmp_path, monkeypatch, stub_encoder):
    """72 messages, 25 corrected, nothing else read: the next `train` promotes a head, and replayed it gets
    most of the 25 right."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    case = scenario("steady", n=72, seed=3)
    labels = {"labels": [{"name": n, "description": case.data.taxonomy.get(n).description}
                         for n in case.data.taxonomy.names] + [{"name": "other", "description": "anything else"}],
              "fallback": "other"}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    monkeypatch.setenv("LABELROUTER_LABELS_PATH", str(tmp_path / "labels.json"))
    runner = CliRunner()
    box = LocalMaildir(tmp_path / "home" / "mailbox")
    truth = {_deliver(box, row, i): row["label"] for i, row in enumerate(case.data.rows)}
    assert runner.invoke(app, ["run", "--json"]).exit_code == 0
    store = open_store(load_settings())
    applied = {r["message_id"]: r["label_applied"] for r in store.rows("labeled")}
    wrong = [m for m in applied if applied[m] != truth[m] and (box.root / f".{folder_name(applied[m])}").is_dir()]
    assert len(wrong) >= 25, "the cold start should get at least 25 of these wrong"
    for mid in wrong[:25]:
        move(box, mid, applied[mid], truth[mid])
    assert runner.invoke(app, ["sync"]).exit_code == 0
    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 0, trained.output
    state = json.loads(trained.stdout)
    assert state["promoted"], state["decision"]
    replayed = runner.invoke(app, ["replay", "--corrected-only", "--json"])
    *lines, totals = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert len(lines) == 25 and totals["totals"]["agreement_new"] > 0.5, totals
