//! Tessera: an OAuth 2.0 authorization server for machine-to-machine tokens.
//!
//! Data flows one way: `http` (actix-web) calls `oauth` (grant rules), which
//! calls `token` and `keys` (minting, signing keys) and `store` (diesel). Only
//! `store` touches diesel and only `crypto` touches ring; time comes from the
//! injected [`clock::Clock`]. `docs/architecture.md` draws the whole map.

// Shared by the server and the verifier: time, crypto, tokens, JWKs.
pub mod clock;
pub mod crypto;
pub mod form_encoding;
pub mod keys;
pub mod token;

#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod clients;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod inspect;
#[cfg(feature = "server")]
pub mod janitor;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod oauth;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod store;

#[cfg(feature = "verifier")]
pub mod verifier;
