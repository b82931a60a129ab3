//! Brute-force limits on client authentication (RFC 6749 §2.3.1, §10.10).
//!
//! Only failures count. Each failed attempt takes one token from two
//! buckets: one for the source address, one for the (client id, source
//! address) pair. While either is empty, further attempts from there are
//! refused with 429 before any secret is checked. Keying the client bucket by
//! address too means an attacker elsewhere cannot lock a legitimate client
//! out by failing with its id; a client that authenticates successfully is
//! never slowed. Buckets refill one attempt every `refill` seconds. State is
//! per node and in memory: it bounds guessing rates, it is not an audit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: UnixSeconds,
}

#[derive(Debug)]
pub struct FailureLimiter {
    /// Failures allowed in a burst per (client, address); an address gets
    /// five times as many across all client ids.
    burst: f64,
    /// Seconds to regain one attempt.
    refill: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Past this many tracked keys, full buckets are forgotten.
const PRUNE_AT: usize = 10_000;

impl FailureLimiter {
    pub fn new(burst: u32, refill_seconds: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            refill: f64::from(refill_seconds.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn keys(client_id: Option<&str>, source: Option<IpAddr>) -> Vec<(String, f64)> {
        let address = source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let mut keys = vec![(format!("addr {address}"), 5.0)];
        if let Some(id) = client_id {
            keys.push((format!("client {id} {address}"), 1.0));
        }
        keys
    }

    fn level(&self, bucket: Option<&Bucket>, scale: f64, now: UnixSeconds) -> f64 {
        let capacity = self.burst * scale;
        match bucket {
            None => capacity,
            Some(b) => {
                let regained = (now - b.updated).max(0) as f64 / self.refill * scale;
                (b.tokens + regained).min(capacity)
            }
        }
    }

    /// `Some(seconds to wait)` when attempts from here are refused.
    pub fn blocked(
        &self,
        client_id: Option<&str>,
        source: Option<IpAddr>,
        now: UnixSeconds,
    ) -> Option<i64> {
        let buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Self::keys(client_id, source)
            .into_iter()
            .filter_map(|(key, scale)| {
                let level = self.level(buckets.get(&key), scale, now);
                (level < 1.0).then(|| ((1.0 - level) * self.refill / scale).ceil() as i64)
            })
            .max()
            .map(|wait| wait.max(1))
    }

    /// Records a failure; returns true when it emptied a bucket (the moment
    /// to log and audit a lockout).
    pub fn record_failure(
        &self,
        client_id: Option<&str>,
        source: Option<IpAddr>,
        now: UnixSeconds,
    ) -> bool {
        let mut buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > PRUNE_AT {
            let (burst, refill) = (self.burst, self.refill);
            buckets.retain(|_, b| ((now - b.updated).max(0) as f64 / refill) < burst * 5.0);
        }
        let mut emptied = false;
        for (key, scale) in Self::keys(client_id, source) {
            let level = self.level(buckets.get(&key), scale, now) - 1.0;
            emptied |= level < 1.0;
            buckets.insert(
                key,
                Bucket {
                    tokens: level.max(0.0),
                    updated: now,
                },
            );
        }
        emptied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn failures_block_after_the_burst_and_time_restores_them() {
        let l = FailureLimiter::new(3, 10);
        let (me, other) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert_eq!(l.blocked(Some("c1"), me, 100), None);
            l.record_failure(Some("c1"), me, 100);
        }
        assert!(l.blocked(Some("c1"), me, 100).is_some_and(|w| w > 0));
        // The same client id from another address is not affected.
        assert_eq!(l.blocked(Some("c1"), other, 100), None);
        // One attempt regained after the refill time.
        assert_eq!(l.blocked(Some("c1"), me, 110), None);
    }

    #[test]
    fn an_address_failing_across_many_ids_is_blocked_too() {
        let l = FailureLimiter::new(2, 10);
        let me = ip("192.0.2.9");
        for i in 0..10 {
            l.record_failure(Some(&format!("id{i}")), me, 0);
        }
        assert!(l.blocked(Some("fresh"), me, 0).is_some());
    }
}
