//! The JWKS cache: fresh for the document's `max-age`; fetched by one task
//! at a time, which every caller needing new keys waits for instead of
//! starting its own; refetched for an unknown kid at most once per
//! `min_refetch_interval` after the last fetch ended; after a failed fetch,
//! not fetched at all for `min_refetch_interval`. Expired keys keep serving,
//! without anyone waiting on the refresh, until `max_stale` has passed; then
//! they are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::crypto::signing::{MIN_RSA_BITS, PublicKey};
use crate::keys::jwk::PublicJwk;
use crate::token::verify::{VerificationKey, VerificationKeys};

/// When nothing says otherwise.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// However long the issuer says, re-check at least daily.
const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
/// A JWKS larger than this is refused (a real one holds a handful of keys).
const MAX_KEYS: usize = 32;
/// A caller's own HTTP client may have no timeout; a fetch that never ends
/// would hold every unknown-kid caller and block all later refreshes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

struct Cached {
    keys: Arc<VerificationKeys>,
    fetched: Instant,
    max_age: Duration,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// A fetch task is running; callers join it rather than start another.
    in_flight: bool,
    /// When the last fetch ended, successful or not: the unknown-kid
    /// throttle counts from here, so a caller that arrives while a fetch is
    /// running, or just after, cannot start a second one.
    last_completed: Option<Instant>,
    /// When the last fetch failed, if it did: for `min_refetch_interval`
    /// after that, no fetch of any kind, so during an outage the issuer is
    /// asked once per interval, not once per request.
    failed_at: Option<Instant>,
}

struct Shared {
    http: reqwest::Client,
    uri: String,
    min_refetch_interval: Duration,
    max_stale: Duration,
    state: std::sync::Mutex<State>,
    /// Bumped (under `state`) each time a fetch ends; waiters subscribe
    /// (under `state`) before it can end, so none misses the wake-up.
    generation: tokio::sync::watch::Sender<u64>,
    fetches: AtomicU64,
}

pub(super) struct JwksCache {
    shared: Arc<Shared>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Cached keys unless they are older than `max-age` + `max_stale`.
    fn usable(&self, state: &State, now: Instant) -> Option<Arc<VerificationKeys>> {
        state
            .cached
            .as_ref()
            .filter(|c| {
                now.saturating_duration_since(c.fetched) < c.max_age.saturating_add(self.max_stale)
            })
            .map(|c| Arc::clone(&c.keys))
    }
}

/// Ends the fetch even if the task is cancelled or panics: otherwise
/// `in_flight` would stay set and no fetch would ever start again.
struct FetchDone {
    shared: Arc<Shared>,
    succeeded: bool,
}

impl Drop for FetchDone {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        let now = Instant::now();
        state.in_flight = false;
        state.last_completed = Some(now);
        state.failed_at = (!self.succeeded).then_some(now);
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

impl JwksCache {
    pub(super) fn new(
        http: reqwest::Client,
        uri: String,
        min_refetch_interval: Duration,
        max_stale: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                http,
                uri,
                min_refetch_interval,
                max_stale,
                state: std::sync::Mutex::new(State::default()),
                generation: tokio::sync::watch::Sender::new(0),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    pub(super) fn uri(&self) -> &str {
        &self.shared.uri
    }

    pub(super) fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// The keys to verify with. `unknown_kid` asks for a refetch even while
    /// the cache is fresh, within the refetch limits, and waits for it.
    pub(super) async fn keys(&self, unknown_kid: bool) -> Option<Arc<VerificationKeys>> {
        let shared = &self.shared;
        let mut done = {
            let mut state = shared.state();
            let now = Instant::now();
            let fresh = state
                .cached
                .as_ref()
                .is_some_and(|c| now.saturating_duration_since(c.fetched) < c.max_age);
            if fresh && !unknown_kid {
                return shared.usable(&state, now);
            }
            if !state.in_flight {
                let within =
                    |t: &Instant| now.saturating_duration_since(*t) < shared.min_refetch_interval;
                let backing_off = state.failed_at.as_ref().is_some_and(within);
                let throttled = fresh && state.last_completed.as_ref().is_some_and(within);
                if backing_off || throttled {
                    return shared.usable(&state, now);
                }
                state.in_flight = true;
                self.start_fetch();
            }
            // Expired but still usable keys serve at once; only a caller
            // with an unknown kid, or with nothing usable, waits.
            if !unknown_kid {
                if let Some(keys) = shared.usable(&state, now) {
                    return Some(keys);
                }
            }
            shared.generation.subscribe()
        };
        // An error means the sender is gone, which cannot happen while
        // `self` holds it; either way the state below is the answer.
        let _ = done.changed().await;
        shared.usable(&shared.state(), Instant::now())
    }

    /// Runs one fetch as its own task, so a caller that gives up (a client
    /// disconnecting) cannot cancel the fetch others are waiting for.
    fn start_fetch(&self) {
        let shared = Arc::clone(&self.shared);
        shared.fetches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut done = FetchDone {
                shared: Arc::clone(&shared),
                succeeded: false,
            };
            let result = tokio::time::timeout(FETCH_TIMEOUT, shared.download())
                .await
                .unwrap_or_else(|_| Err("timed out".to_owned()));
            match result {
                Ok((keys, max_age)) => {
                    let mut state = shared.state();
                    state.cached = Some(Cached {
                        keys: Arc::new(keys),
                        fetched: Instant::now(),
                        max_age,
                    });
                    done.succeeded = true;
                }
                Err(e) => log::warn!("JWKS {}: {e}; keeping the cached keys", shared.uri),
            }
            drop(done);
        });
    }
}

impl Shared {
    async fn download(&self) -> Result<(VerificationKeys, Duration), String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let response = self
            .http
            .get(&self.uri)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or(DEFAULT_MAX_AGE, parse_max_age)
            .min(MAX_MAX_AGE);
        let document: Document = response.json().await.map_err(|e| e.to_string())?;
        if document.keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        let mut keys = VerificationKeys::new();
        for value in document.keys {
            // Keys Tessera cannot use (other types, private members, weak
            // RSA) are skipped, never trusted.
            let Ok(jwk) = serde_json::from_value::<PublicJwk>(value.clone()) else {
                continue;
            };
            let private = ["d", "p", "q", "dp", "dq", "qi", "k"]
                .iter()
                .any(|m| value.get(m).is_some());
            if private || jwk.key_use != "sig" {
                continue;
            }
            let Some((alg, key)) = jwk.verification_key() else {
                continue;
            };
            if let PublicKey::Rsa { n, .. } = &key {
                if n.len() * 8 < MIN_RSA_BITS {
                    continue;
                }
            }
            keys.insert(jwk.kid, VerificationKey { alg, key });
        }
        Ok((keys, max_age))
    }
}

/// `max-age=N` from a Cache-Control value; `no-store`/`no-cache` mean 0.
fn parse_max_age(value: &str) -> Duration {
    let mut max_age = DEFAULT_MAX_AGE;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            if let Ok(n) = n.trim_matches('"').parse::<u64>() {
                max_age = Duration::from_secs(n);
            }
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_comes_from_cache_control() {
        assert_eq!(parse_max_age("public, max-age=60"), Duration::from_secs(60));
        assert_eq!(parse_max_age("no-store"), Duration::ZERO);
        assert_eq!(parse_max_age("public"), DEFAULT_MAX_AGE);
        assert_eq!(parse_max_age("max-age=junk"), DEFAULT_MAX_AGE);
    }
}
