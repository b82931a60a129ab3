//! AES-256-GCM sealing of private signing keys under the key-encryption key.
//!
//! Layout of a sealed value: 12-byte random nonce, then ciphertext and tag.
//! The associated data binds a sealed key to its row (its `kid`), so a
//! ciphertext copied onto another row does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{CryptoError, random};

pub const KEY_LEN: usize = 32;

fn key(kek: &[u8; KEY_LEN]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, kek)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::KeyRejected("AES-256-GCM key"))
}

pub fn seal(kek: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce_bytes = random::bytes::<NONCE_LEN>()?;
    let mut in_out = plaintext.to_vec();
    key(kek)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| CryptoError::Sign)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&in_out);
    Ok(sealed)
}

pub fn open(kek: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Open);
    }
    let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Open)?;
    let mut in_out = ciphertext.to_vec();
    let plain = key(kek)?
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::Open)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_the_same_key_and_aad() -> Result<(), CryptoError> {
        let kek = [7u8; KEY_LEN];
        let sealed = seal(&kek, b"kid-1", b"private")?;
        assert_eq!(open(&kek, b"kid-1", &sealed)?, b"private");
        assert!(open(&kek, b"kid-2", &sealed).is_err());
        assert!(open(&[8u8; KEY_LEN], b"kid-1", &sealed).is_err());
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(open(&kek, b"kid-1", &tampered).is_err());
        Ok(())
    }
}
