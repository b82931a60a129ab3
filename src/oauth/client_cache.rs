//! Authenticated clients, kept in memory so that a client presenting the
//! secret it presented before costs no database round trip.
//!
//! Staleness is bounded, not hoped away. Every change to a client or its
//! secrets bumps `client_generation` in the database, by trigger, whoever
//! makes it: this node's admin API, another node, the CLI, a hand-written
//! `UPDATE`. Each node reads the counter every check interval and drops its
//! whole cache when the counter has moved; this node's admin API drops it at
//! once. A cached entry is only used while the last successful check
//! started less than two intervals ago, so a node that cannot reach its
//! database stops trusting its cache instead of serving from it.
//!
//! The bound, then: a change made elsewhere takes effect within two check
//! intervals (one, typically); a change made through this node's admin API
//! takes effect at once. Expiry needs no check: cached secrets carry their
//! expiry, judged by the injected clock on every use.
//!
//! Only successes are cached, keyed by client id; a wrong secret always goes
//! to the database, which holds the answer for a secret rotated elsewhere.
//! Unknown ids never enter the cache, so it grows with real clients only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::client_auth::{self, PresentedCredentials};
use crate::clock::UnixSeconds;
use crate::store::clients::{self, Client, SecretRecord};
use crate::store::{Database, StoreError};

/// More entries than this and the cache starts over: a bound on memory that
/// costs one database round trip per client when it triggers.
const MAX_ENTRIES: usize = 200_000;

/// `last_token_at` unknown.
const NEVER: i64 = i64::MIN;

struct Entry {
    client: Client,
    secrets: Vec<SecretRecord>,
    /// Updated in place by [`ClientCache::note_last_token`], so the
    /// once-a-minute bookkeeping write is not repeated on every request.
    last_token_at: AtomicI64,
}

/// The per-node cache of authenticated clients. With no check interval it
/// is off: every authentication reads the database.
pub struct ClientCache {
    interval: Option<Duration>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Bumped, under the write lock, every time the cache is dropped. A
    /// lookup notes it before reading the database and its result is cached
    /// only if no drop happened meanwhile, so data read before a change
    /// cannot outlive the drop that the change caused.
    epoch: AtomicU64,
    /// What the last successful check read, and when that check started.
    checked: Mutex<Option<(i64, Instant)>>,
}

impl ClientCache {
    pub fn new(interval: Option<Duration>) -> Self {
        Self {
            interval,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            checked: Mutex::new(None),
        }
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The client, when these credentials match a cached entry that is
    /// still trusted and every other rule (disabled, networks, secret
    /// expiry) passes. `None` sends the caller to the database.
    pub fn authenticate(
        &self,
        credentials: &PresentedCredentials,
        now: UnixSeconds,
        source: Option<IpAddr>,
    ) -> Option<Client> {
        let interval = self.interval?;
        if !self.trusted(interval) {
            return None;
        }
        let entry = self.read().get(&credentials.client_id).cloned()?;
        client_auth::check(
            credentials,
            Some(&entry.client),
            &entry.secrets,
            now,
            source,
        )
        .ok()?;
        let mut client = entry.client.clone();
        let last = entry.last_token_at.load(Ordering::Relaxed);
        client.last_token_at = (last != NEVER).then_some(last);
        Some(client)
    }

    /// The current epoch: pass it back to [`Self::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a client that just authenticated against the database, unless
    /// the cache was dropped since `epoch` was read.
    pub fn insert(&self, epoch: u64, client: &Client, secrets: Vec<SecretRecord>) {
        if self.interval.is_none() {
            return;
        }
        let mut map = self.write();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(&client.id) {
            map.clear();
        }
        let entry = Entry {
            client: client.clone(),
            secrets,
            last_token_at: AtomicI64::new(client.last_token_at.unwrap_or(NEVER)),
        };
        map.insert(client.id.clone(), Arc::new(entry));
    }

    /// Records the bookkeeping write of `last_token_at` in the cached copy.
    pub fn note_last_token(&self, client_id: &str, at: UnixSeconds) {
        if let Some(entry) = self.read().get(client_id) {
            entry.last_token_at.store(at, Ordering::Relaxed);
        }
    }

    /// Drops every entry: after a change this node made, or saw.
    pub fn invalidate(&self) {
        let mut map = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the change counter and drops the cache if it moved (or if it
    /// was never read). On failure the cache is dropped too: an entry must
    /// never outlive a check that could not be made. Returns whether the
    /// cache was dropped.
    pub async fn check(&self, db: &Database) -> Result<bool, StoreError> {
        if self.interval.is_none() {
            return Ok(false);
        }
        let started = Instant::now();
        let read = db.run(clients::generation).await;
        let mut checked = self.lock_checked();
        match read {
            Ok(generation) => {
                let moved = checked.is_none_or(|(seen, _)| seen != generation);
                if moved {
                    self.invalidate();
                }
                *checked = Some((generation, started));
                Ok(moved)
            }
            Err(e) => {
                *checked = None;
                self.invalidate();
                Err(e)
            }
        }
    }

    /// Checks every interval until the task is dropped.
    pub async fn run(self: Arc<Self>, db: Database) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut tick = actix_web::rt::time::interval(interval);
        loop {
            tick.tick().await;
            if let Err(e) = self.check(&db).await {
                log::warn!("client cache check failed, cache dropped: {e}");
            }
        }
    }

    fn trusted(&self, interval: Duration) -> bool {
        self.lock_checked()
            .is_some_and(|(_, started)| started.elapsed() < interval * 2)
    }

    // A poisoned lock only means another thread panicked mid-update of a
    // cache; the data is still a valid map, so keep going.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, Option<(i64, Instant)>> {
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }
}
