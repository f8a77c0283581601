"""The stream through the real loop on shared sets and drift scenarios, one table: labelrouter against TF-IDF
+ SVM and frozen-embedding LR retrained at the same points in the same run, each baseline also with a
fallback of its own at labelrouter's coverage (ranked by its own margin).

    .venv/bin/python -u benchmarks/bench_stream.py --sets enron-lokay-m,enron-beck-s \\
        --limited 20newsgroups,clinc150 --limit 3000 --scenarios all --out bench-out/streams.json

A shared set runs in date order (`eval --protocol stream`, R = 1.0, a reading user, train every 100); one
without dates (20newsgroups, clinc150) in a seeded shuffle, its first `--limit` messages. A scenario
(`labelrouter.evaluation.scenarios`) runs at n = `--scenario-n`, training every 100 messages, with the real encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_retrieval import load_set  # noqa: E402 - benchmarks/ is the script's own folder

from labelrouter.evaluation.scenarios import SCENARIOS, lessons, scenario  # noqa: E402
from labelrouter.evaluation.splits import time_order  # noqa: E402
from labelrouter.evaluation.stream import StreamConfig, run_stream  # noqa: E402
from labelrouter.models.encoder import load_encoder, packaged_encoder_path  # noqa: E402
from labelrouter.training.importer import LabeledSet  # noqa: E402


def row(name: str, report: dict, seconds: float, extra: dict | None = None) -> dict:
    at = report["baselines_at_coverage"]
    return {"stream": name, "n": report["n"], "prequential": report["prequential_accuracy"],
            "top_label": report["top_label_accuracy"], "coverage": report["coverage"], "precision": report["precision"],
            "tfidf_svm": report["baselines"]["tfidf_svm"], "frozen_lr": report["baselines"]["frozen_lr"],
            "tfidf_svm_precision_at_coverage": at["tfidf_svm"], "frozen_lr_precision_at_coverage": at["frozen_lr"],
            "promotions": report["promotions"], "trainings": len(report["training_decisions"]),
            "seconds": round(seconds), "decisions": report["training_decisions"],
            "windows": [round(w["accuracy"], 3) for w in report["windows"]], **(extra or {})}


def run(name: str, data: LabeledSet, encoder, config: StreamConfig, events=None) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as work:
        report = run_stream(data, encoder, Path(work), config, events=events,
                            progress=lambda m: print(f"  {name}: {m}", flush=True))
    return report | {"_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="enron-lokay-m,enron-beck-s", help="dated sets, run whole")
    parser.add_argument("--limited", default="", help="sets run on their first --limit messages (seeded shuffle)")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--scenarios", default="", help="comma-separated, or all")
    parser.add_argument("--scenario-n", type=int, default=1200)
    parser.add_argument("--train-every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-out/streams.json"))
    args = parser.parse_args()
    encoder = load_encoder(packaged_encoder_path())
    rows = []
    for name in [s for s in args.sets.split(",") if s] + [s for s in args.limited.split(",") if s]:
        data = load_set(name)
        if name in args.limited.split(","):
            order = time_order(range(len(data.rows)), [r.get("date") for r in data.rows])[: args.limit]
            data = LabeledSet(data.name, data.taxonomy, [data.rows[i] for i in order], data.oos_label)
        report = run(name, data, encoder, StreamConfig(train_every=args.train_every))
        rows.append(row(name, report, report["_seconds"]))
        print(json.dumps(rows[-1]), flush=True)
    names = list(SCENARIOS) if args.scenarios == "all" else [s for s in args.scenarios.split(",") if s]
    for name in names:
        case = scenario(name, n=args.scenario_n)
        config = StreamConfig(train_every=args.train_every, correction_rate=case.correction_rate, record=True)
        report = run(f"scenario {name}", case.data, encoder, config, events=case.events)
        found = {k: v for k, v in lessons(report, case).items() if k not in ("prequential_accuracy", "tfidf_svm")}
        rows.append(row(f"scenario {name}", report, report["_seconds"], found))
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print("| stream | prequential | top label | coverage | precision | TF-IDF + SVM | frozen LR | "
          "TF-IDF / LR precision at our coverage | promotions |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stream']} ({r['n']}) | {r['prequential']:.4f} | {r['top_label']:.4f} | {r['coverage']:.3f} | "
              f"{r['precision']:.4f} | {r['tfidf_svm']:.4f} | {r['frozen_lr']:.4f} | "
              f"{r['tfidf_svm_precision_at_coverage']:.4f} / {r['frozen_lr_precision_at_coverage']:.4f} | "
              f"{r['promotions']} / {r['trainings']} |")


if __name__ == "__main__":
    main()
