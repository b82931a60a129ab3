ALTER TABLE signing_keys DROP COLUMN publishes_at;
