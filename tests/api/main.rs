//! One integration-test binary: every test starts the real server on port 0
//! and talks to it over HTTP, on SQLite and (with TEST_DATABASE_URL) on
//! PostgreSQL.

mod helpers;

mod admin;
mod at_rest;
mod audit;
mod cli;
mod client_cache;
mod cluster;
mod cors;
mod crash;
mod discovery;
mod inspect;
mod interop;
mod introspection;
mod key_rotation;
mod keys;
mod leaks;
mod limits;
mod logs;
mod metrics;
mod networks;
mod openapi;
mod outage;
mod refresh;
mod revocation;
mod secrets;
mod shutdown;
mod tls;
mod token;
mod token_errors;
mod verifier;
mod verifier_forged;
