//! The JWKS cache: fresh for the document's `max-age`; refetched at most one
//! at a time, and, when an unknown kid asks for it, at most once per
//! `min_refetch_interval`; served stale for `max_stale` while the issuer is
//! unreachable, then refused.

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

struct Cached {
    keys: Arc<VerificationKeys>,
    fetched: Instant,
    max_age: Duration,
}

pub(super) struct JwksCache {
    http: reqwest::Client,
    uri: String,
    min_refetch_interval: Duration,
    max_stale: Duration,
    cached: std::sync::RwLock<Option<Cached>>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl JwksCache {
    pub(super) fn new(
        http: reqwest::Client,
        uri: String,
        min_refetch_interval: Duration,
        max_stale: Duration,
    ) -> Self {
        Self {
            http,
            uri,
            min_refetch_interval,
            max_stale,
            cached: std::sync::RwLock::new(None),
            last_attempt: std::sync::Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    pub(super) fn uri(&self) -> &str {
        &self.uri
    }

    pub(super) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Option<(Arc<VerificationKeys>, Instant, Duration)> {
        let guard = match self.cached.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard
            .as_ref()
            .map(|c| (Arc::clone(&c.keys), c.fetched, c.max_age))
    }

    fn last_attempt(&self) -> Option<Instant> {
        match self.last_attempt.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The keys to verify with. `unknown_kid` asks for a refetch even while
    /// the cache is fresh, within the refetch limits.
    pub(super) async fn keys(&self, unknown_kid: bool) -> Option<Arc<VerificationKeys>> {
        let current = self.snapshot();
        let fresh = current
            .as_ref()
            .is_some_and(|(_, fetched, max_age)| fetched.elapsed() < *max_age);
        let throttled = self
            .last_attempt()
            .is_some_and(|t| t.elapsed() < self.min_refetch_interval);
        if fresh && (!unknown_kid || throttled) {
            return current.map(|(keys, _, _)| keys);
        }
        // One fetch at a time; whoever waited uses what the fetch brought.
        let started = Instant::now();
        let _single = self.fetch_lock.lock().await;
        if self.last_attempt().is_some_and(|t| t >= started) {
            return self.usable();
        }
        self.fetch().await;
        self.usable()
    }

    /// Cached keys unless they are older than `max_stale`.
    fn usable(&self) -> Option<Arc<VerificationKeys>> {
        self.snapshot()
            .filter(|(_, fetched, max_age)| fetched.elapsed() < *max_age + self.max_stale)
            .map(|(keys, _, _)| keys)
    }

    async fn fetch(&self) {
        match self.last_attempt.lock() {
            Ok(mut g) => *g = Some(Instant::now()),
            Err(poisoned) => *poisoned.into_inner() = Some(Instant::now()),
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.download().await {
            Ok((keys, max_age)) => {
                let fresh = Cached {
                    keys: Arc::new(keys),
                    fetched: Instant::now(),
                    max_age,
                };
                match self.cached.write() {
                    Ok(mut g) => *g = Some(fresh),
                    Err(poisoned) => *poisoned.into_inner() = Some(fresh),
                }
            }
            Err(e) => log::warn!("JWKS {}: {e}; keeping the cached keys", self.uri),
        }
    }

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
