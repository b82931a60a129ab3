-- Times are Unix seconds (BIGINT); secrets and tokens are stored only as
-- SHA-256 hashes. The PostgreSQL tree holds the same schema.

CREATE TABLE clients (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    scopes              TEXT NOT NULL,     -- space-delimited (RFC 6749 §3.3)
    audiences           TEXT NOT NULL,     -- space-delimited absolute URIs
    access_token_ttl    BIGINT NOT NULL,
    refresh_tokens      BOOLEAN NOT NULL DEFAULT TRUE,
    refresh_token_ttl   BIGINT,            -- idle lifetime; NULL: server default
    refresh_family_ttl  BIGINT,            -- absolute lifetime; NULL: server default
    can_introspect      BOOLEAN NOT NULL DEFAULT FALSE,
    allowed_networks    TEXT,              -- NULL: from anywhere
    tokens_valid_after  BIGINT,            -- client-wide cut-off (revoke-all)
    disabled_at         BIGINT,
    last_token_at       BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE client_secrets (
    id           TEXT PRIMARY KEY NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT                   -- NULL: until rotated
);
CREATE INDEX client_secrets_client_id ON client_secrets(client_id);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY NOT NULL,  -- RFC 7638 thumbprint
    alg                 TEXT NOT NULL,
    public_jwk          TEXT NOT NULL,
    private_key_sealed  BLOB NOT NULL,              -- AES-256-GCM under the KEK
    kek_id              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    activates_at        BIGINT NOT NULL,            -- published before, signing from
    retires_at          BIGINT,                     -- stops signing
    removes_at          BIGINT                      -- leaves the JWKS
);

CREATE TABLE refresh_families (
    id          TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    audience    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,          -- absolute lifetime of the family
    last_used_at BIGINT,                  -- written first by every refresh: the family lock
    revoked_at  BIGINT
);
CREATE INDEX refresh_families_expires_at ON refresh_families(expires_at);
CREATE INDEX refresh_families_client_id ON refresh_families(client_id);

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,          -- idle lifetime
    used_at     BIGINT,
    rotated_from BLOB                     -- hash of the token this one replaced
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens(expires_at);

-- Access tokens minted from a refresh family, so reuse detection can revoke them.
CREATE TABLE family_access_tokens (
    jti         TEXT PRIMARY KEY NOT NULL,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX family_access_tokens_family_id ON family_access_tokens(family_id);
CREATE INDEX family_access_tokens_expires_at ON family_access_tokens(expires_at);

-- The revocation list and its feed: `seq` orders the feed; a row with a NULL
-- jti is a client-wide cut-off.
CREATE TABLE revoked_tokens (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    jti         TEXT,
    client_id   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX revoked_tokens_jti ON revoked_tokens(jti);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens(expires_at);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    client_id  TEXT,
    source     TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_client_id ON audit_events(client_id, at);
