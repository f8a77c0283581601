"""Does weighting recent mail more help the head on a mailbox in date order? The head alone (no router, no
fallback), prequential: at every `--every` messages it is fit on all messages before and judged on the next
ones, each example weighted 0.5 ** (age / half-life), age in messages; TF-IDF + SVM fit the same way.

    .venv/bin/python benchmarks/bench_head_recency.py --set enron-lokay-m --half-lives 250,500,1000,2000

Every message before the point is a training example (a user who files everything): the question is the
weighting, not the feedback loop (`labelrouter eval --protocol stream` measures that).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from bench_retrieval import load_set  # noqa: E402 - benchmarks/ is the script's own folder

from labelrouter.evaluation.baselines import tfidf_svm  # noqa: E402
from labelrouter.evaluation.protocols import Evaluator  # noqa: E402
from labelrouter.evaluation.splits import time_order  # noqa: E402
from labelrouter.models.encoder import load_encoder, packaged_encoder_path  # noqa: E402
from labelrouter.models.scoring import ScoringParams  # noqa: E402
from labelrouter.training.head import train_hybrid_head  # noqa: E402
from labelrouter.training.importer import row_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="enron-lokay-m")
    parser.add_argument("--half-lives", default="250,500,1000,2000", help="in messages, comma-separated")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=Path(".labelrouter/cache/eval-embeddings"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = load_set(args.set)
    ev = Evaluator(data, load_encoder(packaged_encoder_path()), ScoringParams(), cache_dir=args.cache)
    order = time_order(range(len(data.rows)), [r.get("date") for r in data.rows])
    labels = [data.rows[i]["label"] for i in order]
    X, docs = ev.X[order], [ev.docs[i] for i in order]
    texts = [row_text(data.rows[i], 5_000) for i in order]
    half_lives: list[int | None] = [None, *(int(h) for h in args.half_lives.split(",") if h)]
    right: dict[str, list[bool]] = {str(h or "none"): [] for h in half_lives} | {"tfidf_svm": []}
    with ev.analysis.active():
        for start in range(args.every, len(order), args.every):
            train, test = np.arange(start), np.arange(start, min(start + args.every, len(order)))
            y, truth = [labels[i] for i in train], np.array([labels[i] for i in test])
            if len(set(y)) < 2:
                continue
            for half_life in half_lives:
                weight = None if half_life is None else 0.5 ** ((start - 1 - train) / half_life)
                head = train_hybrid_head(X[train], [docs[i] for i in train], y, embedder="bench", version="bench",
                                         sample_weight=weight)
                top = head.logits(X[test], [docs[i] for i in test]).argmax(axis=1)
                right[str(half_life or "none")] += (np.array(head.labels)[top] == truth).tolist()
            svm = tfidf_svm([texts[i] for i in train], y)
            right["tfidf_svm"] += (svm.predict([texts[i] for i in test]) == truth).tolist()
    result = {"set": args.set, "every": args.every, "judged": len(right["tfidf_svm"]),
              "top1": {name: round(float(np.mean(hits)), 4) for name, hits in right.items()}}
    print(json.dumps(result), flush=True)
    out = args.out or Path(f"bench-out/head-recency-{args.set}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
