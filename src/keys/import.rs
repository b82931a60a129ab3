//! Reading an operator's key file: PEM-armoured PKCS#8 (`BEGIN PRIVATE
//! KEY`), the form `openssl genpkey` writes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::KeyError;
use crate::crypto::signing::SigningAlgorithm;

const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const END: &str = "-----END PRIVATE KEY-----";

/// Decodes the PKCS#8 document and tells which algorithm it is for
/// (ES256 on P-256, EdDSA on Ed25519, RS256 of at least 2048 bits).
pub fn pkcs8_from_pem(text: &str) -> Result<(SigningAlgorithm, Vec<u8>), KeyError> {
    let refuse = |m: &str| KeyError::Rotation(m.to_owned());
    let start = text.find(BEGIN).ok_or_else(|| {
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            refuse("the key is encrypted; decrypt it first: openssl pkcs8 -in KEY -out plain.pem")
        } else if text.contains("PRIVATE KEY-----") {
            refuse("not PKCS#8; convert it: openssl pkcs8 -topk8 -nocrypt -in KEY -out pkcs8.pem")
        } else {
            refuse("no '-----BEGIN PRIVATE KEY-----' block found")
        }
    })?;
    let body = &text[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or_else(|| refuse("the PEM block has no END line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| refuse("the PEM block is not valid base64"))?;
    let alg = SigningAlgorithm::detect(&der).ok_or_else(|| {
        refuse(
            "unsupported key: use a P-256 (ES256), Ed25519 (EdDSA) or RSA >= 2048-bit (RS256) key",
        )
    })?;
    Ok((alg, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing;

    #[test]
    fn reads_back_what_it_is_given_and_names_the_algorithm() -> Result<(), KeyError> {
        let der = signing::generate_pkcs8(SigningAlgorithm::EdDsa)?;
        let pem = format!("{BEGIN}\n{}\n{END}\n", STANDARD.encode(&der));
        let (alg, back) = pkcs8_from_pem(&pem)?;
        assert_eq!(alg, SigningAlgorithm::EdDsa);
        assert_eq!(back, der);
        Ok(())
    }

    #[test]
    fn explains_what_is_wrong_with_other_files() {
        for (text, hint) in [
            (
                "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----",
                "pkcs8 -topk8",
            ),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            ("hello", "no '-----BEGIN"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "unsupported",
            ),
        ] {
            let err = pkcs8_from_pem(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(hint), "{err}");
        }
    }
}
