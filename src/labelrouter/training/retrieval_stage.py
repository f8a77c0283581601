"""The retrieval stages of the training graph: fine-tune the bi-encoder, then re-embed the stored examples
with it, so `train_head` fits the candidate head on the candidate encoder's vectors and the gate judges
encoder + head + label vectors as one bundle against the current one.

    build_datasets → train_bi_encoder | distill_bi_encoder → reembed → train_head → evaluate → promote | reject

`distill_bi_encoder` takes the place of `train_bi_encoder` once the current bundle reranks with a
cross-encoder — one that was promoted, so it measurably beat the bundle without it on validation: the
bi-encoder then learns from the same rows with MNR *and* the cross-encoder's scores of each row's
candidates as soft targets (`DistilledRankingLoss`). The reranker stays in the bundle only while it still
gains on validation (`training.rerank_stage.carry_reranker`): when the distilled bi-encoder has caught up,
it is switched off and inference saves its k cross-encoder passes per message.

The graph comes here only when the run was asked for retrieval (`stages`). With fewer training examples
than `min_retrieval` both are no-ops (`train_bi_encoder` says why in `skipped`): the head then trains on
the current encoder's vectors as in a head-only run. The candidate encoder is stored in the registry (`encoders/`) and its vectors in the
store (`example_vectors`) until the gate decides: promotion makes them the examples' own, rejection
deletes both.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.runtime import Runtime

from labelrouter.training.bi_encoder import BATCH_SIZE
from labelrouter.training.bi_encoder import train_bi_encoder as fine_tune
from labelrouter.training.retrieval_data import KIND_WEIGHTS, RetrievalRows, retrieval_rows

if TYPE_CHECKING:
    from labelrouter.training.context import TrainingContext
    from labelrouter.training.state import TrainingState

FINE_TUNED_NAME = "labelrouter-minilm"  # the name of an encoder this project fine-tuned (its version: name@fingerprint)
TEACHER_BATCH = 256  # rows the teacher scores between two progress lines


def train_bi_encoder(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Fine-tune the current encoder on the training split's (message, label, hard negatives) rows within
    the context's budget, and store it in the registry as a candidate encoder."""
    return _fine_tune(state, runtime.context, teacher=None)


def distill_bi_encoder(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """`train_bi_encoder` with the current bundle's cross-encoder as teacher (`after_datasets` comes here
    only when there is one)."""
    return _fine_tune(state, runtime.context, teacher=state.current_reranker)


def _fine_tune(state: TrainingState, ctx: TrainingContext, teacher: str | None) -> dict[str, Any]:
    stage = "distill_bi_encoder" if teacher else "train_bi_encoder"
    if len(state.train_ids) < ctx.policy.min_retrieval:
        return {"skipped": [f"{stage}: {len(state.train_ids)} training examples (need {ctx.policy.min_retrieval})"]}

    X, _, rows = ctx.matrix(state.train_ids)
    data = retrieval_rows(rows, X, ctx.labels, ctx.router.index, negatives=2, at_most=ctx.policy.retrieval_budget.examples,
                          kind_weights=KIND_WEIGHTS)
    if len(data) < ctx.policy.min_retrieval:
        return {"skipped": [f"{stage}: {len(data)} examples with text (need {ctx.policy.min_retrieval})"]}
    scores, teacher_report = None, {}
    if teacher:
        # Only the rows the budget lets the trainer see are worth a cross-encoder pass (one epoch at most).
        data = data.sample(ctx.policy.retrieval_budget.steps * BATCH_SIZE)
        scores, teacher_report = _teacher_scores(ctx, teacher, data)
    with tempfile.TemporaryDirectory(prefix="labelrouter-bi-encoder-") as scratch:
        report = fine_tune(ctx.encoder.path, data, ctx.labels.tree_distances(), Path(scratch) / "model",
                           weighting=ctx.policy.retrieval_weighting, budget=ctx.policy.retrieval_budget, teacher=scores,
                           progress=ctx.progress)
        version = ctx.registry.encoders.put(Path(scratch) / "model", name=FINE_TUNED_NAME)
    report.metrics["negative_sources"] = data.negative_sources
    report.metrics.update(teacher_report)
    return {"candidate_encoder": version, "stage_reports": {"distill" if teacher else "bi_encoder": report.to_json()}}


def _teacher_scores(ctx: TrainingContext, teacher: str, data: RetrievalRows) -> tuple[np.ndarray, dict[str, Any]]:
    """The cross-encoder's scores of each row's candidates (its label, then its hard negatives): its logits
    times the slope `a` its bundle fitted on validation (router weight 100 · σ(a · logit + b)), so that the
    teacher's softmax is as sure as the cross-encoder measured itself to be. Raw logits of a briefly trained
    cross-encoder are squeezed together (0.10 against 0.08 for a right and a wrong intent): at temperature
    1 their softmax is nearly uniform, and the KL term would teach the bi-encoder to doubt everything."""
    started = time.perf_counter()
    current = ctx.registry.current_head(embedder=ctx.encoder.version, dim=ctx.encoder.dim)
    scale = current.rerank.a if current.rerank is not None and current.rerank.version == teacher else 1.0
    reranker = ctx.rerankers(teacher)
    candidates = np.asarray(data.columns["label"], dtype=np.int64)
    messages = data.columns["message"]
    parts = []
    for start in range(0, len(messages), TEACHER_BATCH):
        parts.append(reranker.rerank(messages[start:start + TEACHER_BATCH], candidates[start:start + TEACHER_BATCH],
                                     ctx.labels))
        ctx.progress(f"teacher scores: {min(start + TEACHER_BATCH, len(messages))}/{len(messages)}")
    scores = np.vstack(parts) * scale
    seconds = time.perf_counter() - started
    agrees = float(np.mean(scores.argmax(axis=1) == 0))  # its best candidate is the row's label
    return scores, {"teacher": teacher, "teacher_pairs": int(scores.size), "teacher_seconds": round(seconds, 1),
                    "teacher_scale": round(float(scale), 4), "teacher_top1_on_rows": round(agrees, 4)}


def reembed(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Embed every example of this run with the candidate encoder (in batches, with progress) and store
    the vectors under its version; the current encoder's stay as they are until a promotion."""
    ctx = runtime.context
    if not state.candidate_encoder:
        return {}
    encoder = ctx.encoder_for(state.candidate_encoder)
    rows = ctx.examples(state.train_ids + state.val_ids)
    texts = [r.get("embedded_text") or r.get("document") or r.get("subject") or "" for r in rows]
    started, batch, done = time.perf_counter(), 512, 0
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        X = encoder.encode(texts[start:start + batch])
        ctx.store.put_example_vectors(state.candidate_encoder, [  # read back by `TrainingContext.matrix`
            (r["example_id"], x.astype("<f4").tobytes(), int(x.shape[0])) for r, x in zip(part, X, strict=True)])
        done += len(part)
        ctx.progress(f"re-embedding: {done}/{len(rows)}")
    seconds = time.perf_counter() - started
    return {"stage_reports": {"reembed": {"examples": len(rows), "seconds": round(seconds, 1),
                                          "messages_per_s": round(len(rows) / max(seconds, 1e-9), 1)}}}


def discard_candidate_encoder(ctx: TrainingContext, version: str | None) -> None:
    """A rejected (or failed) candidate encoder: its vectors and its registry copy go."""
    if not version or version == ctx.encoder.version:
        return
    ctx.store.drop_example_vectors(version)
    ctx.registry.encoders.delete(version)

