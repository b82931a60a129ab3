//! Refresh-token families: one client-credentials grant and all its
//! rotations. Only token hashes are stored.
//!
//! Every refresh runs in one transaction whose *first* statement writes the
//! family row (`last_used_at`). That write is the family lock: on PostgreSQL
//! it row-locks the family, on SQLite it takes the database write lock (a
//! transaction that reads first and writes later could fail to upgrade its
//! lock). Under that lock the token is read afresh and the grant rules
//! decide, so two concurrent refreshes of one family can never both rotate.

use diesel::prelude::*;

use super::revocation::{audit, lock_feed};
use super::schema::{family_access_tokens, refresh_families, refresh_tokens, revoked_tokens};
use super::{DbConnection, StoreError};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_families)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: Vec<u8>,
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// Hash of the token this one replaced; `None` for a family's first.
    pub rotated_from: Option<Vec<u8>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_families)]
pub struct NewFamily<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A refresh token and the access token issued beside it.
#[derive(Debug, Clone)]
pub struct Issue<'a> {
    pub token_hash: &'a [u8],
    pub token_expires_at: i64,
    pub access_jti: &'a str,
    pub access_expires_at: i64,
}

fn insert_issue(
    conn: &mut DbConnection,
    family_id: &str,
    issue: &Issue<'_>,
    rotated_from: Option<&[u8]>,
    now: UnixSeconds,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(issue.token_hash),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(issue.token_expires_at),
            refresh_tokens::rotated_from.eq(rotated_from),
        ))
        .execute(conn)?;
    diesel::insert_into(family_access_tokens::table)
        .values((
            family_access_tokens::jti.eq(issue.access_jti),
            family_access_tokens::family_id.eq(family_id),
            family_access_tokens::expires_at.eq(issue.access_expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Starts a family with its first refresh token, atomically.
pub fn start_family(
    conn: &mut DbConnection,
    family: &NewFamily<'_>,
    issue: &Issue<'_>,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::insert_into(refresh_families::table)
            .values(family)
            .execute(conn)?;
        insert_issue(conn, family.id, issue, None, family.created_at)
    })?;
    Ok(())
}

/// The token with this hash and its family, read without locking.
pub fn find(
    conn: &mut DbConnection,
    token_hash: &[u8],
) -> Result<Option<(RefreshTokenRow, Family)>, StoreError> {
    Ok(refresh_tokens::table
        .inner_join(refresh_families::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((RefreshTokenRow::as_select(), Family::as_select()))
        .first(conn)
        .optional()?)
}

/// What the grant rules decided, under the family lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Use the token up and issue its successor.
    Rotate,
    /// The predecessor of the family's live token presented again within the
    /// grace window (its response was lost): supersede the live token and
    /// issue a new successor.
    Reissue,
    /// A used token presented again: revoke the whole family.
    RevokeFamily,
    /// Refuse, and change nothing.
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No such token, or its family was revoked or is gone.
    Unknown,
    Refused,
    Issued {
        decision: Decision,
    },
    /// The token was good, but no successor was offered (the caller's other
    /// checks failed): nothing changed.
    NotIssued,
    FamilyRevoked {
        family_id: String,
        revoked_access_tokens: usize,
    },
}

/// Runs one refresh under the family lock; see the module comment. With no
/// `issue` to record, only reuse detection runs: a family is still revoked
/// when the decision says so, and nothing else changes.
pub fn refresh(
    conn: &mut DbConnection,
    token_hash: &[u8],
    family_id: &str,
    now: UnixSeconds,
    decide: impl FnOnce(&RefreshTokenRow, &Family, Option<&RefreshTokenRow>) -> Decision,
    issue: Option<&Issue<'_>>,
) -> Result<Outcome, StoreError> {
    let mut would_issue = false;
    let result = conn.transaction(|conn| {
        let locked = diesel::update(
            refresh_families::table
                .find(family_id)
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set(refresh_families::last_used_at.eq(now))
        .execute(conn)?;
        if locked == 0 {
            return Ok(Outcome::Unknown);
        }
        let Some((token, family)) = find(conn, token_hash).map_err(into_diesel)? else {
            return Ok(Outcome::Unknown);
        };
        // The family's live token, if any: the one a rotation made last.
        let head = refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::used_at.is_null())
            .select(RefreshTokenRow::as_select())
            .first(conn)
            .optional()?;
        let decision = decide(&token, &family, head.as_ref());
        match decision {
            Decision::Refuse => Err(diesel::result::Error::RollbackTransaction),
            Decision::Rotate | Decision::Reissue => {
                let Some(issue) = issue else {
                    would_issue = true;
                    return Err(diesel::result::Error::RollbackTransaction);
                };
                let superseded = match decision {
                    Decision::Rotate => diesel::update(
                        refresh_tokens::table
                            .find(token_hash)
                            .filter(refresh_tokens::used_at.is_null()),
                    )
                    .set(refresh_tokens::used_at.eq(now))
                    .execute(conn)?,
                    _ => mark_family_used(conn, family_id, now)?,
                };
                if decision == Decision::Rotate && superseded != 1 {
                    // Impossible under the family lock; refuse rather than fork.
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                insert_issue(conn, family_id, issue, Some(token_hash), now)?;
                Ok(Outcome::Issued { decision })
            }
            Decision::RevokeFamily => {
                let revoked = revoke_family_locked(conn, &family, now, "refresh_token_reuse")?;
                Ok(Outcome::FamilyRevoked {
                    family_id: family.id.clone(),
                    revoked_access_tokens: revoked,
                })
            }
        }
    });
    match result {
        Err(diesel::result::Error::RollbackTransaction) if would_issue => Ok(Outcome::NotIssued),
        Err(diesel::result::Error::RollbackTransaction) => Ok(Outcome::Refused),
        other => Ok(other?),
    }
}

fn into_diesel(e: StoreError) -> diesel::result::Error {
    match e {
        StoreError::Query(e) => e,
        other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
    }
}

fn mark_family_used(
    conn: &mut DbConnection,
    family_id: &str,
    now: UnixSeconds,
) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(now))
    .execute(conn)
}

