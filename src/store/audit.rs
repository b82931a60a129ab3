//! The audit log: who did what, when, from where. Never a secret or a token
//! value: client ids, jtis, family ids, kids and reasons only.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::audit_events;
use super::{DbConnection, StoreError};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub client_id: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

pub fn record(
    conn: &mut DbConnection,
    at: UnixSeconds,
    kind: &str,
    client_id: Option<&str>,
    source: Option<&str>,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::at.eq(at),
            audit_events::kind.eq(kind),
            audit_events::client_id.eq(client_id),
            audit_events::source.eq(source),
            audit_events::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// The newest events first, at most `limit`, optionally for one client and
/// since an instant.
pub fn list(
    conn: &mut DbConnection,
    client_id: Option<&str>,
    since: Option<UnixSeconds>,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut query = audit_events::table
        .select((
            audit_events::id,
            audit_events::at,
            audit_events::kind,
            audit_events::client_id,
            audit_events::source,
            audit_events::detail,
        ))
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(id) = client_id {
        query = query.filter(audit_events::client_id.eq(id.to_owned()));
    }
    if let Some(t) = since {
        query = query.filter(audit_events::at.ge(t));
    }
    Ok(query.load(conn)?)
}
