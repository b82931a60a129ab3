//! What the janitor deletes: rows whose every use has expired. Deletes are
//! idempotent, and on PostgreSQL one node sweeps at a time (a transaction
//! holding an advisory lock; the others skip their turn): concurrent sweeps
//! could otherwise deadlock, one deleting a family's tokens while another
//! deletes the family and cascades to the same tokens.
//!
//! A used refresh token is kept until its own idle expiry, so presenting it
//! again until then is still detected as reuse; after that it could not be
//! used anyway. A family goes at its absolute expiry, or as soon as its last
//! token has gone: nothing of it can be presented any more.

use diesel::prelude::*;

use super::schema::{
    audit_events, family_access_tokens, refresh_families, refresh_tokens, revoked_tokens,
    signing_keys,
};
use super::{DbConnection, StoreError};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub families: usize,
    pub refresh_tokens: usize,
    pub family_access_tokens: usize,
    pub revoked_tokens: usize,
    /// Keys past their removal: their sealed private halves go too.
    pub signing_keys: usize,
    /// Audit events older than the retention.
    pub audit_events: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.families
            + self.refresh_tokens
            + self.family_access_tokens
            + self.revoked_tokens
            + self.signing_keys
            + self.audit_events
    }
}

/// Any value; it only has to be the same on every Tessera node.
const JANITOR_LOCK_ID: i64 = 0x7e55_e7a0_0003;

/// Deletes everything that expired before `cutoff` (the caller passes now
/// minus the clock leeway, so a token a validator still accepts is never
/// forgotten early), in one transaction. `None`: another node is sweeping.
pub fn sweep(
    conn: &mut DbConnection,
    cutoff: UnixSeconds,
    audit_before: UnixSeconds,
) -> Result<Option<Swept>, StoreError> {
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        match conn {
            DbConnection::Postgres(pg) => {
                let ours: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    &format!("pg_try_advisory_xact_lock({JANITOR_LOCK_ID})"),
                ))
                .get_result(pg)?;
                if !ours {
                    return Ok(None);
                }
            }
            // The sweep reads before it deletes (the families losing their
            // tokens): a transaction that began as a reader could not turn
            // into a writer once the writer thread had committed since, and
            // SQLite would refuse it at once. Take the write lock first.
            DbConnection::Sqlite(lite) => super::sqlite_write_lock(lite)?,
        }
        delete_expired(conn, cutoff, audit_before).map(Some)
    })
    .map_err(StoreError::from)
}

fn delete_expired(
    conn: &mut DbConnection,
    cutoff: UnixSeconds,
    audit_before: UnixSeconds,
) -> Result<Swept, diesel::result::Error> {
    // The families losing tokens now, found through the expiry index: those
    // left with none are dead (no token of theirs can be presented, so there
    // is nothing to refresh and no reuse to detect) and go too, instead of
    // lingering until their absolute expiry. A revoked family's tokens are
    // marked used, not deleted, so it goes at their idle expiry.
    let losing: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::expires_at.lt(cutoff))
        .select(refresh_tokens::family_id)
        .distinct()
        .load(conn)?;
    let refresh_tokens =
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(cutoff)))
            .execute(conn)?;
    let family_access_tokens = diesel::delete(
        family_access_tokens::table.filter(family_access_tokens::expires_at.lt(cutoff)),
    )
    .execute(conn)?;
    // Deleting a family cascades to whatever rows of it remain.
    let mut families =
        diesel::delete(refresh_families::table.filter(refresh_families::expires_at.lt(cutoff)))
            .execute(conn)?;
    // In chunks: SQLite limits the number of bound parameters.
    for chunk in losing.chunks(10_000) {
        families += diesel::delete(
            refresh_families::table
                .filter(refresh_families::id.eq_any(chunk))
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    refresh_tokens::table
                        .filter(refresh_tokens::family_id.eq(refresh_families::id)),
                ))),
        )
        .execute(conn)?;
    }
    let revoked_tokens =
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(cutoff)))
            .execute(conn)?;
    let signing_keys =
        diesel::delete(signing_keys::table.filter(signing_keys::removes_at.lt(cutoff)))
            .execute(conn)?;
    let audit_events =
        diesel::delete(audit_events::table.filter(audit_events::at.lt(audit_before)))
            .execute(conn)?;
    Ok(Swept {
        families,
        refresh_tokens,
        family_access_tokens,
        revoked_tokens,
        signing_keys,
        audit_events,
    })
}
