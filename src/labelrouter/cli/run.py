"""`labelrouter run` and `labelrouter demo`: label a Maildir exactly once, with a table or JSON lines."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, err, friendly_errors, out, settings_for
from labelrouter.settings import Settings


def label_mailbox(settings: Settings, mailbox_path: Path, dry_run: bool, limit: int | None,
                  wait_s: float = 0.0, shadow: bool = False) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labelrouter.cli.feedback import sync_line
    from labelrouter.usecases import OpenMailbox, poll

    labels = backends.labels(settings)  # a broken config fails before anything is created
    mailbox = backends.mailbox(settings, mailbox_path)
    # A second run on this mailbox is refused (or waits) before the store opens and the model loads.
    with contextlib.nullcontext() if dry_run else mailbox.lock(wait_s):
        store = backends.store(settings, create=not dry_run)  # a dry run creates no store
        try:
            if not dry_run and settings.mailbox == "maildir":
                backends.remember_mailbox(settings, mailbox_path)
            with Progress(TextColumn("[bold]labeling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err, transient=True) as progress:
                task = progress.add_task("labeling", total=None)
                return poll(
                    OpenMailbox(str(mailbox_path), settings, labels, mailbox, store), backends.labeler,
                    mode="dry-run" if dry_run else "shadow" if shadow else "apply", wait_s=wait_s, limit=limit,
                    on_synced=lambda synced, mined: err.print(sync_line(synced, mined), highlight=False),
                    on_total=lambda n: progress.update(task, total=n), progress=lambda n: progress.advance(task, n),
                ).report
        finally:
            if store is not None:
                store.close()


def report_table(report: Any, expected: dict[str, str] | None = None) -> Table:
    table = Table(show_lines=False)
    table.add_column("subject", overflow="fold", max_width=48)
    table.add_column("label")
    table.add_column("conf", justify="right")
    table.add_column("status")
    if expected is not None:
        table.add_column("expected")
    for o in report.outcomes:
        label_text = (o.label or "-") + (" (fallback)" if o.fallback else "")
        row = [o.subject or o.message_id, label_text, f"{o.confidence:.2f}" if o.confidence is not None else "-",
               o.status if not o.error else f"failed: {o.error[:60]}"]
        if expected is not None:
            want = expected.get(o.message_id, "?")
            row.append(("[green]✓[/] " if want == o.label else "[red]✗[/] ") + want)
        table.add_row(*row)
    return table


def summary_line(report: Any) -> str:
    repaired = f"{report.count('repaired')} repaired, " if report.count("repaired") else ""
    shadow = f"{report.count('shadow')} decided in shadow (mail untouched), " if report.count("shadow") else ""
    return (f"{len(report.outcomes)} processed: {report.count('applied')} labeled, {repaired}{shadow}"
            f"{report.count('unchanged')} unchanged, {report.count('dry-run')} dry-run, "
            f"{report.count('failed')} failed; {report.already_processed} already processed before")


@friendly_errors
def run(
    mailbox: Annotated[Path | None, typer.Option(help="Maildir to label (default: <home>/mailbox).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and show, change nothing.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Label at most this many messages.")] = None,
    labels: LabelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print outcomes as JSON lines.")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another run on this mailbox to finish (default: exit at once).")] = 0.0,
    shadow: Annotated[bool, typer.Option("--shadow", help="Decide and record, touch no mail: see how it does on your own filing first (labelrouter feedback).")] = False,
) -> None:
    """Label every unprocessed message of the configured mailbox (exactly once; failures are recorded).

    One run per mailbox at a time: a second one exits with a one-line message (or waits up to --wait)."""
    settings = settings_for(labels)
    report = label_mailbox(settings, mailbox or settings.resolved_mailbox_path, dry_run, limit, wait, shadow)
    if as_json:
        for o in report.outcomes:
            typer.echo(json.dumps(o.__dict__, ensure_ascii=False))
    else:
        if report.outcomes:
            out.print(report_table(report))
        out.print(summary_line(report))
    if report.count("failed"):
        raise typer.Exit(1)


@friendly_errors
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the demo mailbox and store.")] = Path(
        ".labelrouter/demo"),
    labels: LabelsOpt = None,
) -> None:
    """Create a sample mailbox (mail we wrote), label it on the embedded default and print a table."""
    from labelrouter.demo import create_sample_mailbox

    expected = create_sample_mailbox(directory / "mailbox")
    (directory / "labelrouter.sqlite3").unlink(missing_ok=True)
    settings = settings_for(labels, home=directory, models_dir=directory / "models")
    report = label_mailbox(settings, directory / "mailbox", False, None)
    out.print(report_table(report, expected))
    correct = sum(1 for o in report.outcomes if expected.get(o.message_id) == o.label)
    out.print(summary_line(report))
    out.print(f"matches the label we expected for {correct}/{len(report.outcomes)} messages "
              f"(cold start: no corrections yet). Maildir: {directory / 'mailbox'}")
