"""The head that reads the message: lexical features, the hybrid head, shrinkage, calibration, the fallback
policy, and its artifact (fast lane: synthetic vectors, no encoder)."""

import json
from pathlib import Path

import numpy as np
import pytest

from labelrouter.artifacts import LocalArtifacts
from labelrouter.errors import ModelArtifactError
from labelrouter.evaluation.metrics import aurc, fallback_policy
from labelrouter.models.bundle import load_head
from labelrouter.models.document import analyze, message_document, parse_document
from labelrouter.models.lexicon import Lexicon
from labelrouter.models.registry import ModelRegistry
from labelrouter.training.head import calibrate, fit_pull, train_hybrid_head, train_linear_head

DIM = 16


def test_a_document_carries_addresses_subject_and_the_whole_capped_body():
    body = "opening words " + "filler " * 400 + "closing invoice 4711"
    document = message_document("Ann Example <Ann@Example.COM>", ["bob@example.org, Team <team@corp.example>"],
                                "Re: Fwd: Quarterly numbers", body)
    features = set(analyze(document))
    assert {"from:ann@example.com", "from:@example.com", "to:bob@example.org", "to:team@corp.example",
            "to:@corp.example"} <= features
    assert {"subject:quarterly", "thread:quarterly numbers", "quarterly numbers"} <= features
    assert {"invoice", "4711", "closing invoice"} <= features  # past the encoder's 256 word pieces
    assert parse_document(document) == ("ann@example.com", ["bob@example.org", "team@corp.example"],
                                        "Re: Fwd: Quarterly numbers", body.strip())
    capped = message_document("", [], "s", "x " * 10 + "y" * 5 + " tail", body_chars=20)
    assert "tail" not in analyze(capped)


def test_the_lexicon_weights_as_scikit_learn_does_and_ignores_unknown_terms():
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [message_document(f"u{i % 3}@x.example", [], f"subject {i % 4}", f"alpha beta gamma{i % 5} delta")
            for i in range(30)]
    lexicon, rows = Lexicon.fit_transform(docs)
    reference = TfidfVectorizer(analyzer=analyze, min_df=2, sublinear_tf=True).fit(docs)
    assert lexicon.terms == reference.get_feature_names_out().tolist()
    np.testing.assert_allclose(rows.toarray(), reference.transform(docs).toarray(), atol=1e-6)
    np.testing.assert_allclose(lexicon.transform(docs).toarray(), rows.toarray(), atol=1e-6)
    assert lexicon.transform(["\n\nnever seen words"]).nnz == 0
    assert Lexicon.fit(["", ""]).terms == []


