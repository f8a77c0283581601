"""The rerank stage and a reranking bundle, on a clinc150 subset with the real encoder and a real (briefly
trained) cross-encoder: a reranker joins the bundle only when validation gains, inference then reranks
with it, and a rollback returns to the bundle before it, which does not rerank."""

import json

import numpy as np
import pytest

from labelrouter.graph.labeler import Labeler
from labelrouter.graph.wiring import build_context
from labelrouter.labels import load_label_set
from labelrouter.settings import load_settings
from labelrouter.store import SQLiteStore
from labelrouter.training import build_training_context, run_training
from labelrouter.training.budget import Budget
from labelrouter.training.importer import row_message, row_text_and_document
from tests.conftest import registry_at
from tests.training.test_retrieval_stage import _import
from tests.training.test_training import CLINC, clinc  # noqa: F401 - the module-scoped subset fixture

pytestmark = [pytest.mark.data, pytest.mark.slow,
              pytest.mark.skipif(not (CLINC / "messages.jsonl.gz").exists(), reason="needs ../shared/data/clinc150")]


class Oracle:
    """A reranker that knows each training text's label (to drive the stage's keep-or-drop decision)."""

    version = "oracle"

    def __init__(self, rows):
        self.truth = {row_text_and_document(r)[0]: r["label"] for r in rows}

    def rerank(self, texts, candidates, labels):
        names = labels.names
        return np.array([[5.0 if names[c] == self.truth.get(text) else -5.0 for c in row]
                         for text, row in zip(texts, candidates, strict=True)])


def _reranks(results, k):
    return [sum(1 for w in r["routing"].router_weights.values() if w > 0) <= k for r in results]


def test_a_reranker_joins_the_bundle_when_it_helps_and_rolls_back_with_it(clinc, encoder, tmp_path):  # noqa: F811
    settings = load_settings(home=tmp_path / "home", labels_path=clinc["labels_json"])
    store = SQLiteStore(settings.resolved_db_path)
    _import(settings, store, encoder, clinc, clinc["train"][:240], "first")
    first = run_training(build_training_context(settings, store))
    assert first.promoted and first.candidate_reranker is None, first.decision

    # Asked for the rerank stage: a cross-encoder is trained (a few real steps) and stored; validation is
    # judged with an oracle in its place, so it helps and joins the bundle.
    _import(settings, store, encoder, clinc, clinc["train"][240:], "second")
    options = {"stages": frozenset({"head", "rerank"}), "retrieval_budget": Budget(steps=3, examples=48, minutes=5),
               "min_retrieval": 20, "cache_dir": tmp_path / "cache"}
    ctx = build_training_context(settings, store, **options)
    oracle = Oracle(clinc["train"])
    ctx.cache.rerankers = lambda version: oracle
    second = run_training(ctx)
    report = second.stage_reports["reranker"]
    assert report["steps"] == 3 and report["metrics"]["kept"], report
    assert report["metrics"]["validation_top1_with"] > report["metrics"]["validation_top1_without"]
    assert second.promoted, second.decision
    registry = registry_at(settings.resolved_models_dir)
    head = registry.current_head(embedder=encoder.version, dim=encoder.dim)
    assert head.rerank is not None and head.rerank.version == second.candidate_reranker
    assert head.rerank.version.startswith("labelrouter-rerank@") and registry.encoders.has(head.rerank.version)
    assert head.rerank.a > 0 and head.rerank.k == 8

    # Inference loads the stored cross-encoder and reranks: at most k labels keep a router weight.
    messages = [row_message(r) for r in clinc["held_out"][:12]]
    reranked = Labeler(build_context(settings), settings).label_many(messages)
    assert {r["routing"].model_version for r in reranked} == {
        f"{encoder.version}+head:{second.candidate_version}+rerank:{head.rerank.version}"}
    assert all(_reranks(reranked, 8))

    # Rolled back: the bundle before it, which does not rerank (retrieval's 20 candidates keep their weights).
    registry.rollback()
    plain = Labeler(build_context(settings), settings).label_many(messages)
    assert {r["routing"].model_version for r in plain} == {f"{encoder.version}+head:{first.candidate_version}"}
    assert not any(_reranks(plain, 8))
    registry.repromote(second.candidate_version)  # and forward again
    again = Labeler(build_context(settings), settings).label_many(messages[:3])
    assert all("+rerank:" in r["routing"].model_version for r in again)

    # A reranker that does not help is not kept, and nothing of it stays in the registry.
    before = set(registry.artifacts.list("encoders/"))
    held = {r["id"] for r in clinc["held_out"]}
    _import(settings, store, encoder, clinc, [r for r in clinc["test_rows"] if r["id"] not in held][:60], "third")
    third = run_training(build_training_context(settings, store, **options))
    kept = third.stage_reports["reranker"]["metrics"]["kept"]
    assert (third.candidate_reranker is not None) == kept
    if not kept:  # the current bundle's reranker was judged for the candidate too (and stays in the registry)
        assert set(registry.artifacts.list("encoders/")) == before
        assert third.stage_reports["carried_reranker"]["carried"] == second.candidate_reranker
    print(json.dumps({"second": second.stage_reports["reranker"], "third": third.stage_reports["reranker"]}))


