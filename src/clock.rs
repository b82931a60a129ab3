//! The one source of "now". Everything that decides expiry reads time through
//! a [`Clock`] held in the application state, so tests can move time forward
//! instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, UTC. Signed so that arithmetic on lifetimes
/// never wraps silently.
pub type UnixSeconds = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixSeconds;
}

pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        #[expect(
            clippy::disallowed_methods,
            reason = "this is the one place that reads the wall clock"
        )]
        let now = SystemTime::now();
        // A clock before 1970 is a broken machine; treat it as the epoch rather
        // than panicking in a request path.
        now.duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: UnixSeconds) -> Self {
        Self(AtomicI64::new(start))
    }

    /// Starts at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn set(&self, t: UnixSeconds) {
        self.0.store(t, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(Ordering::SeqCst)
    }
}
