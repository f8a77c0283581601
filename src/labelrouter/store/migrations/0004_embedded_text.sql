-- The text each decision and example was embedded from (capped), so retrieval training and re-embedding
-- after a new encoder never need the mailbox. Deleted by the text retention setting; labels and
-- embeddings stay.
ALTER TABLE processed_messages ADD COLUMN embedded_text TEXT;
ALTER TABLE examples ADD COLUMN embedded_text TEXT;
