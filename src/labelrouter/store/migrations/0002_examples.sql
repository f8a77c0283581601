-- Labeled examples the training graph learns from: imported gold sets now, mined feedback later.
-- Embeddings are stored with the encoder version that made them; training reads only the current one's.
CREATE TABLE examples (
    example_id       TEXT PRIMARY KEY,   -- '<source>:<message id>'
    message_id       TEXT NOT NULL,
    label            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('gold', 'correction', 'confirmation', 'silver')),
    rejected_label   TEXT,               -- a correction's wrongly applied label (a hard negative)
    source           TEXT NOT NULL,      -- e.g. 'import:clinc150', 'feedback'
    split            TEXT,               -- the data set's own split, when it has one
    subject          TEXT,
    embedding        BLOB NOT NULL,
    embedding_dim    INTEGER NOT NULL,
    encoder_version  TEXT NOT NULL,
    occurred_at      TEXT,               -- message date (or file order): time-ordered splits
    seq              INTEGER NOT NULL,   -- insertion order, the tie-breaker for time order
    created_at       TEXT NOT NULL
);
CREATE INDEX examples_encoder_time ON examples (encoder_version, occurred_at, seq);
