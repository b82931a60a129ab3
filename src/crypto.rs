//! The only module that touches `ring`. Everything else asks for random
//! bytes, digests, sealed boxes and signatures through these functions, so the
//! crypto stack stays one library wide (no aws-lc, no RustCrypto `rsa`).

pub mod aead;
pub mod digest;
pub mod jwt_provider;
pub mod random;
pub mod signing;
#[cfg(feature = "server")]
pub mod tls;

/// A crypto operation failed. Deliberately carries no detail: the callers
/// decide what to tell whom, and key material never reaches a message.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random number generator failed")]
    Random,
    #[error("a sealed value could not be opened (wrong key, or tampered with)")]
    Open,
    #[error("a key was rejected: {0}")]
    KeyRejected(&'static str),
    #[error("signing failed")]
    Sign,
}
