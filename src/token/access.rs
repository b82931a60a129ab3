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

/// Signs `claims` with `jsonwebtoken::encode`: header `typ: at+jwt`, the
/// key's `kid`, and the key's algorithm. The signature is computed by the
/// ring provider of `crypto`, with the key pair parsed when the key set was
/// loaded: no key parsing per token.
#[cfg(feature = "server")]
pub fn mint(key: &ActiveKey, claims: &AccessTokenClaims) -> Result<String, MintError> {
    crate::crypto::jwt_provider::install();
    let mut header = jsonwebtoken::Header::new(key.alg.jwt_algorithm());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, key.encoding_key())?)
}

/// Why a token could not be minted: a bug, or a broken key.
#[cfg(feature = "server")]
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token: {0}")]
pub struct MintError(#[from] jsonwebtoken::errors::Error);
