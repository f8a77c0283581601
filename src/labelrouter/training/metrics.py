"""Metrics of a head + router on labeled embeddings, and the fallback threshold refit.

Everything is computed with the inference scoring (`models.scoring.score`), so what is measured is what
`label_router` would decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.head import Head
from labelrouter.models.label_index import LabelIndex
from labelrouter.models.scoring import Scores, ScoringParams, score


@dataclass
class Evaluation:
    scores: Scores
    gold: np.ndarray  # (n,) label indices

    @property
    def correct(self) -> np.ndarray:
        return self.scores.top == self.gold


def evaluate(head: Head, index: LabelIndex, params: ScoringParams, X: np.ndarray, gold: list[str]) -> Evaluation:
    labels = index.labels
    scores = score(index.similarities(X), head.weights(X, labels.names), params, index.routable,
                   has_fallback=labels.fallback is not None)
    return Evaluation(scores, np.array([labels.index(g) for g in gold]))


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of `confidence` (winner's final score / 100) against accuracy."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            total += mask.mean() * abs(confidence[mask].mean() - correct[mask].mean())
    return float(total)


def fit_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """Lowest threshold whose non-fallback decisions reach `target_precision` (max coverage at that precision).

    When no threshold reaches it, the one with the best precision is used (ties: more coverage).
    """
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, hits = confidence[order], correct[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)  # keeping the top i+1 decisions
    ok = np.nonzero(precision >= target_precision)[0]
    i = int(ok[-1]) if len(ok) else int(np.argmax(precision))
    return float(conf_sorted[i])


def summarize(ev: Evaluation, labels: LabelSet, threshold: float) -> dict[str, float | None]:
    s, gold, correct = ev.scores, ev.gold, ev.correct
    n = len(gold)
    recall = np.mean([gold[i] in s.topk[i][:5] for i in range(n)])
    recall_k = np.mean([gold[i] in s.topk[i] for i in range(n)])
    errors = np.nonzero(~correct)[0]
    parents = [label.parent for label in labels.labels]
    sibling = [parents[s.top[i]] is not None and parents[s.top[i]] == parents[gold[i]] for i in errors]
    outside = [gold[i] not in s.topk[i] for i in errors]
    kept = s.confidence >= threshold
    return {
        "n": n,
        "top1": float(correct.mean()),
        "recall@5": float(recall),
        "recall@k": float(recall_k),
        "macro_f1": macro_f1(gold, s.top),
        "sibling_error_share": float(np.mean(sibling)) if errors.size and any(p is not None for p in parents) else None,
        "outside_topk_error_share": float(np.mean(outside)) if errors.size else 0.0,
        "threshold": threshold,
        "fallback_rate": float(1 - kept.mean()),
        "non_fallback_precision": float(correct[kept].mean()) if kept.any() else None,
        "ece": ece(s.confidence, correct),
        "risk_coverage": risk_coverage(s.confidence, correct),
    }


def macro_f1(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the labels that occur in gold (labels never seen are not scored)."""
    f1s = []
    for label in np.unique(gold):
        tp = np.sum((predicted == label) & (gold == label))
        fp = np.sum((predicted == label) & (gold != label))
        fn = np.sum((predicted != label) & (gold == label))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, points: int = 20) -> list[list[float]]:
    """[coverage, risk] when only the most confident decisions are kept (the rest fall back)."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    curve = []
    for c in np.linspace(1 / points, 1, points):
        n = max(1, int(round(c * len(order))))
        curve.append([round(n / len(order), 4), round(1 - hits[n - 1] / n, 4)])
    return curve
