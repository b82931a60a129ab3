//! What Tessera hands out: client secrets (opaque, hashed at rest) and
//! RFC 9068 JWT access tokens.

pub mod access;
pub mod secret;
pub mod verify;
