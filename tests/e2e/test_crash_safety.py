"""Apply and record survive a crash at every step; one labeler per mailbox; a message never gets two labels."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.errors import MailboxError
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.mailbox_run import MailboxRun
from labelrouter.graph.wiring import build_context
from labelrouter.labels import load_label_set
from labelrouter.mail.mailbox import INBOX
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.store import SQLiteStore
from tests.conftest import LABELS_JSON

runner = CliRunner()
STEPS = ["before-intent", "after-intent", "between-link-and-archive", "after-mailbox-change", "after-complete"]


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so no handler of ours records anything."""


class CrashingStore(SQLiteStore):
    step: str | None = None
    victim: str | None = None

    def record_intent(self, state, label_id):
        if self.step == "before-intent" and state.message.id == self.victim:
            raise Crash(self.step)
        written = super().record_intent(state, label_id)
        if self.step == "after-intent" and state.message.id == self.victim:
            raise Crash(self.step)
        return written

    def complete(self, message_id, applied):
        if self.step == "after-mailbox-change" and message_id == self.victim:
            raise Crash(self.step)
        done = super().complete(message_id, applied)
        if self.step == "after-complete" and message_id == self.victim:
            raise Crash(self.step)
        return done


class CrashingMaildir(LocalMaildir):
    step: str | None = None
    victim: str | None = None

    def apply_label(self, message_id, label_id, *, archive, known_label_ids, dry_run=False):
        if self.step == "between-link-and-archive" and message_id == self.victim and archive:
            super().apply_label(message_id, label_id, archive=False, known_label_ids=known_label_ids)
            raise Crash(self.step)
        return super().apply_label(message_id, label_id, archive=archive, known_label_ids=known_label_ids,
                                   dry_run=dry_run)


def _always_archive_labels(tmp_path: Path) -> Path:
    data = json.loads(LABELS_JSON.read_text())
    for entry in data["labels"]:
        if entry.get("archive"):
            entry["archive_confidence"] = 0.0
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def assert_one_label_one_row(box: LocalMaildir, store: SQLiteStore, ids: list[str], labels) -> None:
    ours = {lab for lab in box.ensure_labels(labels.names, create=False).values()}
    for mid in ids:
        carried = [lid for lid in box.label_ids(mid) if lid in ours]
        assert len(carried) == 1, (mid, box.label_ids(mid))  # labeled once, not lost
        row = store.get(mid)
        assert row is not None and row["status"] == "labeled", (mid, row and row["status"])
        assert (INBOX not in box.label_ids(mid)) is bool(row["archived"]), mid


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_is_repaired_by_the_next_run(tmp_path, settings, encoder, step):
    from labelrouter.demo import sample_messages

    settings = settings.model_copy(update={"labels_path": _always_archive_labels(tmp_path)})
    labels = load_label_set(settings.labels_path)
    raws = [raw for expected, raw in sample_messages() if labels.get(expected).archive][:4]
    box = CrashingMaildir(tmp_path / "Mail")
    ids = [box.deliver(raw) for raw in raws]
    store = CrashingStore(tmp_path / "s.sqlite3")
    box.step = store.step = step
    box.victim = store.victim = ids[1]
    labeler = Labeler(build_context(settings, mode="apply", mailbox=box, store=store, labels=labels), settings,
                      chunk_size=1)
    with pytest.raises(Crash):
        MailboxRun(labeler).run_mailbox()
    store.close()

    # The next run, a new process in effect: fresh store connection, fresh mailbox object, no faults.
    box2, store2 = LocalMaildir(tmp_path / "Mail", create=False), SQLiteStore(tmp_path / "s.sqlite3")
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box2, store=store2, labels=labels),
                     settings)).run_mailbox()
    assert not report.count("failed")
    assert_one_label_one_row(box2, store2, ids, labels)
    if step in ("after-intent", "between-link-and-archive", "after-mailbox-change"):
        assert report.count("repaired") == 1
    again = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box2, store=store2, labels=labels),
                    settings)).run_mailbox()
    assert again.outcomes == []  # nothing left to do, nothing done twice


