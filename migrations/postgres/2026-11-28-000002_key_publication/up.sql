-- The instant a key enters the JWKS. Every node derives its JWKS from the
-- stored instants, so nodes that re-read keys at different moments still
-- publish a new key from the same second.
ALTER TABLE signing_keys ADD COLUMN publishes_at BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET publishes_at = created_at;
