-- Crash-safe apply: status 'applying' is the intent recorded before the mailbox changes.
ALTER TABLE processed_messages DROP CONSTRAINT processed_messages_status_check;
ALTER TABLE processed_messages ADD CONSTRAINT processed_messages_status_check
    CHECK (status IN ('labeled', 'failed', 'applying'));
ALTER TABLE processed_messages ADD COLUMN intent_label_id TEXT;
ALTER TABLE processed_messages ADD COLUMN archive_threshold DOUBLE PRECISION;
CREATE INDEX processed_messages_pending ON processed_messages (status) WHERE status <> 'labeled';
