"""The local Maildir: stable ids, exactly one label, archive, idempotence, dry run."""

import os
from pathlib import Path

import pytest

from labelrouter.errors import MailboxError
from labelrouter.mail.maildir import LocalMaildir
from tests.helpers import eml

LABELS = ["work", "news"]


@pytest.fixture
def box(tmp_path: Path) -> LocalMaildir:
    mb = LocalMaildir(tmp_path / "Mail")
    mb.ensure_labels(LABELS)
    return mb


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_apply_without_archive_keeps_inbox_and_adds_label(box: LocalMaildir):
    mid = box.deliver(eml("s", "b"))
    change = box.apply_label(mid, "work", archive=False, known_label_ids=set(LABELS))
    assert change.changed and change.label_ids_before == ["INBOX"]
    assert box.label_ids(mid) == ["INBOX", "work"]
    assert box.fetch(mid) == eml("s", "b")


def test_archive_removes_from_inbox_and_second_run_changes_nothing(box: LocalMaildir, tmp_path: Path):
    mid = box.deliver(eml("s", "b"))
    box.apply_label(mid, "news", archive=True, known_label_ids=set(LABELS))
    assert box.label_ids(mid) == ["news"]
    assert mid not in box.list_inbox()
    before = _tree(tmp_path / "Mail")
    again = box.apply_label(mid, "news", archive=True, known_label_ids=set(LABELS))
    assert not again.changed and _tree(tmp_path / "Mail") == before


def test_never_a_second_label(box: LocalMaildir):
    mid = box.deliver(eml("s", "b"))
    box.apply_label(mid, "work", archive=False, known_label_ids=set(LABELS))
    change = box.apply_label(mid, "news", archive=True, known_label_ids=set(LABELS))
    assert not change.changed and "already labeled 'work'" in change.detail
    assert box.label_ids(mid) == ["INBOX", "work"]


def test_dry_run_reports_but_changes_nothing(box: LocalMaildir, tmp_path: Path):
    mid = box.deliver(eml("s", "b"))
    before = _tree(tmp_path / "Mail")
    change = box.apply_label(mid, "news", archive=True, known_label_ids=set(LABELS), dry_run=True)
    assert change.changed and change.label_ids_after == ["news"]
    assert _tree(tmp_path / "Mail") == before


def test_id_survives_flag_changes_and_moves(box: LocalMaildir, tmp_path: Path):
    mid = box.deliver(eml("s", "b"))
    new = tmp_path / "Mail" / "new" / mid
    os.rename(new, tmp_path / "Mail" / "cur" / f"{mid}:2,S")  # a mail client marks it read
    assert box.list_inbox() == [mid]
    box.apply_label(mid, "news", archive=True, known_label_ids=set(LABELS))
    moved = tmp_path / "Mail" / ".news" / "cur" / f"{mid}:2,S"
    os.rename(moved, tmp_path / "Mail" / ".work" / "cur" / f"{mid}:2,RS")  # the user moves and replies
    assert box.label_ids(mid) == ["work"]
    assert box.fetch(mid) == eml("s", "b")


def test_errors_are_mailbox_errors(box: LocalMaildir, tmp_path: Path):
    with pytest.raises(MailboxError, match="not in"):
        box.fetch("nope")
    with pytest.raises(MailboxError, match="no Maildir"):
        LocalMaildir(tmp_path / "missing", create=False)
    mid = box.deliver(eml("s", "b"))
    with pytest.raises(MailboxError, match="does not exist"):
        box.apply_label(mid, "unknown", archive=False, known_label_ids=set(LABELS))


def test_labeling_a_large_inbox_does_not_list_it_again_for_every_message(box: LocalMaildir, monkeypatch):
    ids = [box.deliver(eml(f"s{i}", "b")) for i in range(200)]
    assert len(box.list_inbox()) == 200
    listed: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(str(path)) or listdir(path))
    for i, mid in enumerate(ids):
        box.fetch(mid)
        box.apply_label(mid, LABELS[i % 2], archive=True, known_label_ids=set(LABELS))
    assert len(listed) <= 10  # our own writes edit the cached listings instead of dropping them
    assert box.list_inbox() == [] and len(box.states(ids)) == 200
    # A change by someone else is still seen: a mail client moves a message back to the inbox.
    path = next((box.root / ".news" / "cur").iterdir())
    os.rename(path, box.root / "cur" / path.name)
    assert box.label_ids(path.name.split(":")[0]) == ["INBOX"]


def test_threads_labeling_at_once_leave_the_cached_view_exact(box: LocalMaildir):
    import threading

    ids = [box.deliver(eml(f"s{i}", "b")) for i in range(120)]
    box.list_inbox()
    chunks = [ids[k::6] for k in range(6)]

    def label(chunk):
        for i, mid in enumerate(chunk):
            box.apply_label(mid, LABELS[i % 2], archive=i % 3 != 0, known_label_ids=set(LABELS))

    threads = [threading.Thread(target=label, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    fresh = LocalMaildir(box.root)
    kept = [c[i] for c in chunks for i in range(len(c)) if i % 3 == 0]
    assert box.list_inbox() == fresh.list_inbox() and sorted(fresh.list_inbox()) == sorted(kept)
    assert box.states(ids) == fresh.states(ids)


def test_fetch_many_reads_each_message_with_its_labels_and_answers_for_a_missing_one(box: LocalMaildir):
    first, second = box.deliver(eml("a", "one")), box.deliver(eml("b", "two"))
    box.apply_label(second, "work", archive=True, known_label_ids=set(LABELS))
    fetched = box.fetch_many([first, second, "gone"])
    assert fetched[first] == (eml("a", "one"), ["INBOX"]) and fetched[second] == (eml("b", "two"), ["work"])
    assert isinstance(fetched["gone"], MailboxError) and "not in" in str(fetched["gone"])
