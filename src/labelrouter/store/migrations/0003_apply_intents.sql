-- Crash-safe apply: a decision is recorded as status 'applying' (with the mailbox label id it intends)
-- before the mailbox changes, and becomes 'labeled' after. A run finding 'applying' rows repairs them.
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt.
CREATE TABLE processed_messages_v3 (
    message_id         TEXT PRIMARY KEY,
    thread_id          TEXT,
    rfc822_id          TEXT,
    subject            TEXT,
    sender             TEXT,
    message_date       TEXT,
    status             TEXT NOT NULL CHECK (status IN ('labeled', 'failed', 'applying')),
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
    candidates         TEXT,
    router_weights     TEXT,
    head_weights       TEXT,
    final_scores       TEXT,
    label_ids_before   TEXT,
    label_ids_after    TEXT,
    archived           INTEGER,
    embedding          BLOB,
    embedding_dim      INTEGER,
    encoder_version    TEXT,
    model_version      TEXT,
    labels_hash        TEXT,
    degraded           TEXT,
    processed_at       TEXT NOT NULL,
    label_ids_current  TEXT,
    labels_synced_at   TEXT,
    intent_label_id    TEXT,   -- the mailbox label id apply is about to give (status 'applying')
    archive_threshold  REAL    -- the confidence archiving needed for this decision
);
INSERT INTO processed_messages_v3 (
    message_id, thread_id, rfc822_id, subject, sender, message_date, status, error, attempts, summary, summarizer,
    label_applied, top_label, fallback, confidence, margin, threshold, candidates, router_weights, head_weights,
    final_scores, label_ids_before, label_ids_after, archived, embedding, embedding_dim, encoder_version,
    model_version, labels_hash, degraded, processed_at, label_ids_current, labels_synced_at)
SELECT
    message_id, thread_id, rfc822_id, subject, sender, message_date, status, error, attempts, summary, summarizer,
    label_applied, top_label, fallback, confidence, margin, threshold, candidates, router_weights, head_weights,
    final_scores, label_ids_before, label_ids_after, archived, embedding, embedding_dim, encoder_version,
    model_version, labels_hash, degraded, processed_at, label_ids_current, labels_synced_at
FROM processed_messages;
DROP TABLE processed_messages;
ALTER TABLE processed_messages_v3 RENAME TO processed_messages;
CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at);
CREATE INDEX processed_messages_unsynced ON processed_messages (labels_synced_at) WHERE labels_synced_at IS NULL;
CREATE INDEX processed_messages_pending ON processed_messages (status) WHERE status <> 'labeled';
