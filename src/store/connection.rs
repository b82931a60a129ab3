//! Connections, the pool and migrations.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, Pool, PooledConnection, R2D2Connection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StoreError;
use super::writer::Writer;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any value; it only has to be the same on every Tessera node.
const MIGRATION_LOCK_ID: i64 = 0x7e55_e7a0_0001;

// WAL lets readers run beside the one writer; FULL syncs every commit, so a
// revocation that was answered 200 survives a crash. (The busy timeout, set
// per connection, makes a writer wait for the lock instead of failing at
// once: as long as a request waits for a pooled connection, then 503.)
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;";

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Chooses the backend from the URL scheme and returns what the driver
    /// wants: the URL itself for PostgreSQL, the file path for SQLite.
    pub fn from_url(url: &str) -> Result<(Self, String), StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok((Self::Postgres, url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                StoreError::Url("expected a sqlite://PATH or postgres:// URL".to_owned())
            })?;
        if path.is_empty() || path.contains(":memory:") {
            return Err(StoreError::Url(
                "SQLite needs a file path (an in-memory database is not shared between pooled connections)"
                    .to_owned(),
            ));
        }
        Ok((Self::Sqlite, path.to_owned()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone)]
/// Opens connections of the backend the URL named; never guesses.
pub struct Manager {
    backend: Backend,
    target: String,
    /// SQLite's busy timeout: the database timeout.
    busy_timeout: Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target)
                .map(DbConnection::Postgres)
                .map_err(r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// What `migrate` did: the versions it applied, in order.
#[derive(Debug, Default)]
pub struct MigrationReport {
    pub applied: Vec<String>,
}

/// The connection pool. Cheap to clone; every clone shares the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    backend: Backend,
    manager: Manager,
    errors: Arc<ErrorCounters>,
    /// Counts the clones, so shutdown can tell when it holds the last one.
    handles: Arc<()>,
    /// A server's SQLite writes go through one connection (see `writer`).
    pub(crate) writer: Option<Writer>,
    /// A server's SQLite reads run on the calling thread (see `read`).
    inline: Option<Arc<InlineConnections>>,
    writer_thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// SQLite connections for reads on the async workers: `keep` of them stay
/// open, one per worker thread that reads at the same instant.
struct InlineConnections {
    manager: Manager,
    idle: std::sync::Mutex<Vec<DbConnection>>,
    keep: usize,
}

impl InlineConnections {
    /// The read's result, or `None` when it should go to the blocking pool
    /// instead: no connection could be opened, or the read failed.
    fn try_read<T>(&self, f: &impl Fn(&mut DbConnection) -> Result<T, StoreError>) -> Option<T> {
        use r2d2::ManageConnection;
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.manager.connect().ok()?,
        };
        let result = f(&mut conn);
        if !conn.is_broken() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.keep {
                    idle.push(conn);
                }
            }
        }
        result.ok()
    }
}

#[derive(Debug, Default)]
struct ErrorCounters {
    unavailable: AtomicU64,
    other: AtomicU64,
}

/// Failed [`Database::run`] calls since the pool was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts {
    pub unavailable: u64,
    pub other: u64,
}

/// The pool as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

pub type PooledDb = PooledConnection<Manager>;

impl Database {
    /// Opens a pool of up to `size` connections for a server, keeping one
    /// open at all times. Fails if the database cannot be reached within
    /// `timeout`: a server that cannot reach its database at start-up says
    /// so instead of serving errors.
    pub fn open(url: &str, size: u32, timeout: Duration) -> Result<Self, StoreError> {
        Self::open_with(url, size, Some(1), timeout)
    }

