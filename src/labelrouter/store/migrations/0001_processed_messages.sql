-- One row per message the pipeline processed (or failed to). The decision's explanation is stored whole,
-- and the embedding with its encoder version, so training never re-embeds with the same encoder.
CREATE TABLE processed_messages (
    message_id         TEXT PRIMARY KEY,
    thread_id          TEXT,
    rfc822_id          TEXT,
    subject            TEXT,
    sender             TEXT,
    message_date       TEXT,
    status             TEXT NOT NULL CHECK (status IN ('labeled', 'failed')),
    error              TEXT,
    attempts           INTEGER NOT NULL DEFAULT 1,
    summary            TEXT,
    summarizer         TEXT,
    label_applied      TEXT,
    top_label          TEXT,
    fallback           INTEGER,
    confidence         REAL,
    margin             REAL,
    threshold          REAL,
    candidates         TEXT,   -- JSON: top-K [{label, similarity, router_weight, head_weight, final_score}]
    router_weights     TEXT,   -- JSON: {label: 0..100}
    head_weights       TEXT,   -- JSON: {label: 0..1}
    final_scores       TEXT,   -- JSON: {label: 0..100}
    label_ids_before   TEXT,   -- JSON list: mailbox label ids at processing time
    label_ids_after    TEXT,   -- JSON list: after apply
    archived           INTEGER,
    embedding          BLOB,   -- float32 little-endian
    embedding_dim      INTEGER,
    encoder_version    TEXT,
    model_version      TEXT,
    labels_hash        TEXT,
    degraded           TEXT,   -- JSON list of what degraded (e.g. LLM summarizer unavailable)
    processed_at       TEXT NOT NULL,
    label_ids_current  TEXT,   -- filled by label syncs (feedback)
    labels_synced_at   TEXT
);
CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at);
CREATE INDEX processed_messages_unsynced ON processed_messages (labels_synced_at) WHERE labels_synced_at IS NULL;
