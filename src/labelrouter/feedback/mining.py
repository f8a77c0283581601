"""Mining: what the user did to a labeled message, turned into training examples.

Per synced message (the rules are docs/feedback.md's):

- **effective label**: the one of our labels the message carries now. Ours still there and one other of
  ours added → the added one (users often add a label without removing ours). Two or more of ours besides
  the applied one, or two or more without it → `ambiguous`: nothing is learned.
- **correction**: effective ≠ applied → gold example for the effective label, the applied label its hard
  negative. A message moved out of the fallback label is a correction too (its hard negative is the
  router's top label, when that is not the effective one).
- **rejection**: ours removed and nothing of ours added (or moved into the fallback label) → a negative
  for the applied label only; no positive example.
- **confirmation**: ours kept after the user read the message or archived it themselves.
- **reorganised**: a bulk move — at least `bulk_min` messages of one applied label moved (or stripped) the
  same way within `bulk_window_s`, together at least `bulk_share` of every message we gave that label — is
  a folder rename or clean-up, not a batch of corrections. A genuine batch (many corrections from several
  labels, or a minority of one label's mail) stays corrections.
- **shadow** decisions (`run --shadow`, the mailbox untouched): the one of our labels the user filed it
  under is a confirmation when it is ours, a correction otherwise; not filed, no signal (never a rejection).
- **undone**: `labelrouter undo` took our label off: never read as the user's correction.
- **silver** (off by default, `MiningPolicy(silver=True)`): untouched for `silver_after_days`, not the fallback (its decision
  passed the fallback rule in force, on the confidence or the margin) and margin at least `silver_margin`; stored with the model version that decided it, weighted
  low by training, never used for validation, and at most as many as the trusted examples.

Mining is idempotent: an example's id is `feedback:<message id>`, so a re-run replaces rather than adds,
and a verdict that changes (the user moved the message back) replaces or removes its example.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labelrouter.feedback.sync import stored_ids
from labelrouter.labels import LabelSet
from labelrouter.store.base import Store
from labelrouter.store.rows import DecisionRow, ExampleRow

TRUSTED = ("correction", "confirmation")
WITH_EXAMPLE = (*TRUSTED, "silver")


@dataclass(frozen=True)
class MiningPolicy:
    bulk_min: int = 20
    bulk_share: float = 0.8
    bulk_window_s: float = 600.0
    # Off by default: silver from today's learner reinforces its own mistakes
    # (docs/decisions/0004-silver-off.md).
    silver: bool = False
    silver_after_days: float = 3.0
    silver_margin: float = 20.0  # final-score points between the winner and the runner-up (0–100 scale)


@dataclass
class MiningReport:
    verdicts: Counter[str] = field(default_factory=Counter)
    examples: Counter[str] = field(default_factory=Counter)
    changed: int = 0
    latest_corrections: list[dict[str, Any]] = field(default_factory=list)


def _when(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verdict(row: DecisionRow, id_to_name: dict[str, str], labels: LabelSet) -> tuple[str | None, str | None]:
    """(feedback, effective label) of one synced message, before the bulk rule; (None, None): no signal."""
    if row["undone_at"]:
        return "undone", None  # our own undo, never the user's correction
    if not row["present"]:
        return "gone", None
    applied = row["label_applied"]
    ours = sorted({id_to_name[i] for i in stored_ids(row["label_ids_current"]) if i in id_to_name})
    if row["shadow"]:
        # We never labeled it: only where the user filed it speaks (agreement, or a correction).
        if len(ours) != 1:
            return ("ambiguous" if ours else None), None
        return ("confirmation", applied) if ours[0] == applied else ("correction", ours[0])
    if applied in ours:
        others = [o for o in ours if o != applied]
        if len(others) > 1:
            return "ambiguous", None
        if len(others) == 1:
            effective = others[0]
        else:
            archived_by_user = not row["in_inbox"] and not row["archived"]
            return ("confirmation", applied) if row["seen"] or archived_by_user else (None, applied)
    elif not ours:
        return "rejection", None
    elif len(ours) > 1:
        return "ambiguous", None
    else:
        effective = ours[0]
    if effective == labels.fallback:
        return "rejection", effective  # filed as "other": a negative for ours, nothing to learn positively
    return "correction", effective


def _bulk(rows: list[DecisionRow], found: dict[str, tuple[str | None, str | None]],
          policy: MiningPolicy) -> set[str]:
    """Message ids whose correction or rejection is part of a bulk reorganisation. The share is of every
    message we gave the label, synced or not: emptying a folder moves all of them."""
    per_label = Counter(r["label_applied"] for r in rows)
    groups: dict[tuple[str, str | None], list[tuple[datetime, str]]] = defaultdict(list)
    for row in rows:
        kind, effective = found[row["message_id"]]
        if kind in ("correction", "rejection") and row["touched_at"]:
            groups[(row["label_applied"], effective)].append((_when(row["touched_at"]), row["message_id"]))
    bulk: set[str] = set()
    window = timedelta(seconds=policy.bulk_window_s)
    for (applied, _), moves in groups.items():
        moves.sort()
        start = 0
        for end in range(len(moves)):
            while moves[end][0] - moves[start][0] > window:
                start += 1
            size = end - start + 1
            if size >= policy.bulk_min and size >= policy.bulk_share * per_label[applied]:
                bulk.update(mid for _, mid in moves[start : end + 1])
    return bulk


def _example(row: DecisionRow, kind: str, label: str, labels: LabelSet) -> ExampleRow | None:
    if row["embedding"] is None or label not in labels:
        return None
    rejected = None
    if kind == "correction":
        applied, top = row["label_applied"], row["top_label"]
        rejected = applied if applied != labels.fallback else (top if top not in (label, labels.fallback) else None)
    return {
        "example_id": f"feedback:{row['message_id']}", "message_id": row["message_id"], "label": label,
        "kind": kind, "rejected_label": rejected,
        "source": f"silver:{row['model_version']}" if kind == "silver" else "feedback",
        "split": None, "subject": (row["subject"] or "")[:500], "embedding": row["embedding"],
        "embedding_dim": row["embedding_dim"], "encoder_version": row["encoder_version"],
        "occurred_at": row["message_date"] or row["processed_at"], "created_at": row["processed_at"],
        "embedded_text": row["embedded_text"], "document": row["document"],
    }


def mine(store: Store, labels: LabelSet, id_to_name: dict[str, str], *, policy: MiningPolicy | None = None,
         clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> MiningReport:
    """Turn every synced decision into a verdict and the examples it supports (see module doc).
    `id_to_name` maps the mailbox label ids of the configured labels to their names. Silver is capped at
    the trusted examples (imported gold, corrections, confirmations)."""
    policy = policy or MiningPolicy()
    now = clock()
    n_gold = store.example_counts().get("gold", 0)
    rows = store.feedback_rows()
    found: dict[str, tuple[str | None, str | None]] = {}
    for row in rows:
        if row["undone_at"]:
            found[row["message_id"]] = ("undone", None)
        elif row["labels_synced_at"] is None:
            found[row["message_id"]] = (None, None)
        else:
            found[row["message_id"]] = verdict(row, id_to_name, labels)
    for mid in _bulk(rows, found, policy):
        found[mid] = ("reorganised", None)
    silver_cutoff = now - timedelta(days=policy.silver_after_days)
    silver = [r for r in rows if policy.silver and found[r["message_id"]][0] is None and not r["shadow"]
              and not r["fallback"] and r["label_applied"] != labels.fallback
              and r["confidence"] is not None and r["threshold"] is not None
              and (r["margin"] or 0) >= policy.silver_margin
              and _when(r["processed_at"]) <= silver_cutoff]
    n_trusted = n_gold + sum(1 for kind, _ in found.values() if kind in TRUSTED)
    for row in sorted(silver, key=lambda r: -float(r["margin"] or 0))[:n_trusted]:  # the surest first
        found[row["message_id"]] = ("silver", row["label_applied"])

    report = MiningReport()
    stamp = now.isoformat(timespec="seconds")
    verdicts, examples, drop = [], [], []
    for row in rows:
        kind, effective = found[row["message_id"]]
        report.verdicts[kind or "none"] += 1
        if kind == "correction":
            report.latest_corrections.append({"message_id": row["message_id"], "subject": row["subject"],
                                              "applied": row["label_applied"], "effective": effective,
                                              "touched_at": row["touched_at"]})
        example = _example(row, kind, effective, labels) if kind in WITH_EXAMPLE and effective else None
        if example is not None:
            report.examples[kind] += 1  # type: ignore[index]
        if (kind, effective) == (row["feedback"], row["effective_label"]):
            continue  # mined before, unchanged: its example (if any) is stored already
        verdicts.append({"message_id": row["message_id"], "feedback": kind, "effective_label": effective,
                         "mined_at": stamp})
        if example is not None:
            examples.append(example)
        elif row["feedback"] in WITH_EXAMPLE:
            drop.append(f"feedback:{row['message_id']}")
    store.record_feedback(verdicts, examples, drop)
    report.changed = len(verdicts)
    report.latest_corrections.sort(key=lambda c: str(c["touched_at"]), reverse=True)
    return report