def test_a_failed_mailbox_change_keeps_the_intent_for_repair(tmp_path, settings, encoder):
    from labelrouter.demo import sample_messages

    class Flaky(LocalMaildir):
        broken = True

        def apply_label(self, *args, **kwargs):
            if self.broken:
                raise OSError("disk full")
            return super().apply_label(*args, **kwargs)

    box = Flaky(tmp_path / "Mail")
    mid = box.deliver(sample_messages()[0][1])
    store = SQLiteStore(tmp_path / "s.sqlite3")
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert report.outcomes[0].status == "failed" and "disk full" in report.outcomes[0].error
    assert store.get(mid)["status"] == "applying" and "disk full" in store.get(mid)["error"]
    box.broken = False
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert [o.status for o in report.outcomes] == ["repaired"]
    assert store.get(mid)["status"] == "labeled" and len([i for i in box.label_ids(mid) if i != INBOX]) == 1


def test_a_message_gone_from_the_mailbox_is_recorded_not_retried_forever(tmp_path, settings, encoder):
    from labelrouter.demo import sample_messages

    box = CrashingMaildir(tmp_path / "Mail")
    mid = box.deliver(sample_messages()[0][1])
    store = CrashingStore(tmp_path / "s.sqlite3")
    store.step, store.victim = "after-intent", mid
    with pytest.raises(Crash):
        MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    for path in (tmp_path / "Mail").rglob(f"{mid}*"):
        path.unlink()  # the user deleted it meanwhile
    store.step = None
    report = MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=store), settings)).run_mailbox()
    assert report.outcomes[0].status == "failed" and store.get(mid)["status"] == "failed"
    assert store.pending_intents() == []


def _hold_lock(root: str, ready, release) -> None:
    with LocalMaildir(Path(root), create=False).lock():
        ready.set()
        release.wait(30)


def test_a_second_run_on_the_same_mailbox_exits_with_one_line(tmp_path, monkeypatch):
    import labelrouter.models.encoder as encoders  # where every entry point gets its encoder from

    def no_model(*args, **kwargs):
        raise AssertionError("a refused run must not load the model")

    monkeypatch.setattr(encoders, "encoder_for", no_model)
    root = tmp_path / "Mail"
    box = LocalMaildir(root)
    with box.lock(), box.lock():  # re-entrant for one mailbox object (the CLI and the labeler both take it)
        pass
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(root), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(LABELS_JSON)}
        result = runner.invoke(app, ["run", "--mailbox", str(root)], env=env)
        assert result.exit_code == 2 and "Traceback" not in result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "another labelrouter run is labeling" in lines[0]
        with pytest.raises(MailboxError, match="after waiting 0.1 s"), LocalMaildir(root, create=False).lock(0.1):
            pass
    finally:
        release.set()
        holder.join(30)
    with LocalMaildir(root, create=False).lock():  # released when its holder ends
        pass


def test_a_message_labeled_under_another_labels_file_is_never_given_a_second(tmp_path, settings, encoder):
    from labelrouter.demo import sample_messages

    box = LocalMaildir(tmp_path / "Mail")
    ids = [box.deliver(raw) for _, raw in sample_messages()[:6]]
    first = SQLiteStore(tmp_path / "a.sqlite3")
    MailboxRun(Labeler(build_context(settings, mode="apply", mailbox=box, store=first), settings)).run_mailbox()
    # Another configuration: other label names, another store. The mailbox remembers which folders are ours.
    data = json.loads(LABELS_JSON.read_text())
    for entry in data["labels"]:
        if entry["name"] != data["fallback"]:
            entry["name"] = "x-" + entry["name"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data, ensure_ascii=False))
    settings_b = settings.model_copy(update={"labels_path": other, "fallback_threshold": 0.0})
    second = SQLiteStore(tmp_path / "b.sqlite3")
    report = MailboxRun(Labeler(build_context(settings_b, mode="apply", mailbox=box, store=second), settings_b)).run_mailbox()
    assert all(o.status == "unchanged" for o in report.outcomes)
    for mid in ids:
        assert len([i for i in box.label_ids(mid) if i != INBOX]) == 1


@pytest.mark.slow
def test_randomized_kill_9_then_rerun_loses_and_doubles_nothing(tmp_path, encoder):
    """Two real SIGKILLs at random instants of real `labelrouter run` processes, then a clean run."""
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_crash import one_run

    result = one_run(tmp_path, n=150, kills=2, rng=random.Random(3))
    assert result["kills"] >= 1
    assert result["final_exit"] == 0
    for key in ("unlabeled", "double_labeled", "unrecorded", "lost", "archive_mismatch"):
        assert result[key] == 0, (key, result)
