//! Signing keys: the key-encryption key on disk, the signing keys in the
//! database (sealed under it), the active key used to sign, and the JWKS
//! document resource servers fetch.
//!
//! Every node reads the same key set from the same database, so every node
//! publishes the same JWKS and signs with the same active key.

#[cfg(feature = "server")]
pub mod import;
pub mod jwk;
#[cfg(feature = "server")]
pub mod kek;
#[cfg(feature = "server")]
pub mod keyset;
#[cfg(feature = "server")]
pub mod maintainer;
#[cfg(feature = "server")]
pub mod rotation;

#[cfg(feature = "server")]
pub use kek::KeyEncryptionKey;
#[cfg(feature = "server")]
pub use keyset::{ActiveKey, KeyRing, KeySet, KeyStore};

#[cfg(feature = "server")]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Kek(String),
    #[error("signing key {kid}: {message}")]
    SigningKey { kid: String, message: String },
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("{0}")]
    Rotation(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}
