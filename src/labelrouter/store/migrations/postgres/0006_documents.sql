-- The document each decision and example's lexical features are read from (`models.lexical`: sender and
-- recipient addresses, subject, the capped body), so retraining the head never needs the mailbox.
-- Deleted by the text retention setting, like the embedded text.
ALTER TABLE processed_messages ADD COLUMN document TEXT;
ALTER TABLE examples ADD COLUMN document TEXT;
