//! Key rotation: announce, then rotate, then retain.
//!
//! A new key is stored a full `lead` before it signs anything and enters the
//! JWKS one check interval after it is stored (once every node has read
//! it), so every validator that caches the JWKS for at most `max-age` knows
//! it in time (`lead` ≥ `max-age` + check interval); the old
//! key stops signing at that instant and stays published for `retention`,
//! longer than any token it signed can live. Rotations run under a database
//! lock, so on several nodes exactly one of them creates the next key.

use super::KeyError;
use super::kek::KeyEncryptionKey;
use super::keyset::sealed_row;
use crate::clock::UnixSeconds;
use crate::crypto::signing::{self, SigningAlgorithm};
use crate::store::DbConnection;
use crate::store::signing_keys::{self, SigningKeyRow};

#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// Algorithm of generated keys.
    pub alg: SigningAlgorithm,
    /// How long a key signs before the next one takes over.
    pub period: i64,
    /// How long a new key is published before it signs.
    pub lead: i64,
    /// How long a retired key stays published.
    pub retention: i64,
    /// How long a new key waits before it enters the JWKS: the key check
    /// interval, so every node has read it by then and all publish it
    /// from the same second.
    pub publish_delay: i64,
}

fn signing_at(row: &SigningKeyRow, now: UnixSeconds) -> bool {
    row.activates_at <= now
        && row.retires_at.is_none_or(|t| now < t)
        && row.removes_at.is_none_or(|t| now < t)
}

fn pending(rows: &[SigningKeyRow], now: UnixSeconds) -> Option<&SigningKeyRow> {
    rows.iter()
        .find(|r| r.activates_at > now && r.removes_at.is_none_or(|t| now < t))
}

/// When the next key should start signing, if one should be made now: when
/// no key is pending and the active key is within `lead` of the end of its
/// period (or there is no active key at all, after an emergency).
pub fn plan(
    rows: &[SigningKeyRow],
    now: UnixSeconds,
    policy: &RotationPolicy,
) -> Option<UnixSeconds> {
    if pending(rows, now).is_some() {
        return None;
    }
    let active = rows
        .iter()
        .filter(|r| signing_at(r, now))
        .max_by_key(|r| r.activates_at);
    match active {
        None => Some(now),
        Some(a) => {
            let due = a.activates_at + policy.period;
            (now >= due - policy.lead).then(|| due.max(now + policy.lead))
        }
    }
}

/// New keys must be sealed under the KEK the stored keys use: a key the
/// servers cannot open would stop them at their next start.
fn check_kek(rows: &[SigningKeyRow], kek: &KeyEncryptionKey) -> Result<(), KeyError> {
    match rows.iter().find(|r| r.kek_id != kek.id()) {
        Some(r) => Err(KeyError::Kek(format!(
            "key {} is sealed under key-encryption key {}, but this one is {}: \
             use the same TESSERA_KEYS_DIR or TESSERA_KEK as the servers",
            r.kid,
            r.kek_id,
            kek.id()
        ))),
        None => Ok(()),
    }
}

/// Stores `row` as the next key and schedules every key signing before it
/// to retire when it activates.
fn install(
    conn: &mut DbConnection,
    rows: &[SigningKeyRow],
    row: &SigningKeyRow,
    retention: i64,
) -> Result<(), KeyError> {
    let at = row.activates_at;
    signing_keys::insert_key(conn, row)?;
    signing_keys::audit_key(
        conn,
        row.created_at,
        "key_published",
        &format!("key {} ({}) signs from {at}", row.kid, row.alg),
    )?;
    for old in rows
        .iter()
        .filter(|r| r.activates_at <= at && r.retires_at.is_none())
    {
        signing_keys::set_retirement(conn, &old.kid, at, at + retention)?;
    }
    Ok(())
}

/// Runs [`plan`] under the rotation lock and creates the next key if due.
/// Returns its kid.
pub fn rotate_if_due(
    conn: &mut DbConnection,
    kek: &KeyEncryptionKey,
    policy: &RotationPolicy,
    now: UnixSeconds,
) -> Result<Option<String>, KeyError> {
    signing_keys::with_rotation_lock(conn, |conn| {
        let rows = signing_keys::list_keys(conn)?;
        check_kek(&rows, kek)?;
        let Some(activates_at) = plan(&rows, now, policy) else {
            return Ok(None);
        };
        let row = sealed_row(
            kek,
            policy.alg,
            &signing::generate_pkcs8(policy.alg)?,
            now,
            activates_at,
            policy.publish_delay,
        )?;
        install(conn, &rows, &row, policy.retention)?;
        Ok(Some(row.kid))
    })
}

