DROP TRIGGER client_secrets_deleted;
DROP TRIGGER client_secrets_updated;
DROP TRIGGER client_secrets_inserted;
DROP TRIGGER clients_deleted;
DROP TRIGGER clients_updated;
DROP TRIGGER clients_inserted;
DROP TABLE client_generation;
