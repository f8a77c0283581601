"""Node `apply`: give the message its one label (archive only when sure), idempotently; persist the decision.

Crash safety: in apply mode the decision is recorded as an intent ('applying', with the mailbox label id)
before the mailbox changes and completed ('labeled') after. A crash at any instant leaves either nothing
(the message is still unprocessed in the inbox), or an intent the next run repairs with `finish_apply`:
the mailbox change is idempotent, so repeating it gives one label and one row, archived or not.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from labelrouter.errors import MailboxError
from labelrouter.nodes.context import LabelerContext, context_of
from labelrouter.state import ApplyResult, LabelingState, Routing


def archive_decision(routing: Routing, label_archives: bool) -> tuple[bool, str]:
    """Archive only a label whose config archives, and only at or above its archive confidence: a wrong
    archive hides mail, a wrong label only mislabels it."""
    if not label_archives:
        return False, ""
    if routing.fallback:
        return False, "fallback decisions are never archived"
    threshold = routing.archive_threshold
    if threshold is None or routing.confidence < threshold:
        return False, f"kept in the inbox: confidence {routing.confidence:.3f} below archive threshold {threshold}"
    return True, ""


def finish_apply(ctx: LabelerContext, message_id: str, label: str, label_id: str, archive: bool, *,
                 status: str = "applied", detail: str = "") -> ApplyResult:
    """Change the mailbox (idempotently) and complete the stored intent. Shared by `apply` and the repair
    of interrupted runs. When the message already carried one of our labels, that label is what stands."""
    assert ctx.mailbox is not None
    change = ctx.mailbox.apply_label(message_id, label_id, archive=archive, known_label_ids=ctx.known_label_ids)
    by_id = {v: k for k, v in ctx.mailbox_ids.items()}
    carried = [by_id.get(i, i) for i in change.label_ids_after if i in ctx.known_label_ids]
    standing = label if label in carried or not carried else carried[0]
    result = ApplyResult(
        status=status if change.changed or status == "repaired" else "unchanged", label=standing,
        archive=archive and "INBOX" not in change.label_ids_after, label_ids_before=change.label_ids_before,
        label_ids_after=change.label_ids_after, detail="; ".join(d for d in (detail, change.detail) if d),
    )
    if ctx.store is not None:
        ctx.store.complete(message_id, result)
    return result


def apply(state: LabelingState, runtime: Runtime[LabelerContext]) -> dict[str, Any]:
    ctx = context_of(runtime)
    routing = state.routing
    if routing is None:
        raise MailboxError("apply reached without a routing decision")
    archive, why_not = archive_decision(routing, ctx.labels.get(routing.label).archive)
    if ctx.mode == "decide" or ctx.mailbox is None:
        return {"applied": ApplyResult(status="skipped", label=routing.label, archive=archive,
                                       label_ids_before=state.message.label_ids,
                                       detail="; ".join(d for d in ("decide-only: no mailbox touched", why_not) if d))}
    label_id = ctx.mailbox_ids.get(routing.label)
    if label_id is None:
        raise MailboxError(f"label {routing.label!r} has no mailbox label id")
    if ctx.mode == "dry-run":
        change = ctx.mailbox.apply_label(state.message.id, label_id, archive=archive,
                                         known_label_ids=ctx.known_label_ids, dry_run=True)
        return {"applied": ApplyResult(status="dry-run", label=routing.label, archive=archive,
                                       label_ids_before=change.label_ids_before,
                                       label_ids_after=change.label_ids_after,
                                       detail="; ".join(d for d in (change.detail, why_not) if d))}
    if ctx.mode == "shadow":
        shadow = ApplyResult(status="shadow", label=routing.label, archive=False,
                             label_ids_before=state.message.label_ids, label_ids_after=state.message.label_ids,
                             detail="shadow: recorded, mailbox untouched")
        if ctx.store is not None and not ctx.store.record_labeled(state.model_copy(update={"applied": shadow})):
            return {"applied": shadow.model_copy(update={"status": "unchanged",
                                                         "detail": "already recorded; left alone"})}
        return {"applied": shadow}
    if ctx.store is not None:
        planned = ApplyResult(status="applied", label=routing.label, archive=archive,
                              label_ids_before=state.message.label_ids, detail=why_not)
        if not ctx.store.record_intent(state.model_copy(update={"applied": planned}), label_id):
            # Another run recorded this message first: it owns the mailbox change.
            return {"applied": ApplyResult(status="unchanged", label=routing.label, archive=False,
                                           label_ids_before=state.message.label_ids,
                                           detail="already recorded by another run; left alone")}
    result = finish_apply(ctx, state.message.id, routing.label, label_id, archive, detail=why_not)
    return {"applied": result}
