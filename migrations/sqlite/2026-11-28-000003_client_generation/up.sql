-- A counter that every change to a client or its secrets bumps, whoever
-- makes it (this server, another node, the CLI, a hand-written UPDATE).
-- Servers cache authenticated clients and drop the cache when the counter
-- moves, so the staleness bound holds without trusting every writer to
-- announce its change. `last_token_at` is bookkeeping, not a change.
CREATE TABLE client_generation (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO client_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER clients_inserted AFTER INSERT ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER clients_updated AFTER UPDATE OF
    id, name, scopes, audiences, access_token_ttl, refresh_tokens,
    refresh_token_ttl, refresh_family_ttl, can_introspect, allowed_networks,
    tokens_valid_after, disabled_at, created_at, updated_at
    ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER clients_deleted AFTER DELETE ON clients
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER client_secrets_inserted AFTER INSERT ON client_secrets
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER client_secrets_updated AFTER UPDATE ON client_secrets
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER client_secrets_deleted AFTER DELETE ON client_secrets
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
END;
