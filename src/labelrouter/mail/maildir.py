"""A local Maildir as the embedded-default mailbox.

Layout (Maildir++, readable by mutt, Dovecot, Thunderbird's maildir store, ...):

    <root>/cur, new, tmp                 the inbox (label id INBOX)
    <root>/.<label name>/cur, new, tmp   one folder per label (label id = the folder name)

Two files of ours live in the root beside cur/new/tmp (Maildir readers ignore plain files there):
`labelrouter.lock`, the inter-process lock one labeler holds while it runs, and `labelrouter-labels.json`,
every label folder labelrouter ever created here, so a message carrying any of them counts as labeled by
us even when a run uses another labels file.

A message's stable id is its Maildir unique name: the file name before `:2,<flags>`. Flag changes rename
only the part after the colon, and we move messages between folders under the same unique name, so the
id survives both. Labeling links the file into the label's folder (like Gmail showing one message under
INBOX and a label); "archive" also removes it from the inbox, as Gmail's archive removes the INBOX label.
"""

from __future__ import annotations

import json
import mailbox as stdlib_mailbox
import os
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from labelrouter.errors import MailboxError
from labelrouter.mail.mailbox import INBOX, Fetched, MailboxChange, MessageState, planned_change
from labelrouter.util.files import private_dir, write_json_atomic

LOCK_FILE = "labelrouter.lock"
REGISTRY_FILE = "labelrouter-labels.json"
MAX_FOLDER_BYTES = 250  # a file name is at most 255 bytes on common file systems; "." prefix and margin


def folder_name(label: str) -> str:
    """Maildir++ uses '.' as the hierarchy separator; keep a label one folder."""
    name = label.replace(".", "_").replace("/", "_")
    problem = folder_name_problem(name)
    if problem:
        raise MailboxError(f"label {label!r} cannot be a Maildir folder name: {problem}")
    return name


