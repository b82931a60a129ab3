//! Storage: the only module that touches diesel.
//!
//! One codebase serves SQLite (the embedded default) and PostgreSQL (for
//! production and several instances) through a diesel `MultiConnection`; the
//! backend is chosen from the URL scheme, never by trial. Queries live beside
//! their models in the submodules and use portable types only (text ids,
//! integer Unix seconds, binary hashes), so no query branches on the backend.

pub mod audit;
pub mod cleanup;
pub mod clients;
mod connection;
pub mod refresh;
pub mod revocation;
pub mod schema;
pub mod signing_keys;
mod writer;

pub use connection::{Backend, Database, DbConnection, ErrorCounts, MigrationReport, PoolStatus};

/// Takes SQLite's write lock inside the current transaction with a
/// statement that writes nothing, waiting (busy timeout) if another
/// connection holds it, so that what the transaction reads next is already
/// what every other writer committed.
pub(crate) fn sqlite_write_lock(
    conn: &mut diesel::SqliteConnection,
) -> Result<(), diesel::result::Error> {
    use diesel::RunQueryDsl;
    diesel::sql_query("UPDATE signing_keys SET kid = kid WHERE 1 = 0").execute(conn)?;
    Ok(())
}

/// A round trip to the database, for readiness checks.
pub fn ping(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

/// A storage failure, split by what the caller should tell its own caller:
/// `Unavailable` means "try again later" (HTTP 503), anything else is a bug
/// or a broken database (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("invalid database URL: {0}")]
    Url(String),
    /// The blocking task running the query failed (it panicked): a bug.
    #[error("database task failed: {0}")]
    Task(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::DatabaseErrorKind as Kind;
        match self {
            Self::Unavailable(_) => true,
            Self::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    Kind::ClosedConnection | Kind::UnableToSendCommand | Kind::SerializationFailure
                )
                    // SQLite still busy after its busy timeout, or a
                    // PostgreSQL deadlock victim: retrying will do.
                    || info.message().contains("database is locked")
                    || info.message().contains("deadlock detected")
                    // A primary demoted by a failover, or a standby reached
                    // by mistake: the writes belong elsewhere for now.
                    || info.message().contains("read-only transaction")
            }
            _ => false,
        }
    }

    /// An insert hit a unique constraint (e.g. a client id already taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}
