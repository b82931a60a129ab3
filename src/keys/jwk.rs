//! Public JWKs (RFC 7517) and their RFC 7638 thumbprints, used as `kid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::digest;
use crate::crypto::signing::{PublicKey, SigningAlgorithm};

/// Only public members: nothing here can carry `d` or any other private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(rename = "use")]
    pub key_use: String,
    pub alg: String,
    pub kid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

impl PublicJwk {
    pub fn new(alg: SigningAlgorithm, key: &PublicKey) -> Self {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (kty, crv, x, y) = match key {
            PublicKey::P256 { x, y } => ("EC", "P-256", b64(x), Some(b64(y))),
            PublicKey::Ed25519 { x } => ("OKP", "Ed25519", b64(x), None),
        };
        let mut jwk = Self {
            kty: kty.to_owned(),
            crv: crv.to_owned(),
            x,
            y,
            key_use: "sig".to_owned(),
            alg: alg.jws_name().to_owned(),
            kid: String::new(),
        };
        jwk.kid = jwk.thumbprint();
        jwk
    }

    /// The algorithm and public key this JWK publishes, if Tessera can
    /// verify with it.
    pub fn verification_key(&self) -> Option<(SigningAlgorithm, PublicKey)> {
        let alg = SigningAlgorithm::from_jws_name(&self.alg)?;
        let x = URL_SAFE_NO_PAD.decode(&self.x).ok()?;
        let key = match (alg, self.kty.as_str(), self.crv.as_str(), &self.y) {
            (SigningAlgorithm::Es256, "EC", "P-256", Some(y)) => PublicKey::P256 {
                x,
                y: URL_SAFE_NO_PAD.decode(y).ok()?,
            },
            (SigningAlgorithm::EdDsa, "OKP", "Ed25519", None) => PublicKey::Ed25519 { x },
            _ => return None,
        };
        Some((alg, key))
    }

    /// RFC 7638 §3: SHA-256 over the required members, in lexicographic
    /// order, with no whitespace. The members are base64url strings and fixed
    /// names, so nothing needs JSON escaping.
    pub fn thumbprint(&self) -> String {
        let canonical = match &self.y {
            Some(y) => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
                self.crv, self.kty, self.x, y
            ),
            None => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
                self.crv, self.kty, self.x
            ),
        };
        URL_SAFE_NO_PAD.encode(digest::sha256(canonical.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_appendix_a3() {
        // RFC 8037 A.3: the Ed25519 key's thumbprint.
        let jwk = PublicJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            y: None,
            key_use: "sig".into(),
            alg: "EdDSA".into(),
            kid: String::new(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