/// Starts a rotation now, still pre-publishing for `lead`: with a generated
/// key of the policy's algorithm, or with an imported PKCS#8 key. Refused
/// while another key is already pending.
pub fn rotate_now(
    conn: &mut DbConnection,
    kek: &KeyEncryptionKey,
    policy: &RotationPolicy,
    now: UnixSeconds,
    imported: Option<(SigningAlgorithm, &[u8])>,
) -> Result<SigningKeyRow, KeyError> {
    signing_keys::with_rotation_lock(conn, |conn| {
        let rows = signing_keys::list_keys(conn)?;
        check_kek(&rows, kek)?;
        if let Some(p) = pending(&rows, now) {
            return Err(KeyError::Rotation(format!(
                "key {} is already pending or published and activates at {}; wait for it, or retire it first",
                p.kid, p.activates_at
            )));
        }
        let activates_at = now + policy.lead;
        let row = match imported {
            Some((alg, pkcs8)) => {
                sealed_row(kek, alg, pkcs8, now, activates_at, policy.publish_delay)?
            }
            None => sealed_row(
                kek,
                policy.alg,
                &signing::generate_pkcs8(policy.alg)?,
                now,
                activates_at,
                policy.publish_delay,
            )?,
        };
        if rows.iter().any(|r| r.kid == row.kid) {
            return Err(KeyError::Rotation(format!(
                "key {} is already stored",
                row.kid
            )));
        }
        install(conn, &rows, &row, policy.retention)?;
        Ok(row)
    })
}

/// What an emergency retirement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub kid: String,
    /// The key that signs from now on, if the retired one was signing.
    pub successor: Option<String>,
}

/// Emergency: takes `kid` out of the JWKS and out of signing at once. If it
/// was the signing key, a pending key is brought forward, or a new one made,
/// and signs immediately, without pre-publication: validators holding a
/// cached JWKS meet its kid unannounced and must re-fetch.
pub fn retire_now(
    conn: &mut DbConnection,
    kek: &KeyEncryptionKey,
    policy: &RotationPolicy,
    kid: &str,
    now: UnixSeconds,
) -> Result<Retired, KeyError> {
    signing_keys::with_rotation_lock(conn, |conn| {
        let rows = signing_keys::list_keys(conn)?;
        check_kek(&rows, kek)?;
        let target = rows
            .iter()
            .find(|r| r.kid == kid && r.removes_at.is_none_or(|t| now < t))
            .ok_or_else(|| KeyError::Rotation(format!("no published key with kid {kid:?}")))?;
        let was_signing = signing_at(target, now);
        let was_pending = target.activates_at > now;
        signing_keys::set_retirement(conn, kid, now, now)?;
        signing_keys::audit_key(
            conn,
            now,
            "key_retired",
            &format!("key {kid} retired at once"),
        )?;
        if was_pending {
            // Withdrawing the next key: whatever it was to replace keeps
            // signing, as if the rotation had never started.
            for old in rows.iter().filter(|r| {
                r.kid != kid && signing_at(r, now) && r.retires_at == Some(target.activates_at)
            }) {
                signing_keys::clear_retirement(conn, &old.kid)?;
            }
        }
        let still_signing = rows.iter().any(|r| r.kid != kid && signing_at(r, now));
        let successor = if was_signing && !still_signing {
            match pending(&rows, now).filter(|p| p.kid != kid) {
                Some(p) => {
                    signing_keys::set_activation(conn, &p.kid, now)?;
                    Some(p.kid.clone())
                }
                None => {
                    let row = sealed_row(
                        kek,
                        policy.alg,
                        &signing::generate_pkcs8(policy.alg)?,
                        now,
                        now,
                        0,
                    )?;
                    signing_keys::insert_key(conn, &row)?;
                    signing_keys::audit_key(
                        conn,
                        now,
                        "key_published",
                        &format!(
                            "key {} ({}) signs at once, replacing {kid}",
                            row.kid, row.alg
                        ),
                    )?;
                    Some(row.kid)
                }
            }
        } else {
            None
        };
        Ok(Retired {
            kid: kid.to_owned(),
            successor,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy {
        alg: SigningAlgorithm::Es256,
        period: 1000,
        lead: 100,
        retention: 500,
        publish_delay: 10,
    };

    fn row(kid: &str, activates_at: i64, retires_at: Option<i64>) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.into(),
            alg: "ES256".into(),
            public_jwk: String::new(),
            private_key_sealed: vec![],
            kek_id: String::new(),
            created_at: 0,
            activates_at,
            retires_at,
            removes_at: retires_at.map(|t| t + 500),
            publishes_at: 0,
        }
    }

    #[test]
    fn the_next_key_is_planned_a_lead_before_the_period_ends() {
        let rows = [row("a", 0, None)];
        assert_eq!(plan(&rows, 899, &POLICY), None);
        assert_eq!(plan(&rows, 900, &POLICY), Some(1000));
        // A late check still pre-publishes for a full lead.
        assert_eq!(plan(&rows, 1500, &POLICY), Some(1600));
    }

    #[test]
    fn nothing_is_planned_while_a_key_is_pending() {
        let rows = [row("a", 0, Some(1000)), row("b", 1000, None)];
        assert_eq!(plan(&rows, 950, &POLICY), None);
        // Once b signs, its own period counts.
        assert_eq!(plan(&rows, 1899, &POLICY), None);
        assert_eq!(plan(&rows, 1900, &POLICY), Some(2000));
    }

    #[test]
    fn without_an_active_key_one_is_planned_at_once() {
        let rows = [row("a", 0, Some(10))];
        assert_eq!(plan(&rows, 20, &POLICY), Some(20));
    }
}
