"""Label changes keep config, mailbox, store and head consistent, and a new label neither hides nor dominates."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.demo import create_sample_mailbox, sample_messages
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.wiring import build_context
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir
from labelrouter.mail.parse import parse_message
from labelrouter.models.router import embedding_text
from labelrouter.settings import load_settings
from labelrouter.store import SQLiteStore
from labelrouter.summarize import offline_summary
from labelrouter.training.head import train_linear_head
from tests.conftest import LABELS_JSON, registry_at

runner = CliRunner()
NEW = "🎓-personal-education"


@pytest.fixture
def setup(tmp_path: Path, encoder):
    """A home with its own labels.json, a labeled demo mailbox, stored examples and a promoted head."""
    labels_json = tmp_path / "labels.json"
    shutil.copy(LABELS_JSON, labels_json)
    env = {"LABELROUTER_HOME": str(tmp_path / "home"), "LABELROUTER_LABELS_PATH": str(labels_json)}
    settings = load_settings(home=tmp_path / "home", labels_path=labels_json)
    expected = create_sample_mailbox(settings.resolved_mailbox_path)
    assert runner.invoke(app, ["run", "--json"], env=env).exit_code == 0
    messages = [parse_message(raw) for _, raw in sample_messages()]
    X = encoder.encode([embedding_text(m, offline_summary(m), 1500) for m in messages])
    y = [label for label, _ in sample_messages()]
    store = SQLiteStore(settings.resolved_db_path)
    store.add_examples([{
        "example_id": f"t:{i}", "message_id": f"m{i}", "label": label, "kind": "gold", "rejected_label": None,
        "source": "t", "split": None, "subject": "", "embedding": x.astype("<f4").tobytes(), "embedding_dim": 384,
        "encoder_version": encoder.version, "occurred_at": f"#{i:05d}", "created_at": "now"}
        for i, (x, label) in enumerate(zip(X, y, strict=True))])
    head = train_linear_head(X, y, embedder=encoder.version, version="h1", label_order=load_label_set(labels_json).names)
    registry = registry_at(settings.resolved_models_dir)
    registry.stage(head)
    registry.promote("h1", embedder=encoder.version, dim=encoder.dim)
    return {"env": env, "settings": settings, "labels_json": labels_json, "store": store, "messages": messages,
            "expected": expected}


def _labels(settings, messages):
    return [r["routing"].label for r in Labeler(build_context(settings), settings).label_many(messages)]


def test_added_label_is_routable_at_once_and_does_not_dominate(setup):
    before = _labels(setup["settings"], setup["messages"])
    result = runner.invoke(app, ["labels", "add", NEW, "--parent", "personal", "--description",
                                 "School and university: courses, online classes, homework, exams and grades."],
                           env=setup["env"])
    assert result.exit_code == 0, result.output
    labels = load_label_set(setup["labels_json"])
    assert labels.names[-2:] == [NEW, "other"]  # inserted before the fallback
    assert (setup["settings"].resolved_mailbox_path / f".{NEW}").is_dir()
    assert registry_at(setup["settings"].resolved_models_dir).history() == ["h1", "h1+add2"]

    after = _labels(setup["settings"], setup["messages"])
    assert NEW not in after  # does not dominate mail that belongs elsewhere
    assert sum(a == b for a, b in zip(before, after, strict=True)) >= 0.9 * len(before)
    course = parse_message(b"From: registrar@uni.example\r\nSubject: Your exam results for Linear Algebra\r\n\r\n"
                           b"Your grades for this semester's courses are online. The next exam is on June 3.")
    routing = Labeler(build_context(setup["settings"]), setup["settings"]).label(course)["routing"]
    assert routing.top_label == NEW, routing.candidates[:3]

    assert runner.invoke(app, ["models", "rollback"], env=setup["env"]).exit_code == 0
    assert registry_at(setup["settings"].resolved_models_dir).history() == ["h1"]


def test_rename_keeps_mail_examples_decisions_and_head_in_step(setup):
    old, new = "🛒-shopping-orders", "🛒-shopping-purchases"
    box = LocalMaildir(setup["settings"].resolved_mailbox_path, create=False)
    in_old = [mid for mid in setup["expected"] if old in box.label_ids(mid)]
    assert in_old
    result = runner.invoke(app, ["labels", "rename", old, new], env=setup["env"])
    assert result.exit_code == 0, result.output
    assert new in load_label_set(setup["labels_json"]) and old not in load_label_set(setup["labels_json"])
    assert all(new in box.label_ids(mid) for mid in in_old)  # same ids, new folder
    store = setup["store"]
    assert new in {r["label"] for r in store.examples(_encoder_version(store))}
    assert not [r for r in store.rows("labeled") if r["label_applied"] == old]
    ctx = build_context(setup["settings"])
    assert new in ctx.head.head.labels and old not in ctx.head.head.labels


def _encoder_version(store):
    return store.rows("labeled")[0]["encoder_version"]


def test_merge_moves_mail_and_drops_the_head_output(setup):
    source, into = "🛒-shopping-promotions", "🛒-shopping-orders"
    box = LocalMaildir(setup["settings"].resolved_mailbox_path, create=False)
    moved = [mid for mid in setup["expected"] if source in box.label_ids(mid)]
    result = runner.invoke(app, ["labels", "merge", source, into], env=setup["env"])
    assert result.exit_code == 0, result.output
    assert source not in load_label_set(setup["labels_json"])
    assert all(box.label_ids(mid) == [into] for mid in moved)
    assert not (setup["settings"].resolved_mailbox_path / f".{source}").exists()
    labels_in_examples = {r["label"] for r in setup["store"].examples(_encoder_version(setup["store"]))}
    assert source not in labels_in_examples and into in labels_in_examples
    assert source not in build_context(setup["settings"]).head.head.labels


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "💼-work-projects", "--description", "x"], "already exists"),
        (["add", "new-one", "--parent", "nowhere", "--description", "x"], "unknown parent 'nowhere'"),
        (["add", "new-one"], "needs a --description"),
        (["rename", "no-such", "x"], "unknown label"),
        (["rename", "💼-work-projects", "💼-work-meetings"], "use `labels merge`"),
        (["merge", "other", "💼-work-projects"], "fallback label"),
    ],
)
def test_bad_changes_are_one_line_and_write_nothing(setup, args, fragment):
    config_before = setup["labels_json"].read_text()
    result = runner.invoke(app, ["labels", *args], env=setup["env"])
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert setup["labels_json"].read_text() == config_before
    assert registry_at(setup["settings"].resolved_models_dir).history() == ["h1"]
    assert json.loads(setup["labels_json"].read_text())["fallback"] == "other"