/// Revokes a family whose row the caller has locked: no refresh token of it
/// works again, and every access token it issued that has not expired goes
/// on the revocation list. Records an audit event of `kind`. Returns how many
/// access tokens were added to the list.
pub(super) fn revoke_family_locked(
    conn: &mut DbConnection,
    family: &Family,
    now: UnixSeconds,
    kind: &str,
) -> QueryResult<usize> {
    diesel::update(refresh_families::table.find(&family.id))
        .set(refresh_families::revoked_at.eq(now))
        .execute(conn)?;
    mark_family_used(conn, &family.id, now)?;
    lock_feed(conn)?;
    let added = list_access_tokens(
        conn,
        std::slice::from_ref(&family.id),
        &family.client_id,
        now,
    )?;
    audit(
        conn,
        now,
        kind,
        &family.client_id,
        &format!("family {}", family.id),
    )?;
    Ok(added)
}

/// Validators accept a token up to their clock leeway past `exp` (at most
/// 300 s by configuration), so a token that expired that recently is still
/// worth listing.
const LISTING_SLACK: i64 = 300;

/// Puts the access tokens issued from these families on the revocation list
/// (those not yet listed and still possibly accepted). The caller holds the
/// feed lock. Returns how many were added.
pub(super) fn list_access_tokens(
    conn: &mut DbConnection,
    family_ids: &[String],
    client_id: &str,
    now: UnixSeconds,
) -> QueryResult<usize> {
    let live: Vec<(String, i64)> = family_access_tokens::table
        .filter(family_access_tokens::family_id.eq_any(family_ids))
        .filter(family_access_tokens::expires_at.gt(now - LISTING_SLACK))
        .select((family_access_tokens::jti, family_access_tokens::expires_at))
        .load(conn)?;
    let already: Vec<Option<String>> = revoked_tokens::table
        .filter(revoked_tokens::jti.eq_any(live.iter().map(|(jti, _)| jti)))
        .select(revoked_tokens::jti)
        .load(conn)?;
    let mut added = 0;
    for (jti, exp) in &live {
        if already.iter().any(|a| a.as_deref() == Some(jti)) {
            continue;
        }
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(jti),
                revoked_tokens::client_id.eq(client_id),
                revoked_tokens::expires_at.eq(exp),
                revoked_tokens::revoked_at.eq(now),
            ))
            .execute(conn)?;
        added += 1;
    }
    Ok(added)
}

/// Revokes the family (RFC 7009 §2.1: revoking a refresh token revokes its
/// grant, access tokens included). Returns false when it was already
/// revoked or is gone.
pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    now: UnixSeconds,
    kind: &str,
) -> Result<bool, StoreError> {
    Ok(conn.transaction(|conn| {
        let locked = diesel::update(
            refresh_families::table
                .find(family_id)
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set(refresh_families::last_used_at.eq(now))
        .execute(conn)?;
        if locked == 0 {
            return Ok(false);
        }
        let family = refresh_families::table
            .find(family_id)
            .select(Family::as_select())
            .first(conn)?;
        revoke_family_locked(conn, &family, now, kind)?;
        Ok::<_, diesel::result::Error>(true)
    })?)
}

/// Row counts, for tests and operators watching growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub families: i64,
    pub refresh_tokens: i64,
    pub family_access_tokens: i64,
    pub revoked_tokens: i64,
}

pub fn counts(conn: &mut DbConnection) -> Result<Counts, StoreError> {
    Ok(Counts {
        families: refresh_families::table.count().get_result(conn)?,
        refresh_tokens: refresh_tokens::table.count().get_result(conn)?,
        family_access_tokens: family_access_tokens::table.count().get_result(conn)?,
        revoked_tokens: revoked_tokens::table.count().get_result(conn)?,
    })
}
