//! Strict verification of Tessera access tokens (RFC 9068 §4, RFC 8725).
//!
//! The signature and the registered claims are checked by
//! `jsonwebtoken::decode`, through the ring provider of `crypto`, with a
//! `Validation` built here; every choice a library default would leave
//! open is fixed, and the rules `jsonwebtoken` does not know are checked
//! around it:
//!
//! - compact JWS only: exactly three non-empty base64url parts, unpadded,
//!   canonical; at most [`MAX_TOKEN_LEN`] bytes;
//! - the header holds exactly `alg`, `typ` and `kid` (a `jku`, `x5u`, `jwk`,
//!   `x5c`, `crit`, `cty` or any other member is refused, never followed),
//!   each once; `typ` is `at+jwt` or `application/at+jwt` (jsonwebtoken
//!   checks neither);
//! - the key is looked up by `kid` among the published keys only, and the
//!   algorithm is the key's: a header claiming another is refused, and the
//!   `Validation` allows only the key's algorithm, never the header's;
//! - the claims are exactly Tessera's, each of its JSON type, each once
//!   (deserialised into a struct that denies unknown and duplicate fields),
//!   and all are listed in `required_spec_claims`, so `jsonwebtoken` (11,
//!   after the 10.3 fix) refuses an `exp`, `nbf`, `iss`, `sub` or `aud`
//!   that is missing or of the wrong type;
//! - `iss` must equal the issuer byte for byte; `aud` must hold the
//!   expected audience when one is expected;
//! - `exp`, `nbf` and `iat` are compared here with the caller's `now` and
//!   its two leeways. `jsonwebtoken` would compare them with
//!   `SystemTime::now()`, which cannot be injected (time comes only through
//!   `clock::Clock`, and tests move it by days), with one leeway for both
//!   and a token still valid at its `exp` second; so its time checks are
//!   off, and its presence and type checks on.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use super::access::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use crate::clock::UnixSeconds;
use crate::crypto::jwt_provider;
use crate::crypto::signing::{PublicKey, SigningAlgorithm};

/// Tessera's tokens are well under 1 KiB; anything far larger is refused
/// before any decoding work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. Callers outside the server's logs should not
/// learn which rule failed (RFC 7662 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("header refused")]
    Header,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("claims refused")]
    Claims,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
}

/// A published verification key.
#[derive(Debug, Clone)]
pub struct VerificationKey {
    pub alg: SigningAlgorithm,
    pub key: PublicKey,
}

/// Published keys by `kid`.
pub type VerificationKeys = HashMap<String, VerificationKey>;

#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// `None`: any audience (the authorization server itself asks).
    pub audience: Option<&'a str>,
    pub now: UnixSeconds,
    /// Seconds a token is still accepted after its `exp`.
    pub expiry_leeway: i64,
    /// Seconds `nbf` and `iat` may lie in the future (the issuer's clock
    /// may run ahead of ours).
    pub not_before_leeway: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    client_id: String,
    scope: String,
}

/// The nine claims Tessera issues: those RFC 9068 §2.2 requires, plus `nbf`
/// and `scope`. `jsonwebtoken` enforces the ones it knows (`exp`, `nbf`,
/// `iss`, `sub`, `aud`: present and of their type) and ignores the rest;
/// [`StrictClaims`] requires all nine.
const REQUIRED_CLAIMS: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
];

fn b64(part: &str) -> Result<Vec<u8>, VerifyError> {
    if part.is_empty() {
        return Err(VerifyError::Malformed);
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)
}

/// What `jsonwebtoken` checks, for a token whose header already passed.
fn validation(alg: SigningAlgorithm, expect: &Expectations<'_>) -> Validation {
    // The key's algorithm, and only it.
    let mut validation = Validation::new(alg.jwt_algorithm());
    validation.set_required_spec_claims(&REQUIRED_CLAIMS);
    validation.set_issuer(&[expect.issuer]);
    match expect.audience {
        Some(audience) => validation.set_audience(&[audience]),
        // The authorization server itself asks: any audience.
        None => validation.validate_aud = false,
    }
    // Compared in `verify` with the injected clock (see the module docs).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation
}

/// The rule a `jsonwebtoken` error stands for. The header has been checked
/// by then, so a JSON error is in the claims, and an algorithm or key error
/// means the published key cannot verify its own algorithm (a signature
/// that cannot verify).
fn refusal(error: &jsonwebtoken::errors::Error) -> VerifyError {
    match error.kind() {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            VerifyError::Malformed
        }
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::Provider(_) => VerifyError::Signature,
        ErrorKind::InvalidIssuer => VerifyError::Issuer,
        ErrorKind::InvalidAudience => VerifyError::Audience,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        _ => VerifyError::Claims,
    }
}

/// Verifies `token` against `keys` and `expect`; returns its claims.
pub fn verify(
    token: &str,
    keys: &VerificationKeys,
    expect: &Expectations<'_>,
) -> Result<AccessTokenClaims, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    // The header first, so that a refused header (`alg: none` with its empty
    // signature, say) is reported as such.
    let header: StrictHeader = serde_json::from_slice(&b64(h)?).map_err(|_| VerifyError::Header)?;
    let typ_ok = header.typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
        || header.typ.eq_ignore_ascii_case("application/at+jwt");
    if !typ_ok {
        return Err(VerifyError::Header);
    }
    let key = keys.get(&header.kid).ok_or(VerifyError::UnknownKey)?;
    if header.alg != key.alg.jws_name() {
        return Err(VerifyError::Header);
    }
    // jsonwebtoken would take an empty signature as a wrong one.
    if p.is_empty() || s.is_empty() {
        return Err(VerifyError::Malformed);
    }
    jwt_provider::install();
    let c = jsonwebtoken::decode::<StrictClaims>(
        token,
        &key.key.decoding_key(),
        &validation(key.alg, expect),
    )
    .map_err(|e| refusal(&e))?
    .claims;
    if c.exp.saturating_add(expect.expiry_leeway) <= expect.now {
        return Err(VerifyError::Expired);
    }
    let horizon = expect.now.saturating_add(expect.not_before_leeway);
    if c.nbf > horizon || c.iat > horizon {
        return Err(VerifyError::NotYetValid);
    }
    if c.jti.is_empty() || c.sub.is_empty() || c.client_id.is_empty() {
        return Err(VerifyError::Claims);
    }
    Ok(AccessTokenClaims {
        iss: c.iss,
        sub: c.sub,
        aud: c.aud,
        exp: c.exp,
        iat: c.iat,
        nbf: c.nbf,
        jti: c.jti,
        client_id: c.client_id,
        scope: c.scope,
    })
}
