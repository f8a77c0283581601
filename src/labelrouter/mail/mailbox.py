"""The mailbox interface `apply` talks to. Implementations: a local Maildir (embedded default), Gmail."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from labelrouter.errors import MailboxError

INBOX = "INBOX"
# Gmail system labels that are signals, not filing: reading, starring or Gmail's own importance and
# category guesses do not move a message, so they never count as the user changing its labels.
SIGNAL_LABELS = frozenset({"UNREAD", "IMPORTANT", "STARRED"})


def filing(label_ids: list[str] | tuple[str, ...]) -> set[str]:
    """The label ids that say where a message is filed (INBOX and labels), without signal labels."""
    return {i for i in label_ids if i not in SIGNAL_LABELS and not i.startswith("CATEGORY_")}


Fetched = tuple[bytes, list[str]]  # a message's raw RFC 822 bytes and the label ids it carries


@dataclass(frozen=True)
class MailboxChange:
    """What `apply_label` did (or would do, in a dry run)."""

    changed: bool
    label_ids_before: list[str]
    label_ids_after: list[str]
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageState:
    """A processed message as the mailbox has it now: what label syncs read back."""

    label_ids: tuple[str, ...]  # every label id it carries, INBOX included while it is in the inbox
    seen: bool = False  # the user read it
    important: bool = False  # Gmail's IMPORTANT; on a Maildir, the flagged (F) mark

    @property
    def in_inbox(self) -> bool:
        return INBOX in self.label_ids


def planned_change(before: list[str], label_id: str, *, archive: bool, known_label_ids: set[str],
                   dry_run: bool) -> MailboxChange | list[str]:
    """The rule every mailbox applies a label by: a message already carrying another label of ours is left
    alone (never a second label), nothing to do or a dry run answers at once; otherwise the label ids the
    message should end with."""
    already = sorted(set(before) & known_label_ids)
    if already and label_id not in already:
        return MailboxChange(False, before, before, f"already labeled {already[0]!r}; left alone")
    after = set(before) | {label_id}
    if archive:
        after.discard(INBOX)
    if sorted(after) == before or dry_run:
        return MailboxChange(sorted(after) != before, before, sorted(after), "dry run" if dry_run else "")
    return sorted(after)


class Mailbox(Protocol):
    def list_inbox(self) -> list[str]:
        """Stable ids of the messages waiting in the inbox, oldest first."""

    def fetch(self, message_id: str) -> bytes:
        """The raw RFC 822 bytes of one message."""

    def label_ids(self, message_id: str) -> list[str]:
        """The mailbox label ids the message carries now (including INBOX while it is in the inbox)."""

    def fetch_many(self, message_ids: list[str]) -> dict[str, Fetched | MailboxError]:
        """Every one of these messages' raw bytes and label ids, read together (one listing, batched
        calls); a message that cannot be read is answered with its error, not left out."""

    def states(self, message_ids: list[str]) -> dict[str, MessageState]:
        """Current labels and interaction signals of these messages; an id missing from the result is gone."""

    def change_feed(self, cursor: str | None) -> tuple[set[str] | None, str | None]:
        """(ids changed since `cursor`, the cursor to store next). Ids None: look at every unsynced message
        (no feed, no cursor yet, or it expired). Cursor None: this mailbox has no change feed."""

    def ensure_labels(self, names: list[str], *, create: bool = True) -> dict[str, str]:
        """Label name → mailbox label id, creating missing labels when `create`."""

    def our_label_ids(self) -> set[str]:
        """Every label id labelrouter ever created in this mailbox (under any labels file)."""

    def lock(self, wait_s: float = 0.0) -> AbstractContextManager[None]:
        """One labeler per mailbox: hold this while labeling; raises MailboxError when another run holds it."""

    def rename_label(self, old: str, new: str) -> None:
        """Rename a label, keeping its messages."""

    def merge_label(self, source_label: str, target_label: str) -> int:
        """Move the messages of one label to another and delete the first; returns how many moved."""

    def remove_label(self, message_id: str, label_id: str, *, restore_inbox: bool) -> MailboxChange:
        """Take a label off (idempotently); with `restore_inbox`, put the message back in the inbox first."""

    def move_label(self, message_id: str, source_id: str, target_id: str, *, archive: bool,
                   restore_inbox: bool) -> MailboxChange:
        """Replace one of our labels by another in one atomic step (a re-applied decision): the message is
        never seen with both labels, nor with neither; it leaves the inbox with `archive` and comes back to
        it with `restore_inbox`. Idempotent: repeating it changes nothing."""

    def apply_label(self, message_id: str, label_id: str, *, archive: bool, known_label_ids: set[str],
                    dry_run: bool = False) -> MailboxChange:
        """Give the message exactly this label (and archive it when asked), idempotently.

        A message that already carries one of `known_label_ids` is left alone: it was labeled before
        (by us in an interrupted run, or by the user), and a second label would be a double-labeling.
        """
