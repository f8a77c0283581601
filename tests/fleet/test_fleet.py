"""The worker fleet (Celery on the local Redis): two real worker processes label N messages across M
Maildirs exactly once; a worker killed with SIGKILL mid-task has its task redelivered and the message
still ends with one label and one row; beat schedules polls; idempotency keys, leases and the shared
Gmail quota; the fleet file's checks. Fast lane: the workers use the stub encoder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelrouter.demo import create_sample_mailbox
from labelrouter.errors import ConfigError
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.settings import load_settings
from labelrouter.store import SQLiteStore
from tests.conftest import LABELS_JSON
from tests.e2e.test_crash_safety import assert_one_label_one_row
from tests.redis_server import URL, drop_namespace, ensure_redis, namespace

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def redis_ns():
    problem = ensure_redis()
    if problem is not None:
        pytest.skip(f"FLEET TESTS NOT RUN: {problem}")
    ns = namespace()
    yield ns
    drop_namespace(ns)


def _fleet(tmp_path: Path, names: list[str]) -> tuple[Path, dict[str, dict[str, str]]]:
    """M mailboxes, each a Maildir of the sample mail with its own home; the fleet file naming them."""
    boxes = {}
    for name in names:
        expected = create_sample_mailbox(tmp_path / name / "Mail")
        boxes[name] = expected
    entries = {name: {"home": str(tmp_path / name / "home"), "mailbox_path": str(tmp_path / name / "Mail"),
                      "labels_path": str(LABELS_JSON), "mailbox_ids_path": str(tmp_path / name / "ids.json")}
               for name in names}
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"mailboxes": entries}), encoding="utf-8")
    return path, boxes


def _env(ns: str, fleet_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LABELROUTER_BROKER_URL": URL, "LABELROUTER_FLEET_NAMESPACE": ns,
            "LABELROUTER_FLEET_PATH": str(fleet_path), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


class Worker:
    def __init__(self, tmp_path: Path, env: dict[str, str], name: str):
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fleet_worker", "--hostname", f"{name}@test", "--loglevel", "INFO"],
            cwd=tmp_path, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def _app(ns: str, fleet_path: Path, **overrides):
    from labelrouter.fleet.app import create_app

    settings = load_settings(broker_url=URL, fleet_namespace=ns, fleet_path=fleet_path, **overrides)
    return settings, create_app(settings)


def _stores(tmp_path: Path, names: list[str]) -> dict[str, SQLiteStore]:
    return {name: SQLiteStore(tmp_path / name / "home" / "labelrouter.sqlite3") for name in names}


def test_two_workers_label_every_message_of_every_mailbox_exactly_once(tmp_path, redis_ns):
    names = ["alpha", "beta", "gamma"]
    fleet_path, boxes = _fleet(tmp_path, names)
    env = _env(redis_ns, fleet_path, LABELROUTER_FLEET_LEASE_S="10")
    workers = [Worker(tmp_path, env, "w1"), Worker(tmp_path, env, "w2")]
    try:
        for w in workers:
            w.wait_ready()
        from labelrouter.fleet.app import LABEL, POLL

        _, app = _app(redis_ns, fleet_path)
        # Every message named in a label task of its own, and every mailbox polled twice in between:
        # three deliveries of each message's work, racing on two workers.
        singles = [(name, mid) for mid_list in zip(*(sorted(boxes[n]) for n in names), strict=True)
                   for name, mid in zip(names, mid_list, strict=True)]
        half = len(singles) // 2
        sent = [app.send_task(LABEL, args=[name, [mid]]) for name, mid in singles[:half]]
        sent += [app.send_task(POLL, args=[name]) for name in names for _ in range(2)]
        sent += [app.send_task(LABEL, args=[name, [mid]]) for name, mid in singles[half:]]
        results = [r.get(timeout=180) for r in sent]
    finally:
        for w in workers:
            w.stop()
    logs = "".join(w.log_path.read_text(errors="replace") for w in workers)
    assert "Traceback" not in logs, logs[-4000:]
    applied: dict[str, list[str]] = {}
    for result in results:
        if "skipped" in result:
            continue
        for mid in result["message_ids"]:
            applied.setdefault(f"{result['mailbox']}/{mid}", []).append(result["worker"])
    n = sum(len(b) for b in boxes.values())
    assert len(applied) == n and all(len(by) == 1 for by in applied.values())  # each message labeled by one task
    assert {r["worker"] for r in results if "worker" in r} == {"w1@test", "w2@test"}  # both workers took work
    labels = load_label_set(LABELS_JSON)
    for name, store in _stores(tmp_path, names).items():
        box = LocalMaildir(tmp_path / name / "Mail", create=False)
        assert_one_label_one_row(box, store, list(boxes[name]), labels)
        assert store.counts().get("labeled") == len(boxes[name])
        store.close()


def test_a_worker_killed_mid_task_has_its_task_redelivered_and_the_message_labeled_once(tmp_path, redis_ns):
    fleet_path, boxes = _fleet(tmp_path, ["solo"])
    victim = sorted(boxes["solo"])[3]
    marker = tmp_path / "hung"
    env = _env(redis_ns, fleet_path, LABELROUTER_FLEET_LEASE_S="2", LABELROUTER_FLEET_VISIBILITY_TIMEOUT_S="3")
    doomed = Worker(tmp_path, {**env, "LR_TEST_HANG_AFTER_LABEL": victim, "LR_TEST_MARKER": str(marker)}, "doomed")
    rescuer = None
    try:
        doomed.wait_ready()
        from labelrouter.fleet.app import POLL

        _, app = _app(redis_ns, fleet_path, fleet_lease_s=2, fleet_visibility_timeout_s=3)
        task = app.send_task(POLL, args=["solo"])
        deadline = time.monotonic() + 90
        while not marker.exists():  # the victim is in the mailbox, the store still says 'applying'
            assert time.monotonic() < deadline, doomed.log_path.read_text()[-3000:]
            time.sleep(0.1)
        doomed.kill()
        store = SQLiteStore(tmp_path / "solo" / "home" / "labelrouter.sqlite3")
        assert store.get(victim)["status"] == "applying"
        store.close()
        rescuer = Worker(tmp_path, env, "rescuer")
        result = task.get(timeout=120)  # the same task, redelivered to the rescuer
    finally:
        doomed.stop()
        if rescuer is not None:
            rescuer.stop()
    assert result["worker"] == "rescuer@test", result
    # Every decision the killed worker left half-applied (the victim, and whatever its other threads had
    # under way) is finished by the redelivered task, not applied again.
    assert result["repaired"] >= 1 and victim in result["message_ids"], result
    store = SQLiteStore(tmp_path / "solo" / "home" / "labelrouter.sqlite3")
    box = LocalMaildir(tmp_path / "solo" / "Mail", create=False)
    assert_one_label_one_row(box, store, list(boxes["solo"]), load_label_set(LABELS_JSON))
    assert store.counts().get("labeled") == len(boxes["solo"])
    store.close()


def test_beat_schedules_a_poll_of_every_mailbox(tmp_path, redis_ns):
    import redis

    fleet_path, _ = _fleet(tmp_path, ["one", "two"])
    env = _env(redis_ns, fleet_path, LABELROUTER_FLEET_POLL_EVERY_S="1")
    log_path = tmp_path / "beat.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "labelrouter", "beat"],
                                   cwd=tmp_path, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client, queue = redis.StrictRedis.from_url(URL), f"{redis_ns}:{redis_ns}"
        try:
            deadline = time.monotonic() + 60
            while client.llen(queue) < 4:
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(20)
    sent = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    polled = {(m["headers"]["task"], json.loads(m["body"] if m["body"].startswith("[") else _b64(m["body"]))[0][0])
              for m in sent}
    assert polled == {("labelrouter.poll", "one"), ("labelrouter.poll", "two")}


def _b64(body: str) -> str:
    import base64

    return base64.b64decode(body).decode()


def test_a_task_delivered_again_after_it_finished_answers_from_its_idempotency_key(tmp_path, redis_ns, stub_encoder):
    from labelrouter.fleet.app import LABEL, create_app
    from labelrouter.fleet.tasks import FleetRuntime

    fleet_path, boxes = _fleet(tmp_path, ["solo"])
    settings = load_settings(broker_url=URL, fleet_namespace=redis_ns, fleet_path=fleet_path)
    runtime = FleetRuntime(settings, encoder=stub_encoder)
    app = create_app(settings, runtime=lambda: runtime)
    mid = sorted(boxes["solo"])[0]
    first = app.tasks[LABEL].apply(args=["solo", [mid]]).get()
    again = app.tasks[LABEL].apply(args=["solo", [mid]]).get()  # a redelivery: same job, same key
    assert first["applied"] == 1 and first["message_ids"] == [mid] and "duplicate" not in first
    assert again["duplicate"] is True and again["message_ids"] == [mid]
    # Without the key (expired, or another task naming it) the store still refuses a second label.
    runtime.coordination.redis.delete(*runtime.coordination.redis.keys(f"{redis_ns}:done:*"))
    third = app.tasks[LABEL].apply(args=["solo", [mid]]).get()
    assert third["applied"] == 0 and third["already_processed"] == 1
    store = SQLiteStore(tmp_path / "solo" / "home" / "labelrouter.sqlite3")
    assert_one_label_one_row(LocalMaildir(tmp_path / "solo" / "Mail", create=False), store, [mid],
                             load_label_set(LABELS_JSON))
    store.close()


def test_a_mailbox_lease_is_held_by_one_worker_at_a_time(redis_ns):
    from labelrouter.fleet.coordination import Coordination

    one, two = Coordination(URL, redis_ns, lease_s=30), Coordination(URL, redis_ns, lease_s=30)
    with one.lease("mailbox:a") as held:
        assert held and two.holder("mailbox:a")
        with two.lease("mailbox:a") as also:
            assert not also
        with two.lease("mailbox:b") as other:
            assert other
    with two.lease("mailbox:a") as now:
        assert now


def test_the_gmail_quota_is_shared_by_every_worker_of_the_fleet(redis_ns):
    from labelrouter.fleet.coordination import Coordination

    waits: list[float] = []

    class Waited(Exception):
        pass

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Waited

    one, two = Coordination(URL, redis_ns), Coordination(URL, redis_ns)
    first, second = one.quota("alice", 20, sleep=sleep), two.quota("alice", 20, sleep=sleep)
    first.take(15)
    second.take(5)  # the same user's minute: 20 units in all
    with pytest.raises(Waited):
        second.take(5)
    assert 0 < waits[0] <= 60
    two.quota("bob", 20, sleep=sleep).take(20)  # another user has a budget of their own
    assert len(waits) == 1


def test_the_fleet_file_is_checked_before_any_worker_runs(tmp_path):
    from labelrouter.fleet.config import load_fleet

    path = tmp_path / "fleet.json"
    with pytest.raises(ConfigError, match="no fleet file"):
        load_fleet(path)
    cases = {
        "not json": "{",
        "no mailboxes": json.dumps({"mailboxes": {}}),
        "bad name": json.dumps({"mailboxes": {"Bad Name": {"home": "h"}}}),
        "unknown setting": json.dumps({"mailboxes": {"a": {"home": "h", "mailbox_pth": "x"}}}),
        "a secret": json.dumps({"mailboxes": {"a": {"home": "h", "google_api_key": "k"}}}),
        "the broker": json.dumps({"mailboxes": {"a": {"home": "h", "broker_url": "redis://x"}}}),
        "no home": json.dumps({"mailboxes": {"a": {"mailbox_path": "m"}}}),
        "shared Maildir": json.dumps({"mailboxes": {"a": {"home": "h1", "mailbox_path": "m"},
                                                    "b": {"home": "h2", "mailbox_path": "m"}}}),
        "shared store": json.dumps({"mailboxes": {"a": {"home": "h1", "database_url": "postgresql://u@h/d"},
                                                  "b": {"home": "h2", "database_url": "postgresql://u@h/d"}}}),
        "bad value": json.dumps({"mailboxes": {"a": {"home": "h", "top_k": 0}}}),
    }
    for case, text in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_fleet(path)
        assert str(path) in str(caught.value), case
    path.write_text(json.dumps({"mailboxes": {"a": {"home": "h1", "database_url": "postgresql://u@h/d",
                                                    "database_schema": "a"},
                                              "b": {"home": "h2", "database_url": "postgresql://u@h/d",
                                                    "database_schema": "b"}}}), encoding="utf-8")
    fleet = load_fleet(path)
    assert fleet["a"].database_schema == "a" and fleet["b"].home == Path("h2")


def test_fleet_commands_hand_jobs_over_and_say_where_the_fleet_stands(tmp_path, redis_ns, monkeypatch):
    from labelrouter.cli.app import app

    fleet_path, _ = _fleet(tmp_path, ["one"])
    for key, value in {"LABELROUTER_BROKER_URL": URL, "LABELROUTER_FLEET_NAMESPACE": redis_ns,
                       "LABELROUTER_FLEET_PATH": str(fleet_path)}.items():
        monkeypatch.setenv(key, value)
    sent = runner.invoke(app, ["fleet", "poll"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["args"] == ["one"]
    status = runner.invoke(app, ["fleet", "status"])
    assert status.exit_code == 0 and "1 waiting" in status.stdout and "one: idle" in status.stdout, status.output
    unknown = runner.invoke(app, ["fleet", "poll", "nobody"])
    assert unknown.exit_code == 2 and "not in the fleet file" in unknown.output


def test_nightly_sync_and_training_tasks_learn_what_the_user_corrected(tmp_path, redis_ns, stub_encoder):
    from labelrouter.fleet.app import NIGHTLY_SYNC, POLL, TRAIN, create_app
    from labelrouter.fleet.tasks import FleetRuntime
    from tests.feedback.test_feedback import move

    fleet_path, boxes = _fleet(tmp_path, ["solo"])
    settings = load_settings(broker_url=URL, fleet_namespace=redis_ns, fleet_path=fleet_path)
    runtime = FleetRuntime(settings, encoder=stub_encoder)
    app = create_app(settings, runtime=lambda: runtime)
    assert app.tasks[POLL].apply(args=["solo"]).get()["applied"] == len(boxes["solo"])
    store = SQLiteStore(tmp_path / "solo" / "home" / "labelrouter.sqlite3")
    labels = load_label_set(LABELS_JSON)
    applied = {r["message_id"]: r["label_applied"] for r in store.rows("labeled")}
    store.close()
    target = next(n for n in labels.names if n != labels.fallback)
    moved = [m for m, label in applied.items() if label not in (labels.fallback, target)][:3]
    box = LocalMaildir(tmp_path / "solo" / "Mail", create=False)
    for mid in moved:
        move(box, mid, applied[mid], target)
    synced = app.tasks[NIGHTLY_SYNC].apply(args=["solo"]).get()
    assert synced["touched"] == 3 and synced["recorded"] == len(boxes["solo"]) and synced["examples"]["correction"] == 3
    trained = app.tasks[TRAIN].apply(args=["solo", "head"]).get()
    assert trained["job"] == "train" and trained["examples"] >= 3 and isinstance(trained["promoted"], bool), trained
    refused = app.tasks[TRAIN].apply(args=["solo", "everything"])
    assert refused.failed() and "stages must be one of" in str(refused.result)
