"""`labelrouter sync` and `labelrouter feedback`: read the user's filing back, and what was learned from it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, friendly_errors, out, settings_for


def sync_line(synced: Any, mined: Any) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(mined.examples.items())) or "no examples"
    return (f"{'nightly ' if synced.nightly else ''}sync: {synced.looked} looked at, {synced.touched} touched by you "
            f"({synced.gone} gone); mining: {kinds}; {mined.verdicts.get('reorganised', 0)} in bulk reorganisations")


def _labeled_mailbox(labels: Path | None, mailbox: Path | None, nothing: str) -> Any:
    """The mailbox opened for a command about labeled mail; None (said why) when nothing is labeled."""
    from labelrouter.usecases import OpenMailbox

    settings = settings_for(labels)
    label_set = backends.labels(settings)
    box = backends.mailbox(settings, mailbox)
    store = backends.store(settings, create=False)
    if store is None:
        out.print(f"{nothing}: no message has been labeled yet")
        return None
    return OpenMailbox(str(mailbox or settings.mailbox), settings, label_set, box, store)


@friendly_errors
def sync(
    mailbox: Annotated[Path | None, typer.Option(help="Maildir to read back (default: <home>/mailbox).")] = None,
    nightly: Annotated[bool, typer.Option("--nightly", help="Every message processed in the window, touched or not.")] = False,
    days: Annotated[float, typer.Option("--days", min=0, help="With --nightly: the window in days.")] = 30.0,
    labels: LabelsOpt = None,
) -> None:
    """Read back what you did to labeled messages (moved, read, archived) and mine corrections from it."""
    from labelrouter.usecases import nightly_sync

    opened = _labeled_mailbox(labels, mailbox, "nothing to sync")
    if opened is None:
        return
    try:
        synced, mined = nightly_sync(opened, days=days if nightly else None)
    finally:
        opened.store.close()
    out.print(sync_line(synced, mined))


@friendly_errors
def feedback(
    latest: Annotated[int, typer.Option("--latest", min=0, help="How many recent corrections to list.")] = 10,
) -> None:
    """Counts of what mining found (corrections, confirmations, silver, …) and the latest corrections."""
    settings = settings_for()
    store = backends.store(settings, create=False)
    if store is None:
        out.print("no store yet: nothing has been labeled")
        return
    try:
        rows = store.feedback_rows()
        examples = store.example_counts()
    finally:
        store.close()
    counts = Counter(r["feedback"] or ("unsynced" if r["labels_synced_at"] is None else "no signal") for r in rows)
    out.print(f"{len(rows)} labeled messages: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    out.print("training examples: " + (", ".join(f"{n} {k}" for k, n in sorted(examples.items())) or "none"))
    shadow = [r for r in rows if r["shadow"]]
    if shadow:
        filed = [r for r in shadow if r["feedback"] in ("confirmation", "correction")]
        agreed = sum(1 for r in filed if r["feedback"] == "confirmation")
        out.print(f"shadow: {len(shadow)} decisions recorded without touching mail; you filed {len(filed)} of them"
                  + (f", agreeing with our label on {agreed} ({agreed / len(filed):.1%})" if filed else ""))
    corrections = sorted((r for r in rows if r["feedback"] == "correction"), key=lambda r: str(r["touched_at"]),
                         reverse=True)[:latest]
    if corrections:
        table = Table(title="latest corrections")
        for column in ("when", "subject", "we labeled", "you filed it as"):
            table.add_column(column)
        for r in corrections:
            table.add_row(str(r["touched_at"]), r["subject"] or r["message_id"], r["label_applied"], r["effective_label"])
        out.print(table)


@friendly_errors
def undo(
    since: Annotated[str | None, typer.Option("--since", help="Every message labeled on or after this date (ISO).")] = None,
    message: Annotated[str | None, typer.Option("--message", help="One message id.")] = None,
    mailbox: Annotated[Path | None, typer.Option(help="Maildir (default: <home>/mailbox).")] = None,
    labels: LabelsOpt = None,
) -> None:
    """Take our labels off again (archived mail goes back to the inbox); never mined as your correction."""
    from labelrouter.errors import LabelRouterError
    from labelrouter.feedback.undo import undo as run_undo

    if (since is None) == (message is None):
        raise LabelRouterError("name what to undo: --since DATE or --message ID")
    opened = _labeled_mailbox(labels, mailbox, "nothing to undo")
    if opened is None:
        return
    box, store = opened.mailbox, opened.store
    try:
        with box.lock():
            done = run_undo(store, box, box.ensure_labels(opened.labels.names, create=False), since=since,
                            message_id=message)
    finally:
        store.close()
    out.print(f"undid {sum(d['changed'] for d in done)} label(s) on {len(done)} message(s)")
