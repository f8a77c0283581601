"""Closing the loop on the local Maildir: what the user does to our labels is synced and mined."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.demo import create_sample_mailbox
from labelrouter.feedback import MiningPolicy, mine, sync, sync_and_mine
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir, folder_name
from labelrouter.settings import load_settings
from labelrouter.store import open_store
from tests.conftest import LABELS_JSON
from tests.postgres import RUN_PREFIX, URL

runner = CliRunner()
LABELS = load_label_set(LABELS_JSON)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def move(box: LocalMaildir, message_id: str, source: str, target: str) -> None:
    """What a user does with a mail client (or by hand on disk): the file goes to another label folder."""
    folder = box.root / f".{folder_name(source)}" / "cur"
    name = next(n for n in os.listdir(folder) if n.split(":")[0] == message_id)
    destination = box.root / f".{folder_name(target)}" / "cur"
    destination.mkdir(parents=True, exist_ok=True)
    os.rename(folder / name, destination / name)


def mark_read(box: LocalMaildir, message_id: str) -> None:
    for path in box.root.rglob("*"):
        if path.is_file() and path.name.split(":")[0] == message_id:
            stem = path.name.split(":2,")[0]
            path.rename(path.with_name(f"{stem}:2,S"))


def archive(box: LocalMaildir, message_id: str) -> None:
    for sub in ("cur", "new"):
        for name in os.listdir(box.root / sub):
            if name.split(":")[0] == message_id:
                os.unlink(box.root / sub / name)


@pytest.fixture(params=["sqlite", "postgres"])
def labeled(request, tmp_path, stub_encoder, monkeypatch):
    """The demo mailbox labeled by `run` (stub encoder), on SQLite or on the local PostgreSQL."""
    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABELROUTER_LABELS_PATH", str(LABELS_JSON))
    if request.param == "postgres":
        schemas = request.getfixturevalue("postgres_schemas")
        schemas.append(f"{RUN_PREFIX}_feedback_{len(schemas)}")
        monkeypatch.setenv("LABELROUTER_DATABASE_URL", URL)
        monkeypatch.setenv("LABELROUTER_DATABASE_SCHEMA", schemas[-1])
    expected = create_sample_mailbox(tmp_path / "home" / "mailbox")
    result = runner.invoke(app, ["run", "--json"])
    assert result.exit_code == 0, result.output
    store = open_store(load_settings())
    yield store, LocalMaildir(tmp_path / "home" / "mailbox", create=False), expected
    store.close()


def _applied(store) -> dict[str, str]:
    return {r["message_id"]: r["label_applied"] for r in store.rows("labeled")}


def _move_some_to_one_label(store, box, n: int) -> tuple[dict[str, str], str, list[str]]:
    """The user moves `n` of our labeled messages (none in the fallback) to one other label."""
    applied = _applied(store)
    target = next(x for x in LABELS.names if x != LABELS.fallback)
    movable = [m for m, lb in applied.items() if lb not in (LABELS.fallback, target)][:n]
    for mid in movable:
        move(box, mid, applied[mid], target)
    return applied, target, movable


def _ids_of_ours() -> dict[str, str]:
    return {folder_name(n): n for n in LABELS.names}


def test_sync_records_exactly_what_the_user_touched_and_mining_finds_each_correction(labeled):
    store, box, _ = labeled
    applied = _applied(store)
    # Messages we left in the inbox carry our label beside INBOX; pick four to correct, one to archive,
    # one to read, all distinct and none of them in the fallback label (moving out of it is tested below).
    in_inbox = [m for m, lb in applied.items() if "INBOX" in box.label_ids(m) and lb != LABELS.fallback]
    others = [n for n in LABELS.names if n != LABELS.fallback]
    moved = {}
    for mid in in_inbox[:4]:
        target = next(n for n in others if n != applied[mid])
        move(box, mid, applied[mid], target)
        moved[mid] = target
    archive(box, in_inbox[4])
    mark_read(box, in_inbox[5])
    clock = Clock()
    report = sync(store, box, clock=clock)
    assert (report.looked, report.touched, report.gone) == (len(applied), 6, 0)
    synced = {r["message_id"]: r for r in store.rows("labeled") if r["labels_synced_at"] is not None}
    assert set(synced) == {*moved, in_inbox[4], in_inbox[5]}  # untouched ones stay unsynced
    assert json.loads(synced[in_inbox[4]]["label_ids_current"]) == [folder_name(applied[in_inbox[4]])]

    mined = mine(store, LABELS, _ids_of_ours(), clock=clock)
    assert mined.verdicts["correction"] == 4 and mined.verdicts["confirmation"] == 2
    examples = {e["message_id"]: e for e in store.examples(store.rows("labeled")[0]["encoder_version"])}
    for mid, target in moved.items():
        assert (examples[mid]["kind"], examples[mid]["label"], examples[mid]["rejected_label"]) == \
            ("correction", target, applied[mid])
    assert examples[in_inbox[4]]["kind"] == examples[in_inbox[5]]["kind"] == "confirmation"
    assert len(examples) == 6
    # Mining again changes nothing; a second incremental sync looks only at the untouched ones.
    assert mine(store, LABELS, _ids_of_ours(), clock=clock).changed == 0
    assert len(store.examples(store.rows("labeled")[0]["encoder_version"])) == 6
    assert sync(store, box, clock=clock).looked == len(applied) - 6


def test_moving_back_or_out_of_the_fallback_and_adding_a_label(labeled):
    store, box, _ = labeled
    applied = _applied(store)
    clock = Clock()
    plain = [m for m, lb in applied.items() if lb != LABELS.fallback]
    fallen = [m for m, lb in applied.items() if lb == LABELS.fallback]
    target = next(n for n in LABELS.names if n not in (LABELS.fallback, applied[plain[0]]))
    move(box, plain[0], applied[plain[0]], target)
    # Added a label of ours without removing ours: the added one is the effective label.
    extra = next(n for n in LABELS.names if n not in (LABELS.fallback, applied[plain[1]]))
    folder = box.root / f".{folder_name(applied[plain[1]])}" / "cur"
    name = next(n for n in os.listdir(folder) if n.split(":")[0] == plain[1])
    os.link(folder / name, box.root / f".{folder_name(extra)}" / "cur" / name)
    # Removed ours, added nothing of ours: a rejection, no positive example.
    os.unlink(folder.parent.parent / f".{folder_name(applied[plain[2]])}" / "cur" / next(
        n for n in os.listdir(box.root / f".{folder_name(applied[plain[2]])}" / "cur") if n.split(":")[0] == plain[2]))
    if fallen:
        move(box, fallen[0], LABELS.fallback, target)
    sync_and_mine(store, box, LABELS, clock=clock)
    rows = {r["message_id"]: r for r in store.feedback_rows()}
    assert (rows[plain[0]]["feedback"], rows[plain[0]]["effective_label"]) == ("correction", target)
    assert (rows[plain[1]]["feedback"], rows[plain[1]]["effective_label"]) == ("correction", extra)
    assert rows[plain[2]]["feedback"] == "rejection"
    encoder_version = rows[plain[0]]["encoder_version"]
    assert plain[2] not in {e["message_id"] for e in store.examples(encoder_version)}
    if fallen:
        assert (rows[fallen[0]]["feedback"], rows[fallen[0]]["effective_label"]) == ("correction", target)
    # The user changes their mind: moved back, the nightly sync sees it and the correction is withdrawn.
    move(box, plain[0], target, applied[plain[0]])
    clock.advance(hours=1)
    sync_and_mine(store, box, LABELS, nightly_days=7, clock=clock)
    rows = {r["message_id"]: r for r in store.feedback_rows()}
    assert rows[plain[0]]["feedback"] != "correction"
    assert f"feedback:{plain[0]}" not in {e["example_id"] for e in store.examples(encoder_version)
                                           if e["kind"] == "correction"}


def test_a_bulk_reorganisation_is_not_a_batch_of_corrections_but_a_real_batch_is(tmp_path, stub_encoder, settings):
    """Injected clock: 30 messages of one label moved within minutes (the whole folder) is a reorganisation;
    30 corrections spread over labels, or a minority of one big label's mail, are corrections."""
    store = open_store(settings)
    clock = Clock()
    names = [n for n in LABELS.names if n != LABELS.fallback]
    rows = []
    for i in range(150):
        applied = names[0] if i < 30 else names[1] if i < 130 else names[2 + i % 5]
        rows.append((f"m{i}", applied))
    _store_decisions(store, rows, clock)
    current = {mid: [folder_name(lb), "INBOX"] for mid, lb in rows}
    # The user empties folder names[0] into names[5] (a rename): all 30 within 5 minutes.
    for i in range(30):
        current[f"m{i}"] = [folder_name(names[5]), "INBOX"]
    # ... and genuinely corrects 30 of the 100 messages of names[1] to names[6] in the same minutes.
    for i in range(30, 60):
        current[f"m{i}"] = [folder_name(names[6]), "INBOX"]
    _record_states(store, current, clock, [f"m{i}" for i in range(60)])
    mined = mine(store, LABELS, _ids_of_ours(), clock=clock, policy=MiningPolicy(bulk_min=20, bulk_share=0.8))
    verdicts = {r["message_id"]: r["feedback"] for r in store.feedback_rows()}
    assert {verdicts[f"m{i}"] for i in range(30)} == {"reorganised"}
    assert {verdicts[f"m{i}"] for i in range(30, 60)} == {"correction"}
    assert mined.examples["correction"] == 30

    # The same 30 moves of names[0] spread over days are 30 corrections, one by one.
    store2 = open_store(settings.model_copy(update={"db_path": tmp_path / "other.sqlite3"}))
    clock2 = Clock()
    _store_decisions(store2, rows[:60], clock2)
    for i in range(30):
        clock2.advance(hours=6)
        _record_states(store2, {f"m{i}": [folder_name(names[5]), "INBOX"]}, clock2, [f"m{i}"])
    mine(store2, LABELS, _ids_of_ours(), clock=clock2, policy=MiningPolicy(bulk_min=20, bulk_share=0.8))
    assert {r["feedback"] for r in store2.feedback_rows() if int(r["message_id"][1:]) < 30} == {"correction"}