def test_an_active_analysis_cache_analyses_each_document_once_and_changes_no_weight(monkeypatch):
    import subprocess
    import sys

    from labelrouter.models import analysis

    docs = [message_document(f"u{i % 3}@x.example", [], f"subject {i % 4}", f"alpha beta gamma{i % 5} delta {i}")
            for i in range(40)]
    fresh, fresh_rows = Lexicon.fit_transform(docs)
    part = Lexicon.fit(docs[:30])
    calls = []
    real = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda d: calls.append(d) or real(d))
    cache = analysis.AnalysisCache()
    with cache.active():
        cached, rows = Lexicon.fit_transform(docs)  # analyses each once: the terms are named as they are read
        first = len(calls)
        again, rows_again = Lexicon.fit_transform(docs[:30])  # a refit on part of them: nothing new to read
        transformed = cached.transform(docs)
    assert len(calls) == first == len(docs)
    assert cached.terms == fresh.terms
    np.testing.assert_allclose(rows.toarray(), fresh_rows.toarray(), atol=1e-6)
    np.testing.assert_allclose(transformed.toarray(), fresh_rows.toarray(), atol=1e-6)
    assert again.terms == part.terms
    with analysis.uncached():
        cached.transform(docs[:1])
    assert len(calls) == first + 1
    # A cache over its name budget forgets the terms of one document only: the vocabulary is the same.
    small = analysis.AnalysisCache(max_names=20)
    with small.active():
        bounded = Lexicon.fit(docs)
    assert bounded.terms == fresh.terms
    assert len(small.names) < len(cache.names)
    # Hashes are per process; the vocabulary is not: a capped vocabulary breaks ties by term.
    code = ("from labelrouter.models.document import message_document as m; from labelrouter.models.lexicon import Lexicon; import json; print(json.dumps("
            "Lexicon.fit([m(f'u{i%3}@x', [], f's {i%4}', f'a b g{i%5} d {i}') for i in range(40)], "
            "max_features=7).terms))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert len(seen) == 1


def _senders(n_per=30, seed=0):
    """Three labels that only the sender's domain tells apart: the vectors are noise."""
    rng = np.random.default_rng(seed)
    labels = ["billing", "friends", "project"]
    X, docs, y = [], [], []
    for i in range(n_per * len(labels)):
        label = labels[i % 3]
        vector = rng.normal(size=DIM).astype(np.float32)
        X.append(vector / np.linalg.norm(vector))
        docs.append(message_document(f"someone{i}@{label}.example", [], f"note {i}", "some words here"))
        y.append(label)
    return np.vstack(X), docs, y, labels


def test_the_hybrid_head_learns_what_only_the_words_and_addresses_say():
    X, docs, y, labels = _senders()
    head = train_hybrid_head(X[:60], docs[:60], y[:60], embedder="enc@1", version="h1", label_order=labels)
    calibrate(head, X[60:], docs[60:], y[60:])
    w = head.weights(X[60:], labels, docs[60:])
    assert (np.array(labels)[w.argmax(1)] == np.array(y[60:])).mean() == 1.0
    dense = train_linear_head(X[:60], y[:60], embedder="enc@1", version="d1", label_order=labels)
    assert (np.array(labels)[dense.weights(X[60:], labels).argmax(1)] == np.array(y[60:])).mean() < 0.6
    # It explains itself by the feature that decided.
    assert head.evidence(docs[60], y[60])[0][0] == f"from:@{y[60]}.example"
    # Without documents (text retention expired) it still answers, from the vector alone.
    assert head.weights(X[60:], labels).shape == (30, 3)


def test_the_pull_is_fitted_so_a_weak_head_leaves_the_decision_to_the_router():
    from labelrouter.labels import parse_label_set
    from labelrouter.models.label_index import LabelIndex
    from labelrouter.models.router import Router

    X, docs, y, labels = _senders(n_per=40)
    label_set = parse_label_set({"labels": [{"name": n} for n in labels]}, require_fallback=False)
    gold = np.array([labels.index(name) for name in y])
    # The router knows the answer (each label's vector is in the direction of its messages' mean);
    # a head fit on one example each, with vectors of noise and other senders, knows little.
    centres = np.vstack([X[gold == j].mean(axis=0) for j in range(3)])
    X_routed = (X + 3 * centres[gold]).astype(np.float32)
    X_routed /= np.linalg.norm(X_routed, axis=1, keepdims=True)
    router = Router(label_set, LabelIndex(label_set, centres / np.linalg.norm(centres, axis=1, keepdims=True), "enc@1"))
    weak_docs = [message_document(f"nobody{i}@else.example", [], "note", "words") for i in range(len(y))]
    weak = train_hybrid_head(X[:3], docs[:3], y[:3], embedder="enc@1", version="h1", label_order=labels)
    weak.W = np.random.default_rng(5).normal(size=weak.W.shape).astype(np.float32) * 5  # confidently wrong
    router_only = np.mean(router.score(X_routed[60:]).top == gold[60:])
    assert np.mean(router.with_head(weak).score(X_routed[60:], weak_docs[60:]).top == gold[60:]) < router_only
    assert fit_pull(router, weak, X_routed[60:], weak_docs[60:], gold[60:]) <= 0.1
    assert np.mean(router.with_head(weak).score(X_routed[60:], weak_docs[60:]).top == gold[60:]) >= router_only
    # A head that knows (the sender decides) keeps its pull.
    strong = train_hybrid_head(X[:60], docs[:60], y[:60], embedder="enc@1", version="h2", label_order=labels)
    calibrate(strong, X[60:], docs[60:], y[60:])
    assert fit_pull(Router(label_set, router.index), strong, X[60:], docs[60:], gold[60:]) == 1.0


def test_calibration_picks_the_temperature_that_fits_held_out_labels():
    X, docs, y, labels = _senders(n_per=40)
    head = train_hybrid_head(X[:90], docs[:90], y[:90], embedder="enc@1", version="h1", label_order=labels)
    t = calibrate(head, X[90:], docs[90:], y[90:])
    assert t < 1.0  # separable: a sharper head than raw SVM margins
    assert head.probabilities(X[90:], docs[90:]).max(axis=1).mean() > 0.9


def test_the_hybrid_head_round_trips_through_the_registry_and_refuses_a_broken_lexicon(tmp_path: Path):
    X, docs, y, labels = _senders()
    head = train_hybrid_head(X, docs, y, embedder="enc@1", version="h1", label_order=labels)
    registry = ModelRegistry(LocalArtifacts(tmp_path / "models"))
    registry.stage(head)
    registry.promote("h1", embedder="enc@1", dim=DIM)
    loaded = registry.current_head(embedder="enc@1", dim=DIM)
    np.testing.assert_allclose(loaded.weights(X, labels, docs), head.weights(X, labels, docs), rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "models" / "versions" / "h1").iterdir()) == [
        "bundle.json", "head.json", "lexicon.json", "weights.safetensors"]
    head.save(tmp_path / "h")
    (tmp_path / "h" / "lexicon.json").write_text(json.dumps(["just one term"]))
    with pytest.raises(ModelArtifactError, match="the lexical part must be"):
        load_head(tmp_path / "h", embedder="enc@1", dim=DIM)
    (tmp_path / "h" / "lexicon.json").write_text("{not json")
    with pytest.raises(ModelArtifactError, match="lexicon.json unreadable"):
        load_head(tmp_path / "h", embedder="enc@1", dim=DIM)


