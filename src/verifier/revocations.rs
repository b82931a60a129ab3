//! A local copy of the issuer's revocation list, kept current by following
//! `GET /oauth2/revocations` from a cursor.

use std::collections::HashMap;
use std::sync::{RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::clock::UnixSeconds;
use crate::token::access::AccessTokenClaims;

#[derive(Default)]
struct State {
    cursor: i64,
    /// jti → exp
    jtis: HashMap<String, i64>,
    /// client_id → (tokens_valid_after, exp of the entry)
    cutoffs: HashMap<String, (i64, i64)>,
}

pub(super) struct RevocationList {
    http: reqwest::Client,
    url: String,
    authorization: String,
    state: RwLock<State>,
    /// One poll at a time.
    poll_lock: tokio::sync::Mutex<()>,
    /// When the last poll that read the feed to its end finished.
    last_poll: std::sync::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Page {
    entries: Vec<Entry>,
    next: i64,
    more: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Entry {
    Token {
        jti: String,
        exp: i64,
    },
    Client {
        client_id: String,
        tokens_valid_after: i64,
        exp: i64,
    },
}

/// Pages a single poll follows before yielding (1000 entries each).
const MAX_PAGES_PER_POLL: usize = 100;

impl RevocationList {
    pub(super) fn new(http: reqwest::Client, url: String, authorization: String) -> Self {
        Self {
            http,
            url,
            authorization,
            state: RwLock::new(State::default()),
            poll_lock: tokio::sync::Mutex::new(()),
            last_poll: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn last_poll(&self) -> Option<Instant> {
        match self.last_poll.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn is_revoked(&self, claims: &AccessTokenClaims) -> bool {
        let state = match self.state.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.jtis.contains_key(&claims.jti)
            || state
                .cutoffs
                .get(&claims.client_id)
                .is_some_and(|(valid_after, _)| claims.iat <= *valid_after)
    }

    /// Reads every new entry, then forgets entries whose tokens no
    /// validator accepts any more.
    pub(super) async fn poll(&self, now: UnixSeconds, leeway: i64) -> Result<(), String> {
        let _one = self.poll_lock.lock().await;
        let mut caught_up = false;
        for _ in 0..MAX_PAGES_PER_POLL {
            let cursor = match self.state.read() {
                Ok(g) => g.cursor,
                Err(poisoned) => poisoned.into_inner().cursor,
            };
            let response = self
                .http
                .get(format!("{}?after={cursor}", self.url))
                .header(reqwest::header::AUTHORIZATION, &self.authorization)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let page: Page = response.json().await.map_err(|e| e.to_string())?;
            let mut state = match self.state.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            for entry in page.entries {
                match entry {
                    Entry::Token { jti, exp } => {
                        state.jtis.insert(jti, exp);
                    }
                    Entry::Client {
                        client_id,
                        tokens_valid_after,
                        exp,
                    } => {
                        let slot = state.cutoffs.entry(client_id).or_insert((i64::MIN, exp));
                        *slot = (slot.0.max(tokens_valid_after), slot.1.max(exp));
                    }
                }
            }
            state.cursor = state.cursor.max(page.next);
            if !page.more {
                caught_up = true;
                break;
            }
        }
        // A poll cut short by the page limit is still behind: it does not
        // count as the verifier being current.
        if caught_up {
            match self.last_poll.lock() {
                Ok(mut g) => *g = Some(Instant::now()),
                Err(poisoned) => *poisoned.into_inner() = Some(Instant::now()),
            }
        }
        let mut state = match self.state.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let horizon = now - leeway;
        state.jtis.retain(|_, exp| *exp > horizon);
        state.cutoffs.retain(|_, (_, exp)| *exp > horizon);
        Ok(())
    }
}

/// Polls every `interval` until the verifier is dropped. The ticks are
/// counted from the start, not from the end of each poll, so a revocation
/// is seen at most one interval plus one poll's round trip after it was
/// committed.
pub(super) fn follow(inner: Weak<super::Inner>, interval: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        // A slow poll delays the next tick instead of causing a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; discovery has just polled.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Some(list) = &inner.revocations {
                if let Err(e) = list.poll(inner.clock.now(), inner.leeway).await {
                    log::warn!("revocation feed {}: {e}", list.url());
                }
            }
        }
    });
}
