//! A `jsonwebtoken` [`CryptoProvider`] backed by `ring`, through which every
//! access token is signed (`jsonwebtoken::encode` in `token::access`) and
//! verified (`jsonwebtoken::decode` in `token::verify`).
//!
//! `jsonwebtoken` ships providers for aws-lc-rs and RustCrypto; compiling
//! either would add a second crypto stack beside `ring`. This one covers the
//! asymmetric algorithms only: HMAC (`HS*`) is refused outright, which closes
//! the HS/RS key-confusion attacks (RFC 8725 §3.1) at the lowest level.
//!
//! `jsonwebtoken` asks the provider for a signer on every `encode`, handing
//! it only the PKCS#8 bytes, and parsing a PKCS#8 document costs more than
//! an ES256 signature. So the signer factory first looks the key up among
//! the keys already parsed: a [`PreparedEncodingKey`] parses its key once
//! and registers the ring key pair under a SHA-256 fingerprint of the
//! algorithm and the PKCS#8 bytes. The registry holds only weak references,
//! so a key leaves memory when its last `PreparedEncodingKey` is dropped
//! (once a key set without it is installed); any other `EncodingKey` is
//! parsed per call, as `jsonwebtoken` expects.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    ECDSA_P384_SHA384_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};

use super::signing::{PreparedKey, SigningAlgorithm};
use super::{CryptoError, digest, random};

/// Installs the provider for this process. Safe to call more than once: the
/// first installation wins and later calls are no-ops (one atomic load), so
/// minting and verification call it too and never depend on start-up order.
pub fn install() {
    // An Err means a provider is already installed. If it is this one, fine;
    // if another crate in the process installed a different one, signing and
    // verification still go through jsonwebtoken's API and keep working
    // (algorithm pinned by our key, key family checked by jsonwebtoken), only
    // without this module's key cache.
    let _ = RING_PROVIDER.install_default();
}

pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_component_from_private_key,
        compute_digest,
    },
};

/// A private key ready for `jsonwebtoken::encode`, parsed once.
///
/// Holds the PKCS#8 document in jsonwebtoken's [`EncodingKey`] (which
/// zeroizes it on drop) and keeps the parsed ring key pair registered for
/// the signer factory as long as it lives. Its `Debug` shows only the
/// algorithm.
pub struct PreparedEncodingKey {
    alg: SigningAlgorithm,
    encoding: EncodingKey,
    /// Never read: holding it keeps the registry's weak reference alive.
    _parsed: Arc<PreparedKey>,
}

impl std::fmt::Debug for PreparedEncodingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedEncodingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl PreparedEncodingKey {
    /// Parses `pkcs8` as a key of `alg` (an error if it is not one) and
    /// registers the key pair, or reuses the one registered for the same key.
    pub fn from_pkcs8(
        alg: SigningAlgorithm,
        pkcs8: &[u8],
    ) -> std::result::Result<Self, CryptoError> {
        let parsed = Arc::new(PreparedKey::from_pkcs8(alg, pkcs8)?);
        let fingerprint = fingerprint(alg, pkcs8);
        let mut registry = PREPARED.write().unwrap_or_else(|p| p.into_inner());
        // Keys whose last holder is gone: drop their entries.
        registry.retain(|_, key| key.strong_count() > 0);
        let parsed = match registry.get(&fingerprint).and_then(Weak::upgrade) {
            Some(registered) => registered,
            None => {
                registry.insert(fingerprint, Arc::downgrade(&parsed));
                parsed
            }
        };
        Ok(Self {
            alg,
            encoding: alg.encoding_key(pkcs8),
            _parsed: parsed,
        })
    }

