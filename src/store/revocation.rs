//! The revocation list and its feed.
//!
//! `revoked_tokens` holds two kinds of entry, ordered by `seq`: a revoked
//! access token (its `jti`, kept until its `exp`), and a client-wide cut-off
//! (`jti` NULL: every token of `client_id` issued at or before `revoked_at`
//! is revoked; kept until the longest-lived such token has expired).
//!
//! The feed hands entries out by `seq`, so an entry must never become
//! visible after one with a higher `seq`. SQLite has one writer at a time;
//! on PostgreSQL every transaction that adds an entry first takes
//! [`lock_feed`], so entries commit in `seq` order. Lock order, to rule out
//! deadlocks: family rows first, the feed lock last.

use diesel::prelude::*;

use super::schema::{clients, refresh_families, refresh_tokens, revoked_tokens};
use super::{DbConnection, StoreError};
use crate::clock::UnixSeconds;

/// Serialises writers of the feed on PostgreSQL until the transaction ends.
pub(super) fn lock_feed(conn: &mut DbConnection) -> QueryResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(7262851003)").execute(pg)?;
    }
    Ok(())
}

pub(super) fn audit(
    conn: &mut DbConnection,
    now: UnixSeconds,
    kind: &str,
    client_id: &str,
    detail: &str,
) -> QueryResult<()> {
    super::audit::record(conn, now, kind, Some(client_id), None, detail)
}

/// Puts an access token on the list until `expires_at`. Returns false when
/// it was already there.
pub fn revoke_jti(
    conn: &mut DbConnection,
    jti: &str,
    client_id: &str,
    expires_at: UnixSeconds,
    now: UnixSeconds,
) -> Result<bool, StoreError> {
    let result = conn.transaction(|conn| {
        lock_feed(conn)?;
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(jti),
                revoked_tokens::client_id.eq(client_id),
                revoked_tokens::expires_at.eq(expires_at),
                revoked_tokens::revoked_at.eq(now),
            ))
            .execute(conn)?;
        audit(
            conn,
            now,
            "access_token_revoked",
            client_id,
            &format!("jti {jti}"),
        )
    });
    match result.map_err(StoreError::from) {
        Ok(()) => Ok(true),
        Err(e) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a client-wide revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeAll {
    /// Tokens issued at or before this instant are revoked.
    pub tokens_valid_after: UnixSeconds,
    pub families_revoked: usize,
}

/// Revokes every refresh family of the client and records a cut-off: all
/// its access tokens issued at or before `cutoff` (`now`, or a little later
/// to cover servers that have not seen the change yet) are revoked, without
/// listing each. The cut-off entry stays in the feed until `relevant_until`.
/// Returns `None` when there is no such client.
pub fn revoke_all(
    conn: &mut DbConnection,
    client_id: &str,
    now: UnixSeconds,
    cutoff: UnixSeconds,
    relevant_until: UnixSeconds,
    kind: &str,
) -> Result<Option<RevokeAll>, StoreError> {
    Ok(conn.transaction(|conn| {
        // Family rows first (the lock order), then the client, then the feed.
        let families_revoked = diesel::update(
            refresh_families::table
                .filter(refresh_families::client_id.eq(client_id))
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set(refresh_families::revoked_at.eq(now))
        .execute(conn)?;
        let family_ids: Vec<String> = refresh_families::table
            .filter(refresh_families::client_id.eq(client_id))
            .select(refresh_families::id)
            .load(conn)?;
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq_any(&family_ids))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?;
        let updated = diesel::update(clients::table.find(client_id))
            .set(clients::updated_at.eq(now))
            .execute(conn)?;
        if updated == 0 {
            return Ok(None);
        }
        // A later cut-off replaces an earlier one; never move it back.
        diesel::update(
            clients::table.find(client_id).filter(
                clients::tokens_valid_after
                    .is_null()
                    .or(clients::tokens_valid_after.lt(cutoff)),
            ),
        )
        .set(clients::tokens_valid_after.eq(cutoff))
        .execute(conn)?;
        let tokens_valid_after = clients::table
            .find(client_id)
            .select(clients::tokens_valid_after)
            .first::<Option<i64>>(conn)?
            .unwrap_or(cutoff);
        lock_feed(conn)?;
        // The cut-off covers every access token issued until now; listing
        // the families' tokens as well covers one a refresh racing this
        // transaction stamped with a later second.
        super::refresh::list_access_tokens(conn, &family_ids, client_id, now)?;
        // A client entry's `revoked_at` is its cut-off: feed followers and
        // `listed_cutoff` read it so.
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::client_id.eq(client_id),
                revoked_tokens::expires_at.eq(relevant_until),
                revoked_tokens::revoked_at.eq(tokens_valid_after),
            ))
            .execute(conn)?;
        audit(
            conn,
            now,
            kind,
            client_id,
            &format!("{families_revoked} refresh families revoked"),
        )?;
        Ok::<_, diesel::result::Error>(Some(RevokeAll {
            tokens_valid_after,
            families_revoked,
        }))
    })?)
}

