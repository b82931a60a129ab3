//! Randomness for secrets, tokens, nonces and keys, from the operating
//! system's CSPRNG.

use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

pub fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

pub fn bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    fill(&mut buf)?;
    Ok(buf)
}

pub(crate) fn system() -> SystemRandom {
    SystemRandom::new()
}
