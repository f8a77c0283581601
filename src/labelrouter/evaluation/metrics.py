"""Metrics of decisions, one module for `eval`, the training gate and the benchmarks.

`decision_metrics` takes any prediction and ranking (a baseline's too); `router_metrics` takes the
Router's `Scores`, adding what only a router has (Recall@K of the retrieved set, errors outside it). The
fallback threshold refit (`fit_threshold`) and the risk–coverage curve live here as well.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.models.scoring import FALLBACK_ON, FALLBACK_ON_CHOICES, Scores


def decision_metrics(pred: np.ndarray, ranking: np.ndarray, gold: np.ndarray, labels: LabelSet, *,
                     confidence: np.ndarray | None = None, threshold: float | None = None,
                     certainty: np.ndarray | None = None, train_dist: np.ndarray | None = None) -> dict[str, Any]:
    """top-1, Recall@5/20, macro-F1, sibling confusions, and with `confidence` and `threshold` the
    fallback rate, precision of the decisions kept, ECE and the risk–coverage curve. `certainty` is what
    the threshold is compared with when that is not the confidence (the margin, `scoring.statistic`)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    correct = pred == gold
    errors = np.nonzero(~correct)[0]
    parents = [lb.parent for lb in labels.labels]
    hier = any(p is not None for p in parents)
    out: dict[str, Any] = {
        "n": len(gold),
        "top1": float(correct.mean()) if len(gold) else 0.0,
        "recall@5": float(np.mean([g in r[:5] for g, r in zip(gold, ranking, strict=True)])) if len(gold) else 0.0,
        "recall@20": float(np.mean([g in r[:20] for g, r in zip(gold, ranking, strict=True)])) if len(gold) else 0.0,
        "macro_f1": macro_f1(gold, pred),
        "sibling_error_share": (float(np.mean([parents[pred[i]] is not None and parents[pred[i]] == parents[gold[i]]
                                               for i in errors])) if hier and errors.size else None),
        "sibling_chance_rate": _sibling_chance(gold, parents) if hier else None,
    }
    if train_dist is not None:  # drift: total variation between predicted and training label distributions
        predicted = np.bincount(pred, minlength=len(train_dist)) / max(1, len(pred))
        out["drift_tv"] = float(0.5 * np.abs(predicted - train_dist).sum())
    if confidence is not None and threshold is not None:
        certainty = confidence if certainty is None else certainty
        kept = certainty >= threshold
        out.update(fallback_rate=float(1 - kept.mean()), threshold=threshold, ece=ece(confidence, correct),
                   accuracy_with_fallback=float((correct & kept).mean()) if len(kept) else 0.0,
                   non_fallback_precision=float(correct[kept].mean()) if kept.any() else None,
                   risk_coverage=risk_coverage(certainty, correct))
    out["errors_by_parent"] = dict(Counter(str(parents[gold[i]]) for i in errors).most_common())
    return out


def router_metrics(scores: Scores, gold: np.ndarray, labels: LabelSet, threshold: float, *,
                   fallback_on: str = "confidence", train_dist: np.ndarray | None = None) -> dict[str, Any]:
    """`decision_metrics` of the Router's decisions (the fallback at `threshold` on `fallback_on`), plus
    Recall@K of its retrieved top-K and the share of errors whose true label was not retrieved at all."""
    gold = np.asarray(gold)
    out = decision_metrics(scores.top, scores.topk, gold, labels, confidence=scores.confidence,
                           threshold=threshold, certainty=scores.certainty(fallback_on), train_dist=train_dist)
    out["fallback_on"] = fallback_on
    retrieved = np.array([g in k for g, k in zip(gold, scores.topk, strict=True)], dtype=bool)
    wrong = scores.top != gold
    out["recall@k"] = float(retrieved.mean()) if len(gold) else 0.0
    # Recall of every candidate that got a router weight (retrieved, or proposed by the head): what the
    # decision could pick from.
    out["candidate_recall"] = float(scores.candidates[np.arange(len(gold)), gold].mean()) if len(gold) else 0.0
    out["outside_topk_error_share"] = float(np.mean(~retrieved[wrong])) if wrong.any() else 0.0
    return out


def _sibling_chance(gold: np.ndarray, parents: list[str | None]) -> float:
    """Share of errors that would be sibling confusions if a wrong label were drawn uniformly."""
    n = len(parents)
    counts = Counter(p for p in parents if p is not None)
    return float(np.mean([(counts[parents[g]] - 1) / (n - 1) if parents[g] is not None else 0.0 for g in gold]))


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of `confidence` (winner's final score / 100) against accuracy."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            total += mask.mean() * abs(confidence[mask].mean() - correct[mask].mean())
    return float(total)


def fit_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float, *,
                  between: bool = False) -> float:
    """Lowest threshold whose non-fallback decisions reach `target_precision` (max coverage at that precision).

    When no threshold reaches it, the one with the best precision is used (ties: more coverage). With
    `between`, a threshold that keeps every decision is 0 (nothing falls back) and any other lies halfway
    to the next lower value: the validation decisions it keeps are kept, and so is new mail that scores a
    little below the last of them (a threshold at exactly the lowest value kept sent a tenth of new mail to
    the fallback of a head right on all of its validation)."""
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, hits = confidence[order], correct[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)  # keeping the top i+1 decisions
    ok = np.nonzero(precision >= target_precision)[0]
    i = int(ok[-1]) if len(ok) else int(np.argmax(precision))
    return _between(conf_sorted, i) if between else float(conf_sorted[i])


