"""Router scoring: similarities → router weights (0–100) × head weights (0–1) → decision.

Pure numpy on a batch, so the graph node, `run` and the benchmarks share exactly this code.
The mapping is documented in docs/scoring.md; in short, for the top-K labels by cosine similarity s:

    router_weight = 100 · σ((s − center) / scale)       (0 for labels not among the candidates)
    final_score   = router_weight · head_weight
    confidence    = final_score(winner) / 100
    margin        = final_score(winner) − final_score(runner-up)
    fallback      ⇔ confidence < threshold        (or, when the fallback policy chose it, margin < threshold)

The candidates are the top-K labels by similarity and, once a trained head has an opinion, the head's own
top `head_k`: on a mailbox of a hundred personal folders whose names say little, half the corrections
were of a label retrieval never proposed, which no head weight can then pick.

The router weight is a fixed function of the absolute similarity (no per-message rescaling), so a message
that matches no label well gets low weights everywhere and falls back.

Once a bundle with a cross-encoder reranker is current, the k best labels by that final score are
rescored (`rerank`): their router weights become 100 · σ(a · logit + b), the cross-encoder's logit mapped
to a probability by a and b fitted on validation; every other label's is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class ScoringParams:
    top_k: int = 20
    center: float = 0.25
    scale: float = 0.07
    threshold: float = 0.35
    head_k: int = 5  # the head's top labels join the retrieved ones as candidates (a trained head only)
    # What the threshold is compared with: the winner's "confidence" (0–1), or its "margin" over the runner-up
    # (0–100, final-score points), when a trained head's fallback policy found it separates right from wrong
    # decisions better on validation (a near tie between two labels is a doubt the winner's score hides).
    fallback_on: str = "confidence"


@dataclass
class Scores:
    """Scores of a batch of n messages over L labels (label order)."""

    similarities: np.ndarray  # (n, L)
    topk: np.ndarray  # (n, k) label indices, best similarity first
    router: np.ndarray  # (n, L) in [0, 100]
    head: np.ndarray  # (n, L) in [0, 1]
    final: np.ndarray  # (n, L) in [0, 100]
    top: np.ndarray  # (n,) argmax of final
    confidence: np.ndarray  # (n,)
    margin: np.ndarray  # (n,)
    fallback: np.ndarray  # (n,) bool
    candidates: np.ndarray  # (n, L) bool: labels with a router weight (retrieved, or the head's top)

    def rows(self, which: np.ndarray) -> Scores:
        """The scores of some rows (a boolean mask or indices), e.g. the in-scope part of a test set."""
        return Scores(*(getattr(self, f.name)[which] for f in fields(self)))

    def certainty(self, fallback_on: str) -> np.ndarray:
        """(n,) what a fallback threshold on `fallback_on` is compared with."""
        return statistic(self.confidence, self.margin, fallback_on)


def router_weights(similarities: np.ndarray, params: ScoringParams) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-(similarities - params.center) / params.scale))


def score(similarities: np.ndarray, head_weights: np.ndarray, params: ScoringParams,
          routable: np.ndarray | None = None, *, has_fallback: bool = True) -> Scores:
    """`routable` is a boolean mask of the labels the router may retrieve (all but the fallback)."""
    sims = np.atleast_2d(similarities).astype(np.float64)
    n, n_labels = sims.shape
    mask = np.ones(n_labels, dtype=bool) if routable is None else routable
    k = min(params.top_k, int(mask.sum()))
    ranked = np.where(mask[None, :], sims, -np.inf)
    topk = np.argsort(-ranked, axis=1, kind="stable")[:, :k]

    rows = np.arange(n)[:, None]
    candidates = np.zeros(sims.shape, dtype=bool)
    candidates[rows, topk] = True
    head = np.clip(np.atleast_2d(head_weights).astype(np.float64), 0.0, 1.0)
    informative = head.max(axis=1) > head.min(axis=1) + 1e-9  # the cold-start head (all 1.0) proposes nothing
    if params.head_k and informative.any():
        head_top = np.argsort(-np.where(mask[None, :], head, -1.0), axis=1, kind="stable")[:, :min(params.head_k, k)]
        proposed = np.zeros_like(candidates)
        proposed[rows, head_top] = True
        candidates |= proposed & informative[:, None]
    router = np.where(candidates, router_weights(sims, params), 0.0)
    return _decided(sims, topk, router, head, candidates, mask, params, has_fallback)


def top_candidates(scores: Scores, k: int, routable: np.ndarray | None = None) -> np.ndarray:
    """(n, k) label indices: each message's k best labels by final score (what a reranker rescores)."""
    final = scores.final if routable is None else np.where(routable[None, :], scores.final, -np.inf)
    return np.argsort(-final, axis=1, kind="stable")[:, :min(k, final.shape[1])]


def rerank(scores: Scores, candidates: np.ndarray, logits: np.ndarray, a: float, b: float, params: ScoringParams,
           routable: np.ndarray | None = None, *, has_fallback: bool = True) -> Scores:
    """Scores with the router weights a cross-encoder gives: for each message's `candidates` (n, k label
    indices, `top_candidates`) 100 · σ(a · logit + b), its calibrated probability that the label is the
    message's, and 0 for every other label; the head weights, the decision and the fallback rule as in
    `score` (with the bundle's threshold, refit with the reranker on)."""
    n, n_labels = scores.router.shape
    mask = np.ones(n_labels, dtype=bool) if routable is None else routable
    rows = np.arange(n)[:, None]
    chosen = np.zeros((n, n_labels), dtype=bool)
    chosen[rows, candidates] = True
    router = np.zeros((n, n_labels))
    router[rows, candidates] = 100.0 / (1.0 + np.exp(-(a * np.asarray(logits, dtype=np.float64) + b)))
    return _decided(scores.similarities, scores.topk, router, scores.head, chosen, mask, params, has_fallback)


def _decided(sims: np.ndarray, topk: np.ndarray, router: np.ndarray, head: np.ndarray, candidates: np.ndarray,
             mask: np.ndarray, params: ScoringParams, has_fallback: bool) -> Scores:
    n, n_labels = router.shape
    final = router * head
    top = np.argmax(np.where(mask[None, :], final, -1.0), axis=1)
    best = final[np.arange(n), top]
    if n_labels > 1:
        second = np.partition(np.where(mask[None, :], final, -1.0), -2, axis=1)[:, -2].clip(min=0.0)
    else:
        second = np.zeros(n)
    confidence, margin = best / 100.0, best - second
    fallback = (statistic(confidence, margin, params.fallback_on) < params.threshold) if has_fallback \
        else np.zeros(n, dtype=bool)
    return Scores(sims, topk, router, head, final, top, confidence, margin, fallback, candidates)


FALLBACK_STATISTICS = ("confidence", "margin")
FALLBACK_ON = ("auto", *FALLBACK_STATISTICS)  # what the fallback policy may be told: choose on validation, or pin
FALLBACK_ON_CHOICES = f"{', '.join(FALLBACK_ON[:-1])} or {FALLBACK_ON[-1]}"  # for error messages, spelled from the tuple


def statistic(confidence: np.ndarray, margin: np.ndarray, fallback_on: str) -> np.ndarray:
    """What the fallback threshold is compared with (`ScoringParams.fallback_on`)."""
    if fallback_on not in FALLBACK_STATISTICS:
        raise ValueError(f"fallback_on must be one of {FALLBACK_STATISTICS}, not {fallback_on!r}")
    return confidence if fallback_on == "confidence" else margin
