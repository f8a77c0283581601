"""Helpers shared by tests."""

from __future__ import annotations

import numpy as np


def eml(subject: str, body: str, *, sender: str = "Ann <ann@example.com>", extra_headers: str = "",
        content_type: str = "text/plain; charset=utf-8") -> bytes:
    return (
        f"From: {sender}\r\nTo: you@example.org\r\nSubject: {subject}\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{abs(hash((subject, body)))}@example.com>\r\n{extra_headers}"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n"
    ).encode()


def separable_examples(encoder, names: list[str], per_label: int, *, dated: bool = True) -> list[dict]:
    """Gold examples whose vectors separate by label (one strong dimension each), dated day by day or
    undated, embedded as if by `encoder`."""
    rng = np.random.default_rng(0)
    rows = []
    for j, name in enumerate(names):
        for i in range(per_label):
            vector = rng.normal(size=encoder.dim).astype("<f4")
            vector[j] += 8
            vector /= np.linalg.norm(vector)
            rows.append({"example_id": f"gold:{name}:{i}", "message_id": f"{name}:{i}", "label": name,
                         "kind": "gold", "rejected_label": None, "source": "test", "split": None, "subject": "s",
                         "embedding": vector.tobytes(), "embedding_dim": encoder.dim,
                         "encoder_version": encoder.version,
                         "occurred_at": f"2024-01-{i + 1:02d}" if dated else None, "created_at": "2024"})
    return rows
