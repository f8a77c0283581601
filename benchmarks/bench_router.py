"""Cold-start router benchmark on ../shared/data/20newsgroups (test split).

Runs the same code path as `labelrouter label`: each data-set row is rendered as an RFC 822 message,
parsed and cleaned by `Labeler.parse`, and labeled by the compiled inference graph (`Labeler.label_many`,
micro-batched). What is embedded: subject + body snippet (first `snippet_chars` characters of the cleaned
body; the offline summary is the body's lead, so it is not added twice). Label texts: the taxonomy's
"<parent path> / <name>: <description>".

Reports top-1 and Recall@5 of the cold-start router (head = 1.0 everywhere), warm pipeline throughput next
to the raw encoder throughput on the same texts in the same run, bf16 autocast vs fp32 on this CPU, and
p50/p95 latency of one message through `Labeler.label`.

    .venv/bin/python benchmarks/bench_router.py [--limit N] [--subset 1000] [--out bench-out/router.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from email.message import EmailMessage as MIMEMessage
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from labelrouter.graph.labeler import Labeler  # noqa: E402
from labelrouter.graph.wiring import build_context  # noqa: E402
from labelrouter.labels import load_label_set  # noqa: E402
from labelrouter.models.router import embedding_text  # noqa: E402
from labelrouter.settings import load_settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
from labelrouter.summarize import offline_summary  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data" / "20newsgroups"


def to_rfc822(row: dict) -> bytes:
    msg = MIMEMessage()
    msg["From"] = row.get("sender") or "unknown@example.invalid"
    msg["Subject"] = row.get("subject") or ""
    msg.set_content(row.get("body") or "")
    return msg.as_bytes()


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test messages")
    parser.add_argument("--subset", type=int, default=1000, help="messages for the throughput ratio")
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-out/router.json"))
    args = parser.parse_args()
    if not (args.data / "messages.jsonl.gz").exists():
        sys.exit(f"data set not found: {args.data} (it lives in ../shared/data)")

    # 1. Data: the test split and the taxonomy (no fallback label: every message gets its argmax).
    labels = load_label_set(args.data / "taxonomy.json", require_fallback=False)
    with gzip.open(args.data / "messages.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [r for r in map(json.loads, fh) if r.get("split") == "test"]
    rows = rows[: args.limit] if args.limit else rows
    settings = load_settings(encoder_autocast="off")
    ctx = build_context(settings, labels=labels)
    labeler = Labeler(ctx, settings)
    messages = [labeler.parse(to_rfc822(r), message_id=r["id"]) for r in rows]
    gold = [r["label"] for r in rows]
    print(f"{len(messages)} test messages, {len(labels)} labels, encoder {ctx.encoder.version}", flush=True)

    # 2. Warm-up, then the accuracy pass through the graph (also the full-run throughput).
    labeler.label_many(messages[:64])
    results, full_s = timed(labeler.label_many, messages)
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures[:3]
    top1 = np.mean([r["routing"].label == g for r, g in zip(results, gold, strict=True)])
    recall5 = np.mean([g in [c.label for c in r["routing"].candidates[:5]] for r, g in zip(results, gold, strict=True)])
    print(f"top-1 {top1:.4f}  Recall@5 {recall5:.4f}  ({len(messages) / full_s:.1f} msg/s over the full run)", flush=True)

    # 3. Throughput ratio on one subset, alternating pipeline and raw encoder, 3 rounds, medians.
    subset = messages[: args.subset]
    texts = [embedding_text(m, offline_summary(m), settings.snippet_chars) for m in subset]
    pipe_s, raw_s, bf16_s = [], [], []
    for _ in range(3):
        pipe_s.append(timed(labeler.label_many, subset)[1])
        raw_s.append(timed(ctx.encoder.encode, texts)[1])
        ctx.encoder.use_bf16 = True
        bf16_vectors, seconds = timed(ctx.encoder.encode, texts[:256])
        bf16_s.append(seconds * len(texts) / 256)
        ctx.encoder.use_bf16 = False
    fp32_vectors = ctx.encoder.encode(texts[:256])
    bf16_cos = float(np.min(np.sum(fp32_vectors * bf16_vectors, axis=1)))
    pipe_rate = len(subset) / statistics.median(pipe_s)
    raw_rate = len(subset) / statistics.median(raw_s)
    bf16_rate = len(subset) / statistics.median(bf16_s)

    # 4. Latency of one message at a time (what `labelrouter label` does per message).
    latencies = []
    for m in messages[: args.latency_n]:
        latencies.append(timed(labeler.label, m)[1] * 1000)
    p50, p95 = np.percentile(latencies, [50, 95])

    report = {
        "dataset": "20newsgroups", "split": "test", "protocol": "cold", "n_test": len(messages),
        "encoder": ctx.encoder.version, "torch_threads": torch.get_num_threads(),
        "embedded_text": f"subject + cleaned body snippet (first {settings.snippet_chars} chars; "
                         f"model truncates at {ctx.encoder.model.max_seq_length} tokens)",
        "top1": round(float(top1), 4), "recall@5": round(float(recall5), 4),
        "throughput_msgs_per_s": round(pipe_rate, 2), "raw_encoder_msgs_per_s": round(raw_rate, 2),
        "pipeline_over_raw": round(pipe_rate / raw_rate, 3), "bf16_encoder_msgs_per_s": round(bf16_rate, 2),
        "bf16_min_cosine_vs_fp32": round(bf16_cos, 6), "throughput_subset": len(subset),
        "latency_ms_p50": round(float(p50), 1), "latency_ms_p95": round(float(p95), 1),
        "full_run_msgs_per_s": round(len(messages) / full_s, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