/// Disables the client and revokes everything it holds, in one transaction.
/// Returns `None` when there is no such client.
pub fn disable_client(
    conn: &mut DbConnection,
    client_id: &str,
    now: UnixSeconds,
    cutoff: UnixSeconds,
    relevant_until: UnixSeconds,
) -> Result<Option<RevokeAll>, StoreError> {
    // Same lock order as `revoke_all`: families, then the client row.
    conn.transaction(|conn| {
        let Some(done) = revoke_all(
            conn,
            client_id,
            now,
            cutoff,
            relevant_until,
            "client_disabled",
        )?
        else {
            return Ok(None);
        };
        super::clients::disable_client(conn, client_id, now)?;
        Ok(Some(done))
    })
}

/// Cuts off the client's tokens (so feed followers learn of it) and deletes
/// it, in one transaction. Returns false when there is no such client.
pub fn delete_client(
    conn: &mut DbConnection,
    client_id: &str,
    now: UnixSeconds,
    cutoff: UnixSeconds,
    relevant_until: UnixSeconds,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        if revoke_all(
            conn,
            client_id,
            now,
            cutoff,
            relevant_until,
            "client_deleted",
        )?
        .is_none()
        {
            return Ok(false);
        }
        super::clients::delete_client(conn, client_id)
    })
}

/// The latest client-wide cut-off still listed for `client_id`: a client
/// re-created under a deleted one's id inherits it, so the old client's
/// tokens stay dead.
pub fn listed_cutoff(conn: &mut DbConnection, client_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(revoked_tokens::table
        .filter(revoked_tokens::client_id.eq(client_id))
        .filter(revoked_tokens::jti.is_null())
        .select(diesel::dsl::max(revoked_tokens::revoked_at))
        .first::<Option<i64>>(conn)?)
}

/// Whether the access token `jti` is on the list.
pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> Result<bool, StoreError> {
    Ok(revoked_tokens::table
        .filter(revoked_tokens::jti.eq(jti))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// What introspection needs to know about an access token beyond its
/// signature: is its `jti` listed, and is its client still there, enabled,
/// and with which cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenStanding {
    pub revoked: bool,
    /// `None`: the client no longer exists.
    pub client: Option<ClientStanding>,
}

impl AccessTokenStanding {
    /// Whether a token issued at `iat` with this standing is still good: not
    /// listed, its client present and enabled, and issued after any cut-off.
    pub fn in_force(&self, iat: i64) -> bool {
        !self.revoked
            && self
                .client
                .is_some_and(|c| !c.disabled && c.tokens_valid_after.is_none_or(|t| iat > t))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientStanding {
    pub disabled: bool,
    pub tokens_valid_after: Option<i64>,
}

pub fn access_token_standing(
    conn: &mut DbConnection,
    jti: &str,
    client_id: &str,
) -> Result<AccessTokenStanding, StoreError> {
    let revoked = is_revoked(conn, jti)?;
    let client = clients::table
        .find(client_id)
        .select((clients::disabled_at, clients::tokens_valid_after))
        .first::<(Option<i64>, Option<i64>)>(conn)
        .optional()?
        .map(|(disabled_at, tokens_valid_after)| ClientStanding {
            disabled: disabled_at.is_some(),
            tokens_valid_after,
        });
    Ok(AccessTokenStanding { revoked, client })
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct FeedEntry {
    pub seq: i64,
    pub jti: Option<String>,
    pub client_id: String,
    pub expires_at: i64,
    pub revoked_at: i64,
}

/// Up to `limit` entries after `after` that still matter at `now`: entries
/// stay listed for `leeway` past their `exp`, as long as a validator with that
/// leeway may still accept the token.
pub fn feed(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
    now: UnixSeconds,
    leeway: i64,
) -> Result<Vec<FeedEntry>, StoreError> {
    Ok(revoked_tokens::table
        .filter(revoked_tokens::seq.gt(after))
        .filter(revoked_tokens::expires_at.gt(now - leeway))
        .order(revoked_tokens::seq.asc())
        .limit(limit)
        .select((
            revoked_tokens::seq,
            revoked_tokens::jti,
            revoked_tokens::client_id,
            revoked_tokens::expires_at,
            revoked_tokens::revoked_at,
        ))
        .load(conn)?)
}
