"""`labelrouter labels add|rename|merge`: change the label list with config, mailboxes, store and model together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labelrouter.cli import backends
from labelrouter.cli.common import LabelsOpt, friendly_errors, out, settings_for

labels_app = typer.Typer(
    help="Change the label list: add, rename, merge (config, mailboxes, store and model together).",
    no_args_is_help=True)
MailboxOpt = Annotated[Path | None, typer.Option(
    "--mailbox", help="Also change this Maildir (every Maildir `run` labeled with this home is changed anyway).")]


@labels_app.command("add")
@friendly_errors
def labels_add(
    name: Annotated[str, typer.Argument(help="The new label's name.")],
    parent: Annotated[str | None, typer.Option("--parent", help="Its category (a node of labels.json).")] = None,
    description: Annotated[str, typer.Option("--description", help="What mail belongs there.")] = "",
    archive: Annotated[bool, typer.Option("--archive", help="Archive messages given this label.")] = False,
    labels: LabelsOpt = None,
    mailbox: MailboxOpt = None,
) -> None:
    """Add a label: routable at once from its description; the head grows an output that does not dominate."""
    from labelrouter.feedback.label_changes import add_label

    with backends.change_targets(settings_for(labels), mailbox) as targets:
        version = add_label(targets, name, parent=parent, description=description, archive=archive)
    out.print(f"added {name!r}; current head: {version}")


@labels_app.command("rename")
@friendly_errors
def labels_rename(old: str, new: str, labels: LabelsOpt = None, mailbox: MailboxOpt = None) -> None:
    """Rename a label in the config, the mailboxes, the stored examples and decisions, and the head."""
    from labelrouter.feedback.label_changes import rename_label

    with backends.change_targets(settings_for(labels), mailbox) as targets:
        version = rename_label(targets, old, new)
    out.print(f"renamed {old!r} → {new!r} in {len(targets.mailboxes)} mailbox(es); current head: {version}")


@labels_app.command("merge")
@friendly_errors
def labels_merge(source: str, into: Annotated[str, typer.Argument(help="The label that remains.")],
                 labels: LabelsOpt = None, mailbox: MailboxOpt = None) -> None:
    """Merge SOURCE into INTO: its mail, examples and decisions become INTO's; SOURCE is removed."""
    from labelrouter.feedback.label_changes import merge_labels

    with backends.change_targets(settings_for(labels), mailbox) as targets:
        version = merge_labels(targets, source, into)
    out.print(f"merged {source!r} into {into!r} in {len(targets.mailboxes)} mailbox(es); current head: {version}")