def folder_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder on the file systems Maildirs live on, or None."""
    if not name.strip():
        return "it is empty"
    if name.upper() == INBOX or name in ("cur", "new", "tmp"):
        return "the name is reserved"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "it contains control characters"
    if len(name.encode("utf-8")) > MAX_FOLDER_BYTES:
        return f"it is {len(name.encode('utf-8'))} bytes in UTF-8, over {MAX_FOLDER_BYTES}"
    return None


def _unique_name(filename: str) -> str:
    return filename.split(":", 1)[0]


class LocalMaildir:
    def __init__(self, root: Path, *, create: bool = True):
        self.root = Path(root)
        # One lock object per mailbox object: re-entrant, so the CLI can take it before the model loads
        # and the labeler take it again (a second flock from the same process would block on itself).
        self._filelock = FileLock(str(self.root / LOCK_FILE))
        # label id → (mtimes of new/ and cur/, unique name → "new/<file>" or "cur/<file>")
        self._listing: dict[str, tuple[list[int | None], dict[str, str]]] = {}
        self._listing_lock = threading.Lock()  # our own writes edit a listing; the graph writes from threads
        self._folder_list: tuple[int, list[str]] | None = None
        if not create and not (self.root / "cur").is_dir():
            raise MailboxError(f"no Maildir at {self.root} (expected cur/, new/, tmp/)")
        try:
            if create:
                private_dir(self.root.parent)  # mail: owner-only, as Maildir's own folders (0700)
            self._box = stdlib_mailbox.Maildir(str(self.root), factory=None, create=create)
        except OSError as exc:
            raise MailboxError(f"cannot open Maildir {self.root}: {exc}") from None

    # -- reading -------------------------------------------------------------------------------
    def _dir(self, label_id: str) -> Path:
        return self.root if label_id == INBOX else self.root / f".{label_id}"

    def _folders(self) -> list[str]:
        """INBOX and the label folders, listed again only when the root's mtime says a folder came or went."""
        stamp = self.root.stat().st_mtime_ns
        if self._folder_list is None or self._folder_list[0] != stamp:
            self._folder_list = (stamp, [INBOX, *sorted(self._box.list_folders())])
        return self._folder_list[1]

    def _stamps(self, label_id: str) -> list[int | None]:
        base = self._dir(label_id)
        stamps: list[int | None] = []
        for sub in ("new", "cur"):
            try:
                stamps.append((base / sub).stat().st_mtime_ns)
            except FileNotFoundError:
                stamps.append(None)
        return stamps

    def _files(self, label_id: str) -> dict[str, str]:
        """unique name → "new/<file>" or "cur/<file>", for one folder. Cached per directory mtime: an add,
        removal or rename by a mail client changes it. Our own writes edit the cached listing when it was
        current just before them (`_edit`), so labeling a large inbox does not list it again for every
        message; a write of ours to a listing that was already stale drops it instead."""
        stamps = self._stamps(label_id)
        cached = self._listing.get(label_id)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        base = self._dir(label_id)
        found: dict[str, str] = {}
        for sub, stamp in zip(("new", "cur"), stamps, strict=True):
            if stamp is None:
                continue
            for entry in os.listdir(base / sub):
                if not entry.startswith("."):
                    found[_unique_name(entry)] = f"{sub}/{entry}"
        self._listing[label_id] = (stamps, found)
        return found

    def _edit(self, label_id: str, write: Callable[[], None], unique: str, now: str | None) -> None:
        """Make one change of ours to a folder (`write`) and keep its cached listing in step: `unique` is
        then at `now` ("cur/<file>"), or gone when `now` is None. Only a listing that matched the folder
        just before the write is edited; the folder's new mtimes are recorded with it."""
        with self._listing_lock:
            cached = self._listing.get(label_id)
            current = cached is not None and cached[0] == self._stamps(label_id)
            write()
            if not current:
                self._listing.pop(label_id, None)
                return
            assert cached is not None
            files = cached[1]
            if now is None:
                files.pop(unique, None)
            else:
                files[unique] = now
            self._listing[label_id] = (self._stamps(label_id), files)

    def _where(self, message_ids: list[str]) -> dict[str, dict[str, Path]]:
        """message id → {label id: its file there}, one look at each folder for all of them; a message in
        no folder is left out."""
        where: dict[str, dict[str, Path]] = {}
        for label_id in self._folders():
            files, base = self._files(label_id), self._dir(label_id)
            for mid in message_ids:
                relative = files.get(mid)
                if relative is not None:
                    where.setdefault(mid, {})[label_id] = base / relative
        return where

    def _locations(self, message_id: str) -> dict[str, Path]:
        return self._where([message_id]).get(message_id, {})

    def states(self, message_ids: list[str]) -> dict[str, MessageState]:
        """One listing of every folder, however many messages are asked about. A message is in every folder
        that holds a file of its unique name (moved by a mail client or by hand on disk: the same); it is
        seen or flagged when any of its files carries the S or F flag (`:2,<flags>`)."""
        wanted = set(message_ids)
        folders: dict[str, list[str]] = {}
        flags: dict[str, set[str]] = {}
        for label_id in self._folders():
            for unique, relative in list(self._files(label_id).items()):  # a snapshot: writers edit it
                if unique in wanted:
                    folders.setdefault(unique, []).append(label_id)
                    info = relative.split(":2,", 1)[1] if ":2," in relative else ""
                    flags.setdefault(unique, set()).update(info)
        return {mid: MessageState(tuple(sorted(found)), seen="S" in flags[mid], important="F" in flags[mid])
                for mid, found in folders.items()}

    def change_feed(self, cursor: str | None) -> tuple[set[str] | None, str | None]:
        return None, None  # a Maildir has no change log: syncs look at every unsynced message (one listing)

    def list_inbox(self) -> list[str]:
        base = self._dir(INBOX)

        def delivered(item: tuple[str, str]) -> tuple[float, str]:
            try:
                return (base / item[1]).stat().st_mtime, item[0]
            except FileNotFoundError:
                return 0.0, item[0]

        return [uid for uid, _ in sorted(list(self._files(INBOX).items()), key=delivered)]

    def fetch(self, message_id: str) -> bytes:
        locations = self._locations(message_id)
        if not locations:
            raise MailboxError(f"message {message_id!r} is not in {self.root}")
        return next(iter(locations.values())).read_bytes()

    def label_ids(self, message_id: str) -> list[str]:
        return sorted(self._locations(message_id))

    def fetch_many(self, message_ids: list[str]) -> dict[str, Fetched | MailboxError]:
        """One look at each folder for all of them (a message at a time checks every folder twice)."""
        where = self._where(message_ids)
        fetched: dict[str, Fetched | MailboxError] = {}
        for mid in message_ids:
            locations = where.get(mid)
            if not locations:
                fetched[mid] = MailboxError(f"message {mid!r} is not in {self.root}")
                continue
            try:
                fetched[mid] = (next(iter(locations.values())).read_bytes(), sorted(locations))
            except OSError as exc:  # moved or removed since the listing
                fetched[mid] = MailboxError(f"message {mid!r} could not be read from {self.root}: {exc}")
        return fetched

    def our_label_ids(self) -> set[str]:
        """Every label folder labelrouter created in this Maildir, under any labels file."""
        path = self.root / REGISTRY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            raise MailboxError(f"{path} is unreadable ({exc}); delete it and run again to rebuild it") from None
        folders = data.get("folders") if isinstance(data, dict) else None
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise MailboxError(f"{path}: expected {{\"folders\": [names]}}; delete it and run again to rebuild it")
        return set(folders)

    def _register(self, folders: set[str]) -> None:
        known = self.our_label_ids()
        if folders <= known:
            return
        write_json_atomic(self.root / REGISTRY_FILE, {"folders": sorted(known | folders)})

    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold this Maildir's labeler lock (released when the process ends, even by kill -9)."""
        path = self.root / LOCK_FILE
        lock = self._filelock
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            waited = f" after waiting {wait_s:g} s" if wait_s else ""
            raise MailboxError(
                f"another labelrouter run is labeling {self.root}{waited} (lock {path}); "
                "let it finish, or pass --wait SECONDS"
            ) from None
        try:
            yield
        finally:
            lock.release()

    # -- writing -------------------------------------------------------------------------------
    def deliver(self, raw: bytes) -> str:
        """Add a message to the inbox (written to tmp/ then renamed into new/, as Maildir requires)."""
        with self._listing_lock:  # our writes and the listings they change move together (`_edit`)
            self._listing.pop(INBOX, None)
            return self._box.add(raw)

    def ensure_labels(self, names: list[str], *, create: bool = True) -> dict[str, str]:
        mapping = {name: folder_name(name) for name in names}
        clashes = len(set(mapping.values())) != len(mapping)
        if clashes:
            raise MailboxError("two labels map to the same Maildir folder name; rename one of them")
        existing = set(self._box.list_folders())
        if create:
            self._register(set(mapping.values()))  # before the folders: a crash leaves no unregistered folder
            for folder in mapping.values():
                if folder not in existing:
                    self._box.add_folder(folder)
        return mapping

    def rename_label(self, old: str, new: str) -> None:
        """Rename a label folder; messages keep their unique names, so their ids survive."""
        source, target = self._dir(folder_name(old)), self._dir(folder_name(new))
        if not source.is_dir():
            return
        if target.exists():
            raise MailboxError(f"cannot rename label folder {old!r}: {new!r} exists in {self.root}")
        with self._listing_lock:
            source.rename(target)
            self._listing.clear()

    def merge_label(self, source_label: str, target_label: str) -> int:
        """Move every message of one label folder into another and remove the emptied folder."""
        source, target = self._dir(folder_name(source_label)), self._dir(folder_name(target_label))
        if not source.is_dir():
            return 0
        self.ensure_labels([target_label])
        moved = 0
        with self._listing_lock:
            for sub in ("new", "cur"):
                for entry in os.listdir(source / sub):
                    os.replace(source / sub / entry, target / sub / entry)
                    moved += 1
            shutil.rmtree(source)
            self._listing.clear()
        return moved

    def remove_label(self, message_id: str, label_id: str, *, restore_inbox: bool) -> MailboxChange:
        """Undo a label: back into the inbox first (linked, so the message is never in no folder), then out
        of the label's folder. Repeating it changes nothing."""
        locations = self._locations(message_id)
        before = sorted(locations)
        if not locations:
            return MailboxChange(False, before, before, "message is gone")
        with self._listing_lock:
            if restore_inbox and INBOX not in locations:
                source = next(iter(locations.values()))
                os.link(source, self.root / "cur" / source.name)
                self._listing.pop(INBOX, None)
            if label_id in locations and label_id != INBOX:
                locations[label_id].unlink(missing_ok=True)
                self._listing.pop(label_id, None)
        after = self.label_ids(message_id)
        return MailboxChange(after != before, before, after)

    def move_label(self, message_id: str, source_id: str, target_id: str, *, archive: bool,
                   restore_inbox: bool) -> MailboxChange:
        """The label file is renamed into the target folder (one atomic rename); the inbox link is added
        first or removed last, so the message is always in some folder."""
        locations = self._locations(message_id)
        if not locations:
            raise MailboxError(f"message {message_id!r} is not in {self.root}")
        if not self._dir(target_id).is_dir():
            raise MailboxError(f"label folder {target_id!r} does not exist in {self.root}")
        before = sorted(locations)
        source = next(iter(locations.values()))
        with self._listing_lock:
            if restore_inbox and INBOX not in locations:
                os.link(source, self.root / "cur" / source.name)
            if source_id in locations and target_id not in locations:
                os.rename(locations[source_id], self._dir(target_id) / "cur" / locations[source_id].name)
            elif target_id not in locations:
                os.link(source, self._dir(target_id) / "cur" / source.name)
            elif source_id in locations and source_id != target_id:
                locations[source_id].unlink(missing_ok=True)
            if archive and INBOX in locations:
                locations[INBOX].unlink(missing_ok=True)
            for label_id in (INBOX, source_id, target_id):
                self._listing.pop(label_id, None)
        after = self.label_ids(message_id)
        return MailboxChange(after != before, before, after)

    def apply_label(self, message_id: str, label_id: str, *, archive: bool, known_label_ids: set[str],
                    dry_run: bool = False) -> MailboxChange:
        locations = self._locations(message_id)
        if not locations:
            raise MailboxError(f"message {message_id!r} is not in {self.root}")
        before = sorted(locations)
        plan = planned_change(before, label_id, archive=archive, known_label_ids=known_label_ids, dry_run=dry_run)
        if isinstance(plan, MailboxChange):
            return plan
        if not self._dir(label_id).is_dir():
            raise MailboxError(f"label folder {label_id!r} does not exist in {self.root}")
        source = next(iter(locations.values()))
        if label_id not in locations:
            target = self._dir(label_id) / "cur" / source.name

            def link() -> None:
                try:
                    os.link(source, target)
                except OSError:  # e.g. a file system without hard links: copy through tmp/, then rename
                    staging = self._dir(label_id) / "tmp" / source.name
                    shutil.copy2(source, staging)
                    staging.replace(target)

            self._edit(label_id, link, message_id, f"cur/{source.name}")
        if archive and INBOX in locations:
            self._edit(INBOX, lambda: locations[INBOX].unlink(missing_ok=True), message_id, None)
        return MailboxChange(True, before, self.label_ids(message_id))
