//! Keeps a node's key set current: on every tick (twice per check interval)
//! it rotates if a rotation is due (one node does, under the rotation lock)
//! and re-reads the keys, so keys created on another node or by the CLI are
//! loaded well before their `publishes_at`, one check interval after they
//! were made. Key states change with time alone, so between ticks every node
//! switches keys at the same instants (see `keyset`).

use std::sync::Arc;
use std::time::Duration;

use super::KeyError;
use super::kek::KeyEncryptionKey;
use super::keyset::{KeyRing, KeyStore};
use super::rotation::{self, RotationPolicy};
use crate::clock::SharedClock;
use crate::store::Database;
use crate::store::signing_keys;

#[derive(Clone)]
pub struct KeyMaintainer {
    pub db: Database,
    pub kek: Arc<KeyEncryptionKey>,
    pub clock: SharedClock,
    pub policy: RotationPolicy,
    pub store: Arc<KeyStore>,
    pub interval: Duration,
}

impl KeyMaintainer {
    /// Rotates if due and reloads; returns the kid of a key it created.
    pub async fn run_once(&self) -> Result<Option<String>, KeyError> {
        let now = self.clock.now();
        let ticket = self.store.begin_reload();
        let (kek, policy) = (Arc::clone(&self.kek), self.policy);
        let (created, rows) = self
            .db
            .run(move |conn| {
                Ok(rotation::rotate_if_due(conn, &kek, &policy, now)
                    .and_then(|created| Ok((created, signing_keys::list_keys(conn)?))))
            })
            .await??;
        if let Some(kid) = &created {
            log::info!(
                "key rotation: made key {kid}; it enters the JWKS at its publication time and signs from its activation time"
            );
        }
        self.store
            .replace(ticket, KeyRing::load(&rows, &self.kek, now)?, now)?;
        Ok(created)
    }

    pub async fn run(self) {
        let mut tick = actix_web::rt::time::interval(self.interval);
        loop {
            tick.tick().await;
            if let Err(e) = self.run_once().await {
                log::error!("key maintenance failed: {e}");
            }
        }
    }
}
