//! The janitor: on a schedule, deletes refresh tokens, families, family
//! access-token records, revocation entries and signing keys (with their
//! sealed private halves) whose use has ended, so the tables stay bounded by
//! what is live. Rows are kept for the clock leeway
//! past their expiry, since a validator may still accept a token that long.

use std::time::Duration;

use crate::clock::SharedClock;
use crate::store::cleanup::{self, Swept};
use crate::store::{Database, StoreError};

#[derive(Clone)]
pub struct Janitor {
    pub db: Database,
    pub clock: SharedClock,
    pub interval: Duration,
    pub leeway: i64,
    /// Seconds audit events are kept.
    pub audit_retention: i64,
}

impl Janitor {
    /// `None` when another node was sweeping.
    pub async fn sweep_once(&self) -> Result<Option<Swept>, StoreError> {
        let now = self.clock.now();
        let (cutoff, audit_before) = (now - self.leeway, now - self.audit_retention);
        self.db
            .run(move |conn| cleanup::sweep(conn, cutoff, audit_before))
            .await
    }

    /// Sweeps every `interval`, for ever; a failed sweep is logged and
    /// retried at the next tick.
    pub async fn run(self) {
        let mut tick = actix_web::rt::time::interval(self.interval);
        loop {
            tick.tick().await;
            match self.sweep_once().await {
                Ok(Some(swept)) if swept.total() > 0 => log::info!("janitor: removed {swept:?}"),
                Ok(Some(_)) => {}
                Ok(None) => log::debug!("janitor: another node is sweeping; skipped"),
                Err(e) => log::warn!("janitor: sweep failed: {e}"),
            }
        }
    }
}
