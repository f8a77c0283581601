"""Training on real data (clinc150 from ../shared/data) with the real encoder: the learning loop end to end."""

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelrouter.cli.app import app
from labelrouter.graph.labeler import Labeler
from labelrouter.graph.wiring import build_context
from labelrouter.models.current import CurrentHead
from labelrouter.models.head import ColdStartHead
from labelrouter.settings import load_settings
from labelrouter.store import SQLiteStore
from labelrouter.training import build_training_context, run_training
from labelrouter.training.importer import row_message
from tests.conftest import DATA, registry_at

CLINC = DATA / "clinc150"
DOMAINS = ("banking", "credit_cards")  # 30 intents, siblings within each domain
runner = CliRunner()

pytestmark = [pytest.mark.data,
              pytest.mark.skipif(not (CLINC / "messages.jsonl.gz").exists(), reason="needs ../shared/data/clinc150")]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def clinc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clinc")
    taxonomy = json.loads((CLINC / "taxonomy.json").read_text())
    labels = [lb for lb in taxonomy["labels"] if lb["parent"] in DOMAINS]
    names = {lb["name"] for lb in labels}
    nodes = [n for n in taxonomy["nodes"] if n["name"] in DOMAINS]
    labels_json = tmp / "labels.json"
    labels_json.write_text(json.dumps({"fallback": "other", "nodes": nodes, "labels": [
        *labels, {"name": "other", "parent": None, "description": "anything else"}]}))
    with gzip.open(CLINC / "messages.jsonl.gz", "rt") as fh:
        rows = [r for r in map(json.loads, fh) if r["label"] in names]
    rng = random.Random(7)
    by_label = {n: [r for r in rows if r["label"] == n and r.get("split") == "train"] for n in sorted(names)}
    train = [r for n in sorted(names) for r in rng.sample(by_label[n], 20)]
    rng.shuffle(train)
    test_rows = [r for r in rows if r.get("split") == "test"]
    held_out = rng.sample(test_rows, 300)
    sub_taxonomy = tmp / "taxonomy.json"
    sub_taxonomy.write_text(json.dumps({"dataset": "clinc150-banking", "nodes": nodes, "labels": labels}))
    return {"tmp": tmp, "labels_json": labels_json, "taxonomy": sub_taxonomy, "train": train, "held_out": held_out,
            "test_rows": test_rows}


def _env(clinc, home: Path) -> dict[str, str]:
    return {"LABELROUTER_HOME": str(home), "LABELROUTER_LABELS_PATH": str(clinc["labels_json"])}


def _accuracy(settings, rows) -> float:
    labeler = Labeler(build_context(settings), settings)
    results = labeler.label_many([row_message(r) for r in rows])
    return float(np.mean([res["routing"].top_label == r["label"] for res, r in zip(results, rows, strict=True)]))


def test_corrections_train_a_head_that_labels_held_out_mail_better(clinc, encoder):
    home = clinc["tmp"] / "home-e2e"
    env = _env(clinc, home)
    settings = load_settings(home=home, labels_path=clinc["labels_json"])
    cold = _accuracy(settings, clinc["held_out"])

    messages = _write_jsonl(clinc["tmp"] / "gold.jsonl", clinc["train"])
    result = runner.invoke(app, ["import", "--messages", str(messages), "--taxonomy", str(clinc["taxonomy"])], env=env)
    assert result.exit_code == 0, result.output
    assert "imported 600 gold examples" in result.stdout

    result = runner.invoke(app, ["train"], env=env)
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["promoted"], state["decision"]
    cand = state["metrics"]["candidate"]
    assert cand["non_fallback_precision"] is None or cand["non_fallback_precision"] >= 0.85
    assert 0 <= cand["ece"] <= 1 and 0 <= cand["fallback_rate"] <= 1

    warm = _accuracy(settings, clinc["held_out"])  # held-out test-split messages, never trained on
    assert warm >= cold + 0.05, (cold, warm)

    # The same data again: nothing new to learn, so nothing is trained or staged.
    again = json.loads(runner.invoke(app, ["train"], env=env).stdout)
    assert not again["promoted"] and again["decision"] == "not trained: nothing new"
    assert len(registry_at(settings.resolved_models_dir).history()) == 1
    assert registry_at(settings.resolved_models_dir).artifacts.list("candidates/") == []

    listing = runner.invoke(app, ["models"], env={**env, "COLUMNS": "200"})
    assert state["candidate_version"] in listing.stdout and "✓" in listing.stdout
    assert "cold-start" in runner.invoke(app, ["models", "rollback"], env=env).stdout
    after = runner.invoke(app, ["models"], env={**env, "COLUMNS": "200"}).stdout
    assert "current head: cold-start" in after and "✓" not in after
    assert isinstance(build_context(settings).head.head, ColdStartHead)


