-- Labeled examples the training graph learns from (same columns as the SQLite schema).
CREATE TABLE examples (
    example_id       TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL,
    label            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('gold', 'correction', 'confirmation', 'silver')),
    rejected_label   TEXT,
    source           TEXT NOT NULL,
    split            TEXT,
    subject          TEXT,
    embedding        BYTEA NOT NULL,
    embedding_dim    INTEGER NOT NULL,
    encoder_version  TEXT NOT NULL,
    occurred_at      TEXT,
    seq              BIGINT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX examples_encoder_time ON examples (encoder_version, occurred_at, seq);
