"""Node `apply`: give the message its one label (archive per config), idempotently; persist the decision."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from labelrouter.errors import MailboxError
from labelrouter.graph.context import LabelerContext, resolve_context
from labelrouter.state import ApplyResult, LabelingState


def apply(state: LabelingState, runtime: Runtime[LabelerContext]) -> dict[str, Any]:
    ctx = resolve_context(runtime)
    routing = state.routing
    if routing is None:
        raise MailboxError("apply reached without a routing decision")
    archive = ctx.labels.get(routing.label).archive
    if ctx.mode == "decide" or ctx.mailbox is None:
        return {"applied": ApplyResult(status="skipped", label=routing.label, archive=archive,
                                       label_ids_before=state.message.label_ids,
                                       detail="decide-only: no mailbox touched")}
    label_id = ctx.mailbox_ids.get(routing.label)
    if label_id is None:
        raise MailboxError(f"label {routing.label!r} has no mailbox label id")
    change = ctx.mailbox.apply_label(
        state.message.id, label_id, archive=archive, known_label_ids=set(ctx.mailbox_ids.values()),
        dry_run=ctx.mode == "dry-run",
    )
    # When the mailbox already carried one of our labels, that label is what stands; record it, not ours.
    by_id = {v: k for k, v in ctx.mailbox_ids.items()}
    carried = [by_id[i] for i in change.label_ids_after if i in by_id]
    label = routing.label if routing.label in carried or not carried else carried[0]
    status = "dry-run" if ctx.mode == "dry-run" else ("applied" if change.changed else "unchanged")
    result = ApplyResult(status=status, label=label, archive=archive, label_ids_before=change.label_ids_before,
                         label_ids_after=change.label_ids_after, detail=change.detail)
    if ctx.mode == "apply" and ctx.store is not None:
        ctx.store.record_labeled(state.model_copy(update={"applied": result}))
    return {"applied": result}
