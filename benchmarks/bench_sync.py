"""Label sync of 10,000 stored messages, on SQLite and on PostgreSQL: time and store round trips.

    python benchmarks/bench_sync.py --messages 10000 --touched 300 --out bench-out/sync.json

A Maildir of N messages, each labeled by us (a hard link in its label folder, as `run` leaves it) and
recorded in the store; the user then moves `--touched` of them to another label. Measured, per backend:
the incremental sync (every message unsynced: one Maildir listing, one batched write), mining after it,
a second incremental sync (only the untouched ones are looked at again), and a nightly sync of all N.
Store round trips are counted at the store's three primitives (a batched write is one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from labelrouter.feedback import mine, sync
from labelrouter.labels import load_label_set
from labelrouter.mail.maildir import LocalMaildir, folder_name
from labelrouter.settings import PACKAGED_LABELS, load_settings
from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing
from labelrouter.store import open_store

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def counting(store) -> dict[str, int]:
    counts = {"query": 0, "execute": 0, "transaction": 0}
    for name in counts:
        real = getattr(store, f"_{name}")

        def wrapped(*args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)

        setattr(store, f"_{name}", wrapped)
    return counts


def build(work: Path, store, n: int, labels) -> tuple[LocalMaildir, dict[str, str]]:
    box = LocalMaildir(work / "mailbox")
    names = [x for x in labels.names if x != labels.fallback]
    box.ensure_labels(labels.names)
    applied = {}
    # Written as `run` leaves them (the file in the inbox, hard-linked into its label folder), directly on
    # disk: delivering 10,000 messages one by one through the mailbox object is not what is measured.
    for i in range(n):
        mid = f"1700000000.M{i}P1Q1.bench"
        label = names[i % len(names)]
        path = box.root / "cur" / f"{mid}:2,"
        path.write_bytes(f"From: a@example.com\nSubject: message {i}\n\nbody {i}\n".encode())
        os.link(path, box.root / f".{folder_name(label)}" / "cur" / path.name)
        applied[mid] = label
    rows = []
    for mid, label in applied.items():
        routing = Routing(label=label, top_label=label, router_weights={}, head_weights={}, final_scores={},
                          candidates=[], confidence=0.8, margin=30.0, threshold=0.35, fallback=False,
                          reason="argmax", model_version="bench", encoder_version="bench", labels_hash="h")
        result = ApplyResult(status="applied", label=label, archive=False, label_ids_before=["INBOX"],
                             label_ids_after=sorted(["INBOX", folder_name(label)]))
        rows.append(LabelingState(message=EmailMessage(id=mid, subject="s", body="b"), routing=routing,
                                  applied=result, embedding=[0.5] * 8, embedded_text="s\nb"))
    for state in rows:
        store.record_intent(state, folder_name(state.routing.label))
        store.complete(state.message.id, state.applied)
    return box, applied


def measure(backend: str, n: int, touched: int, work: Path) -> dict:
    labels = load_label_set(PACKAGED_LABELS)
    overrides = {"home": work / "home"}
    if backend == "postgres":
        from tests.postgres import URL, ensure_postgres

        problem = ensure_postgres()
        if problem:
            return {"skipped": problem}
        overrides.update(database_url=URL, database_schema=f"bench_sync_{os.getpid()}")
    settings = load_settings(**overrides)
    store = open_store(settings)
    try:
        box, applied = build(work, store, n, labels)
        names = [x for x in labels.names if x != labels.fallback]
        for i, (mid, label) in enumerate(list(applied.items())[:touched]):
            target = names[(names.index(label) + 1 + i % 3) % len(names)]
            src = box.root / f".{folder_name(label)}" / "cur"
            name = next(f for f in os.listdir(src) if f.split(":")[0] == mid)
            os.rename(src / name, box.root / f".{folder_name(target)}" / "cur" / name)
        counts = counting(store)
        ids_to_names = {folder_name(x): x for x in labels.names}
        out: dict = {"messages": n, "touched": touched}
        for step, fn in [("incremental_sync", lambda: sync(store, box)),
                         ("mining", lambda: mine(store, labels, ids_to_names)),
                         ("incremental_sync_again", lambda: sync(store, box)),
                         ("nightly_sync", lambda: sync(store, box, nightly_days=30))]:
            for key in counts:
                counts[key] = 0
            start = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
            detail = ({"looked": result.looked, "touched": result.touched, "recorded": result.recorded}
                      if hasattr(result, "looked") else {"corrections": result.verdicts.get("correction", 0)})
            out[step] = {"seconds": round(seconds, 2), "round_trips": dict(counts), **detail}
        return out
    finally:
        if backend == "postgres":
            store._execute("dropping the benchmark schema", f"DROP SCHEMA {overrides['database_schema']} CASCADE")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--touched", type=int, default=300)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out" / "sync.json")
    args = parser.parse_args()
    report = {}
    for backend in ("sqlite", "postgres"):
        with tempfile.TemporaryDirectory() as tmp:
            report[backend] = measure(backend, args.messages, args.touched, Path(tmp))
            print(backend, json.dumps(report[backend]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
