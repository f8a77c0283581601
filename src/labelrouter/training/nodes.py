"""The training graph's nodes and the routing functions between them (`training.graph` wires them)."""



from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from labelrouter.evaluation.metrics import fallback_policy, fit_threshold, router_metrics
from labelrouter.evaluation.splits import holdout, learnable_holdout
from labelrouter.store.records import decode_embedding
from labelrouter.store.rows import DecisionRow, ExampleRow
from labelrouter.training.context import TrainingContext, documents, texts
from labelrouter.training.head import (
    DENSE_SCALE,
    SELECT_AT_MOST,
    balanced_accuracy,
    fit_head,
    paired_standard_error,
    refresh_label_vectors,
    train_hybrid_head,
    train_important,
)
from labelrouter.training.rerank_stage import discard_candidate_reranker
from labelrouter.training.retrieval_data import KIND_WEIGHTS
from labelrouter.training.retrieval_stage import (
    discard_candidate_encoder,
)
from labelrouter.training.state import TrainingState

SCALE_CHOSEN_ON = "dense_scale_chosen_on"  # head metric: the training-set size its scale trials ran on


def mine_feedback(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Labeled examples from the store for the current encoder (imports now; mined feedback next)."""
    ctx = runtime.context
    # A promotion of a new encoder moves the pointer, then makes its vectors the examples' own; a run that
    # died between the two (or a rollback to an earlier encoder) is completed here.
    ctx.store.switch_example_vectors(ctx.encoder.version)
    rows = ctx.read_examples()
    known = [r for r in rows if r["label"] in ctx.labels]
    return {"n_examples": len(known), "dropped_unknown_labels": len(rows) - len(known),
            "example_ids": [r["example_id"] for r in known]}


def build_datasets(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """The split (`splits.learnable_holdout`): validation is made of trusted examples the current head has
    not learned, the newest first, and never more of a label than training has — a label the current head
    knows validates on all its new mail, a label new to it alternates between training and validation. So
    the candidate trains on everything the current head learned (and half of a new label's mail), both are
    judged on mail neither has seen, and a folder the user has just begun to file into is learned from the
    first retraining (validation of only the newest examples held a new folder's burst out of every
    candidate, so the gate compared two models that both missed it, run after run).
    Silver (the model agreeing with itself) only ever trains: judging a model on it would reward it for
    repeating its own decisions."""
    ctx = runtime.context
    rows = ctx.examples(state.example_ids)
    trusted = [i for i, r in enumerate(rows) if r["kind"] != "silver"]
    current = ctx.registry.current_head(embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    unlearned = _unlearned(current, rows)
    train, val = learnable_holdout(trusted, [r["occurred_at"] for r in rows], [r["label"] for r in rows], unlearned,
                                   ctx.policy.val_fraction, at_least=ctx.policy.min_fair_val)
    train += [i for i, r in enumerate(rows) if r["kind"] == "silver"]
    scale, chosen_on = _known_scale(current, len(train))
    return {"train_ids": [state.example_ids[i] for i in train], "val_ids": [state.example_ids[i] for i in val],
            "n_unlearned": int(unlearned.sum()), "known_scale": scale,
            "scale_chosen_on": chosen_on, "current_reranker": current.rerank.version if current.rerank else None}


def after_datasets(state: TrainingState, runtime: Runtime[TrainingContext]) -> str:
    ctx = runtime.context
    train_labels = {r["label"] for r in ctx.examples(state.train_ids)}
    if state.n_examples and not state.n_unlearned:
        return "nothing_new"
    if len(state.train_ids) < ctx.policy.min_train or len(state.val_ids) < ctx.policy.min_val or len(train_labels) < 2:
        return "not_enough_data"
    if "retrieval" not in ctx.policy.stages:
        return "train_head"
    # A promoted cross-encoder beat the bundle without it on validation: the bi-encoder learns from it.
    return "distill_bi_encoder" if state.current_reranker else "train_bi_encoder"


def _unlearned(head: Any, rows: list[ExampleRow]) -> np.ndarray:
    """Which examples `head` has not learned: added or changed (a higher `seq`) since it was fit. A
    promoted head records the last example it learned (`promote`); one that does not has learned none."""
    seen = head.metrics.get("trained_through_seq")
    return np.array([seen is None or int(r["seq"]) > int(seen) for r in rows], dtype=bool)


def nothing_new(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    return {"skipped": ["train_head: no example added or changed since the current head was trained"],
            "decision": "not trained: nothing new"}


def not_enough_data(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    ctx = runtime.context
    return {"skipped": [f"train_head: {len(state.train_ids)} training and {len(state.val_ids)} validation examples "
                        f"of configured labels (need {ctx.policy.min_train} and {ctx.policy.min_val}, and 2 labels; validation "
                        "holds only examples the current head has not learned)"],
            "decision": "not trained: not enough data"}


def _analysing(stage: Callable[[TrainingState, Runtime[TrainingContext]], dict[str, Any]]) -> Any:
    """A stage that reads documents runs with the context's analysis cache active."""
    @functools.wraps(stage)
    def run(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
        with runtime.context.analysis.active():
            return stage(state, runtime)
    return run


def _weights(rows: list[ExampleRow]) -> np.ndarray:
    return np.array([KIND_WEIGHTS.get(r["kind"], 1.0) for r in rows])


def _refit(ctx: TrainingContext, X: np.ndarray, y: list[str], rows: list[ExampleRow], version: str,
           dense_scale: float, encoder: str) -> Any:
    """The promoted head fit again, at the candidate's scale, on every example (`promote`)."""
    head = train_hybrid_head(X, documents(rows), y, embedder=encoder, version=version,
                             sample_weight=_weights(rows), label_order=ctx.labels.names, dense_scale=dense_scale)
    head.label_vectors = refresh_label_vectors(ctx.router_for(encoder).index, X, y)
    return head


@_analysing
def train_head(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """The head on vectors and lexical features of the training examples; its temperature and its pull
    against the router fitted on the validation examples (`training.head`)."""
    ctx = runtime.context
    encoder = state.candidate_encoder or ctx.encoder.version  # a candidate encoder's vectors, when there is one
    X, y, rows = ctx.matrix(state.train_ids, encoder)
    # The version names the data: train and validation (a promoted head is refit on both).
    digest = hashlib.sha256(X.tobytes() + "\n".join(y + ["--"] + state.val_ids).encode()).hexdigest()[:8]
    version = f"h{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest}"
    X_val, y_val, val_rows = ctx.matrix(state.val_ids, encoder)
    # The refit at promotion finds this run's vocabulary already named (the context's analysis cache).
    head = fit_head(ctx.router_for(encoder), X, documents(rows), y, X_val, documents(val_rows), y_val,
                    embedder=encoder, version=version, sample_weight=_weights(rows), scale=state.known_scale)
    head.metrics[SCALE_CHOSEN_ON] = state.scale_chosen_on
    # The important head reads the vectors of processed messages, which only the current encoder made:
    # a bundle with a new encoder goes without one until the next run after its promotion.
    important_val = _fit_important(head, ctx) if encoder == ctx.encoder.version else []
    ctx.registry.stage(head)
    return {"candidate_version": version, "important_val_ids": important_val}


def after_head(state: TrainingState, runtime: Runtime[TrainingContext]) -> str:
    if "rerank" in runtime.context.policy.stages:
        return "train_reranker"
    return "carry_reranker" if state.current_reranker else "evaluate"


def _known_scale(current: Any, n_train: int) -> tuple[float | None, int]:
    """(the dense scale to reuse or None, the training-set size it was chosen on). Trials on a large mailbox
    run on a sample of `SELECT_AT_MOST` (4,000) training examples, so once a scale was chosen on a full
    sample, tonight's trials would only draw another 4,000 from a slightly larger pool: the current head's
    scale is kept until the training set has doubled since, which spares a nightly run its three trials.
    Below that the scale is chosen every run (docs/decisions/0002-dense-scale-trials.md)."""
    scale, chosen_on = current.metrics.get("dense_scale"), current.metrics.get(SCALE_CHOSEN_ON)
    if isinstance(scale, int | float) and isinstance(chosen_on, int) and chosen_on >= SELECT_AT_MOST \
            and n_train <= 2 * chosen_on:
        return float(scale), chosen_on
    return None, n_train


def _important_data(ctx: TrainingContext, ids: list[str] | None = None) -> tuple[list[DecisionRow], np.ndarray, np.ndarray]:
    rows = ctx.store.important_rows(ctx.encoder.version)
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r["message_id"] in wanted]
    if not rows:
        return [], np.zeros((0, ctx.encoder.dim), np.float32), np.zeros(0)
    X = np.vstack([decode_embedding(r["embedding"]) for r in rows]).astype(np.float32)
    return rows, X, np.array([int(r["important"]) for r in rows])


def _fit_important(head: Any, ctx: TrainingContext) -> list[str]:
    """The important head, from the flags nightly syncs recorded (newest 20 % held out); returns the
    held-out ids, or none when there are too few flagged or unflagged messages to learn from."""
    rows, X, flags = _important_data(ctx)
    train, val = holdout(range(len(rows)), [r["processed_at"] for r in rows], ctx.policy.val_fraction)
    if min(int(flags[train].sum()), int(len(train) - flags[train].sum())) < ctx.policy.min_important or not val:
        return []
    head.important_w, head.important_b = train_important(X[train], flags[train])
    return [rows[i]["message_id"] for i in val]


@_analysing
def evaluate(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Current vs candidate on the same validation set, both scored by the Router at the current head's
    threshold; then refit the candidate's fallback, archive and silver-margin thresholds."""
    ctx = runtime.context
    X, y, rows = ctx.matrix(state.val_ids)
    encoder = state.candidate_encoder or ctx.encoder.version
    X_cand = X if encoder == ctx.encoder.version else ctx.matrix(state.val_ids, encoder)[0]
    docs = documents(rows)
    gold = np.array([ctx.labels.index(label) for label in y])
    current = ctx.registry.current_head(embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    current_router = ctx.router_for(None).with_head(current)
    current_rule = current_router.scoring
    # Validation holds only examples the current head has not learned (`build_datasets`): both are judged on
    # mail neither has seen, of labels the candidate was shown (a label's lone example calibrates, below,
    # but is no test of what the candidate learned).
    shown = {r["label"] for r in ctx.examples(state.train_ids)}
    judged = np.array([label in shown for label in y], dtype=bool)
    if judged.sum() < ctx.policy.min_val:
        judged = np.ones(len(y), dtype=bool)
    current_scores = current_router.score(X, docs, texts(rows)).rows(judged)
    cur = router_metrics(current_scores, gold[judged], ctx.labels, current_rule.threshold,
                         fallback_on=current_rule.fallback_on)

    candidate = ctx.registry.staged(str(state.candidate_version), embedder=encoder, dim=ctx.encoder.dim)
    scores = ctx.router_for(encoder).with_head(candidate, threshold=current_rule.threshold,
                                               fallback_on=current_rule.fallback_on).score(X_cand, docs, texts(rows))
    correct = scores.top == gold
    # The policy may put the threshold on the margin instead of the confidence (the one that tells right
    # from wrong better on these examples); archiving stays on the confidence, never below its fallback.
    policy = fallback_policy(scores.confidence, correct, ctx.policy.target_precision, ctx.policy.min_coverage, margin=scores.margin,
                             on=ctx.policy.fallback_on)
    threshold, fallback_on = policy["threshold"], policy["fallback_on"]
    archive = fit_threshold(scores.confidence, correct, ctx.policy.archive_target_precision)
    silver_margin = 100 * fit_threshold(scores.margin / 100, correct, 0.95)
    cand = router_metrics(scores.rows(judged), gold[judged], ctx.labels, threshold, fallback_on=fallback_on)
    cand["fallback_rate_at_current_threshold"] = float(np.mean(scores.fallback))
    cand["judged_on"] = int(judged.sum())
    # How far apart two equally good models land on these examples (`gate`).
    cand["noise"] = paired_standard_error(correct[judged], current_scores.top == gold[judged])
    rule = {"fallback": threshold} if fallback_on == "confidence" else {"fallback_margin": threshold}
    candidate.thresholds = {**rule, "archive": max(archive, rule.get("fallback", 0.0)), "silver_margin": silver_margin,
                            "target_precision": ctx.policy.target_precision, "min_coverage": ctx.policy.min_coverage,
                            "archive_target_precision": ctx.policy.archive_target_precision}
    if state.important_val_ids:
        _, X_imp, flags = _important_data(ctx, state.important_val_ids)
        cand["important_balanced_accuracy"] = balanced_accuracy(candidate.important_probability(X_imp), flags)
        current_p = current.important_probability(X_imp)
        cur["important_balanced_accuracy"] = balanced_accuracy(current_p, flags) if current_p is not None else None
    candidate.metrics = {"dense_scale": candidate.metrics.get("dense_scale", DENSE_SCALE),
                         SCALE_CHOSEN_ON: candidate.metrics.get(SCALE_CHOSEN_ON), "validation": cand,
                         "n_train": len(state.train_ids), "n_val": len(state.val_ids),
                         "fallback_policy": policy}
    ctx.registry.stage(candidate)
    return {"current_version": current.version, "metrics": {"current": cur, "candidate": cand}}


def required_top1(state: TrainingState, ctx: TrainingContext) -> float:
    """The top-1 on validation a candidate needs to be promoted. A head-only candidate learned everything
    the current head did (and half of a new label's mail), and both are judged on mail neither learned: it
    is promoted unless it is measurably worse — below the current head by more than the standard error of
    their paired difference (on 14 examples one or two disagreements are noise, and keeping the cold-start
    router for them throws away what the user just taught). A candidate with a new encoder must gain
    `promote_margin` (a current bundle at 100 % need only be matched)."""
    cur, cand = state.metrics["current"]["top1"], state.metrics["candidate"]
    if state.candidate_encoder:
        return min(1.0, cur + ctx.policy.promote_margin)
    return cur - float(cand.get("noise", 0.0))


def _good_enough(state: TrainingState, ctx: TrainingContext) -> bool:
    """The candidate's top-1 reaches `required_top1` (the gate's test, and what `reject` reports)."""
    return state.metrics["candidate"]["top1"] >= required_top1(state, ctx) - 1e-12


def gate(state: TrainingState, runtime: Runtime[TrainingContext]) -> str:
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    better = _good_enough(state, runtime.context)
    # The important head rides in the same bundle: a candidate may not flag importance worse than the
    # current one (when both have one).
    important_ok = cur.get("important_balanced_accuracy") is None or \
        (cand.get("important_balanced_accuracy") or 0.0) >= cur["important_balanced_accuracy"] - 0.01
    # Top-1 on validation is the gate; recall (retrieval's Recall@K, the candidates') is reported, not gated:
    # refreshed label vectors and head proposals move it by points either way, and gating on it kept a stale
    # head through candidates 10 to 30 points better in top-1.
    return "promote" if better and important_ok else "reject"


@_analysing
def promote(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Refit the winning candidate on every example, validation included, then promote it.

    Validation is among the newest examples: in a mailbox the most relevant ones (new folders, new
    senders); having chosen the model on it, the promoted head learns it too. The refit keeps everything
    validation decided (temperature, thresholds, metrics, the important head) and is deterministic, so a
    promotion re-run after a crash writes the same bundle."""
    ctx = runtime.context
    version = str(state.candidate_version)
    encoder = state.candidate_encoder or ctx.encoder.version
    candidate = ctx.registry.staged(version, embedder=encoder, dim=ctx.encoder.dim)
    X, y, rows = ctx.matrix(state.train_ids + state.val_ids, encoder)
    refit = _refit(ctx, X, y, rows, version, float(candidate.metrics.get("dense_scale", DENSE_SCALE)), encoder)
    for name in ("temperature", "pull", "thresholds", "metrics", "created_at", "important_w", "important_b", "rerank"):
        setattr(refit, name, getattr(candidate, name))
    # What the next run's gate must not judge this head on: it has learned those examples.
    refit.metrics = {**refit.metrics, "trained_through_seq": max(int(r["seq"]) for r in rows)}
    ctx.registry.stage(refit)
    ctx.registry.promote(version, embedder=encoder, dim=ctx.encoder.dim)
    if encoder != ctx.encoder.version:  # the new encoder's vectors become the examples' own (and repaired by
        ctx.store.switch_example_vectors(encoder)  # the next run's mine_feedback if this one dies here)
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    return {"promoted": True, "decision": (f"promoted {state.candidate_version}: top-1 {cand['top1']:.4f} vs "
                                           f"{cur['top1']:.4f} on {cand.get('judged_on', cur.get('n', 0))}")}


def reject(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    runtime.context.registry.discard(str(state.candidate_version))
    discard_candidate_encoder(runtime.context, state.candidate_encoder)
    discard_candidate_reranker(runtime.context, state.candidate_reranker)
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    why = ("flags importance worse" if _good_enough(state, runtime.context)
           else f"needs {required_top1(state, runtime.context):.4f}")
    return {"promoted": False, "decision": (
        f"kept {state.current_version}: candidate top-1 {cand['top1']:.4f} vs {cur['top1']:.4f} on "
        f"{cand.get('judged_on', state.metrics['current'].get('n', 0))} ({why})")}
