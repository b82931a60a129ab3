//! Signing keys, their private halves sealed under the key-encryption key.

use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_key_sealed: Vec<u8>,
    pub kek_id: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retires_at: Option<i64>,
    pub removes_at: Option<i64>,
    /// Enters the JWKS; at most `activates_at`.
    pub publishes_at: i64,
}

pub fn list_keys(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .select(SigningKeyRow::as_select())
        .order((signing_keys::activates_at.asc(), signing_keys::kid.asc()))
        .load(conn)?)
}

pub fn count_keys(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(signing_keys::table.count().get_result(conn)?)
}

pub fn insert_key(conn: &mut DbConnection, key: &SigningKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table)
        .values(key)
        .execute(conn)?;
    Ok(())
}

/// Runs `f` in a transaction that holds the rotation lock: on PostgreSQL an
/// advisory lock shared by every node; on SQLite the database write lock,
/// taken by a first statement that writes nothing, so the reads inside `f`
/// already see what every other writer committed.
pub fn with_rotation_lock<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    /// The caller's error, or the database's, so the caller's error type
    /// need not know diesel.
    enum TxError<E> {
        Caller(E),
        Db(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for TxError<E> {
        fn from(e: diesel::result::Error) -> Self {
            Self::Db(e)
        }
    }
    conn.transaction::<T, TxError<E>, _>(|conn| {
        match conn {
            DbConnection::Postgres(pg) => {
                diesel::sql_query("SELECT pg_advisory_xact_lock(7262851002)").execute(pg)?;
            }
            DbConnection::Sqlite(lite) => super::sqlite_write_lock(lite)?,
        }
        f(conn).map_err(TxError::Caller)
    })
    .map_err(|e| match e {
        TxError::Caller(e) => e,
        TxError::Db(e) => E::from(StoreError::from(e)),
    })
}

pub fn set_retirement(
    conn: &mut DbConnection,
    kid: &str,
    retires_at: i64,
    removes_at: i64,
) -> Result<(), StoreError> {
    diesel::update(signing_keys::table.find(kid))
        .set((
            signing_keys::retires_at.eq(retires_at),
            signing_keys::removes_at.eq(removes_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a key event in the audit log.
pub fn audit_key(
    conn: &mut DbConnection,
    at: i64,
    kind: &str,
    detail: &str,
) -> Result<(), StoreError> {
    super::audit::record(conn, at, kind, None, None, detail)?;
    Ok(())
}

/// Cancels a scheduled retirement: the key signs and stays published.
pub fn clear_retirement(conn: &mut DbConnection, kid: &str) -> Result<(), StoreError> {
    diesel::update(signing_keys::table.find(kid))
        .set((
            signing_keys::retires_at.eq(None::<i64>),
            signing_keys::removes_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_activation(
    conn: &mut DbConnection,
    kid: &str,
    activates_at: i64,
) -> Result<(), StoreError> {
    diesel::update(signing_keys::table.find(kid))
        .set(signing_keys::activates_at.eq(activates_at))
        .execute(conn)?;
    // A key signs only once it is published.
    diesel::update(
        signing_keys::table
            .find(kid)
            .filter(signing_keys::publishes_at.gt(activates_at)),
    )
    .set(signing_keys::publishes_at.eq(activates_at))
    .execute(conn)?;
    Ok(())
}

/// Inserts `key` only if the table is empty, in one transaction; returns
/// whether it did. Start-up uses it so a first start never makes two keys.
pub fn insert_first_key(conn: &mut DbConnection, key: &SigningKeyRow) -> Result<bool, StoreError> {
    // The rotation lock serialises concurrent first starts of several nodes.
    with_rotation_lock(conn, |conn| {
        if count_keys(conn)? > 0 {
            return Ok::<_, StoreError>(false);
        }
        insert_key(conn, key)?;
        audit_key(
            conn,
            key.created_at,
            "key_published",
            &format!(
                "first key {} ({}) signs from {}",
                key.kid, key.alg, key.activates_at
            ),
        )?;
        Ok(true)
    })
}
