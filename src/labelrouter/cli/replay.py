"""`labelrouter replay`: stored messages through the current (or a named) model; old → new label."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, friendly_errors, out, settings_for


@friendly_errors
def replay(
    since: Annotated[str | None, typer.Option("--since", help="Only messages processed on or after this date (ISO).")] = None,
    corrected_only: Annotated[bool, typer.Option("--corrected-only", help="Only messages the user corrected.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="A stored model version (default: the current one).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many messages.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per message, then the totals.")] = False,
    apply: Annotated[bool, typer.Option("--apply/--dry-run", help="Re-apply changed decisions to the mailbox "
                                        "(messages you have not touched only); default: change nothing.")] = False,
    mailbox: Annotated[Path | None, typer.Option(help="With --apply: the Maildir (default: <home>/mailbox).")] = None,
    from_checkpoint: Annotated[str | None, typer.Option(
        "--from-checkpoint", metavar="MESSAGE_ID", help="Show the checkpointed run of this message (durable runs); "
        "with --apply, finish it from its last checkpoint.")] = None,
    labels: LabelsOpt = None,
) -> None:
    """Re-decide stored messages and report old → new label and agreement with your filing. Changes nothing
    unless --apply: then our label moves to the new decision on every message you have not touched.
    With --from-checkpoint: a durable run's stored thread, shown, or finished with --apply."""
    from labelrouter.feedback.replay import reapply, select
    from labelrouter.feedback.replay import replay as run_replay
    from labelrouter.graph.labeler import Labeler

    settings = settings_for(labels)
    if from_checkpoint is not None:
        _from_checkpoint(settings, from_checkpoint, apply=apply, mailbox_path=mailbox, labels=labels)
        return
    label_set = backends.labels(settings)
    store = backends.store(settings, create=False)
    if store is None:
        out.print("nothing to replay: no message has been labeled yet")
        return
    try:
        rows = select(store.feedback_rows(), since=since, corrected_only=corrected_only, limit=limit)
        ctx = backends.context(settings, mode="decide", labels=label_set)
        if model is not None:
            head = backends.registry(settings).load(model, embedder=ctx.encoder.version, dim=ctx.encoder.dim)
            ctx = dataclasses.replace(ctx, router=ctx.router.with_head(head))
        with Labeler(ctx, settings) as labeler:
            report = run_replay(labeler, rows)
        moved = []
        if apply:
            box = backends.mailbox(settings, mailbox)
            with box.lock():
                moved = reapply(report, store, box, box.ensure_labels(label_set.names, create=False),
                                archives=lambda name: label_set.get(name).archive)
    finally:
        store.close()
    totals = {**report.summary(), **({"moved": sum(m.status == "moved" for m in moved),
                                      "left": sum(m.status == "left" for m in moved),
                                      "failed_to_move": sum(m.status == "failed" for m in moved)} if apply else {})}
    if as_json:
        outcome = {m.message_id: m for m in moved}
        for row in report.rows:
            line = dataclasses.asdict(row)
            if row.message_id in outcome:
                line["reapplied"] = {"status": outcome[row.message_id].status, "detail": outcome[row.message_id].detail}
            typer.echo(json.dumps(line, ensure_ascii=False))
        typer.echo(json.dumps({"totals": totals, "model": ctx.model_version}, ensure_ascii=False))
        return
    table = Table(title=f"replay with {ctx.model_version}")
    for column in ("subject", "was", "now", "you filed it as"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        if row.new_label != row.old_label or row.effective_label not in (None, row.old_label):
            table.add_row(row.subject or row.message_id, row.old_label or "-", row.new_label or f"failed: {row.error}",
                          row.effective_label or "")
    if table.row_count:
        out.print(table)
    agreement = "" if totals["agreement_old"] is None else (
        f"; agreement with your filing {totals['agreement_old']:.3f} → {totals['agreement_new']:.3f} "
        f"over {totals['with_effective_label']} messages")
    out.print(f"{totals['replayed']} replayed, {totals['changed']} would change{agreement}"
              + (f"; {totals['without_text']} without stored text" if totals["without_text"] else ""))
    if apply:
        out.print(f"re-applied: {totals['moved']} moved, {totals['left']} left alone (you had acted on them, or "
                  f"they were shadow or undone decisions), {totals['failed_to_move']} failed")


def _from_checkpoint(settings, message_id: str, *, apply: bool, mailbox_path: Path | None, labels) -> None:
    """Print a message's checkpointed thread (each step: the nodes that ran, what runs next; the decision
    when there is one, never the message's text); with `apply`, finish its interrupted run in apply mode."""
    from labelrouter.errors import LabelRouterError
    from labelrouter.graph.checkpoints import open_checkpointer, thread_id, thread_of
    from labelrouter.graph.labeler import Labeler

    checkpointer = open_checkpointer(settings)
    label_set = backends.labels(settings)
    if not apply:
        from labelrouter.graph.inference import build_inference_graph

        graph = build_inference_graph().compile(checkpointer=checkpointer)
        history = list(graph.get_state_history(thread_of(message_id)))
        if not history:
            raise LabelRouterError(f"no checkpointed run of message {message_id!r} (finished runs keep none; "
                                   "LABELROUTER_DURABLE_RUNS turns checkpoints on)")
        chronological = list(reversed(history))
        steps = [{"step": snap.metadata.get("step"), "ran": list(chronological[i - 1].next) if i else [],
                  "next": list(snap.next), "at": snap.created_at} for i, snap in enumerate(chronological)]
        routing = history[0].values.get("routing")
        typer.echo(json.dumps({"message_id": message_id, "thread": thread_id(message_id),
                               "next": list(history[0].next), "errors": history[0].values.get("errors") or [],
                               "routing": None if routing is None else {
                                   "label": routing.label, "confidence": routing.confidence,
                                   "model_version": routing.model_version},
                               "steps": steps}, ensure_ascii=False, default=str))
        return
    store = backends.store(settings)
    try:
        box = backends.mailbox(settings, mailbox_path)
        ctx = backends.context(settings, mode="apply", mailbox=box, store=store, labels=label_set)
        labeler = Labeler(ctx, settings, checkpointer=checkpointer)
        with box.lock():
            result = labeler.resume(message_id)
    finally:
        store.close()
    applied = result["applied"]
    out.print(f"{message_id}: {applied.status} → {applied.label}" + (f" ({applied.detail})" if applied.detail else ""))
