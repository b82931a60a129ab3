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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
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
        let b64 = |b: &[u8]| Some(URL_SAFE_NO_PAD.encode(b));
        let mut jwk = Self {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            key_use: "sig".to_owned(),
            alg: alg.jws_name().to_owned(),
            kid: String::new(),
        };
        match key {
            PublicKey::P256 { x, y } => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                (jwk.x, jwk.y) = (b64(x), b64(y));
            }
            PublicKey::Ed25519 { x } => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = b64(x);
            }
            PublicKey::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                (jwk.n, jwk.e) = (b64(strip_leading_zeros(n)), b64(strip_leading_zeros(e)));
            }
        }
        jwk.kid = jwk.thumbprint();
        jwk
    }

    /// The algorithm and public key this JWK publishes, if Tessera can
    /// verify with it.
    pub fn verification_key(&self) -> Option<(SigningAlgorithm, PublicKey)> {
        let alg = SigningAlgorithm::from_jws_name(&self.alg)?;
        let d = |v: &Option<String>| v.as_ref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let key = match (alg, self.kty.as_str(), self.crv.as_deref()) {
            (SigningAlgorithm::Es256, "EC", Some("P-256")) => PublicKey::P256 {
                x: d(&self.x)?,
                y: d(&self.y)?,
            },
            (SigningAlgorithm::EdDsa, "OKP", Some("Ed25519")) => {
                PublicKey::Ed25519 { x: d(&self.x)? }
            }
            (SigningAlgorithm::Rs256, "RSA", None) => PublicKey::Rsa {
                n: d(&self.n)?,
                e: d(&self.e)?,
            },
            _ => return None,
        };
        Some((alg, key))
    }

    /// RFC 7638 §3: SHA-256 over the required members, in lexicographic
    /// order, with no whitespace. The members are base64url strings and fixed
    /// names, so nothing needs JSON escaping.
    pub fn thumbprint(&self) -> String {
        let m = |v: &Option<String>| v.clone().unwrap_or_default();
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                m(&self.crv),
                m(&self.x),
                m(&self.y)
            ),
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                m(&self.e),
                m(&self.n)
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
                m(&self.crv),
                self.kty,
                m(&self.x)
            ),
        };
        URL_SAFE_NO_PAD.encode(digest::sha256(canonical.as_bytes()))
    }
}

/// JWK integers are unsigned big-endian without leading zero octets
/// (RFC 7518 §6.3.1.1); ring's DER-derived components may carry one.
fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_appendix_a3() {
        // RFC 8037 A.3: the Ed25519 key's thumbprint.
        let jwk = PublicJwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            y: None,
            n: None,
            e: None,
            key_use: "sig".into(),
            alg: "EdDSA".into(),
            kid: String::new(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rsa_thumbprint_matches_rfc_7638_section_3_1() {
        let jwk = PublicJwk {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            key_use: "sig".into(),
            alg: "RS256".into(),
            kid: String::new(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
