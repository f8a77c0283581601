"""The training graph (separate from inference):

    START → mine_feedback → build_datasets → train_head → evaluate → promote → END

Conditional edges end the run early, saying why, when a stage lacks data or the candidate loses.
The retrieval stages (bi-encoder, cross-encoder, distillation) will go between build_datasets and
train_head: `after_datasets` is where the run will branch to them when there is enough data.

State holds only serializable values (example ids, versions, metrics); embeddings stay in the store and
are read through the context, and the candidate head is staged on disk until it is promoted.
"""

from __future__ import annotations

import hashlib
import operator
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from labelrouter.labels import LabelSet
from labelrouter.models.encoder import Encoder
from labelrouter.models.head import load_current_head, load_head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.scoring import ScoringParams
from labelrouter.store.base import Store
from labelrouter.store.records import decode_embedding
from labelrouter.training import registry
from labelrouter.training.head import refresh_label_vectors, train_linear_head
from labelrouter.training.metrics import evaluate as evaluate_head
from labelrouter.training.metrics import fit_threshold, summarize

# Corrections teach most, then gold imports, confirmations, and silver (the model agreeing with itself).
KIND_WEIGHTS = {"correction": 3.0, "gold": 2.0, "confirmation": 1.0, "silver": 0.5}


@dataclass
class TrainingContext:
    store: Store
    encoder: Encoder
    labels: LabelSet
    index: LabelIndex
    params: ScoringParams
    models_dir: Path
    val_fraction: float = 0.2
    min_train: int = 20
    min_val: int = 10
    promote_margin: float = 0.01  # top-1 a candidate must gain over the current head
    target_precision: float = 0.90  # of non-fallback decisions, for the refit threshold
    archive_target_precision: float = 0.97  # archiving hides mail: a stricter target for the archive threshold
    C: float = 10.0
    _rows: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def matrix(self, ids: list[str]) -> tuple[np.ndarray, list[str]]:
        rows = [self._rows[i] for i in ids]
        X = np.vstack([decode_embedding(r["embedding"]) for r in rows]).astype(np.float32)
        return X, [r["label"] for r in rows]


class TrainingState(BaseModel):
    n_examples: int = 0
    dropped_unknown_labels: int = 0
    train_ids: list[str] = Field(default_factory=list)
    val_ids: list[str] = Field(default_factory=list)
    current_version: str = ""
    candidate_version: str | None = None
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    promoted: bool = False
    decision: str = ""
    skipped: Annotated[list[str], operator.add] = Field(default_factory=list)


