DROP TABLE audit_events;
DROP TABLE revoked_tokens;
DROP TABLE family_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE signing_keys;
DROP TABLE client_secrets;
DROP TABLE clients;