def _store_decisions(store, rows: list[tuple[str, str]], clock: Clock, **rule) -> None:
    import numpy as np

    from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing

    rule = rule or {"threshold": 0.35}
    for mid, label in rows:
        routing = Routing(label=label, top_label=label, router_weights={label: 80.0}, head_weights={label: 1.0},
                          final_scores={label: 80.0}, candidates=[], confidence=0.8, margin=30.0, **rule,
                          fallback=False, reason="argmax", model_version="stub+head:cold-start",
                          encoder_version="stub", labels_hash="h")
        applied = ApplyResult(status="applied", label=label, archive=False, label_ids_before=["INBOX"],
                              label_ids_after=[folder_name(label), "INBOX"])
        state = LabelingState(message=EmailMessage(id=mid, subject=f"s {mid}", body="b"), routing=routing,
                              embedding=list(np.ones(4) / 2), embedded_text="s b", applied=applied)
        assert store.record_intent(state, folder_name(label))
        assert store.complete(mid, applied)


def _record_states(store, current: dict[str, list[str]], clock: Clock, touched: list[str]) -> None:
    stamp = clock().isoformat(timespec="seconds")
    store.record_sync([{"message_id": mid, "label_ids_current": sorted(current[mid]), "synced_at": stamp,
                        "present": True, "seen": False, "in_inbox": True, "important": False, "touched_at": stamp}
                       for mid in touched])