def _between(ranked: np.ndarray, i: int) -> float:
    """A threshold that keeps the `i + 1` highest of `ranked` (descending): halfway to the next, 0 for all."""
    return 0.0 if i >= len(ranked) - 1 else float((ranked[i] + ranked[i + 1]) / 2)


def fallback_policy(confidence: np.ndarray, correct: np.ndarray, target_precision: float,
                    min_coverage: float, *, margin: np.ndarray | None = None,
                    on: str = "auto") -> dict[str, Any]:
    """The fallback threshold as a policy a user can read: the lowest threshold whose decisions reach
    `target_precision`, unless it would leave fewer than `min_coverage` of messages with a real label; then
    the threshold that keeps that coverage, with one standard error to spare (precision is what it is
    there, and is reported).

    With `margin` (the winner's lead over the runner-up) the policy is fitted on each statistic and keeps the
    one that orders these decisions better, right before wrong (the lower area under the risk–coverage
    curve; a tie keeps confidence): "fallback_on" says which, "aurc" what each scored. `on` pins the
    statistic instead ("confidence" or "margin"; the setting `fallback_on`), and "pinned" says so.

    On mail that a model labels with 50 % accuracy a 90 % precision target sends 85 % of it to the fallback:
    correct, and useless. Returns plain floats (it is stored in state and model metrics)."""
    if on not in FALLBACK_ON:
        raise ValueError(f"fallback_on must be {FALLBACK_ON_CHOICES}, not {on!r}")
    if on == "margin" and margin is None:
        raise ValueError("a fallback on the margin needs the margins")
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    chosen = _policy_on(confidence, correct, target_precision, min_coverage)
    chosen["fallback_on"], chosen["pinned"] = "confidence", on != "auto"
    if margin is not None and len(correct) and on != "confidence":
        margin = np.asarray(margin, dtype=float)
        areas = {"confidence": aurc(confidence, correct), "margin": aurc(margin, correct)}
        if on == "margin" or areas["margin"] < areas["confidence"] - 1e-9:
            chosen = _policy_on(margin, correct, target_precision, min_coverage)
            chosen["fallback_on"], chosen["pinned"] = "margin", on != "auto"
        chosen["aurc"] = areas
    return chosen


def _policy_on(values: np.ndarray, correct: np.ndarray, target_precision: float,
               min_coverage: float) -> dict[str, Any]:
    if not len(values):
        return {"threshold": 0.0, "bound": "precision", "target_precision": float(target_precision),
                "min_coverage": float(min_coverage), "precision": 0.0, "coverage": 0.0}
    threshold, bound = fit_threshold(values, correct, target_precision, between=True), "precision"
    # The floor is a promise about mail not yet seen: held on validation with one standard error of a
    # proportion to spare, so that it holds on new mail more often than not (on 400 examples, 82 % for 80 %).
    floor = min(1.0, min_coverage + float(np.sqrt(min_coverage * (1 - min_coverage) / len(values))))
    if np.mean(values >= threshold) < floor:
        ranked = np.sort(values)[::-1]
        threshold = _between(ranked, max(0, int(np.ceil(floor * len(ranked))) - 1))
        bound = "coverage"
    kept = values >= threshold
    return {"threshold": float(threshold), "bound": bound, "target_precision": float(target_precision),
            "min_coverage": float(min_coverage), "precision": float(correct[kept].mean()) if kept.any() else 0.0,
            "coverage": float(kept.mean())}


def aurc(values: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk–coverage curve: the error rate among the decisions a threshold on `values` keeps,
    averaged over every coverage a threshold can give (tied values are kept or dropped together). Lower is
    better; least when every right decision outranks every wrong one."""
    values, wrong = np.asarray(values, dtype=float), ~np.asarray(correct, dtype=bool)
    n = len(values)
    if not n:
        return 0.0
    order = np.argsort(-values, kind="stable")
    ranked, errors = values[order], np.cumsum(wrong[order])
    ends = np.append(np.nonzero(np.diff(ranked))[0], n - 1)  # last index of each group of equal values
    kept = ends + 1
    widths = np.diff(np.append(0, kept)) / n
    return float(np.sum(errors[ends] / kept * widths))


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
        curve.append([round(n / len(order), 4), round(float(1 - hits[n - 1] / n), 4)])
    return curve