    /// The key to pass to `jsonwebtoken::encode`.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// SHA-256 of what identifies a parsed key: its algorithm and its PKCS#8
/// bytes. Only this process's own keys are ever looked up by it.
type Fingerprint = [u8; digest::SHA256_LEN];

/// Key pairs parsed by [`PreparedEncodingKey`], by fingerprint. Weak: the
/// registry never keeps a key in memory by itself.
static PREPARED: RwLock<BTreeMap<Fingerprint, Weak<PreparedKey>>> = RwLock::new(BTreeMap::new());

fn fingerprint(alg: SigningAlgorithm, pkcs8: &[u8]) -> Fingerprint {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(alg.jws_name().as_bytes());
    ctx.update(&[0]);
    ctx.update(pkcs8);
    let mut out = [0u8; digest::SHA256_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The registered key pair for `der`, if a [`PreparedEncodingKey`] of this
/// algorithm and these bytes is alive.
fn prepared(alg: &Algorithm, der: &[u8]) -> Option<Arc<PreparedKey>> {
    let alg = match alg {
        Algorithm::ES256 => SigningAlgorithm::Es256,
        Algorithm::EdDSA => SigningAlgorithm::EdDsa,
        Algorithm::RS256 => SigningAlgorithm::Rs256,
        _ => return None,
    };
    let fingerprint = fingerprint(alg, der);
    let registry = PREPARED.read().unwrap_or_else(|p| p.into_inner());
    registry.get(&fingerprint).and_then(Weak::upgrade)
}

enum SigningKey {
    /// Parsed once by a [`PreparedEncodingKey`].
    Prepared(Arc<PreparedKey>),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

struct RingSigner {
    alg: Algorithm,
    key: SigningKey,
}

impl signature_trait::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature_trait::Error> {
        let rng = random::system();
        match &self.key {
            SigningKey::Prepared(key) => key.sign(msg).map_err(|_| signature_trait::Error::new()),
            SigningKey::Ecdsa(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature_trait::Error::new()),
            SigningKey::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            SigningKey::Rsa(pair, padding) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(*padding, &rng, msg, &mut sig)
                    .map_err(|_| signature_trait::Error::new())?;
                Ok(sig)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let der = key.as_bytes();
    if let Some(parsed) = prepared(alg, der) {
        return Ok(Box::new(RingSigner {
            alg: *alg,
            key: SigningKey::Prepared(parsed),
        }));
    }
    let rng = random::system();
    let ecdsa = |a| {
        EcdsaKeyPair::from_pkcs8(a, der, &rng)
            .map(SigningKey::Ecdsa)
            .map_err(|_| ErrorKind::InvalidEcdsaKey)
    };
    let rsa = |padding: &'static dyn signature::RsaEncoding| {
        RsaKeyPair::from_pkcs8(der)
            .or_else(|_| RsaKeyPair::from_der(der))
            .map(|pair| SigningKey::Rsa(pair, padding))
            .map_err(|_| ErrorKind::InvalidRsaKey("not an RSA private key".into()))
    };
    let key = match alg {
        Algorithm::ES256 => ecdsa(&ECDSA_P256_SHA256_FIXED_SIGNING)?,
        Algorithm::ES384 => ecdsa(&ECDSA_P384_SHA384_FIXED_SIGNING)?,
        Algorithm::EdDSA => SigningKey::Ed25519(
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
        Algorithm::RS256 => rsa(&signature::RSA_PKCS1_SHA256)?,
        Algorithm::RS384 => rsa(&signature::RSA_PKCS1_SHA384)?,
        Algorithm::RS512 => rsa(&signature::RSA_PKCS1_SHA512)?,
        Algorithm::PS256 => rsa(&signature::RSA_PSS_SHA256)?,
        Algorithm::PS384 => rsa(&signature::RSA_PSS_SHA384)?,
        Algorithm::PS512 => rsa(&signature::RSA_PSS_SHA512)?,
        // HMAC, and anything a later jsonwebtoken adds.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingSigner { alg: *alg, key }))
}

enum PublicKeyMaterial {
    Raw(Vec<u8>),
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
}

struct RingVerifier {
    alg: Algorithm,
    verification: &'static dyn VerificationAlgorithm,
    rsa_params: Option<&'static signature::RsaParameters>,
    key: PublicKeyMaterial,
}

impl signature_trait::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature_trait::Error> {
        let ok = match (&self.key, self.rsa_params) {
            (PublicKeyMaterial::RsaComponents { n, e }, Some(params)) => {
                RsaPublicKeyComponents { n, e }.verify(params, msg, sig)
            }
            (PublicKeyMaterial::Raw(raw), _) => {
                UnparsedPublicKey::new(self.verification, raw).verify(msg, sig)
            }
            (PublicKeyMaterial::RsaComponents { .. }, None) => {
                return Err(signature_trait::Error::new());
            }
        };
        ok.map_err(|_| signature_trait::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    use jsonwebtoken::AlgorithmFamily as F;
    let (verification, rsa_params, family): (
        &'static dyn VerificationAlgorithm,
        Option<&'static signature::RsaParameters>,
        F,
    ) = match alg {
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED, None, F::Ec),
        Algorithm::ES384 => (&ECDSA_P384_SHA384_FIXED, None, F::Ec),
        Algorithm::EdDSA => (&ED25519, None, F::Ed),
        Algorithm::RS256 => rsa_pair(&signature::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa_pair(&signature::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa_pair(&signature::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa_pair(&signature::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa_pair(&signature::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa_pair(&signature::RSA_PSS_2048_8192_SHA512),
        // HMAC, and anything a later jsonwebtoken adds.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    // The key decides the family: an EC key never verifies an RSA or EdDSA
    // signature, whatever the header claims.
    if key.family() != family {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let material = match key.kind() {
        DecodingKeyKind::SecretOrDer(raw) => PublicKeyMaterial::Raw(raw.clone()),
        DecodingKeyKind::RsaModulusExponent { n, e } => PublicKeyMaterial::RsaComponents {
            n: n.clone(),
            e: e.clone(),
        },
    };
    Ok(Box::new(RingVerifier {
        alg: *alg,
        verification,
        rsa_params,
        key: material,
    }))
}

fn rsa_pair(
    params: &'static signature::RsaParameters,
) -> (
    &'static dyn VerificationAlgorithm,
    Option<&'static signature::RsaParameters>,
    jsonwebtoken::AlgorithmFamily,
) {
    (params, Some(params), jsonwebtoken::AlgorithmFamily::Rsa)
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = RsaKeyPair::from_pkcs8(der)
        .or_else(|_| RsaKeyPair::from_der(der))
        .map_err(|_| ErrorKind::InvalidRsaKey("not an RSA private key".into()))?;
    let public = pair.public();
    let components: RsaPublicKeyComponents<Vec<u8>> = public.into();
    Ok((components.n, components.e))
}

fn ec_components_from_private_key(
    der: &[u8],
    alg: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (signing, curve, len) = match alg {
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, EllipticCurve::P256, 32),
        Algorithm::ES384 => (&ECDSA_P384_SHA384_FIXED_SIGNING, EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let pair = EcdsaKeyPair::from_pkcs8(signing, der, &random::system())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    match pair.public_key().as_ref() {
        [0x04, rest @ ..] if rest.len() == 2 * len => {
            let (x, y) = rest.split_at(len);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_component_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    let pair =
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => digest::sha256(data).to_vec(),
        ThumbprintHash::SHA384 => digest::sha384(data),
        ThumbprintHash::SHA512 => digest::sha512(data),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

// `signature` is also the name of ring's module; keep the trait crate apart.
use ::signature as signature_trait;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::{self, PublicKey, SigningAlgorithm};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use std::collections::HashMap;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn es256_and_eddsa_tokens_round_trip_and_hmac_is_refused()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        install();
        let claims: HashMap<&str, i64> = HashMap::from([("exp", i64::MAX / 2)]);
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let der = signing::generate_pkcs8(alg)?;
            let enc = alg.encoding_key(&der);
            let token = encode(&Header::new(alg.jwt_algorithm()), &claims, &enc)?;
            let dec = match signing::public_key(alg, &der)? {
                PublicKey::P256 { x, y } => DecodingKey::from_ec_components(&b64(&x), &b64(&y))?,
                PublicKey::Ed25519 { x } => DecodingKey::from_ed_components(&b64(&x))?,
                PublicKey::Rsa { n, e } => DecodingKey::from_rsa_raw_components(&n, &e),
            };
            let mut validation = Validation::new(alg.jwt_algorithm());
            validation.validate_aud = false;
            decode::<HashMap<String, i64>>(&token, &dec, &validation)?;

            // The HMAC family is never accepted, not even with the key's bytes.
            let hs = Validation::new(Algorithm::HS256);
            assert!(
                decode::<HashMap<String, i64>>(&token, &DecodingKey::from_secret(&der), &hs)
                    .is_err()
            );
        }
        let hs_key = EncodingKey::from_secret(b"secret");
        assert!(encode(&Header::new(Algorithm::HS256), &claims, &hs_key).is_err());
        Ok(())
    }

    #[test]
    fn a_prepared_key_is_parsed_once_and_forgotten_with_its_last_holder()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        install();
        let claims: HashMap<&str, i64> = HashMap::from([("exp", i64::MAX / 2)]);
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let der = signing::generate_pkcs8(alg)?;
            let jwt_alg = alg.jwt_algorithm();
            assert!(prepared(&jwt_alg, &der).is_none());

            let key = PreparedEncodingKey::from_pkcs8(alg, &der)?;
            let registered = prepared(&jwt_alg, &der).ok_or("registered")?;
            // A second holder of the same key shares the parsed pair.
            let again = PreparedEncodingKey::from_pkcs8(alg, &der)?;
            assert!(Arc::ptr_eq(&registered, &again._parsed));
            assert!(Arc::ptr_eq(&registered, &key._parsed));
            drop(registered);
            // Another algorithm, or other bytes, never hit the entry.
            assert!(prepared(&Algorithm::ES384, &der).is_none());
            assert!(prepared(&jwt_alg, &der[..der.len() - 1]).is_none());

            // What encode signs with verifies with the public key.
            let token = encode(&Header::new(jwt_alg), &claims, key.encoding_key())?;
            let public = signing::public_key(alg, &der)?.decoding_key();
            let mut validation = Validation::new(jwt_alg);
            validation.validate_aud = false;
            decode::<HashMap<String, i64>>(&token, &public, &validation)?;

            drop(key);
            assert!(prepared(&jwt_alg, &der).is_some(), "one holder is left");
            drop(again);
            assert!(prepared(&jwt_alg, &der).is_none(), "the key left memory");
            // Unregistered, the same bytes still sign (parsed per call).
            let plain = alg.encoding_key(&der);
            let token = encode(&Header::new(jwt_alg), &claims, &plain)?;
            decode::<HashMap<String, i64>>(&token, &public, &validation)?;
        }
        Ok(())
    }
}