def test_silver_is_sure_untouched_old_decisions_capped_by_trusted_examples(tmp_path, settings):
    store = open_store(settings)
    clock = Clock()
    clock.now = datetime.now(UTC) + timedelta(days=5)  # the decisions below were made five days ago
    names = [n for n in LABELS.names if n != LABELS.fallback]
    _store_decisions(store, [(f"m{i}", names[i % 3]) for i in range(10)], clock)
    _record_states(store, {"m0": [folder_name(names[4]), "INBOX"], "m1": [folder_name(names[5]), "INBOX"]},
                   clock, ["m0", "m1"])
    assert mine(store, LABELS, _ids_of_ours(), clock=clock).examples == {"correction": 2}  # silver is opt-in
    mined = mine(store, LABELS, _ids_of_ours(), clock=clock, policy=MiningPolicy(silver=True))
    assert mined.examples == {"correction": 2, "silver": 2}  # never more silver than trusted examples
    silver = [e for e in store.examples("stub") if e["kind"] == "silver"]
    assert {e["source"] for e in silver} == {"silver:stub+head:cold-start"}  # the model that decided it
    assert not {e["message_id"] for e in silver} & {"m0", "m1"}
    early = Clock()
    early.now = datetime.now(UTC) + timedelta(days=1)  # too recent to count as untouched
    store2 = open_store(settings.model_copy(update={"db_path": tmp_path / "b.sqlite3"}))
    _store_decisions(store2, [(f"m{i}", names[i % 3]) for i in range(10)], early)
    _record_states(store2, {"m0": [folder_name(names[4]), "INBOX"]}, early, ["m0"])
    assert mine(store2, LABELS, _ids_of_ours(), clock=early, policy=MiningPolicy(silver=True)).examples == \
        {"correction": 1}


