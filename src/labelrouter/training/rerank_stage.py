"""The rerank stage of the training graph: a cross-encoder trained on this run's examples, kept in the
candidate bundle only when it makes validation decisions better; or, in a run that trains none, the
current bundle's cross-encoder carried into the candidate while it still does.

    train_head → train_reranker | carry_reranker → evaluate → promote | reject

The graph comes here only when the run was asked for it (`labelrouter train --stages rerank|all`). The
cross-encoder starts from the packaged MiniLM (`training.cross_encoder`) and learns, per training example,
which of its best candidate labels is the right one (ListNet over the candidate head's retrieval list,
the truth, a correction's rejected label and a sibling injected). On validation it rescores the candidate
head's k best labels; a and b of the router-weight mapping (100 · σ(a · logit + b)) are the logistic fit
of its logits to "this candidate is the message's label" there. It joins the bundle (`head.rerank`) only if
router × head with it is right more often than without by more than the paired standard error; `evaluate`
then judges and refits the fallback threshold with it on, and promotion or rollback moves it with the head.
A reranker not kept, or a bundle rejected, leaves nothing behind in the registry. A new one not kept
leaves the current bundle's to be judged for the candidate as `carry_reranker` does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.runtime import Runtime

from labelrouter.models.bundle import RerankSpec
from labelrouter.models.scoring import rerank, top_candidates
from labelrouter.training.cross_encoder import listwise_rows, train_cross_encoder
from labelrouter.training.retrieval_data import KIND_WEIGHTS

if TYPE_CHECKING:
    from labelrouter.training.context import TrainingContext
    from labelrouter.training.state import TrainingState

RERANKER_NAME = "labelrouter-rerank"  # the name of a cross-encoder this project trained (version: name@fingerprint)


def train_reranker(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    from labelrouter.models.encoder import packaged_encoder_path

    ctx = runtime.context
    if len(state.train_ids) < ctx.policy.min_retrieval:
        return _and_carried(state, runtime, {}, f"train_reranker: {len(state.train_ids)} training examples "
                                                f"(need {ctx.policy.min_retrieval})")
    encoder = state.candidate_encoder or ctx.encoder.version
    candidate = ctx.registry.staged(str(state.candidate_version), embedder=encoder, dim=ctx.encoder.dim)
    routed = ctx.router_for(encoder).with_head(candidate)
    X, _, rows = ctx.matrix(state.train_ids, encoder)
    columns = listwise_rows(rows, X, ctx.labels, routed.active_index, k=ctx.policy.rerank_k, loss="listnet",
                            at_most=ctx.policy.retrieval_budget.examples, kind_weights=KIND_WEIGHTS)
    if len(columns["query"]) < ctx.policy.min_retrieval:
        return _and_carried(state, runtime, {}, f"train_reranker: {len(columns['query'])} examples with text "
                                                f"(need {ctx.policy.min_retrieval})")
    with tempfile.TemporaryDirectory(prefix="labelrouter-reranker-") as scratch:
        report = train_cross_encoder(packaged_encoder_path(), columns, Path(scratch) / "model",
                                     budget=ctx.policy.retrieval_budget, epochs=100, progress=ctx.progress)
        version = ctx.registry.encoders.put(Path(scratch) / "model", name=RERANKER_NAME)
    spec, metrics = _judge(ctx, state, version, ctx.policy.rerank_k)
    report.metrics.update(metrics)
    reports = {"reranker": report.to_json()}
    if spec is None:
        ctx.registry.encoders.delete(version)
        return _and_carried(state, runtime, reports, f"train_reranker: not kept (validation top-1 "
                            f"{metrics['validation_top1_with']:.4f} with it, {metrics['validation_top1_without']:.4f} without)")
    candidate.rerank = spec
    ctx.registry.stage(candidate)
    return {"stage_reports": reports, "candidate_reranker": version}


def _and_carried(state: TrainingState, runtime: Runtime[TrainingContext], reports: dict[str, Any],
                 skipped: str) -> dict[str, Any]:
    """No new reranker for the candidate: the current bundle's may still earn its place there."""
    carried = _carried(state, runtime)
    return {"stage_reports": {**reports, **carried.get("stage_reports", {})},
            "skipped": [skipped, *carried.get("skipped", [])]}


