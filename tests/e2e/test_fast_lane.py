"""The whole loop on the stub encoder, in the fast lane: run labels a Maildir exactly once through the CLI,
label prints the state output model's JSON, training promotes a head the next run uses."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.demo import create_sample_mailbox
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.settings import MIN_COVERAGE
from labelrouter.state import LabelingOutput
from labelrouter.store import open_store
from labelrouter.training import build_training_context, run_training
from tests.conftest import LABELS_JSON, registry_at
from tests.helpers import separable_examples

runner = CliRunner()


def _env(tmp_path):
    return {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}


def test_run_labels_each_message_once_and_a_second_run_adds_nothing(tmp_path, stub_encoder, settings):
    expected = create_sample_mailbox(tmp_path / "home" / "mailbox")
    first = runner.invoke(app, ["run", "--json"], env=_env(tmp_path))
    assert first.exit_code == 0, first.output
    outcomes = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(outcomes) == len(expected) and {o["status"] for o in outcomes} == {"applied"}
    box = LocalMaildir(tmp_path / "home" / "mailbox", create=False)
    ours = {lb["name"] for lb in json.loads(LABELS_JSON.read_text())["labels"]}
    assert all(len(set(box.label_ids(mid)) & ours) == 1 for mid in expected)  # exactly one of our labels each
    again = runner.invoke(app, ["run", "--json"], env=_env(tmp_path))
    assert again.exit_code == 0 and again.stdout.strip() == ""
    store = open_store(settings.model_copy(update={"home": tmp_path / "home"}), create=False)
    assert store.counts().get("labeled") == len(expected)
    assert {r["encoder_version"] for r in store.rows("labeled")} == {stub_encoder.version}


def test_label_json_is_the_output_models_explanation(tmp_path, stub_encoder):
    raw = b"From: a@example.com\nSubject: Flight booking confirmation\n\nYour flight booking and hotel itinerary.\n"
    result = runner.invoke(app, ["label", "-"], input=raw, env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"message", "summary", "applied", "errors", "extensions",
                         *LabelingOutput.model_fields["routing"].annotation.__args__[0].model_fields}
    assert set(data["message"]) == LabelingOutput.EXPLAINED_MESSAGE_FIELDS  # no body, no snippet
    assert data["encoder_version"] == stub_encoder.version


def test_training_promotes_a_head_that_the_next_decision_uses(tmp_path, stub_encoder, settings):
    from labelrouter.graph.wiring import build_context
    from labelrouter.labels import load_label_set

    store = open_store(settings)
    store.add_examples(separable_examples(stub_encoder, load_label_set(LABELS_JSON).names[:5], per_label=12))
    state = run_training(build_training_context(settings, store))
    assert state.promoted, state.decision
    assert registry_at(settings.resolved_models_dir).current_version() == state.candidate_version
    ctx = build_context(settings)
    assert ctx.model_version.endswith(f"+head:{state.candidate_version}")
    # Every other example of each label validates (the cold start has learned none of them).
    assert len(state.val_ids) == 30 and all(int(i.split(":")[-1]) % 2 for i in state.val_ids)
    # Its fallback rule is the one its policy chose on validation, on the confidence or on the margin.
    head = registry_at(settings.resolved_models_dir).current_head(embedder=stub_encoder.version, dim=stub_encoder.dim)
    policy = head.metrics["fallback_policy"]
    key = {"confidence": "fallback", "margin": "fallback_margin"}[policy["fallback_on"]]
    assert set(head.thresholds) & {"fallback", "fallback_margin"} == {key} and set(policy["aurc"]) == {"confidence", "margin"}
    assert ctx.router.scoring.fallback_on == policy["fallback_on"]
    assert ctx.router.scoring.threshold == head.thresholds[key] == policy["threshold"]
    # A user who pins the statistic gets it: the next candidate is judged with its rule on the margin.
    store.add_examples(separable_examples(stub_encoder, load_label_set(LABELS_JSON).names[5:7], per_label=12))
    pinned = run_training(build_training_context(settings.model_copy(update={"fallback_on": "margin"}), store))
    assert pinned.metrics["candidate"]["fallback_on"] == "margin", pinned.metrics["candidate"]


def test_the_promoted_head_learned_validation_too_and_an_unchanged_store_is_not_retrained(tmp_path, stub_encoder,
                                                                                          settings, monkeypatch):
    from labelrouter.labels import load_label_set
    from labelrouter.models import analysis
    from labelrouter.training import ANALYSIS_FILE

    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names[:4]
    examples = separable_examples(stub_encoder, names, per_label=12)
    for row in examples:
        row["document"] = f"from: {row['label']}@x.example\n\nnote {row['example_id']} about {row['label']}"
    store.add_examples(examples)
    state = run_training(build_training_context(settings, store))
    assert state.promoted, state.decision
    head = registry_at(settings.resolved_models_dir).current_head(embedder=stub_encoder.version, dim=stub_encoder.dim)
    # Refit on train and validation (the newest examples): its label counts include the validation rows.
    assert head.counts.sum() == 2.0 * 48 and head.metrics["trained_through_seq"] == 48
    assert head.metrics["fallback_policy"]["min_coverage"] == MIN_COVERAGE and 0.0 <= head.pull <= 1.0
    again = run_training(build_training_context(settings, store))
    assert not again.promoted and again.decision == "not trained: nothing new"
    # One new example is something new, but too little to judge a candidate on (2 are needed).
    more = separable_examples(stub_encoder, names[:1], per_label=16)[-4:]
    for k, row in enumerate(more):
        row["example_id"], row["document"] = f"gold:new:{k}", f"from: {names[0]}@x.example\n\nthe newest note {k}"
    store.add_examples(more[:1])
    one = run_training(build_training_context(settings, store))
    assert one.decision == "not trained: not enough data" and "has not learned" in one.skipped[0]
    store.add_examples(more[1:])
    # The first run kept its lexical analyses: this one analyses the new examples' documents only.
    assert (settings.resolved_cache_dir / ANALYSIS_FILE).exists()
    analysed = []
    real = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda d: analysed.append(d) or real(d))
    third = run_training(build_training_context(settings, store))
    assert third.metrics["candidate"]["judged_on"] == 4 and sorted(third.val_ids) == [f"gold:new:{k}" for k in range(4)]
    assert sorted(analysed) == sorted(row["document"] for row in more)


def test_the_training_graph_checkpoints_and_resumes_from_state_alone(tmp_path, stub_encoder, settings):
    """State carries ids and versions only, so a run stopped after train_head resumes in a new graph
    object from its checkpoint and promotes what was staged."""
    from langgraph.checkpoint.memory import InMemorySaver

    from labelrouter.labels import load_label_set
    from labelrouter.training.graph import build_training_graph

    store = open_store(settings)
    store.add_examples(separable_examples(stub_encoder, load_label_set(LABELS_JSON).names[:3], per_label=17))
    ctx = build_training_context(settings, store)
    saver, config = InMemorySaver(), {"configurable": {"thread_id": "nightly-1"}}
    first = build_training_graph().compile(checkpointer=saver, interrupt_after=["train_head"])
    first.invoke({}, config, context=ctx)
    paused = first.get_state(config)
    assert paused.next == ("evaluate",) and paused.values["candidate_version"]
    assert registry_at(settings.resolved_models_dir).current_version() is None
    resumed = build_training_graph().compile(checkpointer=saver)
    final = resumed.invoke(None, config, context=build_training_context(settings, store))
    assert final["promoted"] and final["candidate_version"] == paused.values["candidate_version"]
    assert registry_at(settings.resolved_models_dir).current_version() == final["candidate_version"]


def test_validation_is_what_the_current_head_has_not_learned_and_noise_goes_to_the_candidate(tmp_path, stub_encoder,
                                                                                           settings):
    """After a promotion, the next run validates on examples the current head never saw and trains the
    candidate on everything it did see, so the two are judged fairly — and a
    candidate that knows more is promoted unless it is measurably worse."""
    from types import SimpleNamespace

    from labelrouter.labels import load_label_set
    from labelrouter.training.nodes import gate, reject
    from labelrouter.training.state import TrainingState

    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names[:4]
    first = separable_examples(stub_encoder, names, per_label=40)
    store.add_examples([e for e in first if int(e["example_id"].rsplit(":", 1)[-1]) < 20])
    assert run_training(build_training_context(settings, store)).promoted
    learned = {e["example_id"] for e in store.examples(stub_encoder.version)}
    store.add_examples([e for e in first if int(e["example_id"].rsplit(":", 1)[-1]) >= 20])
    state = run_training(build_training_context(settings, store))
    # Labels it knows validate on their new mail, at least 50 of it (`min_fair_val`).
    assert set(state.val_ids).isdisjoint(learned) and len(state.val_ids) == 50
    assert learned <= set(state.train_ids) and len(state.train_ids) == 110
    context = SimpleNamespace(policy=SimpleNamespace(promote_margin=0.0), registry=SimpleNamespace(discard=lambda _v: None))
    runtime = SimpleNamespace(context=context)
    within = {"current": {"top1": 0.8}, "candidate": {"top1": 0.76, "noise": 0.05, "judged_on": 40}}
    assert gate(TrainingState(metrics=within), runtime) == "promote"
    worse = {"current": {"top1": 0.8}, "candidate": {"top1": 0.74, "noise": 0.05, "judged_on": 40}}
    assert gate(TrainingState(metrics=worse), runtime) == "reject"
    # A new encoder must at least tie (plus `promote_margin`): re-embedding is not done for noise.
    assert gate(TrainingState(metrics=within, candidate_encoder="e2"), runtime) == "reject"
    assert gate(TrainingState(metrics={**within, "candidate": {"top1": 0.8, "noise": 0.05}}, candidate_encoder="e2"),
                runtime) == "promote"
    kept = reject(TrainingState(metrics=worse, current_version="h1", candidate_version="h2"),
                  SimpleNamespace(context=SimpleNamespace(**vars(context), encoder=None)))
    assert kept["decision"] == "kept h1: candidate top-1 0.7400 vs 0.8000 on 40 (needs 0.7500)"


def test_a_nightly_run_reuses_the_current_scale_until_the_training_set_doubles(tmp_path, stub_encoder, settings,
                                                                               monkeypatch):
    """The scale trials run when there is no scale to reuse, it was chosen on less than a full trial sample,
    or the mailbox has doubled since; in between the current head's scale is kept and recorded as chosen
    on the same training-set size."""
    from labelrouter.labels import load_label_set
    from labelrouter.training import head as head_module
    from labelrouter.training import nodes as graph_module

    monkeypatch.setattr(graph_module, "SELECT_AT_MOST", 50)  # as if 50 were a full trial sample (4,000)
    trials = []
    real = head_module.dense_scale_trials
    monkeypatch.setattr(head_module, "dense_scale_trials", lambda *a, **k: trials.append(len(a[2])) or real(*a, **k))
    store = open_store(settings)
    names = load_label_set(LABELS_JSON).names[:4]
    examples = separable_examples(stub_encoder, names, per_label=90)
    batch = lambda lo, hi: [e for e in examples if lo <= int(e["example_id"].rsplit(":", 1)[-1]) < hi]  # noqa: E731
    store.add_examples(batch(0, 13))
    small = run_training(build_training_context(settings, store))
    store.add_examples(batch(13, 20))  # a scale chosen on 42 examples, less than a full sample: tried again
    first = run_training(build_training_context(settings, store))
    assert small.promoted and first.promoted and len(trials) == 2 and first.known_scale is None
    assert first.scale_chosen_on == len(first.train_ids) == trials[-1] >= 50
    store.add_examples(batch(20, 30))  # 80 → 120 examples: fewer than twice as many trained on
    second = run_training(build_training_context(settings, store))
    assert second.promoted and len(trials) == 2  # no trials: the scale was reused
    assert second.known_scale is not None and second.scale_chosen_on == first.scale_chosen_on
    current = registry_at(settings.resolved_models_dir).current_head(embedder=stub_encoder.version,
                                                                    dim=stub_encoder.dim)
    assert current.metrics["dense_scale_chosen_on"] == first.scale_chosen_on
    store.add_examples(batch(30, 90))  # 360 examples: more than twice what the scale was chosen on
    third = run_training(build_training_context(settings, store))
    assert len(trials) == 3 and third.known_scale is None and third.scale_chosen_on == len(third.train_ids)
