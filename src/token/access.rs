//! RFC 9068 JWT access tokens.

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
#[cfg(feature = "server")]
use crate::keys::ActiveKey;

/// RFC 9068 §2.1: the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `aud`: one value is sent as a string, several as an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Self::One(list.remove(0))
        } else {
            Self::Many(list)
        }
    }
}

/// RFC 9068 §2.2 claims. For client credentials `sub` is the client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: UnixSeconds,
    pub iat: UnixSeconds,
    pub nbf: UnixSeconds,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

#[cfg(feature = "server")]
#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with the active key, which was parsed
/// when the key set was loaded: no key parsing per token.
#[cfg(feature = "server")]
pub fn mint(key: &ActiveKey, claims: &AccessTokenClaims) -> Result<String, MintError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::to_vec(&Header {
        alg: key.alg.jws_name(),
        typ: ACCESS_TOKEN_TYP,
        kid: &key.kid,
    })?;
    let payload = serde_json::to_vec(claims)?;
    let mut token = String::with_capacity(
        (header.len() + payload.len()) * 4 / 3 + 8 + key.alg.signature_len() * 4 / 3,
    );
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.signer().sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Why a token could not be minted: a bug, or a broken key.
#[cfg(feature = "server")]
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("cannot serialise the token: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}
