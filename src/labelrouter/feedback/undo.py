"""`labelrouter undo`: take our labels off again and put archived mail back in the inbox.

The undo is recorded (`undone_at`) before the mailbox changes, so a sync never sees our own undo as the
user removing our label (mining gives such messages the verdict `undone`), and a crash half-way is
finished by running the same undo again (the mailbox change is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from labelrouter.feedback.sync import utc_now
from labelrouter.mail.mailbox import Mailbox
from labelrouter.store.base import Store


def undo(store: Store, mailbox: Mailbox, mailbox_ids: dict[str, str], *, since: str | None = None,
         message_id: str | None = None, clock: Callable[[], datetime] = utc_now) -> list[dict[str, Any]]:
    """Undo our labels on the messages chosen (processed on or after `since`, or one message); returns
    what changed per message."""
    rows = [r for r in store.rows("labeled") if not r.get("shadow")
            and (message_id is None or r["message_id"] == message_id)
            and (since is None or str(r["processed_at"]) >= since)]
    store.mark_undone([r["message_id"] for r in rows], clock().isoformat(timespec="seconds"))
    done = []
    for row in rows:
        label_id = row["intent_label_id"] or mailbox_ids.get(row["label_applied"])
        if not label_id:
            continue
        change = mailbox.remove_label(row["message_id"], str(label_id), restore_inbox=bool(row["archived"]))
        done.append({"message_id": row["message_id"], "label": row["label_applied"], "changed": change.changed,
                     "label_ids_after": change.label_ids_after})
    return done
