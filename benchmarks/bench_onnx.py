"""The encoder table of issue 11: the packaged MiniLM through torch fp32, ONNX Runtime fp32 and ONNX Runtime
with dynamic int8 quantization, in one run — messages per second on the same mail, cold start (a new process
until its first vector), peak memory of that process, how close the vectors are to torch's, and top-1 on
clinc150 and 20newsgroups (`eval --protocol full`'s configurations, the head retrained on each backend's
own vectors).

The ONNX files are exported locally from the packaged weights (`labelrouter.models.onnx_encoder`, never
downloaded; `pip install -e ".[onnx]"`). Throughput and cold start run in child processes, one backend at a
time, alternated over `--repeats`; medians are reported.

    .venv/bin/python benchmarks/bench_onnx.py [--newsgroups 4000] [--clinc all] [--speed-texts 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BACKENDS = ("torch_fp32", "onnx_fp32", "onnx_int8")


def build(backend: str, cache_dir: Path):
    if backend == "torch_fp32":
        from labelrouter.models.encoder import load_encoder

        return load_encoder(None, "cpu", "off", 64)
    from labelrouter.models.onnx_encoder import OnnxEncoder

    return OnnxEncoder(cache_dir, quantized=backend == "onnx_int8")


def child(backend: str, texts_file: Path, cache_dir: Path) -> None:
    """In a fresh process: build the encoder, embed one text (→ 'ready'), then time the texts."""
    encoder = build(backend, cache_dir)
    encoder.encode(["warm-up"])
    print("ready", flush=True)
    texts = json.loads(texts_file.read_text())
    start = time.perf_counter()
    encoder.encode(texts)
    rate = len(texts) / (time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"messages_per_s": rate, "peak_rss_mb": peak_mb}), flush=True)


def speed(backend: str, texts_file: Path, cache_dir: Path) -> dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--child", backend, "--texts", str(texts_file),
                                "--cache-dir", str(cache_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline()
    cold = time.perf_counter() - start
    result = json.loads(process.stdout.readline())
    process.wait()
    assert ready.strip() == "ready", ready
    return {"cold_start_s": cold, **result}


def load(name: str, n: int | None) -> object:
    from labelrouter.training.importer import read_labeled_set

    folder = DATA / name
    data = read_labeled_set(folder / "messages.jsonl.gz", folder / "taxonomy.json",
                            oos_label="oos" if name == "clinc150" else None)
    if n is not None and n < len(data.rows):
        keep = sorted(random.Random(0).sample(range(len(data.rows)), n))
        data = replace(data, rows=[data.rows[i] for i in keep])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--newsgroups", type=int, default=4000, help="20newsgroups messages (a seeded sample)")
    parser.add_argument("--clinc", type=int, default=None, help="clinc150 rows (default: all)")
    parser.add_argument("--speed-texts", type=int, default=400, help="20newsgroups messages timed per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path(".labelrouter/cache"))
    parser.add_argument("--child", choices=BACKENDS)
    parser.add_argument("--texts", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench-out/encoders.json"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.texts, args.cache_dir)
        return

    import numpy as np

    from labelrouter.evaluation.protocols import Evaluator
    from labelrouter.models.encoder import model_fingerprint, packaged_encoder_path
    from labelrouter.models.onnx_encoder import export_onnx
    from labelrouter.models.router import scoring_params
    from labelrouter.settings import load_settings
    from labelrouter.training.importer import row_text_and_document

    source = packaged_encoder_path()
    folder = args.cache_dir / "onnx" / model_fingerprint(source)
    start = time.perf_counter()
    export_onnx(source, folder, quantized=False)
    export_s = {"onnx_fp32": time.perf_counter() - start}
    start = time.perf_counter()
    export_onnx(source, folder, quantized=True)
    export_s["onnx_int8"] = time.perf_counter() - start

    report: dict = {"export_s": export_s, "speed": {}, "accuracy": {}, "vs_torch": {}}
    newsgroups = load("20newsgroups", args.newsgroups)
    texts = [row_text_and_document(r)[0] for r in newsgroups.rows[: args.speed_texts]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    texts_file = args.out.with_suffix(".texts.json")
    texts_file.write_text(json.dumps(texts))
    runs: dict[str, list[dict]] = {b: [] for b in BACKENDS}
    for _ in range(args.repeats):  # alternated
        for backend in BACKENDS:
            runs[backend].append(speed(backend, texts_file, args.cache_dir))
    for backend, results in runs.items():
        report["speed"][backend] = {key: round(statistics.median(r[key] for r in results), 2) for key in results[0]}
    base = report["speed"]["torch_fp32"]["messages_per_s"]
    for backend in BACKENDS:
        report["speed"][backend]["ratio_to_torch"] = round(report["speed"][backend]["messages_per_s"] / base, 3)
    print(json.dumps({"speed": report["speed"], "export_s": export_s}), flush=True)

    encoders = {b: build(b, args.cache_dir) for b in BACKENDS}
    reference = encoders["torch_fp32"].encode(texts)
    for backend in ("onnx_fp32", "onnx_int8"):
        cosine = (encoders[backend].encode(texts) * reference).sum(axis=1)
        report["vs_torch"][backend] = {"cosine_mean": round(float(cosine.mean()), 5),
                                       "cosine_min": round(float(cosine.min()), 5)}
    print(json.dumps({"vs_torch": report["vs_torch"]}), flush=True)

    params = scoring_params(load_settings())
    for name, data in (("clinc150", load("clinc150", args.clinc)), ("20newsgroups", newsgroups)):
        report["accuracy"][name] = {"n": len(data.rows)}
        for backend, encoder in encoders.items():
            start = time.perf_counter()
            # ONNX fp32 shares torch's version (its vectors are torch's to rounding): embed it afresh rather
            # than read torch's cached vectors, so its row is its own.
            cache = None if backend == "onnx_fp32" else args.cache_dir / "eval-embeddings"
            evaluator = Evaluator(data, encoder, params, cache_dir=cache)
            full = evaluator.run("full", [])
            configs = full["configs"]
            report["accuracy"][name][backend] = {
                **{k: round(configs[k]["top1"], 4) for k in ("router_x_head", "head_only", "router_only",
                                                              "dense_head_only") if k in configs},
                "embed_s": round(evaluator.embed_s, 1), "cache_hit": evaluator.cache_hit,
                "total_s": round(time.perf_counter() - start, 1)}
            print(json.dumps({name: {backend: report["accuracy"][name][backend]}}), flush=True)
    del np
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
