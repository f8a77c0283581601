"""Sync, then mine: what `labelrouter sync`, `run` (before it labels) and a nightly job call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from labelrouter.feedback.mining import MiningPolicy, MiningReport, mine
from labelrouter.feedback.sync import SyncReport, sync, utc_now
from labelrouter.labels import LabelSet
from labelrouter.mail.mailbox import Mailbox
from labelrouter.store.base import Store


def sync_and_mine(store: Store, mailbox: Mailbox, labels: LabelSet, *, nightly_days: float | None = None,
                  policy: MiningPolicy | None = None,
                  clock: Callable[[], datetime] = utc_now) -> tuple[SyncReport, MiningReport]:
    synced = sync(store, mailbox, nightly_days=nightly_days, clock=clock)
    name_to_id = mailbox.ensure_labels(labels.names, create=False)
    mined = mine(store, labels, {label_id: name for name, label_id in name_to_id.items()}, policy=policy,
                 clock=clock)
    return synced, mined
