"""What the CLI and the worker fleet both do, written once so the two cannot drift apart: poll a mailbox
(sync and mine what the user did, then label its new mail), label named messages, the nightly sync, and
training. The CLI and the fleet only open mailboxes and report."""

from labelrouter.usecases.mailbox import (
    LabelerFactory,
    OpenMailbox,
    Polled,
    label_messages,
    nightly_sync,
    poll,
)
from labelrouter.usecases.train import train

__all__ = ["LabelerFactory", "OpenMailbox", "Polled", "label_messages", "nightly_sync", "poll", "train"]
