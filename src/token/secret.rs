//! Opaque secrets: 256 bits from the CSPRNG behind a fixed prefix, so secret
//! scanners can recognise a leaked one. Only the SHA-256 hash is stored; the
//! plain value exists in memory long enough to show it once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{CryptoError, digest, random};

/// Prefix of client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "tsec_";

/// Prefix of refresh tokens: distinct from secrets, so a scanner (or a
/// person) can tell which kind leaked.
pub const REFRESH_TOKEN_PREFIX: &str = "trt_";

/// A secret in the clear. `Debug` is redacted so it cannot reach a log by
/// accident; `expose` is the one way to read it.
pub struct PlainSecret(String);

impl std::fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainSecret([redacted])")
    }
}

impl PlainSecret {
    pub fn generate(prefix: &str) -> Result<Self, CryptoError> {
        let bytes = random::bytes::<32>()?;
        Ok(Self(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

/// SHA-256 of a secret, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; digest::SHA256_LEN]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    pub fn of(presented: &str) -> Self {
        Self(digest::sha256(presented.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time comparison with a stored hash.
    pub fn matches(&self, stored: &[u8]) -> bool {
        digest::constant_time_eq(&self.0, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_prefixed_unique_and_hash_to_what_matches() -> Result<(), CryptoError> {
        let a = PlainSecret::generate(CLIENT_SECRET_PREFIX)?;
        let b = PlainSecret::generate(CLIENT_SECRET_PREFIX)?;
        assert!(a.expose().starts_with(CLIENT_SECRET_PREFIX));
        assert_eq!(a.expose().len(), CLIENT_SECRET_PREFIX.len() + 43);
        assert_ne!(a.expose(), b.expose());
        assert!(SecretHash::of(a.expose()).matches(a.hash().as_bytes()));
        assert!(!SecretHash::of(b.expose()).matches(a.hash().as_bytes()));
        assert_eq!(format!("{a:?}"), "PlainSecret([redacted])");
        Ok(())
    }
}
