"""The quality report's figures, from the store's decisions (`Store.report_rows`) and the model registry.

Per week (ISO weeks, Monday first; by the week the mail arrived — its Date header, else when it was
labeled — or, with `by="processed"`, by when it was labeled):
- labeled: decisions applied to the mailbox (shadow decisions and failures are counted apart);
- coverage: the share that got a real label, not the fallback;
- correction rate: the share the user corrected (moved to another label) or rejected (took our label
  off); 1 − it is the accuracy the user sees (mail nobody looked at counts as right, as it does for them);
- drift: the Jensen–Shannon divergence (base 2: 0 same, 1 disjoint) of the week's predicted label
  distribution from the previous week's;
- models: the model versions that labeled the week's mail, a promotion showing as a new version.
Across the store: the most-corrected label pairs (our label → the user's), sibling confusions flagged
(the two labels share a parent); apart from them, where the user filed what the fallback held (a
coverage question, not a confusion); and the stored model versions with their validation figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from labelrouter.labels import LabelSet
from labelrouter.util.moments import parse_moment

CORRECTED = ("correction", "rejection")


@dataclass
class Week:
    start: date
    labeled: int = 0
    fallback: int = 0
    corrected: int = 0
    rejected: int = 0
    shadow: int = 0
    failed: int = 0
    read_back: int = 0  # labeled messages a sync has read back (what the user did is known)
    labels: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    drift: float | None = None
    new_models: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def coverage(self) -> float | None:
        return (self.labeled - self.fallback) / self.labeled if self.labeled else None

    @property
    def read_back_share(self) -> float | None:
        return self.read_back / self.labeled if self.labeled else None

    @property
    def correction_rate(self) -> float | None:
        return (self.corrected + self.rejected) / self.labeled if self.labeled else None


@dataclass
class Pair:
    ours: str
    theirs: str
    count: int
    sibling: bool
    parent: str | None


@dataclass
class QualityReport:
    weeks: list[Week]
    pairs: list[Pair]  # the most-corrected (our label → the user's) pairs, our label not the fallback
    from_fallback: list[tuple[str, int]]  # where the user filed what the fallback held, most first
    models: list[dict[str, Any]]
    by: str
    generated_at: datetime
    source: str
    totals: dict[str, Any]


def head_version(model_version: Any) -> str:
    """The head's version in a decision's model version (`<encoder>+head:<version>[+rerank:<v>]`), which
    is what the registry lists; a decision of the cold-start head (or an older format) keeps its string."""
    text = str(model_version or "")
    if "+head:" not in text:
        return text or "cold-start"
    head = text.split("+head:", 1)[1]
    return head.split("+", 1)[0] + (" +rerank" if "+rerank:" in head else "")


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def js_divergence(p: Counter[str], q: Counter[str]) -> float | None:
    """Jensen–Shannon divergence, base 2, of two label count distributions (None if either is empty)."""
    names = sorted(set(p) | set(q))
    a = np.array([p.get(n, 0) for n in names], dtype=float)
    b = np.array([q.get(n, 0) for n in names], dtype=float)
    if a.sum() == 0 or b.sum() == 0:
        return None
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return max(0.0, min(1.0, (kl(a) + kl(b)) / 2))


def build_report(rows: list[dict[str, Any]], labels: LabelSet, models: list[dict[str, Any]], *,
                 history: list[str] | None = None, by: str = "arrived", last_weeks: int | None = None,
                 top_pairs: int = 12, source: str = "", now: datetime | None = None) -> QualityReport:
    if by not in ("arrived", "processed"):
        raise ValueError(f"by must be 'arrived' or 'processed', not {by!r}")
    weeks: dict[date, Week] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    first_week_of: dict[str, date] = {}
    undated = 0
    for row in rows:
        moment = (parse_moment(row.get("message_date")) if by == "arrived" else None) or parse_moment(row.get("processed_at"))
        if moment is None:
            undated += 1
            continue
        start = _monday(moment)
        week = weeks.setdefault(start, Week(start))
        if row.get("status") == "failed":
            week.failed += 1
            continue
        if row.get("shadow"):
            week.shadow += 1
            continue
        week.labeled += 1
        label = str(row.get("label_applied") or "")
        week.labels[label] += 1
        week.fallback += bool(row.get("fallback"))
        week.read_back += bool(row.get("labels_synced_at"))
        verdict = row.get("feedback")
        week.corrected += verdict == "correction"
        week.rejected += verdict == "rejection"
        if verdict == "correction" and row.get("effective_label"):
            pairs[(label, str(row["effective_label"]))] += 1
        version = head_version(row.get("model_version"))
        week.models[version] += 1
        if version not in first_week_of or start < first_week_of[version]:
            first_week_of[version] = start
    ordered = [weeks[k] for k in sorted(weeks)]
    previous: Week | None = None
    for week in ordered:
        week.drift = js_divergence(week.labels, previous.labels) if previous is not None else None
        week.new_models = sorted(v for v, first in first_week_of.items() if first == week.start)
        if week.labeled:
            previous = week
    if last_weeks is not None:
        ordered = ordered[-last_weeks:]
    promoted = set(history or [])
    model_rows = []
    for meta in models:
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        validation = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else {}
        version = str(meta.get("version"))
        used = [w for v, w in first_week_of.items() if v == version]
        model_rows.append({"version": version, "created_at": meta.get("created_at"), "current": bool(meta.get("current")),
                           "promoted": version in promoted, "top1": validation.get("top1"),
                           "n_train": metrics.get("n_train"), "first_week": min(used) if used else None,
                           "error": meta.get("error")})
    labeled = sum(w.labeled for w in ordered)
    corrected = sum(w.corrected + w.rejected for w in ordered)
    between = Counter({pair: n for pair, n in pairs.items() if pair[0] != labels.fallback})
    parent_of = {label.name: label.parent for label in labels.labels}
    sibling_corrections = sum(n for (ours, theirs), n in between.items() if _siblings(parent_of, ours, theirs))
    from_fallback = Counter({theirs: n for (ours, theirs), n in pairs.items() if ours == labels.fallback})
    totals = {"labeled": labeled, "label_corrections": sum(between.values()), "sibling_corrections": sibling_corrections,
              "fallback_corrections": sum(from_fallback.values()), "weeks": len(ordered), "undated": undated,
              "failed": sum(w.failed for w in ordered), "shadow": sum(w.shadow for w in ordered),
              "coverage": (labeled - sum(w.fallback for w in ordered)) / labeled if labeled else None,
              "correction_rate": corrected / labeled if labeled else None,
              "promotions": len(promoted)}
    return QualityReport(weeks=ordered, pairs=_pairs(between, parent_of, top_pairs),
                         from_fallback=from_fallback.most_common(top_pairs), models=model_rows, by=by,
                         generated_at=now or datetime.now(UTC), source=source, totals=totals)


def _siblings(parent_of: dict[str, str | None], ours: str, theirs: str) -> bool:
    """Two labels of the current list under one parent (a label renamed or removed since is no sibling)."""
    return ours in parent_of and theirs in parent_of and parent_of[ours] is not None and parent_of[ours] == parent_of[theirs]


def _pairs(pairs: Counter[tuple[str, str]], parent_of: dict[str, str | None], top: int) -> list[Pair]:
    return [Pair(ours, theirs, count, _siblings(parent_of, ours, theirs),
                 parent_of[ours] if _siblings(parent_of, ours, theirs) else None)
            for (ours, theirs), count in pairs.most_common(top)]


