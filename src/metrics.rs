//! Prometheus metrics, one registry per server (so two servers in one test
//! process never mix their counts).
//!
//! Counters are bumped where the event is decided; gauges that describe the
//! present (pool, keys) are read at scrape time. Labels take values from
//! small fixed sets only: never a client id, a path with an id in it, or
//! anything a caller can invent, so the number of series stays bounded.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::clock::UnixSeconds;
use crate::keys::KeySet;
use crate::oauth::error::AuthFailure;
use crate::store::Database;

/// Latency buckets in seconds: the fast path is well under a millisecond,
/// a database write a few milliseconds, an outage the pool timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

pub struct Metrics {
    registry: Registry,
    token_requests: IntCounterVec,
    client_auth_failures: IntCounterVec,
    refresh_reuse: IntCounter,
    revocations: IntCounterVec,
    introspections: IntCounterVec,
    /// Resolved once: they are counted on every authentication.
    client_cache_hits: IntCounter,
    client_cache_misses: IntCounter,
    requests: IntCounterVec,
    in_flight: IntGauge,
    request_duration: HistogramVec,
    db_errors: IntCounterVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    key_age: IntGauge,
    published_keys: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The grant a token request asked for, as a label.
pub fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("client_credentials") => "client_credentials",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}

fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Label values known in advance: their series are exported from the start
/// at 0, so a rate over them is defined before the first event.
const GRANTS: &[&str] = &["client_credentials", "refresh_token"];
/// Besides every [`AuthFailure`] label: refused by the brute-force limit.
pub const RATE_LIMITED: &str = "rate_limited";
const REVOCATION_KINDS: &[&str] = &["access_token", "refresh_family", "client_cutoff"];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let metrics = Self::unprimed()?;
        for grant in GRANTS {
            metrics.token_requests.with_label_values(&[grant, "issued"]);
        }
        for reason in AuthFailure::ALL.iter().map(|f| f.label()) {
            metrics.client_auth_failures.with_label_values(&[reason]);
        }
        metrics
            .client_auth_failures
            .with_label_values(&[RATE_LIMITED]);
        for kind in REVOCATION_KINDS {
            metrics.revocations.with_label_values(&[kind]);
        }
        for result in ["active", "inactive"] {
            metrics.introspections.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    fn unprimed() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric;
                registry.register(Box::new(metric.clone()))?;
                metric
            }};
        }
        let client_cache = register!(IntCounterVec::new(
            Opts::new(
                "tessera_client_cache_lookups_total",
                "Client authentications answered from the client cache (hit) or from the database (miss)."
            ),
            &["result"],
        )?);
        Ok(Self {
            token_requests: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_token_requests_total",
                    "Token requests by grant type and outcome (issued, or the OAuth error code)."
                ),
                &["grant", "outcome"],
            )?),
            client_auth_failures: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_client_auth_failures_total",
                    "Failed client authentications by reason; rate_limited counts requests refused by the brute-force limit."
                ),
                &["reason"],
            )?),
            refresh_reuse: register!(IntCounter::new(
                "tessera_refresh_reuse_detected_total",
                "Refresh tokens presented again after rotation; each revoked its family."
            )?),
            revocations: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_revocations_total",
                    "Revocations that changed something: access_token, refresh_family, client_cutoff."
                ),
                &["kind"],
            )?),
            introspections: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_introspections_total",
                    "Introspection answers by result: active or inactive."
                ),
                &["result"],
            )?),
            client_cache_hits: client_cache.with_label_values(&["hit"]),
            client_cache_misses: client_cache.with_label_values(&["miss"]),
            requests: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_http_requests_total",
                    "HTTP requests by route pattern, method and status."
                ),
                &["endpoint", "method", "status"],
            )?),
            in_flight: register!(IntGauge::new(
                "tessera_http_requests_in_flight",
                "Requests being served now (a scrape counts itself)."
            )?),
            request_duration: register!(HistogramVec::new(
                HistogramOpts::new(
                    "tessera_http_request_duration_seconds",
                    "Time from request to response, by route pattern and method."
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["endpoint", "method"],
            )?),
            db_errors: register!(IntCounterVec::new(
                Opts::new(
                    "tessera_db_errors_total",
                    "Failed database operations since start: unavailable (pool timeout, lost connection, lock timeout) or other."
                ),
                &["kind"],
            )?),
            pool_connections: register!(IntGaugeVec::new(
                Opts::new(
                    "tessera_db_pool_connections",
                    "Open database connections by state: idle or in_use."
                ),
                &["state"],
            )?),
            pool_max: register!(IntGauge::new(
                "tessera_db_pool_max_connections",
                "The pool's size limit (TESSERA_DB_POOL_SIZE)."
            )?),
            key_age: register!(IntGauge::new(
                "tessera_signing_key_age_seconds",
                "Seconds since the active signing key started signing."
            )?),
            published_keys: register!(IntGauge::new(
                "tessera_published_keys",
                "Keys in the JWKS (active, pre-published and retired)."
            )?),
            registry,
        })
    }

    pub fn token_request(&self, grant: &'static str, outcome: &'static str) {
        self.token_requests
            .with_label_values(&[grant, outcome])
            .inc();
    }

    pub fn client_auth_failure(&self, reason: &'static str) {
        self.client_auth_failures.with_label_values(&[reason]).inc();
    }

    pub fn refresh_reuse(&self) {
        self.refresh_reuse.inc();
    }

    pub fn revocation(&self, kind: &'static str) {
        self.revocations.with_label_values(&[kind]).inc();
    }

    /// A client authentication answered from the cache (`hit`), or one that
    /// read the database (`miss`).
    pub fn client_cache_lookup(&self, hit: bool) {
        if hit {
            self.client_cache_hits.inc();
        } else {
            self.client_cache_misses.inc();
        }
    }

    pub fn introspection(&self, active: bool) {
        let result = if active { "active" } else { "inactive" };
        self.introspections.with_label_values(&[result]).inc();
    }

    /// Requests being served now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a request as in flight until the guard is dropped, however the
    /// request ends.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// One finished request. `endpoint` is the route pattern, never the
    /// path itself.
    pub fn request(
        &self,
        endpoint: &str,
        method: &actix_web::http::Method,
        status: u16,
        seconds: f64,
    ) {
        let method = method_label(method);
        self.requests
            .with_label_values(&[endpoint, method, &status.to_string()])
            .inc();
        self.request_duration
            .with_label_values(&[endpoint, method])
            .observe(seconds);
    }

    /// The text exposition, with the present-state gauges read now.
    pub fn render(&self, db: &Database, keys: &KeySet, now: UnixSeconds) -> String {
        let pool = db.pool_status();
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool.open.saturating_sub(pool.idle)));
        self.pool_max.set(i64::from(pool.max));
        // The store counts its failures itself; the counter catches up here.
        let errors = db.error_counts();
        for (kind, total) in [("unavailable", errors.unavailable), ("other", errors.other)] {
            let counter = self.db_errors.with_label_values(&[kind]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.key_age.set((now - keys.active.activated_at).max(0));
        self.published_keys
            .set(i64::try_from(keys.verification.len()).unwrap_or(i64::MAX));

        let mut out = Vec::new();
        match TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(e) => {
                log::error!("metrics: cannot encode: {e}");
                String::new()
            }
        }
    }
}

/// See [`Metrics::in_flight`].
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
