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

/// Inserts `key` only if the table is empty, in one transaction; returns
/// whether it did. Start-up uses it so a first start never makes two keys.
pub fn insert_first_key(conn: &mut DbConnection, key: &SigningKeyRow) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        if let DbConnection::Postgres(pg) = conn {
            // Serialises concurrent first starts of several nodes; released
            // at the end of the transaction.
            diesel::sql_query("SELECT pg_advisory_xact_lock(7262851002)").execute(pg)?;
        }
        if count_keys(conn)? > 0 {
            return Ok(false);
        }
        insert_key(conn, key)?;
        Ok(true)
    })
}
