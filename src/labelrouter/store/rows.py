"""The store's rows, typed: what each query gives back, by column. A query that selects some columns
gives those keys only (the types are `total=False`); a JSON column comes back as its JSON text, a flag as
0 or 1, a time as ISO 8601 text, on every backend (`tests/store/test_store_contract.py`)."""

from __future__ import annotations

from typing import TypedDict


class DecisionRow(TypedDict, total=False):
    """A row of `processed_messages`: one message's decision, what was applied, and what syncs read back."""

    message_id: str
    thread_id: str | None
    subject: str | None
    sender: str | None
    message_date: str | None
    status: str  # labeled | applying | failed
    error: str | None
    attempts: int
    summary: str | None
    summarizer: str | None
    embedded_text: str | None
    document: str | None
    label_applied: str | None
    top_label: str | None
    fallback: int | None
    fallback_on: str | None
    confidence: float | None
    margin: float | None
    threshold: float | None
    archive_threshold: float | None
    candidates: str | None  # JSON: the top candidates with their weights
    router_weights: str | None  # JSON: {label: 0..100}
    head_weights: str | None  # JSON: {label: 0..1}
    final_scores: str | None  # JSON: {label: 0..100}
    label_ids_before: str | None  # JSON list
    label_ids_after: str | None  # JSON list
    intent_label_id: str | None
    archived: int | None
    shadow: int | None
    embedding: bytes | None
    embedding_dim: int | None
    encoder_version: str | None
    model_version: str | None
    labels_hash: str | None
    degraded: str | None  # JSON list
    processed_at: str
    # What syncs read back (`feedback.sync`) and mining concluded (`feedback.mining`).
    label_ids_current: str | None  # JSON list
    labels_synced_at: str | None
    present: int | None
    seen: int | None
    in_inbox: int | None
    important: int | None
    touched_at: str | None
    undone_at: str | None
    feedback: str | None
    effective_label: str | None
    mined_at: str | None


class ExampleRow(TypedDict, total=False):
    """A row of `examples`: one labeled example the head (and the retrieval stages) train on."""

    example_id: str  # '<source>:<message id>'
    message_id: str
    label: str
    kind: str  # gold | correction | confirmation | silver
    rejected_label: str | None  # a correction's wrongly applied label
    source: str
    split: str | None
    subject: str | None
    embedded_text: str | None
    document: str | None
    embedding: bytes
    embedding_dim: int
    encoder_version: str
    occurred_at: str | None
    seq: int
    created_at: str


class SyncUpdate(TypedDict, total=False):
    """What a sync read for one message (`Store.record_sync`)."""

    message_id: str
    label_ids_current: list[str]
    synced_at: str
    present: bool
    seen: bool
    in_inbox: bool
    important: bool
    touched_at: str | None


class Verdict(TypedDict):
    """Mining's verdict on one message (`Store.record_feedback`)."""

    message_id: str
    feedback: str
    effective_label: str | None
    mined_at: str