def mine_feedback(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Labeled examples from the store for the current encoder (imports now; mined feedback next)."""
    ctx = runtime.context
    rows = ctx.store.examples(ctx.encoder.version)
    known = [r for r in rows if r["label"] in ctx.labels]
    ctx._rows = {r["example_id"]: r for r in known}
    return {"n_examples": len(known), "dropped_unknown_labels": len(rows) - len(known)}


def build_datasets(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Time-ordered split: the newest `val_fraction` of examples validate, the rest train."""
    ids = list(runtime.context._rows)  # the store returns them oldest first
    n_val = int(round(len(ids) * runtime.context.val_fraction))
    return {"train_ids": ids[: len(ids) - n_val], "val_ids": ids[len(ids) - n_val :]}


def after_datasets(state: TrainingState, runtime: Runtime[TrainingContext]) -> str:
    ctx = runtime.context
    train_labels = {ctx._rows[i]["label"] for i in state.train_ids}
    if len(state.train_ids) < ctx.min_train or len(state.val_ids) < ctx.min_val or len(train_labels) < 2:
        return "not_enough_data"
    # Retrieval stages (train_bi_encoder → train_cross_encoder → distill) will branch from here.
    return "train_head"


def not_enough_data(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    ctx = runtime.context
    return {"skipped": [f"train_head: {len(state.train_ids)} training and {len(state.val_ids)} validation examples "
                        f"of configured labels (need {ctx.min_train} and {ctx.min_val}, and 2 labels)"],
            "decision": "not trained: not enough data"}


def train_head(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    ctx = runtime.context
    X, y = ctx.matrix(state.train_ids)
    weights = np.array([KIND_WEIGHTS.get(ctx._rows[i]["kind"], 1.0) for i in state.train_ids])
    digest = hashlib.sha256(X.tobytes() + "\n".join(y).encode()).hexdigest()[:8]
    version = f"h{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest}"
    head = train_linear_head(X, y, embedder=ctx.encoder.version, version=version, sample_weight=weights,
                             label_order=ctx.labels.names, C=ctx.C)
    head.label_vectors = refresh_label_vectors(ctx.index, X, y)
    registry.stage(ctx.models_dir, head)
    return {"candidate_version": version}


def evaluate(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Current vs candidate on the same validation set; refit the candidate's fallback threshold."""
    ctx = runtime.context
    X, y = ctx.matrix(state.val_ids)
    current = load_current_head(ctx.models_dir, embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    current_threshold = getattr(current, "thresholds", {}).get("fallback", ctx.params.threshold)
    cur_params = ScoringParams(ctx.params.top_k, ctx.params.center, ctx.params.scale, current_threshold)
    current_index = ctx.index.with_vectors(getattr(current, "label_vectors", {}) or {})
    cur = summarize(evaluate_head(current, current_index, cur_params, X, y), ctx.labels, current_threshold)

    staged = ctx.models_dir / "head" / "candidates" / str(state.candidate_version)
    candidate = load_head(staged, embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    ev = evaluate_head(candidate, ctx.index.with_vectors(candidate.label_vectors), cur_params, X, y)
    threshold = fit_threshold(ev.scores.confidence, ev.correct, ctx.target_precision)
    archive = max(threshold, fit_threshold(ev.scores.confidence, ev.correct, ctx.archive_target_precision))
    silver_margin = 100 * fit_threshold(ev.scores.margin / 100, ev.correct, 0.95)
    cand = summarize(ev, ctx.labels, threshold)
    cand["fallback_rate_at_current_threshold"] = summarize(ev, ctx.labels, current_threshold)["fallback_rate"]
    candidate.thresholds = {"fallback": threshold, "archive": archive, "silver_margin": silver_margin,
                            "target_precision": ctx.target_precision,
                            "archive_target_precision": ctx.archive_target_precision}
    candidate.metrics = {"validation": cand, "n_train": len(state.train_ids), "n_val": len(state.val_ids)}
    candidate.save(staged)
    return {"current_version": current.version, "metrics": {"current": cur, "candidate": cand}}


def gate(state: TrainingState, runtime: Runtime[TrainingContext]) -> str:
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    better = cand["top1"] >= cur["top1"] + runtime.context.promote_margin
    return "promote" if better and cand["recall@k"] >= cur["recall@k"] else "reject"


def promote(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    registry.promote(runtime.context.models_dir, str(state.candidate_version))
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    return {"promoted": True,
            "decision": f"promoted {state.candidate_version}: top-1 {cand['top1']:.4f} vs {cur['top1']:.4f}"}


def reject(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    shutil.rmtree(runtime.context.models_dir / "head" / "candidates" / str(state.candidate_version), ignore_errors=True)
    cur, cand = state.metrics["current"], state.metrics["candidate"]
    return {"promoted": False, "decision": (
        f"kept {state.current_version}: candidate top-1 {cand['top1']:.4f} vs {cur['top1']:.4f} "
        f"(needs +{runtime.context.promote_margin}), Recall@K {cand['recall@k']:.4f} vs {cur['recall@k']:.4f}")}


def build_training_graph() -> StateGraph:
    builder = StateGraph(TrainingState, context_schema=TrainingContext)
    for node in (mine_feedback, build_datasets, not_enough_data, train_head, evaluate, promote, reject):
        builder.add_node(node.__name__, node)
    builder.add_edge(START, "mine_feedback")
    builder.add_edge("mine_feedback", "build_datasets")
    builder.add_conditional_edges("build_datasets", after_datasets, ["not_enough_data", "train_head"])
    builder.add_edge("not_enough_data", END)
    builder.add_edge("train_head", "evaluate")
    builder.add_conditional_edges("evaluate", gate, ["promote", "reject"])
    builder.add_edge("promote", END)
    builder.add_edge("reject", END)
    return builder