def test_a_decision_under_a_margin_rule_can_be_silver_though_its_threshold_exceeds_its_confidence(settings):
    store = open_store(settings)
    clock = Clock()
    clock.now = datetime.now(UTC) + timedelta(days=5)
    names = [n for n in LABELS.names if n != LABELS.fallback]
    # Lead of 30 points over the runner-up, the rule's threshold 20 points: not a fallback, and sure.
    _store_decisions(store, [(f"m{i}", names[i % 3]) for i in range(6)], clock, threshold=20.0, fallback_on="margin")
    _record_states(store, {"m0": [folder_name(names[4]), "INBOX"], "m1": [folder_name(names[5]), "INBOX"]},
                   clock, ["m0", "m1"])
    assert store.get("m2")["fallback_on"] == "margin" and store.get("m2")["threshold"] == 20.0
    mined = mine(store, LABELS, _ids_of_ours(), clock=clock, policy=MiningPolicy(silver=True, silver_margin=25.0))
    assert mined.examples == {"correction": 2, "silver": 2}


def test_replay_reproduces_stored_decisions_and_measures_a_model_against_the_users_filing(labeled, stub_encoder):
    import numpy as np

    from labelrouter.models.bundle import LinearHead
    from tests.conftest import registry_at

    store, box, _ = labeled
    applied, target, movable = _move_some_to_one_label(store, box, 3)
    sync_and_mine(store, box, LABELS, clock=Clock())
    same = runner.invoke(app, ["replay", "--json"])
    assert same.exit_code == 0, same.output
    *lines, totals = [json.loads(line) for line in same.stdout.splitlines()]
    assert len(lines) == len(applied) and totals["totals"]["changed"] == 0  # stored text → same decisions
    assert totals["totals"]["agreement_old"] == totals["totals"]["agreement_new"] == 0.0  # 3 judged, all wrong

    b = np.full(len(LABELS), -8.0, np.float32)
    b[LABELS.index(target)] = 8.0  # a head that files everything under `target`
    head = LinearHead(labels=LABELS.names, W=np.zeros((len(LABELS), stub_encoder.dim), np.float32), b=b,
                      version="h-target", embedder=stub_encoder.version, thresholds={"fallback": 0.0})
    registry = registry_at(load_settings().resolved_models_dir)
    registry.stage(head)
    registry.promote("h-target", embedder=stub_encoder.version, dim=stub_encoder.dim)
    registry.rollback()  # stored, not current: replay --model names it
    result = runner.invoke(app, ["replay", "--json", "--corrected-only", "--model", "h-target"])
    assert result.exit_code == 0, result.output
    *lines, totals = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["message_id"] for row in lines} == set(movable)
    assert all(row["new_label"] == target == row["effective_label"] for row in lines)
    assert totals["totals"]["agreement_new"] == 1.0 and totals["model"].endswith("+head:h-target")
    assert _applied(store) == applied  # replay changed nothing stored