def test_the_fallback_policy_keeps_the_coverage_floor_when_precision_is_out_of_reach():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(size=1000)
    hard = rng.uniform(size=1000) < 0.5  # 50 % right whatever the confidence
    policy = fallback_policy(confidence, hard, 0.9, 0.8)
    # The floor is held with one standard error to spare: 80 % + √(0.8 · 0.2 / 1000) = 81.3 % here, more on
    # a small validation set (a promise about mail not yet seen).
    assert policy["bound"] == "coverage" and policy["coverage"] == pytest.approx(0.8126, abs=0.002)
    assert fallback_policy(confidence[:50], hard[:50], 0.9, 0.8)["coverage"] >= 0.8 + 0.056
    assert fallback_policy(confidence, hard, 0.9, 1.0)["coverage"] == 1.0
    easy = confidence > 0.3  # right exactly when confident
    policy = fallback_policy(confidence, easy, 0.9, 0.5)
    assert policy["bound"] == "precision" and policy["precision"] >= 0.9 and policy["coverage"] > 0.6
    json.dumps(policy)  # plain floats: it is stored in training state and model metrics


def test_a_fallback_threshold_keeps_new_mail_near_the_last_decision_it_kept_and_nothing_falls_back_when_all_is_right():
    from labelrouter.evaluation.metrics import fit_threshold

    values = np.array([0.9, 0.7, 0.5, 0.3])
    # Precision 0.9 holds for the top two: the threshold lies halfway to the third, not at the second.
    assert fit_threshold(values, np.array([True, True, False, False]), 0.9, between=True) == pytest.approx(0.6)
    assert fit_threshold(values, np.array([True, True, False, False]), 0.9) == 0.7  # archiving: the value itself
    # Every validation decision is right: nothing falls back, however low a new message scores.
    assert fit_threshold(values, np.ones(4, dtype=bool), 0.9, between=True) == 0.0
    assert fallback_policy(values, np.ones(4, dtype=bool), 0.9, 0.5)["threshold"] == 0.0


