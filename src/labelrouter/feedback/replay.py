"""Replay: stored messages through the current (or a named) model, old label → new label, and agreement
with where the user filed each one. Decides only, unless asked to re-apply (`reapply`): then each changed
decision on a message the user has not touched moves our label in the mailbox and is recorded.

A stored message is replayed from its stored text (the text it was embedded from, subject first), so a
message whose text the retention setting deleted cannot be replayed and is counted as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labelrouter.errors import LabelRouterError
from labelrouter.feedback.sync import stored_ids
from labelrouter.mail.mailbox import Mailbox, filing
from labelrouter.models.document import parse_document
from labelrouter.nodes.apply import archive_decision
from labelrouter.state import ApplyResult, EmailMessage, Routing
from labelrouter.store.base import Store
from labelrouter.store.rows import DecisionRow


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
    decisions: dict[str, Routing] = field(default_factory=dict)  # message id → the new decision

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


def stored_message(row: DecisionRow) -> EmailMessage | None:
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


def select(rows: list[DecisionRow], *, since: str | None = None, corrected_only: bool = False,
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
            report.decisions[row["message_id"]] = routing
            report.rows.append(ReplayRow(new_label=routing.label, confidence=routing.confidence, **base))
    return report


@dataclass(frozen=True)
class Reapplied:
    message_id: str
    old_label: str | None
    new_label: str | None
    status: str  # moved | left (why in `detail`) | failed
    detail: str = ""


def reapply(report: ReplayReport, store: Store, mailbox: Mailbox, mailbox_ids: dict[str, str],
            archives: Callable[[str], bool]) -> list[Reapplied]:
    """Move our label to the replayed decision on each changed message nobody else has acted on.

    Left alone: a message the user has touched (moved, read, archived: in the store or, since the last sync,
    in the mailbox), one with feedback, a shadow or undone decision. The new decision is recorded as an
    intent (`Store.record_reapply`) before one atomic `move_label`, and completed after: the move is our
    own, so a later sync sees the label we left, never a user's correction. A crash between the two leaves
    an intent the next `run` repairs to whichever label the mailbox carries.
    """
    changed = [row for row in report.rows
               if row.error is None and row.old_label is not None and row.new_label not in (None, row.old_label)]
    decided = {r["message_id"]: r for r in store.rows("labeled")}  # one read of the store and of the mailbox
    refused = {row.message_id: _not_ours(decided.get(row.message_id)) for row in changed}
    states = mailbox.states([message_id for message_id, why in refused.items() if why is None])
    done = []
    for row in changed:
        base = {"message_id": row.message_id, "old_label": row.old_label, "new_label": row.new_label}
        stored = decided.get(row.message_id)
        why = refused[row.message_id]
        state = states.get(row.message_id)
        if why is None and state is None:
            why = "the message has left the mailbox"
        if why is None and filing(list(state.label_ids)) != filing(stored_ids(stored["label_ids_after"])):
            why = "you have moved or archived it since we labeled it; your filing stands"
        source_id = (stored or {}).get("intent_label_id") or mailbox_ids.get(row.old_label)
        target_id = mailbox_ids.get(row.new_label)
        if why is None and not (source_id and target_id):
            why = f"label {row.new_label if not target_id else row.old_label!r} has no mailbox label id"
        if why is not None:
            done.append(Reapplied(**base, status="left", detail=why))
            continue
        routing = report.decisions[row.message_id]
        archive, _ = archive_decision(routing, archives(row.new_label))
        try:
            if not store.record_reapply(row.message_id, routing, str(target_id)):
                done.append(Reapplied(**base, status="left", detail="changed meanwhile; left alone"))
                continue
            change = mailbox.move_label(row.message_id, str(source_id), str(target_id), archive=archive,
                                        restore_inbox=bool(stored["archived"]) and not archive)
            store.complete(row.message_id, ApplyResult(
                status="applied", label=row.new_label, archive="INBOX" not in change.label_ids_after,
                label_ids_before=change.label_ids_before, label_ids_after=change.label_ids_after,
                detail="re-applied by replay"))
        except LabelRouterError as exc:  # the intent stays: the next `run` repairs it
            store.record_failed(row.message_id, str(exc))
            done.append(Reapplied(**base, status="failed", detail=str(exc)[:200]))
            continue
        done.append(Reapplied(**base, status="moved"))
    return done


def _not_ours(stored: dict[str, Any] | None) -> str | None:
    """Why a stored decision may not be re-applied, or None when it may."""
    if stored is None or stored["status"] != "labeled":
        return "not a completed decision"
    if stored.get("shadow"):
        return "a shadow decision: the mailbox was never touched"
    if stored.get("undone_at"):
        return "undone"
    if stored.get("touched_at") or stored.get("feedback"):
        return "you have acted on it; your filing stands"
    return None