def _file_everything_under(target: str, stub_encoder, version: str = "h-target") -> None:
    """Promote a head that files every message under `target`."""
    import numpy as np

    from labelrouter.models.bundle import LinearHead
    from tests.conftest import registry_at

    b = np.full(len(LABELS), -8.0, np.float32)
    b[LABELS.index(target)] = 8.0
    head = LinearHead(labels=LABELS.names, W=np.zeros((len(LABELS), stub_encoder.dim), np.float32), b=b,
                      version=version, embedder=stub_encoder.version, thresholds={"fallback": 0.0})
    registry = registry_at(load_settings().resolved_models_dir)
    registry.stage(head)
    registry.promote(version, embedder=stub_encoder.version, dim=stub_encoder.dim)


def test_replay_apply_moves_our_label_on_untouched_mail_only_and_is_never_mined_as_a_correction(labeled,
                                                                                                 stub_encoder):
    store, box, _ = labeled
    applied, target, movable = _move_some_to_one_label(store, box, 1)  # the user files one message elsewhere
    read = next(m for m, lb in applied.items() if m not in movable and lb != target)
    mark_read(box, read)  # and reads another: a confirmation of our label
    sync_and_mine(store, box, LABELS, clock=Clock())
    new_target = next(x for x in LABELS.names if x not in (LABELS.fallback, target))
    _file_everything_under(new_target, stub_encoder)

    dry = runner.invoke(app, ["replay", "--json"])
    assert dry.exit_code == 0, dry.output
    assert _applied(store) == applied  # without --apply nothing moves

    result = runner.invoke(app, ["replay", "--apply", "--json"])
    assert result.exit_code == 0, result.output
    *lines, totals = [json.loads(line) for line in result.stdout.splitlines()]
    moved = {r["message_id"] for r in lines if r.get("reapplied", {}).get("status") == "moved"}
    left = {r["message_id"]: r["reapplied"]["detail"] for r in lines if r.get("reapplied", {}).get("status") == "left"}
    untouched = {m for m, lb in applied.items() if m not in movable and m != read and lb != new_target}
    assert moved == untouched and set(left) == {*movable, read}
    assert totals["totals"]["moved"] == len(untouched)
    now = _applied(store)
    ours = {folder_name(n) for n in LABELS.names}
    for mid in applied:
        carried = set(box.label_ids(mid)) & ours
        assert len(carried) == 1, (mid, carried)  # never two of our labels, never none
        filed = target if mid in movable else now[mid]  # the user's move stands
        assert carried == {folder_name(filed)}  # elsewhere the store says what the mailbox carries
    assert {now[m] for m in moved} == {new_target}
    assert now[movable[0]] == applied[movable[0]] and now[read] == applied[read]

    synced, mined = sync_and_mine(store, box, LABELS, clock=Clock())
    assert synced.touched == 0  # our own moves are not the user touching anything
    assert mined.verdicts["correction"] == 1  # still only the user's one move
    again = runner.invoke(app, ["replay", "--apply", "--json"])
    assert json.loads(again.stdout.splitlines()[-1])["totals"]["moved"] == 0  # idempotent


