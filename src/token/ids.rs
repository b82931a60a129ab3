//! Identifiers of things issued at a high rate: access-token `jti`s and
//! refresh-token families.
//!
//! They are UUIDv7 (RFC 9562 §5.7): the issuing second, then 74 random
//! bits. Ids issued in the same second sort together, so the indexes keyed
//! on them (`family_access_tokens`, `revoked_tokens`, `refresh_families`)
//! take each second's inserts on their last few pages. Random (v4) ids
//! spread every insert over the whole index, and on SQLite every page a
//! commit touches is written to the WAL in full. The time comes from the
//! injected clock, in whole seconds, like `iat`, so an id reveals nothing
//! the token does not already carry; the random bits keep ids unguessable.

use crate::clock::UnixSeconds;
use crate::crypto::CryptoError;

pub fn time_ordered(now: UnixSeconds) -> Result<String, CryptoError> {
    let random: [u8; 10] = crate::crypto::random::bytes()?;
    let millis = u64::try_from(now).unwrap_or(0).saturating_mul(1000);
    Ok(uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_unique_and_ordered_by_second() -> Result<(), CryptoError> {
        let a = time_ordered(1_900_000_000)?;
        let b = time_ordered(1_900_000_000)?;
        let later = time_ordered(1_900_000_001)?;
        assert_ne!(a, b, "random within a second");
        let parsed = uuid::Uuid::parse_str(&a).map_err(|_| CryptoError::Random)?;
        assert_eq!(parsed.get_version_num(), 7);
        assert!(a.max(b) < later, "a later second sorts after");
        let (secs, _) = parsed
            .get_timestamp()
            .map(|t| t.to_unix())
            .ok_or(CryptoError::Random)?;
        assert_eq!(secs, 1_900_000_000);
        Ok(())
    }
}