def test_the_area_under_risk_coverage_is_least_when_right_outranks_wrong_and_ties_move_together():
    right = np.array([True, True, False, False])
    # Risk at coverage 1/4, 2/4, 3/4, 1: 0, 0, 1/3, 1/2 when right comes first; 1, 1, 2/3, 1/2 when last.
    assert aurc(np.array([0.9, 0.8, 0.2, 0.1]), right) == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)
    assert aurc(np.array([0.1, 0.2, 0.8, 0.9]), right) == pytest.approx((1 + 1 + 2 / 3 + 1 / 2) / 4)
    # Four equal values are kept or dropped together: one point, coverage 1, risk 0.5, whatever their order.
    assert aurc(np.full(4, 0.5), right) == aurc(np.full(4, 0.5), right[::-1]) == 0.5


def test_the_fallback_policy_puts_the_threshold_on_the_margin_only_where_it_tells_right_from_wrong_better():
    rng = np.random.default_rng(1)
    n = 2000
    margin = rng.uniform(0, 60, n)
    right = rng.uniform(size=n) < margin / 60  # the runner-up's distance is what predicts a right decision
    confidence = rng.uniform(0.3, 0.9, n)  # ... and the winner's score says nothing
    policy = fallback_policy(confidence, right, 0.8, 0.3, margin=margin)
    assert policy["fallback_on"] == "margin" and policy["aurc"]["margin"] < policy["aurc"]["confidence"]
    kept = margin >= policy["threshold"]
    assert policy["coverage"] == pytest.approx(kept.mean()) and right[kept].mean() >= 0.8
    on_confidence = fallback_policy(confidence, right, 0.8, 0.3)
    assert on_confidence["fallback_on"] == "confidence" and "aurc" not in on_confidence
    assert policy["coverage"] > on_confidence["coverage"]  # the same precision target keeps more mail
    # Where the confidence is what predicts, or the two tie, the confidence stays.
    assert fallback_policy(margin / 60, right, 0.8, 0.5, margin=confidence)["fallback_on"] == "confidence"
    assert fallback_policy(confidence, right, 0.8, 0.5, margin=confidence * 100)["fallback_on"] == "confidence"
    # The setting pins either one.
    assert fallback_policy(confidence, right, 0.8, 0.3, margin=margin, on="confidence") == {**on_confidence, "pinned": True}
    pinned = fallback_policy(margin / 60, right, 0.8, 0.3, margin=confidence, on="margin")
    assert pinned["fallback_on"] == "margin" and pinned["aurc"]["margin"] > pinned["aurc"]["confidence"]
    assert pinned["pinned"] and not policy["pinned"]
    with pytest.raises(ValueError, match="auto, confidence or margin"):
        fallback_policy(confidence, right, 0.8, 0.3, margin=margin, on="entropy")
    json.dumps(policy)


