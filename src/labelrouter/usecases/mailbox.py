"""The mailbox jobs: each holds the mailbox's lock (a second run on it is refused, or waits `wait_s`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from labelrouter.feedback import sync_and_mine
from labelrouter.feedback.mining import MiningReport
from labelrouter.feedback.sync import SyncReport
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.mailbox_run import MailboxRun, RunReport
from labelrouter.labels import LabelSet
from labelrouter.mail.mailbox import Mailbox
from labelrouter.nodes.context import Mode
from labelrouter.settings import Settings
from labelrouter.store.base import Store


@dataclass
class OpenMailbox:
    """One mailbox opened for a job: its settings, label list, mailbox and store (None on a dry run)."""

    name: str
    settings: Settings
    labels: LabelSet
    mailbox: Mailbox
    store: Store | None


# Builds the labeler for a job in a mode: the CLI builds a fresh one, a worker reuses its router per mailbox.
LabelerFactory = Callable[[OpenMailbox, Mode], Labeler]


@dataclass
class Polled:
    """What a poll did: the sync and mining before labeling (None on a dry run), and the labeling run."""

    synced: SyncReport | None
    mined: MiningReport | None
    report: RunReport


def poll(opened: OpenMailbox, labeler_for: LabelerFactory, *, mode: Mode = "apply", wait_s: float = 0.0,
         limit: int | None = None, on_synced: Callable[[SyncReport, MiningReport], None] | None = None,
         on_total: Callable[[int], None] | None = None, progress: Callable[[int], None] | None = None) -> Polled:
    """Read back what the user did since the last run and mine it, then label every new inbox message.

    A dry run takes no lock and neither syncs nor records; the mailbox is left exactly as it was."""
    dry = mode == "dry-run"
    synced = mined = None
    with contextlib.nullcontext() if dry else opened.mailbox.lock(wait_s):
        if not dry:
            assert opened.store is not None, "a run that records needs a store"
            # What the user did since the last run is read back before new mail is labeled.
            synced, mined = sync_and_mine(opened.store, opened.mailbox, opened.labels)
            if on_synced is not None:
                on_synced(synced, mined)
        with labeler_for(opened, mode) as labeler:
            report = MailboxRun(labeler).run_mailbox(limit=limit, progress=progress, on_total=on_total,
                                                     wait_s=wait_s)
    return Polled(synced, mined, report)


def label_messages(opened: OpenMailbox, labeler_for: LabelerFactory, message_ids: list[str], *,
                   wait_s: float = 0.0) -> RunReport:
    """Label these messages of the mailbox (new mail a push notification named), each exactly once."""
    with labeler_for(opened, "apply") as labeler:
        return MailboxRun(labeler).run_messages(message_ids, wait_s=wait_s)


def nightly_sync(opened: OpenMailbox, *, days: float | None, wait_s: float = 0.0) -> tuple[SyncReport, MiningReport]:
    """Read back what the user did and mine it: with `days`, every message processed in that window,
    touched or not (the nightly sync); without, the messages touched since the last sync."""
    assert opened.store is not None, "a sync needs a store"
    with opened.mailbox.lock(wait_s):
        return sync_and_mine(opened.store, opened.mailbox, opened.labels, nightly_days=days)

