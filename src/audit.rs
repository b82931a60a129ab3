//! The audit log as operators read it, through `tessera audit` and
//! `GET /admin/audit`. Events are written by `store`, in the transaction of
//! the change they record; this is the reading side, so that neither the
//! CLI nor the admin API queries the store for it themselves.

use crate::clock::UnixSeconds;
use crate::store::{DbConnection, StoreError};

pub use crate::store::audit::AuditEvent;

/// Up to `limit` events, newest first, of one client or all, since an
/// instant or ever.
pub fn list(
    conn: &mut DbConnection,
    client_id: Option<&str>,
    since: Option<UnixSeconds>,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    crate::store::audit::list(conn, client_id, since, limit)
}
