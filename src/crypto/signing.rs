//! Signing-key generation and public-key extraction.
//!
//! Keys are kept as PKCS#8 DER, the form `ring` generates and parses. ES256
//! is the default; EdDSA (Ed25519) can be generated too. `ring` cannot
//! generate RSA keys, so RS256 only ever arrives by import.

use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    RsaPublicKeyComponents,
};

/// RFC 7518 §3.3: RSA keys of at least 2048 bits.
pub const MIN_RSA_BITS: usize = 2048;

use super::{CryptoError, random};

/// A JWS algorithm Tessera signs with (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Es256,
    EdDsa,
    /// Import only.
    Rs256,
}

impl SigningAlgorithm {
    pub fn jws_name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    pub fn from_jws_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    pub fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }

    /// The `jsonwebtoken` key for signing with a PKCS#8 document of this
    /// algorithm (the ring-backed provider parses it).
    pub fn encoding_key(self, pkcs8: &[u8]) -> jsonwebtoken::EncodingKey {
        match self {
            Self::Es256 => jsonwebtoken::EncodingKey::from_ec_der(pkcs8),
            Self::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(pkcs8),
            Self::Rs256 => jsonwebtoken::EncodingKey::from_rsa_der(pkcs8),
        }
    }

    /// Which algorithm a PKCS#8 private key is for, trying each in turn.
    pub fn detect(pkcs8: &[u8]) -> Option<Self> {
        [Self::Es256, Self::EdDsa, Self::Rs256]
            .into_iter()
            .find(|alg| public_key(*alg, pkcs8).is_ok())
    }
}

/// A private key parsed once, for signing many tokens: parsing a PKCS#8
/// document costs more than the signature itself for ES256. The ring
/// provider signs with it (see `jwt_provider::PreparedEncodingKey`).
pub struct PreparedKey {
    pair: Pair,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey").finish_non_exhaustive()
    }
}

impl PreparedKey {
    pub fn from_pkcs8(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let pair = match alg {
            SigningAlgorithm::Es256 => Pair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8,
                    &random::system(),
                )
                .map_err(|_| CryptoError::KeyRejected("not a P-256 PKCS#8 key"))?,
            ),
            SigningAlgorithm::EdDsa => Pair::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|_| CryptoError::KeyRejected("not an Ed25519 PKCS#8 key"))?,
            ),
            SigningAlgorithm::Rs256 => Pair::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| CryptoError::KeyRejected("not an RSA PKCS#8 key"))?,
            ),
        };
        Ok(Self { pair })
    }

    /// The JWS signature of `message`: R‖S for ES256, as JWS wants it.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = random::system();
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Sign),
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .map_err(|_| CryptoError::Sign)?;
                Ok(signature)
            }
        }
    }
}

/// The public half of a signing key, as the raw members a JWK needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// P-256 affine coordinates, 32 bytes each.
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// Ed25519 public key, 32 bytes.
    Ed25519 { x: Vec<u8> },
    /// RSA modulus and public exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    /// The `jsonwebtoken` key that verifies with this public key: the SEC 1
    /// uncompressed point for P-256 (what `DecodingKey::from_ec_components`
    /// builds), the raw key for Ed25519, the components for RSA. Which
    /// algorithm it verifies is decided by the caller's `Validation`, and
    /// the ring provider refuses a key of another family.
    pub fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        use jsonwebtoken::DecodingKey;
        match self {
            Self::P256 { x, y } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                DecodingKey::from_ec_der(&point)
            }
            Self::Ed25519 { x } => DecodingKey::from_ed_der(x),
            Self::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
        }
    }
}

pub fn generate_pkcs8(alg: SigningAlgorithm) -> Result<Vec<u8>, CryptoError> {
    let rng = random::system();
    let doc = match alg {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        }
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        SigningAlgorithm::Rs256 => {
            return Err(CryptoError::KeyRejected(
                "RSA keys cannot be generated here; import one",
            ));
        }
    }
    .map_err(|_| CryptoError::Random)?;
    Ok(doc.as_ref().to_vec())
}

/// Parses a PKCS#8 private key and returns its public half; fails if the key
/// is not of the stated algorithm.
pub fn public_key(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<PublicKey, CryptoError> {
    match alg {
        SigningAlgorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8,
                &random::system(),
            )
            .map_err(|_| CryptoError::KeyRejected("not a P-256 PKCS#8 key"))?;
            split_uncompressed_p256(pair.public_key().as_ref())
        }
        SigningAlgorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map_err(|_| CryptoError::KeyRejected("not an Ed25519 PKCS#8 key"))?;
            Ok(PublicKey::Ed25519 {
                x: pair.public_key().as_ref().to_vec(),
            })
        }
        SigningAlgorithm::Rs256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8)
                .map_err(|_| CryptoError::KeyRejected("not an RSA PKCS#8 key"))?;
            if pair.public().modulus_len() * 8 < MIN_RSA_BITS {
                return Err(CryptoError::KeyRejected(
                    "RSA keys must have at least 2048 bits",
                ));
            }
            let c: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
            Ok(PublicKey::Rsa { n: c.n, e: c.e })
        }
    }
}

/// `0x04 || x || y` (SEC 1 uncompressed point) into its coordinates.
pub(crate) fn split_uncompressed_p256(point: &[u8]) -> Result<PublicKey, CryptoError> {
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => {
            let (x, y) = rest.split_at(32);
            Ok(PublicKey::P256 {
                x: x.to_vec(),
                y: y.to_vec(),
            })
        }
        _ => Err(CryptoError::KeyRejected("not an uncompressed P-256 point")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_with_their_own_algorithm_only() -> Result<(), CryptoError> {
        let es = generate_pkcs8(SigningAlgorithm::Es256)?;
        assert!(matches!(
            public_key(SigningAlgorithm::Es256, &es)?,
            PublicKey::P256 { ref x, ref y } if x.len() == 32 && y.len() == 32
        ));
        assert!(public_key(SigningAlgorithm::EdDsa, &es).is_err());

        let ed = generate_pkcs8(SigningAlgorithm::EdDsa)?;
        assert!(matches!(
            public_key(SigningAlgorithm::EdDsa, &ed)?,
            PublicKey::Ed25519 { ref x } if x.len() == 32
        ));
        assert!(public_key(SigningAlgorithm::Es256, &ed).is_err());
        Ok(())
    }
}
