"""Head training time on stored examples (no re-embedding), and what the promoted head buys on held-out mail.

1. imports N in-scope rows of ../shared/data/clinc150 (train split, shuffled) as gold examples: each row
   is embedded once, exactly as inference would embed it, and stored with the encoder version;
2. runs the training graph (`labelrouter train`) on those stored embeddings and times it, and times the
   logistic-regression fit alone;
3. labels the test split through the inference graph with the cold-start head and with the promoted head.

    .venv/bin/python benchmarks/bench_train_head.py [--n 12500] [--out bench-out/train_head.json]

With the default N = 12,500 the time-ordered split trains on 10,000 examples and validates on 2,500.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from labelrouter.graph.labeler import Labeler  # noqa: E402
from labelrouter.graph.wiring import build_context  # noqa: E402
from labelrouter.models.encoder import load_encoder  # noqa: E402
from labelrouter.settings import load_settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
from labelrouter.store import open_store  # noqa: E402
from labelrouter.training import build_training_context, run_training  # noqa: E402
from labelrouter.training.head import train_linear_head  # noqa: E402
from labelrouter.training.importer import LabeledSet, import_examples, row_message  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data" / "clinc150"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12_500)
    parser.add_argument("--out", type=Path, default=Path("bench-out/train_head.json"))
    args = parser.parse_args()

    taxonomy = json.loads((DATA / "taxonomy.json").read_text())
    with gzip.open(DATA / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [r for r in map(json.loads, fh) if r["label"] != "oos"]
    # The file is grouped by label and has no dates: shuffle (seed 0) so "time order" is not label order.
    train_rows = [r for r in rows if r.get("split") == "train"]
    random.Random(0).shuffle(train_rows)
    train_rows = train_rows[: args.n]
    test_rows = [r for r in rows if r.get("split") == "test"]

    with tempfile.TemporaryDirectory() as tmp:
        labels_json = Path(tmp) / "labels.json"
        labels_json.write_text(json.dumps({"fallback": "other", "nodes": taxonomy["nodes"], "labels": [
            *taxonomy["labels"], {"name": "other", "parent": None, "description": "anything else"}]}))
        settings = load_settings(home=Path(tmp) / "home", labels_path=labels_json, encoder_autocast="off")
        encoder = load_encoder(None, "cpu", "off", 64)
        store = open_store(settings)
        from labelrouter.labels import load_label_set

        labels = load_label_set(labels_json)
        start = time.perf_counter()
        n_stored = import_examples(store, encoder, LabeledSet("clinc150", labels, train_rows))
        embed_s = time.perf_counter() - start

        ctx = build_training_context(settings, store, labels=labels)
        start = time.perf_counter()
        state = run_training(ctx)
        train_graph_s = time.perf_counter() - start

        X, y, _ = ctx.matrix(state.train_ids)
        start = time.perf_counter()
        train_linear_head(X, y, embedder=encoder.version, version="timing", label_order=labels.names)
        fit_s = time.perf_counter() - start

        def test_top1(models_dir: Path) -> float:
            run_settings = settings.model_copy(update={"models_dir": models_dir})
            results = Labeler(build_context(run_settings, labels=labels), run_settings).label_many(messages)
            return float(np.mean([res["routing"].top_label == r["label"] for res, r in zip(results, test_rows, strict=True)]))

        messages = [row_message(r) for r in test_rows]
        accuracy = {"cold": test_top1(Path(tmp) / "no-models")}
        accuracy["promoted"] = test_top1(settings.resolved_models_dir) if state.promoted else float("nan")

    report = {
        "dataset": "clinc150", "examples_stored": n_stored, "n_train": len(state.train_ids),
        "n_val": len(state.val_ids), "embed_once_s": round(embed_s, 1),
        "training_graph_s": round(train_graph_s, 2), "logistic_regression_fit_s": round(fit_s, 2),
        "promoted": state.promoted, "decision": state.decision,
        "validation": state.metrics.get("candidate"), "validation_current": state.metrics.get("current"),
        "test_top1_cold": round(accuracy["cold"], 4), "test_top1_promoted_head": round(accuracy["promoted"], 4),
        "n_test": len(test_rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
