//! SHA-256 and constant-time comparison.
//!
//! Client secrets and refresh tokens carry 256 bits from the CSPRNG, so a
//! plain SHA-256 is enough to store them: there is nothing to brute-force that
//! a slow password hash would protect, and the token endpoint stays fast.

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

pub const SHA256_LEN: usize = 32;

pub fn sha256(data: &[u8]) -> [u8; SHA256_LEN] {
    let d = digest(&SHA256, data);
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal-length inputs are compared without an early exit; unequal lengths
/// return false at once (lengths of hashes are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn sha384(data: &[u8]) -> Vec<u8> {
    digest(&ring::digest::SHA384, data).as_ref().to_vec()
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    digest(&ring::digest::SHA512, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn sha256_matches_the_fips_test_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
