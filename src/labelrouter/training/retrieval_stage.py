"""The retrieval stages of the training graph: fine-tune the bi-encoder, then re-embed the stored examples
with it, so `train_head` fits the candidate head on the candidate encoder's vectors and the gate judges
encoder + head + label vectors as one bundle against the current one.

    build_datasets → train_bi_encoder → reembed → train_head → evaluate → promote | reject

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

from langgraph.runtime import Runtime

from labelrouter.training.bi_encoder import train_bi_encoder as fine_tune
from labelrouter.training.retrieval_data import KIND_WEIGHTS, retrieval_rows

if TYPE_CHECKING:
    from labelrouter.training.graph import TrainingContext, TrainingState

FINE_TUNED_NAME = "labelrouter-minilm"  # the name of an encoder this project fine-tuned (its version: name@fingerprint)


def train_bi_encoder(state: TrainingState, runtime: Runtime[TrainingContext]) -> dict[str, Any]:
    """Fine-tune the current encoder on the training split's (message, label, hard negatives) rows within
    the context's budget, and store it in the registry as a candidate encoder."""
    ctx = runtime.context
    if len(state.train_ids) < ctx.min_retrieval:
        return {"skipped": [f"train_bi_encoder: {len(state.train_ids)} training examples (need {ctx.min_retrieval})"]}

    X, _, rows = ctx.matrix(state.train_ids)
    data = retrieval_rows(rows, X, ctx.labels, ctx.router.index, negatives=2, at_most=ctx.retrieval_budget.examples,
                          kind_weights=KIND_WEIGHTS)
    if len(data) < ctx.min_retrieval:
        return {"skipped": [f"train_bi_encoder: {len(data)} examples with text (need {ctx.min_retrieval})"]}
    with tempfile.TemporaryDirectory(prefix="labelrouter-bi-encoder-") as scratch:
        report = fine_tune(ctx.encoder.path, data, ctx.labels.tree_distances(), Path(scratch) / "model",
                           weighting=ctx.retrieval_weighting, budget=ctx.retrieval_budget, progress=ctx.progress)
        version = ctx.registry.encoders.put(Path(scratch) / "model", name=FINE_TUNED_NAME)
    report.metrics["negative_sources"] = data.negative_sources
    return {"candidate_encoder": version, "stage_reports": {"bi_encoder": report.to_json()}}


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

