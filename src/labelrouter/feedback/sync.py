"""Label syncs: read each processed message's current labels and signals back from the mailbox.

Incremental (every poll, before labeling): messages never synced are looked at; only those the user
touched — labels changed from what we left, read, or deleted — get `label_ids_current` and
`labels_synced_at`; untouched ones stay unsynced and are looked at again next time. Nightly: every
message processed in the window is recorded, touched or not, with the `important` flag.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from labelrouter.mail.mailbox import Mailbox, filing
from labelrouter.store.base import Store

Clock = Callable[[], datetime]
FEED_KEY = "mailbox"  # one change-feed cursor per store (a home labels one Gmail account)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SyncReport:
    looked: int
    touched: int
    gone: int
    recorded: int
    nightly: bool


def stored_ids(value: Any) -> list[str]:
    """A stored list of label ids (JSON text, or already decoded by the backend)."""
    if not value:
        return []
    decoded = json.loads(value) if isinstance(value, str) else value
    return [str(v) for v in decoded]


def sync(store: Store, mailbox: Mailbox, *, nightly_days: float | None = None, clock: Clock = utc_now,
         batch: int = 1000) -> SyncReport:
    """Read the mailbox back for the messages a sync covers and record what it finds (see module doc)."""
    now = clock()
    since = (now - timedelta(days=nightly_days)).isoformat(timespec="seconds") if nightly_days is not None else None
    rows = store.sync_candidates(since)
    stamp = now.isoformat(timespec="seconds")
    # A mailbox with a change feed (Gmail's history) names the messages changed since the stored cursor;
    # the new cursor is taken before any read, so a change made meanwhile is in the next feed.
    changed_ids, cursor = mailbox.change_feed(store.sync_cursor(FEED_KEY))
    if changed_ids is not None and nightly_days is None:
        rows = [r for r in rows if r["message_id"] in changed_ids]
    looked = touched = gone = recorded = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        states = mailbox.states([r["message_id"] for r in chunk])
        updates = []
        for row in chunk:
            looked += 1
            state = states.get(row["message_id"])
            left = filing(stored_ids(row["label_ids_after"]))
            if state is None:
                changed = True
                gone += 1
            else:
                changed = filing(state.label_ids) != left or state.seen
            touched += changed
            if not (changed or nightly_days is not None):
                continue
            updates.append({
                "message_id": row["message_id"], "synced_at": stamp, "present": state is not None,
                "label_ids_current": list(state.label_ids) if state is not None else [],
                "seen": bool(state and state.seen), "in_inbox": bool(state and state.in_inbox),
                "important": bool(state and state.important), "touched_at": stamp if changed else None,
            })
        recorded += store.record_sync(updates)
    if cursor is not None:  # saved only once every change up to it is recorded
        store.set_sync_cursor(FEED_KEY, cursor, stamp)
    return SyncReport(looked, touched, gone, recorded, nightly_days is not None)