def test_a_head_whose_policy_chose_the_margin_decides_and_explains_by_it():
    from labelrouter.labels import parse_label_set
    from labelrouter.models.label_index import LabelIndex
    from labelrouter.models.router import Router

    X, docs, y, labels = _senders()
    label_set = parse_label_set({"fallback": "other", "labels": [
        *({"name": n} for n in labels), {"name": "other"}]})
    index = LabelIndex(label_set, np.full((4, DIM), 0.25, np.float32), "enc@1")
    head = train_hybrid_head(X[:60], docs[:60], y[:60], embedder="enc@1", version="h1", label_order=labels)
    calibrate(head, X[60:], docs[60:], y[60:])
    scores = Router(label_set, index, head).score(X[60:], docs[60:])
    cut = float(np.median(scores.margin))
    head.thresholds = {"fallback_margin": cut, "archive": 0.5}
    head.metrics = {"fallback_policy": {"threshold": cut, "fallback_on": "margin", "bound": "precision",
                                        "target_precision": 0.9, "min_coverage": 0.8, "precision": 0.95,
                                        "coverage": 0.5}}
    router = Router(label_set, index, head)
    assert router.scoring.fallback_on == "margin" and router.scoring.threshold == cut
    decided = router.score(X[60:], docs[60:])
    np.testing.assert_array_equal(decided.fallback, decided.margin < cut)
    low = int(np.argmin(decided.margin))
    routing = router.explain(decided, low, docs[60 + low])
    assert routing.fallback and routing.label == "other" and routing.fallback_on == "margin"
    assert routing.threshold == pytest.approx(cut)
    assert f"leads the runner-up by less than {cut:.2f} points" in routing.rule and "margin told" in routing.rule
    # Pinned by the setting, the rule says so instead of crediting validation.
    head.metrics["fallback_policy"]["pinned"] = True
    assert "by the setting fallback_on" in router.fallback_rule() and "margin told" not in router.fallback_rule()
    # Archiving stays on the confidence: a margin threshold (0–100) is no floor for it.
    assert Router(parse_label_set({"fallback": "other", "labels": [
        {"name": labels[0], "archive": True}, *({"name": n} for n in labels[1:]), {"name": "other"}]}),
        index, head).archive_threshold(labels[0]) == 0.5


def test_a_decision_names_its_rule_and_the_words_that_moved_it():
    from labelrouter.labels import parse_label_set
    from labelrouter.models.label_index import LabelIndex
    from labelrouter.models.router import Router

    X, docs, y, labels = _senders()
    label_set = parse_label_set({"fallback": "other", "labels": [{"name": n} for n in [*labels, "other"]]})
    index = LabelIndex(label_set, np.full((4, DIM), 0.25, np.float32), "enc@1")  # the router has no opinion
    head = train_hybrid_head(X[:60], docs[:60], y[:60], embedder="enc@1", version="h1", label_order=labels)
    calibrate(head, X[60:], docs[60:], y[60:])
    head.thresholds = {"fallback": 0.2}
    head.metrics = {"fallback_policy": fallback_policy(np.linspace(0, 1, 50), np.arange(50) % 2 == 0, 0.9, 0.8)}
    router = Router(label_set, index, head)
    routing = router.explain(router.score(X[60:61], docs[60:61]), 0, docs[60])
    assert routing.top_label == y[60] and routing.evidence[0][0] == f"from:@{y[60]}.example"
    assert "coverage ≥ 80%" in routing.rule and "0.200" in routing.rule
    cold = Router(label_set, index)
    assert "the setting fallback_threshold" in cold.explain(cold.score(X[:1]), 0).rule


def test_validation_chooses_how_much_the_vector_counts_against_the_words():
    from labelrouter.training.head import DENSE_SCALE, DENSE_SCALES, clear_winner, dense_scale_trials

    # The rule: away from the default only by more than the paired standard error.
    default = np.array([True] * 60 + [False] * 40)
    clearly = np.array([True] * 80 + [False] * 20)  # +20 points, 20 discordant: SE 4.5 points
    barely = default.copy()  # +2 points: 7 more right, 5 fewer; 12 discordant, SE 3.5 points: noise
    barely[:5] = False
    barely[60:67] = True
    assert clear_winner({0.25: default, 0.5: default, 1.0: clearly}, 0.5) == 1.0
    assert clear_winner({0.25: barely, 0.5: default, 1.0: default}, 0.5) == 0.5
    # Wired up: a scale from the grid, and the default where every scale is right on everything.
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d"]
    centres = rng.normal(size=(4, DIM))
    gold = np.array([i % 4 for i in range(240)])
    y = [labels[g] for g in gold]
    X = (centres[gold] / np.linalg.norm(centres[gold], axis=1, keepdims=True)).astype(np.float32)
    noise = [message_document(f"u{i}@mail.example", [], f"w{i} x{i}", f"y{i} z{i % 7} q{i % 5}") for i in range(240)]
    assert dense_scale_trials(X[:160], noise[:160], y[:160], X[160:], noise[160:], y[160:],
                              label_order=labels)[0] == DENSE_SCALE in DENSE_SCALES