@pytest.mark.parametrize("moved_first", [False, True], ids=["before-the-move", "after-the-move"])
def test_a_crash_inside_replay_apply_is_repaired_to_whichever_label_the_mailbox_carries(labeled, stub_encoder,
                                                                                       monkeypatch, moved_first):
    from labelrouter.mail.maildir import LocalMaildir as Maildir

    store, box, _ = labeled
    applied = _applied(store)
    target = next(x for x in LABELS.names if x != LABELS.fallback)
    _file_everything_under(target, stub_encoder)
    real_move = Maildir.move_label
    calls = []

    def crash_on_second(self, *args, **kwargs):  # the first move lands; the process dies around the second
        calls.append(args[0])
        if len(calls) == 2:
            if moved_first:
                real_move(self, *args, **kwargs)
            raise SystemExit("killed")
        return real_move(self, *args, **kwargs)

    monkeypatch.setattr(Maildir, "move_label", crash_on_second)
    runner.invoke(app, ["replay", "--apply"])
    monkeypatch.setattr(Maildir, "move_label", real_move)
    assert [r["message_id"] for r in store.rows("applying")] == [calls[1]]  # the intent of the one cut off
    result = runner.invoke(app, ["run", "--json"])  # the next run repairs it
    assert result.exit_code == 0, result.output
    assert not store.rows("applying")
    now = _applied(store)
    assert now[calls[0]] == target and now[calls[1]] == (target if moved_first else applied[calls[1]])
    ours = {folder_name(n) for n in LABELS.names}
    for mid in applied:
        assert set(box.label_ids(mid)) & ours == {folder_name(now[mid])}


def test_shadow_mode_touches_no_mail_and_reports_agreement_with_the_users_filing(tmp_path, stub_encoder, monkeypatch):
    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABELROUTER_LABELS_PATH", str(LABELS_JSON))
    create_sample_mailbox(tmp_path / "home" / "mailbox")
    box = LocalMaildir(tmp_path / "home" / "mailbox", create=False)
    before = {mid: box.label_ids(mid) for mid in box.list_inbox()}
    result = runner.invoke(app, ["run", "--shadow", "--json"])
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["status"] for line in result.stdout.splitlines()} == {"shadow"}
    assert {mid: box.label_ids(mid) for mid in box.list_inbox()} == before  # nothing moved
    store = open_store(load_settings())
    decided = _applied(store)
    assert set(decided) == set(before)
    # The user files three messages: two where we would have, one elsewhere.
    agree = [m for m, lb in decided.items() if lb != LABELS.fallback][:2]
    other = next(m for m in decided if m not in agree)
    elsewhere = next(n for n in LABELS.names if n not in (decided[other], LABELS.fallback))
    box.ensure_labels(LABELS.names)
    for mid, label in [(agree[0], decided[agree[0]]), (agree[1], decided[agree[1]]), (other, elsewhere)]:
        path = next(p for sub in ("new", "cur") for p in (box.root / sub).iterdir() if p.name.split(":")[0] == mid)
        os.rename(path, box.root / f".{folder_name(label)}" / "cur" / path.name)
    assert runner.invoke(app, ["sync"]).exit_code == 0
    report = runner.invoke(app, ["feedback"], env={"COLUMNS": "200"})
    assert "you filed 3 of them, agreeing with our label on 2 (66.7%)" in report.stdout
    rows = {r["message_id"]: r for r in store.feedback_rows()}
    assert rows[other]["feedback"] == "correction" and rows[other]["effective_label"] == elsewhere
    assert runner.invoke(app, ["run", "--shadow", "--json"]).stdout.strip() == ""  # decided once


def test_undo_restores_the_inbox_and_is_never_mined_as_a_correction(labeled):
    store, box, _ = labeled
    rows = {r["message_id"]: r for r in store.rows("labeled")}
    kept, archived = [m for m, r in rows.items() if r["label_applied"] != LABELS.fallback][:2]
    # The second one as if we had archived it (the stub encoder is never sure enough to archive).
    label_id = folder_name(rows[archived]["label_applied"])
    box.apply_label(archived, label_id, archive=True, known_label_ids={label_id})
    store._execute("marking archived", "UPDATE processed_messages SET archived = 1 WHERE message_id = ?", (archived,))
    assert "INBOX" not in box.label_ids(archived)
    for mid in (archived, kept):
        assert runner.invoke(app, ["undo", "--message", mid]).exit_code == 0
    assert box.label_ids(archived) == ["INBOX"] and box.label_ids(kept) == ["INBOX"]
    assert runner.invoke(app, ["undo", "--message", archived]).exit_code == 0  # again: nothing changes
    assert box.label_ids(archived) == ["INBOX"]
    assert runner.invoke(app, ["sync"]).exit_code == 0
    verdicts = {r["message_id"]: r["feedback"] for r in store.feedback_rows()}
    assert verdicts[archived] == verdicts[kept] == "undone"
    assert not {archived, kept} & {e["message_id"] for e in store.examples(rows[kept]["encoder_version"])}
    assert runner.invoke(app, ["undo"]).exit_code == 2  # what to undo must be named


