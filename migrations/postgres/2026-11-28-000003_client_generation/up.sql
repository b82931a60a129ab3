-- A counter that every change to a client or its secrets bumps, whoever
-- makes it (this server, another node, the CLI, a hand-written UPDATE).
-- Servers cache authenticated clients and drop the cache when the counter
-- moves, so the staleness bound holds without trusting every writer to
-- announce its change. `last_token_at` is bookkeeping, not a change.
CREATE TABLE client_generation (
    id          BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO client_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION tessera_bump_client_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE client_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER clients_changed AFTER INSERT OR DELETE OR UPDATE OF
    id, name, scopes, audiences, access_token_ttl, refresh_tokens,
    refresh_token_ttl, refresh_family_ttl, can_introspect, allowed_networks,
    tokens_valid_after, disabled_at, created_at, updated_at
    ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_bump_client_generation();
CREATE TRIGGER client_secrets_changed AFTER INSERT OR UPDATE OR DELETE
    ON client_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION tessera_bump_client_generation();