def test_a_run_whose_scale_trials_saw_every_example_fits_no_extra_head(monkeypatch):
    """When the training set is no larger than the trials' sample, the chosen trial is the candidate: the
    same head a separate fit at that scale gives, without fitting it again."""
    import labelrouter.training.head as training_head
    from labelrouter.labels import parse_label_set
    from labelrouter.models.label_index import LabelIndex
    from labelrouter.models.router import Router

    X, docs, y, labels = _senders(n_per=40)
    label_set = parse_label_set({"labels": [{"name": n} for n in labels]}, require_fallback=False)
    router = Router(label_set, LabelIndex(label_set, np.eye(3, DIM, dtype=np.float32), "enc@1"))
    fits = []
    real = training_head.train_hybrid_head
    monkeypatch.setattr(training_head, "train_hybrid_head", lambda *a, **k: fits.append(k["dense_scale"]) or real(*a, **k))
    head = training_head.fit_head(router, X[:90], docs[:90], y[:90], X[90:], docs[90:], y[90:], embedder="enc@1",
                                  version="h1")
    assert sorted(fits) == sorted(training_head.DENSE_SCALES)  # one fit per trial, none more
    alone = real(X[:90], docs[:90], y[:90], embedder="enc@1", version="h1", label_order=labels,
                 dense_scale=head.metrics["dense_scale"])
    np.testing.assert_array_equal(head.W_lex, alone.W_lex)
    np.testing.assert_array_equal(head.W, alone.W)
    # Trials on a sample are not the candidate: the caller fits it on every example.
    assert training_head.dense_scale_trials(X[:90], docs[:90], y[:90], X[90:], docs[90:], y[90:], at_most=30)[1] is None


def _docs(n, offset=0):
    return [message_document(f"u{i % 7}@x{i % 3}.example", [f"team{i % 2}@corp.example"], f"subject {i % 9}",
                             f"alpha beta gamma{i % 5} delta {i} epsilon{i % 11} words here")
            for i in range(offset, offset + n)]


def test_saved_analyses_are_read_back_so_a_next_run_analyses_only_new_mail(tmp_path, monkeypatch):
    from labelrouter.models import analysis

    old, new = _docs(60), _docs(15, offset=60)
    first = analysis.AnalysisCache()
    with first.active():
        analysis.prepare(old)
    path = tmp_path / "analysis.npz"
    first.save(path)
    calls = []
    real = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda d: calls.append(d) or real(d))
    loaded = analysis.AnalysisCache.load(path)
    with loaded.active():
        lexicon, rows = Lexicon.fit_transform(old + new)
    assert sorted(calls) == sorted(new)  # the old mail was read back, not analysed
    with analysis.uncached():
        fresh, fresh_rows = Lexicon.fit_transform(old + new)
    assert lexicon.terms == fresh.terms
    np.testing.assert_allclose(rows.toarray(), fresh_rows.toarray(), atol=1e-6)
    # The second save adds the new mail to what was saved; a third cache finds everything.
    loaded.save(path)
    calls.clear()
    again = analysis.AnalysisCache.load(path)
    with again.active():
        assert Lexicon.fit(old + new).terms == fresh.terms
    assert calls == []


