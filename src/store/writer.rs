//! SQLite group commit: one connection writes for the whole server.
//!
//! SQLite has one writer at a time and this server syncs every commit
//! (`synchronous = FULL`), so a commit costs an fsync. Writers on several
//! pooled connections also contend for the lock and sleep in SQLite's busy
//! handler, which backs off up to 100 ms. Here, writes are queued to one
//! thread instead; it runs every write that is waiting in one transaction,
//! each in a savepoint of its own (a failed write rolls back alone), and
//! commits once. Nobody is answered before that commit, so an acknowledged
//! write is as durable as before: the fsync is just shared.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use tokio::sync::oneshot;

use diesel::Connection;
use diesel::r2d2::ManageConnection;

use super::StoreError;
use super::connection::{DbConnection, Manager};

/// Writes that arrive together share a transaction, up to this many.
const MAX_BATCH: usize = 128;

type Answer = Result<Box<dyn Any + Send>, StoreError>;

pub(crate) struct Job {
    work: Box<dyn FnOnce(&mut DbConnection) -> Answer + Send>,
    reply: oneshot::Sender<Answer>,
}

/// Queues writes for the writer thread. Cheap to clone; the thread stops
/// (and closes its connection) when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's connection and starts its thread.
    pub(crate) fn start(
        manager: Manager,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let conn = manager
            .connect()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || serve(manager, conn, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok((Self { jobs }, thread))
    }

    /// Runs `f` in the next group commit and waits for that commit. The
    /// caller's task waits without holding a thread: the writer thread
    /// answers it directly.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let answer = self.queue(f)?;
        Self::unpack(answer.await.map_err(|_| stopped())?)
    }

    /// [`Writer::write`] for a thread that may block.
    #[cfg(test)]
    pub(crate) fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let answer = self.queue(f)?;
        Self::unpack(answer.blocking_recv().map_err(|_| stopped())?)
    }

    fn queue<T, F>(&self, f: F) -> Result<oneshot::Receiver<Answer>, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work = Box::new(move |conn: &mut DbConnection| -> Answer {
            f(conn).map(|value| Box::new(value) as Box<dyn Any + Send>)
        });
        self.jobs.send(Job { work, reply }).map_err(|_| stopped())?;
        Ok(answer)
    }

    fn unpack<T: 'static>(answer: Answer) -> Result<T, StoreError> {
        answer?
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| StoreError::Task("a write answered with the wrong type".into()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

fn serve(manager: Manager, mut conn: DbConnection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(replacement) = run_batch(&manager, &mut conn, batch) {
            conn = replacement;
        }
    }
}

/// Runs one batch and answers every job. Returns a new connection if the
/// old one can no longer be trusted (a write panicked mid-transaction).
fn run_batch(manager: &Manager, conn: &mut DbConnection, batch: Vec<Job>) -> Option<DbConnection> {
    let mut done: Vec<(oneshot::Sender<Answer>, Answer)> = Vec::with_capacity(batch.len());
    let mut panicked = false;
    let outcome = conn.transaction::<(), StoreError, _>(|conn| {
        // Take the write lock before anything is read: a transaction that
        // read first and wrote later would fail at once (SQLITE_BUSY, no
        // waiting) if another connection committed in between.
        if let DbConnection::Sqlite(lite) = conn {
            super::sqlite_write_lock(lite)?;
        }
        for Job { work, reply } in batch {
            // A savepoint per write: one that fails rolls back alone.
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                conn.transaction::<Box<dyn Any + Send>, StoreError, _>(|conn| work(conn))
            }));
            match ran {
                Ok(answer) => done.push((reply, answer)),
                Err(_) => {
                    panicked = true;
                    done.push((reply, Err(StoreError::Task("a write panicked".into()))));
                    return Err(StoreError::Task("a write panicked".into()));
                }
            }
        }
        Ok(())
    });
    match outcome {
        Ok(()) => {
            for (reply, answer) in done {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            // Nothing was committed: no write may be acknowledged.
            let message = e.to_string();
            let unavailable = e.is_unavailable() || !panicked;
            for (reply, _) in done {
                let _ = reply.send(Err(if unavailable {
                    StoreError::Unavailable(message.clone())
                } else {
                    StoreError::Task(message.clone())
                }));
            }
        }
    }
    if panicked {
        log::error!("database writer: a write panicked; reconnecting");
        return manager.connect().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::RunQueryDsl;

    use crate::store::{Database, StoreError};

    fn insert(
        jti: &str,
    ) -> impl FnOnce(&mut super::DbConnection) -> Result<(), StoreError> + Send + 'static {
        let sql = format!(
            "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) VALUES ('{jti}', 'c', 1, 1)"
        );
        move |conn| {
            diesel::sql_query(sql).execute(conn)?;
            Ok(())
        }
    }

    fn count(db: &Database) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM revoked_tokens")
            .get_result::<N>(&mut *db.conn().expect("connection"))
            .expect("count")
            .n
    }

    #[test]
    fn a_failed_or_panicking_write_rolls_back_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let db = Database::open_for_server(&url, 2, Duration::from_secs(5)).expect("open");
        db.migrate().expect("migrate");
        let writer = db
            .writer
            .clone()
            .expect("a SQLite server database has a writer");

        // Many writers at once, so batches form; one of them repeats a jti.
        let threads: Vec<_> = (0..40)
            .map(|i| {
                let writer = writer.clone();
                let jti = if i == 39 {
                    "t0".to_owned()
                } else {
                    format!("t{i}")
                };
                std::thread::spawn(move || writer.write_blocking(insert(&jti)))
            })
            .collect();
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert_eq!(failed.len(), 1, "only the duplicate fails: {failed:?}");
        assert!(matches!(failed[0], Err(StoreError::Query(_))), "{failed:?}");
        assert_eq!(count(&db), 39, "every other write was committed");

        // A panicking write fails (with whatever shared its batch), and the
        // writer keeps serving.
        let boom = writer.write_blocking(|_conn| -> Result<(), StoreError> { panic!("boom") });
        assert!(matches!(boom, Err(StoreError::Task(_))), "{boom:?}");
        writer
            .write_blocking(insert("after"))
            .expect("the writer still writes");
        assert_eq!(count(&db), 40);
    }
}
