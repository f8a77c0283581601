"""The head on long mail: retraining time on 10,000 stored examples, and the whole pipeline's throughput
with no head, the dense-only head and the vector + lexical head, in one run.

1. stores N rows of ../shared/data/20newsgroups (train split, time order) as gold examples with their
   vectors, documents and embedded text — the vectors from the eval embedding cache when an earlier
   `labelrouter eval` (or this benchmark) left them there, else embedded now (≈ 25 min for 20newsgroups);
2. times the real training graph (`labelrouter train`) on them: the head fit on 80 %, its temperature and
   pull fitted on the newest 20 %, evaluation, and the refit on all of them at promotion; then the nightly
   case, in a second store: trained on the oldest 90 %, retrained (timed) once the newest 10 % arrived; and
   the dense-only logistic-regression fit on the same rows, for comparison;
3. labels `--messages` test messages through the inference graph (decide mode: embedding included) with
   the cold-start head, the dense-only head and the promoted head, repeated `--repeats` times in
   alternation; reports the median messages/s of each and their ratios (timings are noisy here).

    .venv/bin/python benchmarks/bench_head.py [--n 10000] [--messages 300] [--repeats 3] [--out bench-out/head.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from labelrouter.artifacts import LocalArtifacts  # noqa: E402
from labelrouter.evaluation.protocols import cached_embeddings  # noqa: E402
from labelrouter.evaluation.splits import time_order  # noqa: E402
from labelrouter.graph.labeler import Labeler  # noqa: E402
from labelrouter.graph.wiring import build_context  # noqa: E402
from labelrouter.labels import Label, LabelSet  # noqa: E402
from labelrouter.models.encoder import load_encoder  # noqa: E402
from labelrouter.models.registry import ModelRegistry  # noqa: E402
from labelrouter.settings import load_settings  # noqa: E402
from labelrouter.store import open_store  # noqa: E402
from labelrouter.store.records import MAX_STORED_DOCUMENT, MAX_STORED_TEXT, utcnow  # noqa: E402
from labelrouter.training import build_training_context, run_training  # noqa: E402
from labelrouter.training.head import refresh_label_vectors, train_linear_head  # noqa: E402
from labelrouter.training.importer import read_labeled_set, row_message, row_text_and_document  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA = PROJECT_ROOT.parent / "shared" / "data" / "20newsgroups"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(".labelrouter/cache/eval-embeddings"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/head.json"))
    args = parser.parse_args()

    data = read_labeled_set(DATA / "messages.jsonl.gz", DATA / "taxonomy.json")
    encoder = load_encoder(None, "cpu", "off", 64)
    texts, documents = zip(*(row_text_and_document(r) for r in data.rows), strict=True)
    X_all = cached_embeddings(encoder, list(texts), args.cache)
    train = [i for i, r in enumerate(data.rows) if r.get("split") == "train"]
    train = time_order(train, [data.rows[i].get("date") for i in train])[: args.n]
    test = [i for i, r in enumerate(data.rows) if r.get("split") == "test"][: args.messages]
    labels = LabelSet((*data.taxonomy.labels, Label("other", None, "anything else")), data.taxonomy.nodes, "other")

    with tempfile.TemporaryDirectory() as tmp:
        labels_json = Path(tmp) / "labels.json"
        labels_json.write_text(json.dumps(labels.to_json()))
        settings = load_settings(home=Path(tmp) / "home", labels_path=labels_json, encoder_autocast="off")
        examples = [{
            "example_id": f"import:20ng:{data.rows[i]['id']}", "message_id": str(data.rows[i]["id"]),
            "label": data.rows[i]["label"], "kind": "gold", "rejected_label": None, "source": "import:20ng",
            "split": "train", "subject": str(data.rows[i].get("subject") or "")[:500],
            "embedding": X_all[i].astype("<f4").tobytes(), "embedding_dim": encoder.dim,
            "encoder_version": encoder.version, "occurred_at": data.rows[i].get("date") or f"#{n:09d}",
            "created_at": utcnow(), "embedded_text": texts[i][:MAX_STORED_TEXT],
            "document": documents[i][:MAX_STORED_DOCUMENT]} for n, i in enumerate(train)]
        store = open_store(settings)
        store.add_examples(examples)

        ctx = build_training_context(settings, store, labels=labels, encoder=encoder)
        stages: dict[str, float] = {}
        start = last = time.perf_counter()

        def finished(node: str) -> None:
            nonlocal last
            now = time.perf_counter()
            stages[node] = round(now - last, 2)
            last = now

        state = run_training(ctx, on_node=finished)
        graph_s = time.perf_counter() - start

        # The nightly case: a head trained on the oldest 90 %, then a retraining once the newest 10 % arrived.
        nightly = settings.model_copy(update={"home": Path(tmp) / "nightly"})
        nightly_store = open_store(nightly)
        nightly_store.add_examples(examples[: len(examples) * 9 // 10])
        run_training(build_training_context(nightly, nightly_store, labels=labels, encoder=encoder))
        nightly_store.add_examples(examples[len(examples) * 9 // 10 :])
        start = time.perf_counter()
        retrained = run_training(build_training_context(nightly, nightly_store, labels=labels, encoder=encoder))
        retrain_s = time.perf_counter() - start

        X, y, _ = ctx.matrix(state.train_ids + state.val_ids)
        start = time.perf_counter()
        dense = train_linear_head(X, y, embedder=encoder.version, version="dense-only", label_order=labels.names)
        dense_fit_s = time.perf_counter() - start
        dense.label_vectors = refresh_label_vectors(ctx.router.index, X, y)
        dense_dir = Path(tmp) / "dense-models"
        dense_registry = ModelRegistry(LocalArtifacts(dense_dir))
        dense_registry.stage(dense)
        dense_registry.promote("dense-only", embedder=encoder.version, dim=encoder.dim)

        messages = [row_message(data.rows[i]) for i in test]
        gold = [data.rows[i]["label"] for i in test]
        configs = {"cold_start": Path(tmp) / "no-models", "dense_head": dense_dir,
                   "vector_lexical_head": settings.resolved_models_dir}
        rates: dict[str, list[float]] = {name: [] for name in configs}
        top1: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, models_dir in configs.items():
                run_settings = settings.model_copy(update={"models_dir": models_dir})
                labeler = Labeler(build_context(run_settings, labels=labels, encoder=encoder, mode="decide"),
                                  run_settings)
                start = time.perf_counter()
                results = labeler.label_many(messages)
                rates[name].append(len(messages) / (time.perf_counter() - start))
                top1[name] = float(np.mean([r["routing"].top_label == g for r, g in zip(results, gold, strict=True)]))

    medians = {name: round(statistics.median(v), 1) for name, v in rates.items()}
    report = {
        "dataset": "20newsgroups", "examples_stored": len(train), "n_train": len(state.train_ids),
        "n_val": len(state.val_ids), "training_graph_s": round(graph_s, 2), "stage_s": stages, "decision": state.decision,
        "retraining_after_10_percent_more_s": round(retrain_s, 2), "retraining_decision": retrained.decision,
        "dense_only_fit_s": round(dense_fit_s, 2),
        "pipeline_msgs_per_s_median": medians,
        "pipeline_ratio_to_cold_start": {name: round(v / medians["cold_start"], 3) for name, v in medians.items()},
        "top1_on_these_messages": {name: round(v, 4) for name, v in top1.items()},
        "messages": len(messages), "repeats": args.repeats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