def test_saved_analyses_mean_the_same_in_a_process_with_another_string_hash(tmp_path):
    import subprocess
    import sys

    from labelrouter.models import analysis

    cache = analysis.AnalysisCache()
    with cache.active():
        analysis.prepare(_docs(50))
    cache.save(tmp_path / "a.npz")
    (tmp_path / "docs.json").write_text(json.dumps(_docs(50)))
    code = ("import json, sys; from pathlib import Path; from labelrouter.models import analysis as x; from labelrouter.models.lexicon import Lexicon; "
            "c = x.AnalysisCache.load(Path(sys.argv[1])); docs = json.loads(Path(sys.argv[2]).read_text()); "
            "x.analyze = None; active = c.active(); active.__enter__(); print(json.dumps(Lexicon.fit(docs).terms))")
    outputs = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.npz"), str(tmp_path / "docs.json")],
                              capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == Lexicon.fit(_docs(50)).terms  # and analyse nothing (analyze is gone)


def test_a_damaged_or_foreign_analysis_file_is_set_aside_with_a_warning(tmp_path, caplog):
    from labelrouter.models import analysis

    path = tmp_path / "analysis.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with caplog.at_level("WARNING"):
        cache = analysis.AnalysisCache.load(path)
    assert "cannot read the saved lexical analyses" in caplog.text
    with cache.active():
        assert Lexicon.fit(_docs(20)).terms == Lexicon.fit(_docs(20)).terms
    good = analysis.AnalysisCache()
    with good.active():
        analysis.prepare(_docs(20))
    good.save(path)
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(path, **{**arrays, "ids": arrays["ids"] + 10_000})  # points past the term list
    assert analysis.AnalysisCache.load(path)._saved is None
    np.savez(path, **{**arrays, "format": np.array([analysis.ANALYSIS_FORMAT + 1])})
    assert analysis.AnalysisCache.load(path)._saved is None


def test_forked_analysis_gives_the_serial_result_and_survives_a_dead_process(monkeypatch):
    from labelrouter.models import analysis

    monkeypatch.setattr(analysis, "PARALLEL_FROM", 10)
    docs = _docs(80)
    with analysis.uncached():
        serial, serial_rows = Lexicon.fit_transform(docs)
    forked = analysis.AnalysisCache()
    forked.analyse(docs, jobs=2)
    assert len(forked._documents) == len(docs)
    with forked.active():
        lexicon, rows = Lexicon.fit_transform(docs)
    assert lexicon.terms == serial.terms
    np.testing.assert_allclose(rows.toarray(), serial_rows.toarray(), atol=1e-6)

    def dies(path, documents):
        raise MemoryError("simulated")

    monkeypatch.setattr(analysis, "_write_analysis", dies)
    survivor = analysis.AnalysisCache()
    survivor.analyse(docs, jobs=2)  # the child fails: its share is analysed here
    with survivor.active():
        assert Lexicon.fit(docs).terms == serial.terms


def test_the_svm_sees_the_vectors_main_directions_and_loses_nothing_with_few_examples():
    from labelrouter.training.head import dense_basis

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 64)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = [["a", "b", "c"][i % 3] for i in range(40)]
    docs = [f"\n\nword{i % 3} filler" for i in range(40)]
    basis = dense_basis(X, 48)
    assert basis.shape == (64, 48)
    np.testing.assert_allclose(basis.T @ basis, np.eye(48), atol=1e-5)
    full = train_hybrid_head(X, docs, y, embedder="e", version="full", dense_directions=64)
    projected = train_hybrid_head(X, docs, y, embedder="e", version="projected", dense_directions=48)
    assert projected.W.shape == full.W.shape == (3, 64)
    # 40 examples span at most 40 directions: the SVM's weights lie in their span, so nothing is lost.
    test = rng.normal(size=(30, 64)).astype(np.float32)
    np.testing.assert_allclose(projected.logits(test, docs[:30]), full.logits(test, docs[:30]), atol=2e-3)
    few = dense_basis(X, 8)
    assert not np.allclose(train_hybrid_head(X, docs, y, embedder="e", version="p", dense_directions=8)
                           .logits(test, docs[:30]), full.logits(test, docs[:30]), atol=2e-3)
    assert few.shape == (64, 8)
