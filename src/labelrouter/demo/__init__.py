"""The demo: a sample Maildir we wrote, labeled end to end on the embedded default."""

from __future__ import annotations

import shutil
from pathlib import Path

from labelrouter.demo.sample_mail import SAMPLES, sample_messages
from labelrouter.mail.maildir import LocalMaildir


def create_sample_mailbox(root: Path, *, fresh: bool = True) -> dict[str, str]:
    """Write the sample messages into a Maildir inbox; returns message id → the label we expect."""
    if fresh and root.exists():
        shutil.rmtree(root)
    box = LocalMaildir(root)
    return {box.deliver(raw): expected for expected, raw in sample_messages()}


__all__ = ["SAMPLES", "create_sample_mailbox", "sample_messages"]
