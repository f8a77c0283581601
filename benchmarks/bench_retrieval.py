"""The retrieval layer on a real labeled set: head only (the packaged encoder) against a bi-encoder
fine-tuned with plain MNR and with hierarchy-weighted MNR, at one or more budgets, in one run.

For each configuration: the bi-encoder trains on the set's train split (rows and hard negatives built from
the stored vectors as the training graph builds them: `training.retrieval_data`), then every message is
embedded again with it and the `full` protocol of `labelrouter eval` runs on those vectors — the router's
description retrieval (Recall@5/@20), the head trained on them, router × head — with the throughput of the
pipeline (embedding included) per configuration.

    .venv/bin/python benchmarks/bench_retrieval.py --set clinc150 --budgets 150,470 [--weightings flat,hierarchy]
        [--test-limit N] [--out bench-out/retrieval-clinc150.json] [--device cuda] [--teacher DIR]

`--teacher DIR` (a cross-encoder folder, e.g. `bench_rerank.py --save`): each configuration is also run
distilled — the same rows and budget, the loss `DistilledRankingLoss` on the teacher's scores of each row's
candidates, as the training graph's `distill_bi_encoder` does.

`--test-limit` evaluates on the first N test messages (a long-mail set costs ~30 minutes per re-embedding
on two cores); the head then still trains on all of train.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from labelrouter.evaluation.protocols import Evaluator  # noqa: E402
from labelrouter.models.encoder import Encoder, load_encoder, packaged_encoder_path  # noqa: E402
from labelrouter.models.label_index import LabelIndex  # noqa: E402
from labelrouter.models.reranker import CrossEncoderReranker  # noqa: E402
from labelrouter.models.scoring import ScoringParams  # noqa: E402
from labelrouter.training.bi_encoder import train_bi_encoder  # noqa: E402
from labelrouter.training.budget import Budget  # noqa: E402
from labelrouter.training.importer import LabeledSet, read_labeled_set, row_text_and_document  # noqa: E402
from labelrouter.training.rerank_stage import calibration  # noqa: E402
from labelrouter.training.retrieval_data import KIND_WEIGHTS, retrieval_rows  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; LABELROUTER_DATA where it lies elsewhere (a GPU machine: benchmarks/gpu)
DATA = Path(os.environ.get("LABELROUTER_DATA") or PROJECT_ROOT.parent / "shared" / "data")
KEEP = ("top1", "recall@5", "recall@20", "sibling_error_share", "macro_f1", "fallback_rate", "candidate_recall")


def load_set(name: str) -> LabeledSet:
    """A set of ../shared/data by name (clinc150's out-of-scope rows as its fallback)."""
    folder = DATA / name
    return read_labeled_set(folder / "messages.jsonl.gz", folder / "taxonomy.json",
                            oos_label="oos" if name == "clinc150" else None)


def evaluate(data: LabeledSet, encoder: Encoder, cache: Path) -> dict[str, Any]:
    start = time.perf_counter()
    evaluator = Evaluator(data, encoder, ScoringParams(), cache_dir=cache)
    embed_s = time.perf_counter() - start
    report = evaluator.run("full", [])
    configs = {name: {k: round(v, 4) for k, v in metrics.items() if k in KEEP and isinstance(v, float)}
               for name, metrics in report["configs"].items() if name in ("router_only", "head_only", "router_x_head")}
    return {"configs": configs, "tfidf_svm_top1": round(report["baselines"]["tfidf_svm"]["top1"], 4),
            "embed_all_s": round(embed_s, 1), "messages": len(data.rows),
            "embed_msgs_per_s": round(len(data.rows) / embed_s, 1),
            "pipeline_latency_ms_p50": report.get("latency_ms_p50"), "head_train_s": report.get("head_train_s")}


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Where models train and embed: the CPU (the default's figures) or an accelerator (fp32 embedding either
    way, so vectors compare; training takes bf16 where the device has it, as `training.budget` does)."""
    import torch

    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--embed-batch", type=int, default=None, help="texts per forward pass (64 on a CPU, 256 on a GPU)")


def embed_batch(args: argparse.Namespace) -> int:
    return args.embed_batch or (64 if args.device == "cpu" else 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="clinc150")
    parser.add_argument("--budgets", default="150", help="optimizer steps, comma-separated")
    parser.add_argument("--weightings", default="flat,hierarchy")
    parser.add_argument("--examples", type=int, default=15_000, help="training rows at most")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--negatives", type=int, default=2)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path(".labelrouter/cache/eval-embeddings"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--teacher", type=Path, default=None, help="a cross-encoder folder: also run each configuration distilled")
    parser.add_argument("--distill-only", action="store_true", help="with --teacher: only the distilled runs")
    add_device_arguments(parser)
    args = parser.parse_args()

    data = load_set(args.set)
    if args.test_limit is not None:
        test = [r for r in data.rows if r.get("split") == "test"][: args.test_limit]
        keep = {id(r) for r in test}
        data = LabeledSet(data.name, data.taxonomy, [r for r in data.rows if r.get("split") != "test" or id(r) in keep],
                          data.oos_label)
    base = load_encoder(None, args.device, "off", embed_batch(args))
    results: dict[str, Any] = {"set": args.set, "base": evaluate(data, base, args.cache), "runs": []}
    print(json.dumps(results["base"], indent=1), flush=True)

    # Training rows from the train split, with the base encoder's stored vectors and label vectors.
    base_eval = Evaluator(data, base, ScoringParams(), cache_dir=args.cache)
    train = [i for i in base_eval._in_scope(base_eval.train)]
    rows = [{"example_id": str(data.rows[i]["id"]), "label": data.rows[i]["label"], "kind": "gold",
             "rejected_label": None, "embedded_text": row_text_and_document(data.rows[i])[0]} for i in train]
    index = LabelIndex.build(base_eval.labels, base)
    start = time.perf_counter()
    built = retrieval_rows(rows, base_eval.X[train], base_eval.labels, index, negatives=args.negatives,
                           at_most=args.examples, kind_weights=KIND_WEIGHTS)
    build_s = time.perf_counter() - start
    distances = base_eval.labels.tree_distances()
    out = args.out or Path(f"bench-out/retrieval-{args.set}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    teacher = None if args.teacher is None else CrossEncoderReranker(args.teacher, device=args.device,
                                                                     batch_size=embed_batch(args))
    scale = 1.0
    if teacher is not None:  # the slope a bundle fits on validation (`rerank_stage.calibration`), as the graph uses
        val = [i for i in base_eval._in_scope(base_eval.val)][:2000]
        val_rows = retrieval_rows([{"example_id": str(data.rows[i]["id"]), "label": data.rows[i]["label"], "kind": "gold",
                                    "rejected_label": None, "embedded_text": row_text_and_document(data.rows[i])[0]}
                                   for i in val], base_eval.X[val], base_eval.labels, index, negatives=args.negatives)
        ids = np.asarray(val_rows.columns["label"])
        scale, _ = calibration(teacher.rerank(val_rows.columns["message"], ids, base_eval.labels),
                               np.broadcast_to(np.arange(ids.shape[1]) == 0, ids.shape))
        print(json.dumps({"teacher_scale": scale, "fitted_on": len(val_rows)}), flush=True)
    distilled = [False, True] if teacher and not args.distill_only else [bool(teacher)]
    for steps in [int(s) for s in args.budgets.split(",")]:
        for weighting in args.weightings.split(","):
            for distill in distilled:
                rows_used, scores, teacher_report = built, None, {}
                if distill:  # as `distill_bi_encoder`: only the rows the step budget reaches are scored
                    rows_used = built.sample(min(steps * args.batch_size, args.examples))
                    start = time.perf_counter()
                    scores = scale * teacher.rerank(rows_used.columns["message"],  # type: ignore[union-attr]
                                                    np.asarray(rows_used.columns["label"]), base_eval.labels)
                    teacher_report = {"teacher": str(args.teacher), "teacher_pairs": int(scores.size),
                                      "teacher_scale": round(scale, 4),
                                      "teacher_seconds": round(time.perf_counter() - start, 1),
                                      "teacher_top1_on_rows": round(float(np.mean(scores.argmax(axis=1) == 0)), 4)}
                    print(json.dumps(teacher_report), flush=True)
                with tempfile.TemporaryDirectory() as tmp:
                    report = train_bi_encoder(packaged_encoder_path(), rows_used, distances, Path(tmp) / "bi",
                                              weighting=weighting,  # type: ignore[arg-type]
                                              budget=Budget(steps=steps, examples=args.examples, minutes=args.minutes),
                                              batch_size=args.batch_size, epochs=100, device=args.device, teacher=scores,
                                              progress=lambda m: print(m, flush=True))
                    tuned = Encoder(Path(tmp) / "bi", device=args.device, autocast="off", batch_size=embed_batch(args))
                    run = {"weighting": weighting, "distilled": distill, "budget_steps": steps,
                           "training": report.to_json(), **teacher_report,
                           "rows_build_s": round(build_s, 1), "negative_sources": built.negative_sources,
                           **evaluate(data, tuned, args.cache)}
                results["runs"].append(run)
                print(json.dumps(run, indent=1), flush=True)
                out.write_text(json.dumps(results, indent=2) + "\n")  # after every run: a cut-off one keeps the rest

if __name__ == "__main__":
    main()
