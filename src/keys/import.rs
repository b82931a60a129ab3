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
    let alg = SigningAlgorithm::detect(&der).ok_or_else(|| match rsa_modulus_bits(&der) {
        // The most likely RSA mistake is an old 1024-bit key: say so.
        Some(bits) if !(2048..=4096).contains(&bits) => KeyError::Rotation(format!(
            "unsupported key: this RSA key has {bits} bits; RS256 needs 2048 to 4096 bits"
        )),
        // The right size, refused for something else (a small public
        // exponent, say).
        Some(_) => refuse("unsupported key: ring refuses this RSA key (RS256 needs a 2048- to 4096-bit key with a standard public exponent)"),
        None => refuse(
            "unsupported key: use a P-256 (ES256), Ed25519 (EdDSA) or RSA >= 2048-bit (RS256) key",
        ),
    })?;
    Ok((alg, der))
}

/// One DER element at the start of `input`: its tag, its contents and what
/// follows it. `None` on anything malformed or longer than the input.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, rest)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The modulus size of a PKCS#8 RSA key (OID 1.2.840.113549.1.1.1), whatever
/// its size; `None` for any other key or an unreadable document.
fn rsa_modulus_bits(pkcs8: &[u8]) -> Option<usize> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const OID: u8 = 0x06;
    let (SEQUENCE, info, _) = der_element(pkcs8)? else {
        return None;
    };
    let (INTEGER, _, rest) = der_element(info)? else {
        return None;
    };
    let (SEQUENCE, algorithm, rest) = der_element(rest)? else {
        return None;
    };
    let (OID, oid, _) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (OCTET_STRING, private_key, _) = der_element(rest)? else {
        return None;
    };
    let (SEQUENCE, rsa, _) = der_element(private_key)? else {
        return None;
    };
    let (INTEGER, _, rest) = der_element(rsa)? else {
        return None;
    };
    let (INTEGER, modulus, _) = der_element(rest)? else {
        return None;
    };
    // A DER INTEGER may carry a leading zero octet to stay positive.
    let first = modulus.iter().position(|b| *b != 0)?;
    let top = modulus.get(first)?;
    Some((modulus.len() - first - 1) * 8 + (8 - top.leading_zeros() as usize))
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
