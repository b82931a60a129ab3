//! What Tessera hands out: client secrets (opaque, hashed at rest) and
//! RFC 9068 JWT access tokens.

pub mod access;
#[cfg(feature = "server")]
pub mod ids;
pub mod secret;
pub mod verify;
