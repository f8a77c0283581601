"""Replay: stored messages through the current (or a named) model, old label → new label, and agreement
with where the user filed each one. Decides only: the mailbox and the store are never changed.

A stored message is replayed from its stored text (the text it was embedded from, subject first), so a
message whose text the retention setting deleted cannot be replayed and is counted as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labelrouter.models.lexical import parse_document
from labelrouter.state import EmailMessage


@dataclass(frozen=True)
class ReplayRow:
    message_id: str
    subject: str
    old_label: str | None
    new_label: str | None
    effective_label: str | None  # where the user's filing says it belongs (corrections, confirmations)
    feedback: str | None
    confidence: float | None = None
    error: str | None = None


@dataclass
class ReplayReport:
    rows: list[ReplayRow] = field(default_factory=list)
    without_text: int = 0

    @property
    def changed(self) -> int:
        return sum(1 for r in self.rows if r.error is None and r.new_label != r.old_label)

    def agreement(self, which: str) -> float | None:
        """Share of messages with a known effective label that `old` or `new` decisions got right."""
        judged = [r for r in self.rows if r.effective_label is not None and r.error is None]
        if not judged:
            return None
        return sum(getattr(r, f"{which}_label") == r.effective_label for r in judged) / len(judged)

    def summary(self) -> dict[str, Any]:
        return {"replayed": len(self.rows), "changed": self.changed, "without_text": self.without_text,
                "failed": sum(1 for r in self.rows if r.error), "with_effective_label":
                sum(1 for r in self.rows if r.effective_label is not None),
                "agreement_old": self.agreement("old"), "agreement_new": self.agreement("new")}


def stored_message(row: dict[str, Any]) -> EmailMessage | None:
    """The message as the router saw it, from its stored document (addresses, subject, capped body) or,
    for a decision stored before documents were, its embedded text; None when the text is gone."""
    if row.get("document"):
        sender, recipients, subject, body = parse_document(row["document"])
        return EmailMessage(id=str(row["message_id"]), subject=subject, sender=sender or str(row.get("sender") or ""),
                            recipients=recipients, body=body, snippet=body)
    text = row.get("embedded_text")
    if not text:
        return None
    subject = str(row.get("subject") or "")
    body = text[len(subject):].lstrip("\n") if subject and text.startswith(subject) else text
    return EmailMessage(id=str(row["message_id"]), subject=subject, sender=str(row.get("sender") or ""),
                        body=body, snippet=body)


def select(rows: list[dict[str, Any]], *, since: str | None = None, corrected_only: bool = False,
           limit: int | None = None) -> list[dict[str, Any]]:
    chosen = [r for r in rows if (since is None or str(r["processed_at"]) >= since)
              and (not corrected_only or r["feedback"] == "correction")]
    return chosen[:limit] if limit else chosen


def replay(labeler: Any, rows: list[dict[str, Any]]) -> ReplayReport:
    """Run each stored message through `labeler` (a `pipeline.Labeler` in decide mode)."""
    report = ReplayReport()
    messages, kept = [], []
    for row in rows:
        message = stored_message(row)
        if message is None:
            report.without_text += 1
            continue
        messages.append(message)
        kept.append(row)
    for row, result in zip(kept, labeler.label_many(messages), strict=True):
        effective = row["effective_label"] if row["feedback"] in ("correction", "confirmation") else None
        base = {"message_id": row["message_id"], "subject": row["subject"] or "", "old_label": row["label_applied"],
                "effective_label": effective, "feedback": row["feedback"]}
        if isinstance(result, Exception):
            report.rows.append(ReplayRow(new_label=None, error=str(result)[:200], **base))
        else:
            routing = result["routing"]
            report.rows.append(ReplayRow(new_label=routing.label, confidence=routing.confidence, **base))
    return report