class Crash(RuntimeError):
    pass


def test_a_crash_in_sync_or_mining_then_a_rerun_records_every_change_once(labeled, monkeypatch):
    """Deterministic fault hooks: the store fails on the second sync batch, then on mining's write."""
    store, box, _ = labeled
    _, _, movable = _move_some_to_one_label(store, box, 6)
    real_record = store.record_sync
    calls = []

    def failing_record(updates):
        calls.append(len(updates))
        if len(calls) == 2:
            raise Crash("killed during the second sync batch")
        return real_record(updates)

    monkeypatch.setattr(store, "record_sync", failing_record)
    with pytest.raises(Crash):
        sync(store, box, clock=Clock(), batch=10)
    monkeypatch.setattr(store, "record_sync", real_record)
    real_feedback = store.record_feedback
    monkeypatch.setattr(store, "record_feedback", lambda *a, **k: (_ for _ in ()).throw(Crash("killed in mining")))
    with pytest.raises(Crash):
        sync_and_mine(store, box, LABELS, clock=Clock())
    monkeypatch.setattr(store, "record_feedback", real_feedback)
    assert not [e for e in store.examples(store.rows("labeled")[0]["encoder_version"]) if e["kind"] == "correction"]
    synced, mined = sync_and_mine(store, box, LABELS, clock=Clock())  # the re-run
    corrections = [e for e in store.examples(store.rows("labeled")[0]["encoder_version"]) if e["kind"] == "correction"]
    assert sorted(e["message_id"] for e in corrections) == sorted(movable)  # each once, none lost
    assert mine(store, LABELS, _ids_of_ours(), clock=Clock()).changed == 0


def test_a_promotion_killed_before_the_pointer_moved_leaves_the_old_model_and_retries_cleanly(tmp_path):
    import numpy as np

    from labelrouter.artifacts import LocalArtifacts
    from labelrouter.errors import ModelArtifactError
    from labelrouter.models.bundle import LinearHead
    from labelrouter.models.registry import ModelRegistry

    class DyingArtifacts(LocalArtifacts):
        die_on = "history.json"

        def write(self, key, data):
            if key == self.die_on:
                raise Crash(f"killed before writing {key}")
            super().write(key, data)

    def head(version):
        return LinearHead(labels=["a", "b"], W=np.zeros((2, 4), np.float32), b=np.zeros(2, np.float32),
                          version=version, embedder="enc@1")

    registry = ModelRegistry(LocalArtifacts(tmp_path))
    registry.stage(head("v1"))
    registry.promote("v1", embedder="enc@1", dim=4)
    dying = ModelRegistry(DyingArtifacts(tmp_path))
    dying.stage(head("v2"))
    with pytest.raises(Crash):
        dying.promote("v2", embedder="enc@1", dim=4)
    assert registry.current_version() == "v1" and registry.history() == ["v1"]  # no half-written model current
    registry.promote("v2", embedder="enc@1", dim=4)  # the re-run replaces the leftover copy
    assert registry.current_version() == "v2" and registry.history() == ["v1", "v2"]
    # A rolled-back version is kept for `models promote`: a different candidate of that name never replaces it.
    registry.rollback()
    other = head("v2")
    other.b[0] = 1.0
    registry.stage(other)
    with pytest.raises(ModelArtifactError, match="already exists"):
        registry.promote("v2", embedder="enc@1", dim=4)
    registry.repromote("v2")
    assert registry.current_head(embedder="enc@1", dim=4).b[0] == 0.0
