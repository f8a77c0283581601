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
