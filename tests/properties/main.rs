//! Property tests (#11): the state machines that guard tokens (refresh
//! families, scope narrowing, signing-key states) driven through the real
//! code, against a real database where there is one, with random
//! interleavings that hand-written example tests would not think of.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer local run; the
//! defaults keep the whole target well under a minute in a debug build.
//! Every property also counts how often the transitions it guards were
//! actually reached, and fails if a run never reached one: a property that
//! was never exercised would pass without proving anything.

mod key_states;
mod refresh_family;
mod scope;

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use tessera::store::Database;

/// A database of the test's own, dropped afterwards (PostgreSQL) or left in
/// a temporary directory that goes with it (SQLite).
pub struct TestDb {
    pub db: Database,
    pub backend: &'static str,
    postgres: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl TestDb {
    /// SQLite in a temp dir, opened as the server opens it: with the group
    /// commit writer, so writes take the same path as in production.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the SQLite database");
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        let db = Database::open_for_server(&url, 2, Duration::from_secs(10))
            .expect("open the SQLite database");
        db.migrate().expect("migrate the SQLite database");
        Self {
            db,
            backend: "SQLite",
            postgres: None,
            dir,
        }
    }

    /// A fresh PostgreSQL database under `TEST_DATABASE_URL`. Without the
    /// variable the PostgreSQL run is skipped, loudly, and under CI that is a
    /// failure (as in the API tests): CI must never pass without it.
    pub fn postgres(test: &str) -> Option<Self> {
        let admin_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "TEST_DATABASE_URL must be set under CI: {test} cannot be skipped there"
                );
                eprintln!(
                    "SKIPPED {test} on PostgreSQL: TEST_DATABASE_URL is not set \
                     (this is not a pass: the PostgreSQL variant did not run)"
                );
                return None;
            }
        };
        let name = format!("tessera_props_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .expect("create the test database");
        let dir = tempfile::tempdir().expect("a temp dir for the KEK");
        let db = Database::open(
            &with_database(&admin_url, &name),
            2,
            Duration::from_secs(10),
        )
        .expect("open the PostgreSQL test database");
        db.migrate().expect("migrate the PostgreSQL test database");
        Some(Self {
            db,
            backend: "PostgreSQL",
            postgres: Some((admin_url, name)),
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres {
            postgres::drop_database(admin_url, name);
        }
    }
}

#[path = "../shared/postgres.rs"]
mod postgres;
use postgres::with_database;

/// Runs `test` on `cases` generated inputs (or `PROPTEST_CASES`), shrinking
/// a failure to a minimal input and panicking with it. No regression file
/// is written: the minimal input is in the panic message, to be turned into
/// an example test.
pub fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.failure_persistence = None;
    // Each case touches a database: shrinking gets a bounded budget.
    config.max_shrink_iters = 2048;
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config.clone());
    match runner.run(&strategy, test) {
        Ok(()) => eprintln!(
            "{name}: {} cases passed in {:.1} s",
            config.cases,
            started.elapsed().as_secs_f64()
        ),
        Err(TestError::Fail(reason, minimal)) => {
            panic!("{name}: property failed: {reason}\nminimal input: {minimal:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

/// How often each guarded transition was reached over a whole run.
#[derive(Debug, Default)]
pub struct Coverage(std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>);

impl Coverage {
    pub fn hit(&self, what: &'static str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(what).or_default() += 1;
    }

    /// Prints the counts and fails unless every one of `required` was seen.
    pub fn require(&self, name: &str, required: &[&'static str]) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("{name}: coverage {map:?}");
        for what in required {
            assert!(
                map.get(what).is_some_and(|n| *n > 0),
                "{name}: the generated cases never reached {what:?}, so the properties \
                 that depend on it were not exercised"
            );
        }
    }
}