    /// As [`Database::open`], and on SQLite with one writer thread that
    /// groups concurrent writes into shared commits ([`Database::write`]).
    pub fn open_for_server(url: &str, size: u32, timeout: Duration) -> Result<Self, StoreError> {
        let mut db = Self::open_with(url, size, Some(1), timeout)?;
        if db.backend == Backend::Sqlite {
            let (writer, thread) = Writer::start(db.manager.clone())?;
            db.writer = Some(writer);
            db.writer_thread = Arc::new(std::sync::Mutex::new(Some(thread)));
            db.inline = Some(Arc::new(InlineConnections {
                manager: Manager {
                    busy_timeout: Duration::ZERO,
                    ..db.manager.clone()
                },
                idle: std::sync::Mutex::new(Vec::new()),
                // One per worker thread that may read at the same instant
                // (actix starts one worker per core by default).
                keep: std::thread::available_parallelism().map_or(4, |n| n.get().clamp(1, 16)),
            }));
        }
        Ok(db)
    }

    /// One connection, opened on first use, for a short-lived command. No
    /// connection is ever opened in the background: a process that exits
    /// while the pool's thread is still inside libpq's TLS set-up can crash
    /// in OpenSSL's exit handlers.
    pub fn open_single(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::open_with(url, 1, Some(0), timeout)
    }

    fn open_with(
        url: &str,
        size: u32,
        min_idle: Option<u32>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (backend, target) = Backend::from_url(url)?;
        if backend == Backend::Sqlite {
            if let Some(parent) = Path::new(&target).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Unavailable(format!(
                            "cannot create the directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
            }
        }
        let manager = Manager {
            backend,
            target,
            busy_timeout: timeout,
        };
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(min_idle)
            // A SQLite connection is a file handle: it cannot go stale
            // between uses, so checking it on every checkout only costs a
            // query. A PostgreSQL connection can (a restart, a failover),
            // and is checked.
            .test_on_check_out(backend == Backend::Postgres)
            .connection_timeout(timeout)
            .build(manager.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            backend,
            errors: Arc::default(),
            handles: Arc::default(),
            manager,
            writer: None,
            inline: None,
            writer_thread: Arc::default(),
        })
    }