class Useless:
    """A reranker that sees no difference between candidates."""

    def rerank(self, texts, candidates, labels):
        return np.zeros(np.shape(candidates))


def test_a_promoted_reranker_is_carried_taught_to_the_bi_encoder_and_switched_off_once_it_stops_helping(
        clinc, encoder, monkeypatch, tmp_path):  # noqa: F811
    from labelrouter.models.encoder import packaged_encoder_path
    from labelrouter.training import rerank_stage, retrieval_stage
    from labelrouter.training.budget import StageReport

    settings = load_settings(home=tmp_path / "home", labels_path=clinc["labels_json"])
    store = SQLiteStore(settings.resolved_db_path)
    registry = registry_at(settings.resolved_models_dir)
    oracle = Oracle(clinc["train"] + clinc["test_rows"])
    _import(settings, store, encoder, clinc, clinc["train"][:200], "first")
    assert run_training(build_training_context(settings, store)).promoted

    # A reranker is promoted (its training stubbed: a model folder stored as the stage stores one; the
    # oracle scores in its place, so it gains on validation).
    def stored(base, columns, out_dir, **kwargs):
        import shutil
        shutil.copytree(packaged_encoder_path(), out_dir)
        return StageReport("cross_encoder", steps=1, examples=len(columns["query"]))

    monkeypatch.setattr(rerank_stage, "train_cross_encoder", stored)
    options = {"min_retrieval": 20, "cache_dir": tmp_path / "cache", "retrieval_budget": Budget(steps=2, examples=64)}
    _import(settings, store, encoder, clinc, clinc["train"][200:250], "second")
    ctx = build_training_context(settings, store, stages=frozenset({"head", "rerank"}), **options)
    ctx.cache.rerankers = lambda version: oracle
    second = run_training(ctx)
    assert second.promoted and second.candidate_reranker, second.decision
    reranker = second.candidate_reranker

    # A nightly head-only run keeps it (fitted again for the new head), because it still helps.
    _import(settings, store, encoder, clinc, clinc["train"][250:], "third")
    ctx = build_training_context(settings, store, **options)
    ctx.cache.rerankers = lambda version: oracle
    third = run_training(ctx)
    carried = third.stage_reports["carried_reranker"]
    assert carried["carried"] == reranker and carried["metrics"]["kept"], carried
    assert third.promoted and third.candidate_reranker is None, third.decision
    head = registry.current_head(embedder=encoder.version, dim=encoder.dim)
    assert head.version == third.candidate_version and head.rerank.version == reranker
    slope = head.rerank.a  # the teacher's logits are scaled by the slope its bundle fitted on validation

    # The weekly retrieval run distils it into the bi-encoder: its scores of each training row's candidates
    # (the label, then the hard negatives) are the soft targets. Afterwards it no longer helps, so the
    # candidate bundle goes without it; the registry keeps it for the bundles that name it.
    taught = {}

    def fine_tune(base, rows, distances, out_dir, **kwargs):
        taught.update(rows=rows, teacher=kwargs["teacher"])
        ctx.cache.rerankers = lambda version: Useless()
        report = StageReport("bi_encoder", steps=0, examples=len(rows))
        import shutil
        shutil.copytree(packaged_encoder_path(), out_dir)
        (out_dir / "distilled.txt").write_text("a version of its own")
        return report

    monkeypatch.setattr(retrieval_stage, "fine_tune", fine_tune)
    held = {r["id"] for r in clinc["held_out"]}
    _import(settings, store, encoder, clinc, [r for r in clinc["test_rows"] if r["id"] not in held][:60], "fourth")
    ctx = build_training_context(settings, store, stages=frozenset({"head", "retrieval"}), promote_margin=-1.0,
                                 **options)
    ctx.cache.rerankers = lambda version: oracle
    fourth = run_training(ctx)
    distill = fourth.stage_reports["distill"]
    assert "bi_encoder" not in fourth.stage_reports and distill["metrics"]["teacher"] == reranker
    rows, teacher = taught["rows"], taught["teacher"]
    assert len(rows) == 64 and teacher.shape == (64, 3) and distill["metrics"]["teacher_pairs"] == 192
    names = load_label_set(settings.labels_path).names
    for ids, scores, text in zip(rows.columns["label"], teacher, rows.columns["message"], strict=True):
        assert list(scores) == pytest.approx([slope * (5.0 if names[i] == oracle.truth[text] else -5.0) for i in ids])
    assert distill["metrics"]["teacher_top1_on_rows"] == 1.0 and distill["metrics"]["teacher_scale"] == round(slope, 4)
    switched = fourth.stage_reports["carried_reranker"]
    assert not switched["metrics"]["kept"] and any("switched off" in s for s in fourth.skipped)
    assert fourth.promoted, fourth.decision
    head = registry.current_head(embedder=fourth.candidate_encoder, dim=encoder.dim)
    assert head.rerank is None and registry.encoders.has(reranker)
    registry.rollback()  # back to the bundle that reranks, which still finds its cross-encoder
    assert registry.current_head(embedder=encoder.version, dim=encoder.dim).rerank.version == reranker
