//! Tessera: an OAuth 2.0 authorization server for machine-to-machine tokens.
//!
//! Data flows one way: `http` (actix-web) calls `oauth` (grant rules), which
//! calls `token` and `keys` (minting, signing keys) and `store` (diesel). Only
//! `store` touches diesel and only `crypto` touches ring; time comes from the
//! injected [`clock::Clock`]. `docs/architecture.md` draws the whole map.

pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod http;
pub mod janitor;
pub mod keys;
pub mod oauth;
pub mod startup;
pub mod store;
pub mod token;