    /// Closes the pool at shutdown: waits up to `timeout` for every other
    /// handle to be dropped (the server's workers, the background tasks),
    /// then closes each connection cleanly. Returns the number of
    /// connections closed, or the number of handles still held elsewhere.
    pub async fn close(self, timeout: Duration) -> Result<u32, usize> {
        let deadline = std::time::Instant::now() + timeout;
        while Arc::strong_count(&self.handles) > 1 {
            if std::time::Instant::now() >= deadline {
                return Err(Arc::strong_count(&self.handles) - 1);
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let open = self.pool.state().connections;
        let writer = self
            .writer_thread
            .lock()
            .map(|mut t| t.take())
            .unwrap_or_default();
        // The last handle: dropping the pool drops (and so closes) every
        // idle connection, on this thread; dropping the last writer handle
        // ends the writer's thread, which closes its connection.
        drop(self);
        let writer_closed = writer.map(|t| t.join().is_ok());
        Ok(open + u32::from(writer_closed == Some(true)))
    }

    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            open: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }

    pub fn error_counts(&self) -> ErrorCounts {
        ErrorCounts {
            unavailable: self.errors.unavailable.load(Ordering::Relaxed),
            other: self.errors.other.load(Ordering::Relaxed),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for synchronous callers (the CLI, start-up).
    pub fn conn(&self) -> Result<PooledDb, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Runs blocking database work on the blocking thread pool, so the async
    /// workers that serve HTTP never wait on I/O.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let result = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
        .and_then(|r| r);
        self.count(&result);
        result
    }

    /// Runs a read. On a server's SQLite database it runs right here, on a
    /// connection kept for the purpose: a read in WAL mode takes
    /// microseconds and never waits for the writer, which is less than the
    /// hop to the blocking pool costs. Those connections do not wait on a
    /// lock at all (busy timeout 0): a read that meets one (a checkpoint,
    /// another process's exclusive lock), or fails in any way, runs again
    /// on the blocking pool with the configured timeout, so an async worker
    /// never sleeps. Elsewhere it is [`Database::run`].
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(inline) = &self.inline {
            if let Some(result) = inline.try_read(&f) {
                return Ok(result);
            }
        }
        self.run(f).await
    }

    /// Runs a write. On a server's SQLite database it joins the next group
    /// commit on the writer thread; otherwise it is [`Database::run`]. The
    /// answer comes only after the commit either way.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(writer) = self.writer.clone() else {
            return self.run(f).await;
        };
        let result = writer.write(f).await;
        self.count(&result);
        result
    }

    /// SQLite's `synchronous` level (2 is FULL) as the connection that
    /// commits this database's writes sees it: on a server, the writer
    /// thread's own connection, reached through the write queue. Read-only;
    /// it exists so a test can check the durability setting where it
    /// matters rather than on some other connection. `None` on PostgreSQL.
    pub async fn write_path_synchronous(&self) -> Result<Option<i64>, StoreError> {
        #[derive(diesel::QueryableByName)]
        struct Level {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            synchronous: i64,
        }
        self.write(|conn| match conn {
            DbConnection::Sqlite(lite) => Ok(Some(
                diesel::sql_query("PRAGMA synchronous")
                    .get_result::<Level>(lite)?
                    .synchronous,
            )),
            DbConnection::Postgres(_) => Ok(None),
        })
        .await
    }

    fn count<T>(&self, result: &Result<T, StoreError>) {
        if let Err(e) = result {
            let counter = if e.is_unavailable() {
                &self.errors.unavailable
            } else {
                &self.errors.other
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock makes
    /// several nodes starting at once apply them one after the other.
    pub fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>()),
            DbConnection::Postgres(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                    .execute(c)?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>());
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                    .execute(c)?;
                result
            }
        }
        .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(MigrationReport { applied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme_never_by_trial() -> Result<(), StoreError> {
        assert_eq!(
            Backend::from_url("postgres://u@h/db")?,
            (Backend::Postgres, "postgres://u@h/db".to_owned())
        );
        assert_eq!(
            Backend::from_url("sqlite://data/t.db")?,
            (Backend::Sqlite, "data/t.db".to_owned())
        );
        assert_eq!(
            Backend::from_url("sqlite:///abs/t.db")?,
            (Backend::Sqlite, "/abs/t.db".to_owned())
        );
        assert!(Backend::from_url("data/t.db").is_err());
        assert!(Backend::from_url("mysql://h/db").is_err());
        assert!(Backend::from_url("sqlite://:memory:").is_err());
        Ok(())
    }

    /// A server's SQLite read runs on the calling thread; when it fails
    /// there (a lock met with no busy timeout, say), it runs again on the
    /// blocking pool instead of failing the request.
    #[actix_web::test]
    async fn sqlite_reads_run_inline_and_fall_back_to_the_pool() {
        use std::sync::Mutex;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let db = Database::open_for_server(&url, 2, Duration::from_secs(5)).expect("open");
        db.migrate().expect("migrate");
        let here = std::thread::current().id();

        let threads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&threads);
        let n = db
            .read(move |conn| {
                seen.lock().expect("lock").push(std::thread::current().id());
                super::super::clients::generation(conn)
            })
            .await
            .expect("read");
        assert_eq!(n, 0);
        assert_eq!(*threads.lock().expect("lock"), vec![here], "inline, once");

        let threads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&threads);
        let n = db
            .read(move |conn| {
                let mut seen = seen.lock().expect("lock");
                seen.push(std::thread::current().id());
                if seen.len() == 1 {
                    return Err(StoreError::Unavailable("database is locked".into()));
                }
                super::super::clients::generation(conn)
            })
            .await
            .expect("the second attempt succeeds");
        assert_eq!(n, 0);
        let threads = threads.lock().expect("lock");
        assert_eq!(threads.len(), 2, "tried twice");
        assert_eq!(threads[0], here, "first inline");
        assert_ne!(threads[1], here, "then on the blocking pool");
    }
}
