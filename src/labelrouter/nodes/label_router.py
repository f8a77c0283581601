"""Node `label_router`: embed → retrieve top-K labels → router × head → argmax or fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from labelrouter.context import LabelerContext, context_of
from labelrouter.models.scoring import Scores, score
from labelrouter.state import Candidate, EmailMessage, LabelingState, Routing, Summary
from labelrouter.summarize.offline import SOURCE as OFFLINE_SOURCE


def embedding_text(message: EmailMessage, summary: Summary | None, snippet_chars: int) -> str:
    """What the router embeds: subject, the summary, and the start of the body.

    The body snippet is always there, so an LLM summary can shift the vector but never decide alone
    (a message cannot talk its way into a label through the summarizer). The offline summary is the
    body's own lead, so it is left out rather than counted twice.
    """
    parts = [message.subject.strip()]
    if summary is not None and summary.source != OFFLINE_SOURCE:
        parts.append(summary.text.strip())
    parts.append(message.body[:snippet_chars].strip())
    return "\n".join(p for p in parts if p)


def _explained(scores: Scores, row: int, names: list[str]) -> tuple[dict[str, float], ...]:
    """Router, head and final per label, rounded so that final == router × head holds in the JSON too."""
    router = {n: round(float(v), 4) for n, v in zip(names, scores.router[row], strict=True)}
    head = {n: round(float(v), 6) for n, v in zip(names, scores.head[row], strict=True)}
    final = {n: round(router[n] * head[n], 6) for n in names}
    return router, head, final


def routing_from_scores(scores: Scores, row: int, ctx: LabelerContext) -> Routing:
    """The explanation of one message's decision, from a batch of scores."""
    names = ctx.labels.names
    top = int(scores.top[row])
    fallback = bool(scores.fallback[row]) and ctx.labels.fallback is not None
    router, head, final = _explained(scores, row, names)
    candidates = [
        Candidate(label=names[j], similarity=round(float(scores.similarities[row, j]), 4),
                  router_weight=router[names[j]], head_weight=head[names[j]], final_score=final[names[j]])
        for j in scores.topk[row]
    ]
    label = ctx.labels.fallback if fallback else names[top]
    return Routing(
        label=label,  # type: ignore[arg-type]
        top_label=names[top],
        router_weights=router,
        head_weights=head,
        final_scores=final,
        candidates=candidates,
        confidence=round(float(scores.confidence[row]), 6),
        margin=round(float(scores.margin[row]), 4),
        threshold=ctx.scoring.threshold,
        archive_threshold=ctx.archive_threshold(label),  # type: ignore[arg-type]
        fallback=fallback,
        reason="below-threshold" if fallback else "argmax",
        model_version=ctx.model_version,
        encoder_version=ctx.encoder.version,
        labels_hash=ctx.labels.fingerprint(),
    )


def no_content_routing(ctx: LabelerContext) -> Routing:
    """A message with no subject and no body text: nothing to route on, so the fallback label."""
    zeros = {name: 0.0 for name in ctx.labels.names}
    fallback = ctx.labels.fallback or ctx.labels.names[0]
    return Routing(
        label=fallback, top_label=fallback, router_weights=zeros, head_weights={n: 1.0 for n in zeros},
        final_scores=zeros, candidates=[], confidence=0.0, margin=0.0, threshold=ctx.scoring.threshold,
        archive_threshold=ctx.archive_threshold(fallback), fallback=ctx.labels.fallback is not None, reason="no-content", model_version=ctx.model_version,
        encoder_version=ctx.encoder.version, labels_hash=ctx.labels.fingerprint(),
    )


def score_embeddings(embeddings: np.ndarray, ctx: LabelerContext) -> Scores:
    """The scoring shared by the node and batch evaluation: similarities, head weights, decision."""
    embeddings = np.atleast_2d(embeddings)
    return score(
        ctx.active_index.similarities(embeddings), ctx.head.weights(embeddings, ctx.labels.names), ctx.scoring,
        ctx.index.routable, has_fallback=ctx.labels.fallback is not None,
    )


def label_router(state: LabelingState, runtime: Runtime[LabelerContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    if state.routing is not None:
        return {}  # an extension before the router decided (e.g. a sender rule): nothing to route
    if not state.message.has_content:
        return {"routing": no_content_routing(ctx), "embedding": None}
    text = embedding_text(state.message, state.summary, ctx.snippet_chars)
    vector = ctx.embed(text)
    scores = score_embeddings(vector, ctx)
    return {"routing": routing_from_scores(scores, 0, ctx), "embedding": [float(x) for x in vector],
            "embedded_text": text}
