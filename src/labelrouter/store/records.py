"""What the store keeps per processed message, independent of the backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from labelrouter.state import LabelingState, Routing

MAX_STORED_TEXT = 4_000  # characters of embedded text kept per message (subject + summary + body snippet)
MAX_STORED_DOCUMENT = 8_000  # characters of a document (addresses, subject, body up to lexical.DOCUMENT_CHARS)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def labeled_row(state: LabelingState, *, status: str = "labeled", intent_label_id: str | None = None,
                store_text: bool = True) -> dict[str, Any]:
    """Flatten a routed and applied (or about to be applied) graph state into one `processed_messages` row.

    `store_text=False` keeps no text derived from the body (the summary is the body's lead)."""
    routing, applied = state.routing, state.applied
    assert routing is not None and applied is not None, "only a routed and applied state is persisted"
    embedding = np.asarray(state.embedding, dtype="<f4") if state.embedding is not None else None
    return {
        **_message_columns(state),
        "status": status,
        "error": None,
        "intent_label_id": intent_label_id,
        "summary": state.summary.text if state.summary and store_text else None,
        "embedded_text": state.embedded_text[:MAX_STORED_TEXT] if store_text and state.embedded_text else None,
        "document": state.document[:MAX_STORED_DOCUMENT] if store_text and state.document else None,
        "summarizer": state.summary.source if state.summary else None,
        "label_applied": applied.label,  # what the mailbox carries, which may be an earlier run's label
        **decision_columns(routing),
        "label_ids_before": json.dumps(applied.label_ids_before, ensure_ascii=False),
        "label_ids_after": json.dumps(applied.label_ids_after, ensure_ascii=False),
        "archived": int(applied.archive),
        "shadow": int(applied.status == "shadow"),
        "embedding": embedding.tobytes() if embedding is not None else None,
        "embedding_dim": int(embedding.shape[0]) if embedding is not None else None,
        "degraded": json.dumps(state.errors, ensure_ascii=False),
        "processed_at": utcnow(),
    }


def decision_columns(routing: Routing) -> dict[str, Any]:
    """The columns that describe a decision (what the router chose and why, and which models chose it)."""
    return {
        "top_label": routing.top_label,
        "fallback": int(routing.fallback),
        "confidence": routing.confidence,
        "margin": routing.margin,
        "threshold": routing.threshold,
        "fallback_on": routing.fallback_on,
        "archive_threshold": routing.archive_threshold,
        "candidates": json.dumps([c.model_dump() for c in routing.candidates], ensure_ascii=False),
        "router_weights": json.dumps(routing.router_weights, ensure_ascii=False),
        "head_weights": json.dumps(routing.head_weights, ensure_ascii=False),
        "final_scores": json.dumps(routing.final_scores, ensure_ascii=False),
        "encoder_version": routing.encoder_version,
        "model_version": routing.model_version,
        "labels_hash": routing.labels_hash,
    }


def failed_row(state: LabelingState | None, message_id: str, error: str) -> dict[str, Any]:
    """A row for a message that could not be processed; what is known of it is kept."""
    base = _message_columns(state) if state is not None else {"message_id": message_id}
    return {**base, "message_id": message_id, "status": "failed", "error": error[:2000], "processed_at": utcnow()}


def _message_columns(state: LabelingState) -> dict[str, Any]:
    msg = state.message
    return {
        "message_id": msg.id,
        "thread_id": msg.thread_id,
        "rfc822_id": msg.rfc822_id,
        "subject": msg.subject[:500],
        "sender": msg.sender[:500],
        "message_date": msg.date.isoformat() if msg.date else None,
    }


def decode_embedding(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4").copy()
