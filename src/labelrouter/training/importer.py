"""Labeled sets in the `../shared/data` format (JSONL or JSONL.gz + taxonomy.json) → stored gold examples."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelrouter.errors import ConfigError
from labelrouter.labels import LabelSet, load_label_set
from labelrouter.mail.clean import clean_body
from labelrouter.models.encoder import Encoder
from labelrouter.models.router import document_of, embedding_text
from labelrouter.state import EmailMessage
from labelrouter.store.base import Store
from labelrouter.store.records import MAX_STORED_DOCUMENT, MAX_STORED_TEXT, utcnow
from labelrouter.summarize import offline_summary


@dataclass
class LabeledSet:
    name: str
    taxonomy: LabelSet
    rows: list[dict[str, Any]]
    oos_label: str | None = None


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_labeled_set(messages: Path, taxonomy: Path, *, oos_label: str | None = None) -> LabeledSet:
    """Read and validate; every problem is one ConfigError naming the file (and line)."""
    labels = load_label_set(taxonomy, require_fallback=False)
    rows: list[dict[str, Any]] = []
    try:
        with _open(messages) as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{messages}: line {number}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("label"), str) or not row.get("id"):
                    raise ConfigError(f"{messages}: line {number}: each row needs an 'id' and a 'label'")
                rows.append(row)
    except FileNotFoundError:
        raise ConfigError(f"messages file not found: {messages}") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {messages}: {exc}") from None
    if not rows:
        raise ConfigError(f"{messages}: no messages in the file")
    counts = Counter(row["label"] for row in rows)
    unknown = {name: n for name, n in counts.items() if name not in labels and name != oos_label}
    if unknown:
        listed = ", ".join(f"{name!r} ({n})" for name, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:5])
        hint = "" if oos_label else "; name the out-of-scope label with --oos-label"
        raise ConfigError(f"{messages}: {sum(unknown.values())} rows have labels not in {taxonomy}: {listed}{hint}")
    if not any(name in counts for name in labels.names):
        raise ConfigError(f"{messages}: none of the {len(labels)} labels of {taxonomy} occurs in the messages")
    name = json.loads(taxonomy.read_text(encoding="utf-8")).get("dataset") or messages.parent.name
    return LabeledSet(str(name), labels, rows, oos_label)


def row_message(row: dict[str, Any], snippet_chars: int = 1_500) -> EmailMessage:
    """A data-set row as the graph's input message (body cleaned the same way as parsed mail)."""
    body = clean_body(str(row.get("body") or ""))
    recipients = [str(row[key]) for key in ("to", "cc") if row.get(key)]
    return EmailMessage(id=str(row["id"]), subject=str(row.get("subject") or ""), sender=str(row.get("sender") or ""),
                        recipients=recipients, body=body, snippet=body[:snippet_chars])


def row_text(row: dict[str, Any], snippet_chars: int = 1_500) -> str:
    """Exactly what the router embeds for this row at inference time."""
    message = row_message(row, snippet_chars)
    return embedding_text(message, offline_summary(message), snippet_chars)


def row_text_and_document(row: dict[str, Any], snippet_chars: int = 1_500) -> tuple[str, str]:
    """`row_text` and exactly the document the head reads for this row at inference time, from one
    cleaning of the body (most of the cost of either)."""
    message = row_message(row, snippet_chars)
    return embedding_text(message, offline_summary(message), snippet_chars), document_of(message)


def import_examples(store: Store, encoder: Encoder, data: LabeledSet, *, kind: str = "gold",
                    snippet_chars: int = 1_500, batch_size: int = 256,
                    progress: Callable[[int], None] | None = None) -> int:
    """Embed every in-scope row once and store it as an example; returns how many were stored."""
    rows = [r for r in data.rows if r["label"] != data.oos_label]
    source = f"import:{data.name}"
    # Undated rows have no time order, and data files are often grouped by label: give them a seeded
    # random order, or the time-ordered validation split would be a block of a few labels.
    order = np.random.default_rng(0).permutation(len(rows))
    stored = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        texts, documents = zip(*(row_text_and_document(r, snippet_chars) for r in chunk), strict=True)
        vectors = encoder.encode(list(texts))
        records = []
        for offset, (row, vector, text, document) in enumerate(zip(chunk, vectors, texts, documents, strict=True)):
            records.append({
                "example_id": f"{source}:{row['id']}", "message_id": str(row["id"]), "label": row["label"],
                "kind": kind, "rejected_label": None, "source": source, "split": row.get("split"),
                "subject": str(row.get("subject") or "")[:500], "embedding": vector.astype("<f4").tobytes(),
                "embedding_dim": int(vector.shape[0]), "encoder_version": encoder.version,
                "occurred_at": row.get("date") or f"#{order[start + offset]:09d}",
                "created_at": utcnow(),
                "embedded_text": text[:MAX_STORED_TEXT] if store.store_text else None,
                "document": document[:MAX_STORED_DOCUMENT] if store.store_text else None,
            })
        stored += store.add_examples(records)
        if progress:
            progress(len(chunk))
    return stored

