-- What a decision's fallback threshold was compared with: 'confidence' (the winner's final score / 100)
-- or 'margin' (its lead over the runner-up, 0–100), when the model's fallback policy chose the margin on
-- validation. NULL on older rows: they were all on the confidence.
ALTER TABLE processed_messages ADD COLUMN fallback_on TEXT;