def carry_reranker(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """A run that trains no cross-encoder, while the current bundle reranks with one: the candidate keeps
    it — a nightly head run would otherwise switch off a reranker the gate promoted — with a and b fitted
    again for the candidate's router × head, but only while it still gains more than the paired standard
    error on validation. When the head or a distilled bi-encoder has caught up, it is left out of the
    candidate bundle (inference then saves its k cross-encoder passes per message); it stays in the
    registry, where the bundles that name it (the current one, a rollback) still find it."""
    return _carried(state, runtime)


def _carried(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    ctx = runtime.context
    if not state.current_reranker:
        return {}
    current = ctx.registry.current_head(embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    k = current.rerank.k if current.rerank is not None else ctx.policy.rerank_k
    spec, metrics = _judge(ctx, state, state.current_reranker, k)
    report = {"stage": "reranker", "carried": state.current_reranker, "metrics": metrics}
    if spec is None:
        return {"stage_reports": {"carried_reranker": report},
                "skipped": [f"carry_reranker: switched off {state.current_reranker} (validation top-1 "
                            f"{metrics['validation_top1_with']:.4f} with it, {metrics['validation_top1_without']:.4f} without)"]}
    encoder = state.candidate_encoder or ctx.encoder.version
    candidate = ctx.registry.staged(str(state.candidate_version), embedder=encoder, dim=ctx.encoder.dim)
    candidate.rerank = spec
    ctx.registry.stage(candidate)
    return {"stage_reports": {"carried_reranker": report}}


def _judge(ctx: TrainingContext, state: TrainingState, version: str, k: int) -> tuple[RerankSpec | None, dict[str, Any]]:
    """On validation, the candidate head's k best labels rescored by the cross-encoder `version`: its
    calibrated spec when router × head with it is right more often than without by more than the paired
    standard error (else None), and the figures either way."""
    from labelrouter.training.context import documents, texts
    from labelrouter.training.head import paired_standard_error

    encoder = state.candidate_encoder or ctx.encoder.version
    candidate = ctx.registry.staged(str(state.candidate_version), embedder=encoder, dim=ctx.encoder.dim)
    candidate.rerank = None  # judged against the candidate without any reranker
    routed = ctx.router_for(encoder).with_head(candidate)
    X_val, y_val, val_rows = ctx.matrix(state.val_ids, encoder)
    gold = np.array([ctx.labels.index(label) for label in y_val])
    plain = routed.score(X_val, documents(val_rows))
    candidates = top_candidates(plain, k, routed.index.routable)
    logits = ctx.rerankers(version).rerank(texts(val_rows), candidates, ctx.labels)
    a, b = calibration(logits, candidates == gold[:, None])
    reranked = rerank(plain, candidates, logits, a, b, routed.scoring, routed.index.routable,
                      has_fallback=ctx.labels.fallback is not None)
    right_plain, right_reranked = plain.top == gold, reranked.top == gold
    gain = float(right_reranked.mean() - right_plain.mean())
    keep = gain > paired_standard_error(right_reranked, right_plain)
    metrics = {"validation_top1_without": round(float(right_plain.mean()), 4),
               "validation_top1_with": round(float(right_reranked.mean()), 4),
               "k": k, "a": round(a, 4), "b": round(b, 4), "kept": keep}
    return (RerankSpec(version=version, k=k, a=a, b=b) if keep else None), metrics


def calibration(logits: np.ndarray, is_label: np.ndarray) -> tuple[float, float]:
    """(a, b) with σ(a · logit + b) ≈ P(candidate is the label): a logistic fit over every validation
    candidate (a ≥ 0.01, so a higher logit never means a lower weight)."""
    from sklearn.linear_model import LogisticRegression

    x, y = logits.reshape(-1, 1).astype(np.float64), is_label.reshape(-1).astype(int)
    if y.min() == y.max():  # every candidate right, or none: no slope to fit
        return 1.0, 0.0
    model = LogisticRegression(C=100.0).fit(x, y)
    return max(float(model.coef_[0, 0]), 0.01), float(model.intercept_[0])


def discard_candidate_reranker(ctx: TrainingContext, version: str | None) -> None:
    """A rejected bundle's reranker goes with it (it was trained for this candidate alone; a carried one,
    the current bundle's, is never a candidate's own)."""
    if version:
        ctx.registry.encoders.delete(version)