def test_too_little_data_skips_training_and_says_why(clinc, encoder, tmp_path):
    settings = load_settings(home=tmp_path, labels_path=clinc["labels_json"])
    store = SQLiteStore(settings.resolved_db_path)
    state = run_training(build_training_context(settings, store))
    assert not state.promoted and state.candidate_version is None
    assert state.skipped and "need 3" in state.skipped[0]


def test_running_process_picks_up_a_promotion(clinc, encoder, tmp_path):
    from labelrouter.models.bundle import LinearHead

    now = [0.0]
    registry = registry_at(tmp_path)
    head = CurrentHead(registry, embedder=encoder.version, dim=encoder.dim, check_every_s=5, clock=lambda: now[0])
    assert isinstance(head.head, ColdStartHead)
    new = LinearHead(labels=["a", "b"], W=np.zeros((2, encoder.dim), np.float32), b=np.array([0, 1], np.float32),
                     version="h-new", embedder=encoder.version, thresholds={"fallback": 0.2})
    registry.stage(new)
    registry.promote("h-new", embedder=encoder.version, dim=encoder.dim)
    assert head.version == "cold-start"  # not re-checked before check_every_s
    now[0] = 6.0
    assert head.version == "h-new" and head.thresholds["fallback"] == 0.2


@pytest.mark.parametrize(
    ("content", "args", "fragment"),
    [
        ("", [], "no messages in the file"),
        ('{"id": "1", "label": "nope", "body": "x"}\n', [], "not in"),
        ('{"id": "1", "label": "oos", "body": "x"}\n', ["--oos-label", "oos"], "none of the"),
        ('{"id": "1", "label": "oos"\n', [], "line 1: invalid JSON"),
    ],
)
def test_import_errors_are_one_line(clinc, tmp_path, content, args, fragment):
    messages = tmp_path / "m.jsonl"
    messages.write_text(content)
    result = runner.invoke(app, ["import", "--messages", str(messages), "--taxonomy", str(clinc["taxonomy"]), *args],
                           env=_env(clinc, tmp_path / "home"))
    assert result.exit_code == 2 and fragment in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "home").exists()  # nothing written


def test_a_label_whose_name_says_nothing_is_retrieved_after_training(clinc, encoder, tmp_path):
    """`misc2` has no useful name or description: before training it is rarely in the top-K; once mail
    has been filed under it, its refreshed vector brings it into retrieval."""
    taxonomy = json.loads(clinc["labels_json"].read_text())
    target = sorted(lb["name"] for lb in taxonomy["labels"] if lb["parent"])[0]
    for lb in taxonomy["labels"]:
        if lb["name"] == target:
            lb.update(name="misc2", description="", parent=None)
    labels_json = tmp_path / "labels.json"
    labels_json.write_text(json.dumps(taxonomy))
    rename = lambda rows: [{**r, "label": "misc2"} if r["label"] == target else r for r in rows]  # noqa: E731
    train, held = rename(clinc["train"]), [r for r in rename(clinc["test_rows"]) if r["label"] == "misc2"]
    assert len(held) >= 5
    settings = load_settings(home=tmp_path / "home", labels_path=labels_json, top_k=3)

    def recall_at_k() -> float:
        results = Labeler(build_context(settings), settings).label_many([row_message(r) for r in held])
        return float(np.mean([any(c.label == "misc2" for c in res["routing"].candidates) for res in results]))

    before = recall_at_k()
    from labelrouter.training.importer import import_examples, read_labeled_set

    sub_taxonomy = tmp_path / "taxonomy.json"
    sub_taxonomy.write_text(json.dumps({"dataset": "misc2", "nodes": taxonomy["nodes"], "labels": taxonomy["labels"]}))
    store = SQLiteStore(settings.resolved_db_path)
    import_examples(store, encoder, read_labeled_set(_write_jsonl(tmp_path / "m.jsonl", train), sub_taxonomy))
    state = run_training(build_training_context(settings, store))
    assert state.promoted, state.decision
    after = recall_at_k()
    assert before <= 0.5 and after >= 0.8, (before, after)
