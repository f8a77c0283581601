-- Feedback: what label syncs read back from the mailbox, and what mining made of it.
--   present, seen, in_inbox, important: the message's state at the last sync (1/0)
--   touched_at: when a sync first saw the user change the message (labels, read, archived)
--   feedback: mining's verdict ('correction', 'rejection', 'confirmation', 'reorganised', 'ambiguous',
--             'gone', 'silver', 'undone', or NULL for nothing yet); effective_label: the label the user's
--             filing says
--   shadow: decided and recorded without touching the mailbox (`run --shadow`)
--   undone_at: when `labelrouter undo` took our label off again (never mined as the user's correction)
ALTER TABLE processed_messages ADD COLUMN present INTEGER;
ALTER TABLE processed_messages ADD COLUMN seen INTEGER;
ALTER TABLE processed_messages ADD COLUMN in_inbox INTEGER;
ALTER TABLE processed_messages ADD COLUMN important INTEGER;
ALTER TABLE processed_messages ADD COLUMN touched_at TEXT;
ALTER TABLE processed_messages ADD COLUMN feedback TEXT;
ALTER TABLE processed_messages ADD COLUMN effective_label TEXT;
ALTER TABLE processed_messages ADD COLUMN mined_at TEXT;
ALTER TABLE processed_messages ADD COLUMN shadow INTEGER;
ALTER TABLE processed_messages ADD COLUMN undone_at TEXT;
CREATE INDEX processed_messages_feedback ON processed_messages (feedback);
-- Where a mailbox's change feed stands (Gmail: the history id a sync read up to).
CREATE TABLE sync_cursors (
    mailbox     TEXT PRIMARY KEY,
    cursor      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
