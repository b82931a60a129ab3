//! Shared by the test binaries (`#[path]`-included): each creates its own
//! PostgreSQL database on the server `TEST_DATABASE_URL` names, and drops it.

use diesel::{Connection, PgConnection, RunQueryDsl};

/// `postgres://user@host:port/db?x` with `db` replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Drops a test's database, best effort: a leftover database is harmless,
/// and a panic in `Drop` would hide the test's own failure.
pub fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::establish(admin_url) {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin);
    }
}
