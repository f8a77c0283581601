"""The loop end to end on real mail text (clinc150 rows delivered into a Maildir), the real encoder, and
the CLI: label → the user moves the wrong ones → sync → mining → train → replay shows them corrected."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from email.message import EmailMessage as Mime

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.mail.maildir import LocalMaildir, folder_name
from labelrouter.settings import load_settings
from labelrouter.store import open_store
from tests.conftest import DATA
from tests.feedback.test_feedback import mark_read, move
from tests.postgres import RUN_PREFIX, URL

pytestmark = [pytest.mark.data, pytest.mark.slow]
runner = CliRunner()
CLINC = DATA / "clinc150"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_corrections_moved_by_the_user_are_synced_mined_learned_and_replayed(tmp_path, monkeypatch, encoder, backend,
                                                                            request):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    if backend == "postgres":
        schemas = request.getfixturevalue("postgres_schemas")
        schemas.append(f"{RUN_PREFIX}_loop")
        monkeypatch.setenv("LABELROUTER_DATABASE_URL", URL)
        monkeypatch.setenv("LABELROUTER_DATABASE_SCHEMA", schemas[-1])
    assert runner.invoke(app, ["init", "--taxonomy", str(CLINC / "taxonomy.json"), "--fallback", "oos"]).exit_code == 0
    with gzip.open(CLINC / "messages.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    rng = random.Random(0)
    intents = sorted({r["label"] for r in rows if r["label"] != "oos"})[:12]
    chosen = [r for r in rows if r["label"] in intents and r["split"] == "train"]
    rng.shuffle(chosen)
    chosen = chosen[:300]
    box = LocalMaildir(tmp_path / "home" / "mailbox")
    truth = {}
    for i, row in enumerate(chosen):
        mail = Mime()
        mail["From"], mail["To"], mail["Subject"] = "someone@example.com", "me@example.com", ""
        mail["Date"] = f"Mon, {1 + i // 24:02d} Jun 2025 {i % 24:02d}:00:00 +0000"
        mail.set_content(row["body"])
        truth[box.deliver(mail.as_bytes())] = row["label"]

    assert runner.invoke(app, ["run", "--json"]).exit_code == 0
    settings = load_settings()
    store = open_store(settings)
    applied = {r["message_id"]: r["label_applied"] for r in store.rows("labeled")}
    assert len(applied) == 300
    wrong = [m for m in applied if applied[m] != truth[m]]
    # The user moves the wrong ones (at most 5 per confusion, never a folder's worth at once) and reads
    # the right ones.
    per_pair: Counter[tuple[str, str]] = Counter()
    moved = []
    for mid in wrong:
        pair = (applied[mid], truth[mid])
        if per_pair[pair] < 5 and (box.root / f".{folder_name(applied[mid])}").is_dir():
            move(box, mid, applied[mid], truth[mid])
            per_pair[pair] += 1
            moved.append(mid)
    for mid in applied:
        if applied[mid] == truth[mid]:
            mark_read(box, mid)
    assert len(moved) >= 20, "the cold router should get enough of these wrong to learn from"

    synced = runner.invoke(app, ["sync"])
    assert synced.exit_code == 0, synced.output
    verdicts = Counter(r["feedback"] for r in store.feedback_rows())
    assert verdicts["correction"] == len(moved) and verdicts["reorganised"] == 0
    examples = [e for e in store.examples(encoder.version) if e["kind"] == "correction"]
    assert {(e["message_id"], e["label"]) for e in examples} == {(m, truth[m]) for m in moved}
    # The wrongly applied label is each correction's hard negative (out of the fallback: the router's top).
    assert all(e["rejected_label"] == applied[e["message_id"]] for e in examples if applied[e["message_id"]] != "oos")

    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 0, trained.output
    state = json.loads(trained.stdout)
    assert state["promoted"], state["decision"]

    replayed = runner.invoke(app, ["replay", "--corrected-only", "--json"])
    assert replayed.exit_code == 0, replayed.output
    *lines, totals = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert {row["message_id"] for row in lines} == set(moved)
    assert totals["totals"]["agreement_old"] == 0.0
    assert totals["totals"]["agreement_new"] >= 0.8, totals  # the held-out fifth was never trained on
