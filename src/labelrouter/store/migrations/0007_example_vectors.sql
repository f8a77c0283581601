-- Example vectors of encoders other than the one `examples` holds: a candidate bi-encoder's re-embedding
-- of the stored texts (judged before it is promoted) and, once another encoder is promoted, the previous
-- one's (a rollback swaps them back instead of embedding everything again).
CREATE TABLE example_vectors (
    example_id       TEXT NOT NULL,
    encoder_version  TEXT NOT NULL,
    embedding        BLOB NOT NULL,
    embedding_dim    INTEGER NOT NULL,
    PRIMARY KEY (example_id, encoder_version)
);
