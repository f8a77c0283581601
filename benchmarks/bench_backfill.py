"""A backfill through `labelrouter run`, end to end: 10,000 20newsgroups messages delivered into a fresh
Maildir and labeled by the real `run` path (sync, graph, store, Maildir), with a head trained on an import
of other messages; the wall time and messages per second, next to the raw encoder on a sample of the same
embedded texts in the same run (the issue's bar: pipeline ≥ 0.9 × raw).

    .venv/bin/python benchmarks/bench_backfill.py [--messages 10000] [--train 1500] [--raw-sample 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as Mime
from email.utils import format_datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "20newsgroups"


def rfc822(row: dict, when: datetime) -> bytes:
    msg = Mime()
    msg["From"] = row.get("sender") or "someone@example.invalid"
    msg["To"] = "me@example.invalid"
    msg["Subject"] = row.get("subject") or ""
    msg["Date"] = format_datetime(when)
    msg.set_content(row.get("body") or "")
    return msg.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--train", type=int, default=1_500, help="imported examples the head is trained on")
    parser.add_argument("--raw-sample", type=int, default=1_000)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--out", type=Path, default=Path("bench-out/backfill.json"))
    args = parser.parse_args()

    from labelrouter.cli.run import label_mailbox
    from labelrouter.labels import Label, LabelSet, load_label_set
    from labelrouter.mail.maildir import LocalMaildir
    from labelrouter.models.encoder import encoder_for
    from labelrouter.settings import load_settings
    from labelrouter.store import open_store
    from labelrouter.training import build_training_context, run_training
    from labelrouter.training.importer import import_examples, read_labeled_set

    data = read_labeled_set(DATA / "messages.jsonl.gz", DATA / "taxonomy.json")
    rows = data.rows[:]
    random.Random(0).shuffle(rows)
    train, backfill = rows[: args.train], rows[args.train : args.train + args.messages]
    work = Path(tempfile.mkdtemp(prefix="labelrouter-backfill-"))
    taxonomy = load_label_set(DATA / "taxonomy.json", require_fallback=False)
    labels = LabelSet((*taxonomy.labels, Label("other", None, "Mail that fits no other label")), taxonomy.nodes, "other")
    (work / "labels.json").write_text(json.dumps(labels.to_json(), ensure_ascii=False), encoding="utf-8")
    settings = load_settings(home=work / "home", labels_path=work / "labels.json", mailbox_path=work / "Mail",
                             encoder_backend=args.backend, encoder_autocast="off")
    encoder = encoder_for(settings)
    store = open_store(settings)
    start = time.perf_counter()
    import_examples(store, encoder, data.__class__(data.name, data.taxonomy, train))
    state = run_training(build_training_context(settings, store, labels=labels))
    store.close()
    prepared_s = time.perf_counter() - start
    print(f"head: {state.decision} ({prepared_s:.0f} s to import {len(train)} and train)", flush=True)

    box = LocalMaildir(work / "Mail")
    first = datetime(2024, 1, 1, tzinfo=UTC)
    truth = {box.deliver(rfc822(row, first + timedelta(minutes=i))): row["label"] for i, row in enumerate(backfill)}
    start = time.perf_counter()
    report = label_mailbox(settings, work / "Mail", False, None)
    run_s = time.perf_counter() - start
    labeled = report.count("applied") + report.count("unchanged")
    store = open_store(settings)
    stored = store.rows("labeled")
    texts = [r["embedded_text"] for r in stored if r["embedded_text"]]
    top1 = sum(r["label_applied"] == truth.get(r["message_id"]) for r in stored) / max(1, len(stored))
    store.close()
    sample = random.Random(1).sample(texts, min(args.raw_sample, len(texts)))
    start = time.perf_counter()
    encoder.encode(sample)
    raw_rate = len(sample) / (time.perf_counter() - start)
    result = {"messages": len(backfill), "labeled": labeled, "failed": report.count("failed"), "backend": args.backend,
              "encoder": encoder.version, "head": state.decision, "top1": round(top1, 4), "run_s": round(run_s, 1),
              "messages_per_s": round(len(backfill) / run_s, 2), "raw_encoder_messages_per_s": round(raw_rate, 2),
              "pipeline_over_raw": round(len(backfill) / run_s / raw_rate, 3), "work": str(work)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
