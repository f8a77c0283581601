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
    labels: LabelsOpt = None,
) -> None:
    """Re-decide stored messages and report old → new label and agreement with your filing. Changes nothing
    unless --apply: then our label moves to the new decision on every message you have not touched."""
    from labelrouter.pipeline import Labeler
    from labelrouter.replay import reapply, select
    from labelrouter.replay import replay as run_replay

    settings = settings_for(labels)
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
        report = run_replay(Labeler(ctx, settings), rows)
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
