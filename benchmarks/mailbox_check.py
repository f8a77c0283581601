"""Shared by the crash and concurrency benchmarks: a sample Maildir of N messages, and its invariants."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from labelrouter.demo import sample_messages
from labelrouter.mail.maildir import REGISTRY_FILE, LocalMaildir


def build_mailbox(root: Path, n: int) -> list[str]:
    """n messages written by us (the demo samples, each variant a distinct message)."""
    box = LocalMaildir(root)
    samples = [raw for _, raw in sample_messages()]
    return [box.deliver(f"X-Bench-Variant: {i}\r\n".encode() + samples[i % len(samples)]) for i in range(n)]


def check(root: Path, ids: list[str], stores: list[Path]) -> dict[str, int]:
    """Counts that must all be 0: messages with no label of ours, with two, with no labeled row, lost,
    or whose archived state disagrees with their row."""
    ours = set(json.loads((root / REGISTRY_FILE).read_text())["folders"]) if (root / REGISTRY_FILE).exists() else set()
    where: dict[str, list[str]] = {mid: [] for mid in ids}
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("."))]:
        label = "INBOX" if folder == root else folder.name[1:]
        for sub in ("new", "cur"):
            for entry in (folder / sub).iterdir() if (folder / sub).is_dir() else ():
                uid = entry.name.split(":", 1)[0]
                if uid in where:
                    where[uid].append(label)
    rows: dict[str, dict] = {}
    for store in stores:
        if store.exists():
            conn = sqlite3.connect(store)
            conn.row_factory = sqlite3.Row
            for row in conn.execute("SELECT message_id, status, archived FROM processed_messages"):
                if row["status"] == "labeled":
                    rows.setdefault(row["message_id"], dict(row))
            conn.close()
    labels_per_message = {mid: [x for x in found if x in ours] for mid, found in where.items()}
    counts = Counter()
    for mid in ids:
        carried = labels_per_message[mid]
        counts["lost"] += not where[mid]
        counts["unlabeled"] += bool(where[mid]) and not carried
        counts["double_labeled"] += len(carried) > 1
        counts["unrecorded"] += mid not in rows
        if mid in rows and where[mid]:
            counts["archive_mismatch"] += ("INBOX" not in where[mid]) != bool(rows[mid]["archived"])
    return {k: int(counts[k]) for k in ("unlabeled", "double_labeled", "unrecorded", "lost", "archive_mismatch")}
