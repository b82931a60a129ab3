//! Strict verification of Tessera access tokens (RFC 9068 §4, RFC 8725).
//!
//! Hand-rolled on purpose: general JWT libraries leave the dangerous choices
//! to the caller (jsonwebtoken requires only `exp` by default, never checks
//! `typ`, and before 10.3 skipped a claim of the wrong JSON type). Here every
//! rule is fixed:
//!
//! - compact JWS only: exactly three non-empty base64url parts, unpadded,
//!   canonical; at most [`MAX_TOKEN_LEN`] bytes;
//! - the header holds exactly `alg`, `typ` and `kid` (a `jku`, `x5u`, `jwk`,
//!   `crit`, `cty` or any other member is refused, never followed), each
//!   once; `typ` is `at+jwt` or `application/at+jwt`;
//! - the key is looked up by `kid` among the published keys only, and the
//!   algorithm is the key's: a header claiming another is refused;
//! - the claims are exactly Tessera's, each of its JSON type, each once;
//! - `iss` is compared byte for byte; `exp`, `nbf` and `iat` are checked
//!   with an explicit leeway.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::access::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use crate::clock::UnixSeconds;
use crate::crypto::signing::{self, PublicKey, SigningAlgorithm};

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

fn b64(part: &str) -> Result<Vec<u8>, VerifyError> {
    if part.is_empty() {
        return Err(VerifyError::Malformed);
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)
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
    let signature = b64(s)?;
    let signed = &token[..h.len() + 1 + p.len()];
    if !signing::verify(key.alg, &key.key, signed.as_bytes(), &signature) {
        return Err(VerifyError::Signature);
    }
    let c: StrictClaims = serde_json::from_slice(&b64(p)?).map_err(|_| VerifyError::Claims)?;
    if c.iss != expect.issuer {
        return Err(VerifyError::Issuer);
    }
    if let Some(audience) = expect.audience {
        let ok = match &c.aud {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        };
        if !ok {
            return Err(VerifyError::Audience);
        }
    }
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
