//! The application as a value: [`Application::build`] binds the listener
//! first, so tests run the production app on port 0 and read the port back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::clock::SharedClock;
use crate::config::{ConfigError, Settings, validate_issuer};
use crate::crypto::jwt_provider;
use crate::http::{self, Discovery, HttpState};
use crate::janitor::Janitor;
use crate::keys::kek::KekSource;
use crate::keys::maintainer::KeyMaintainer;
use crate::keys::{KeyEncryptionKey, KeyError, KeyRing, KeyStore, keyset};
use crate::oauth::client_cache::ClientCache;
use crate::oauth::{OAuthState, RefreshPolicy};
use crate::store::signing_keys;
use crate::store::{Database, MigrationReport, StoreError, clients};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// What start-up found and did, for the first lines of the log.
#[derive(Debug)]
pub struct StartupReport {
    pub migrations: MigrationReport,
    pub kek_source: KekSource,
    pub new_key: Option<String>,
    pub active_kid: String,
    pub clients: i64,
}

pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    tls: bool,
    issuer: String,
    server: Server,
    report: StartupReport,
    janitor: Janitor,
    key_maintainer: KeyMaintainer,
    client_cache: Arc<ClientCache>,
    db: Database,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown_timeout: Duration,
}

/// Opens the server's connection pool and applies pending migrations.
pub fn open_database(settings: &Settings) -> Result<(Database, MigrationReport), StoreError> {
    let db = Database::open_for_server(
        &settings.database_url,
        settings.db_pool_size,
        Duration::from_secs(settings.db_timeout),
    )?;
    let report = db.migrate()?;
    Ok((db, report))
}

/// One connection for a CLI command, with pending migrations applied, so
/// every command works on a fresh database.
pub fn open_database_for_command(
    settings: &Settings,
) -> Result<(Database, MigrationReport), StoreError> {
    let db = Database::open_single(
        &settings.database_url,
        Duration::from_secs(settings.db_timeout),
    )?;
    let report = db.migrate()?;
    Ok((db, report))
}

/// The signing keys as start-up found them.
pub struct OpenedKeys {
    pub kek: KeyEncryptionKey,
    pub kek_source: KekSource,
    pub ring: KeyRing,
    /// The first key, if start-up just made it.
    pub new_key: Option<String>,
}

/// Finds (or on a first start creates) the key-encryption key and the first
/// signing key, and loads every key.
pub fn open_keys(db: &Database, settings: &Settings, now: i64) -> Result<OpenedKeys, StartupError> {
    let alg = settings.signing_algorithm()?;
    let mut conn = db.conn()?;
    let (kek, kek_source) =
        keyset::resolve_kek(&mut conn, &settings.keys_dir, settings.kek.as_deref())?;
    let new_key = keyset::ensure_first_key(&mut conn, &kek, alg, now)?;
    let rows = signing_keys::list_keys(&mut conn)?;
    let ring = KeyRing::load(&rows, &kek, now)?;
    Ok(OpenedKeys {
        kek,
        kek_source,
        ring,
        new_key,
    })
}

/// `http://` (or with TLS `https://`) and the bound address.
pub fn default_issuer(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

fn bind(addr: SocketAddr, setting: &str) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| StartupError::Io(format!("cannot listen on {addr} ({setting}): {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| StartupError::Io(e.to_string()))?;
    Ok((listener, local))
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartupError> {
        jwt_provider::install();
        settings.validate()?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::crypto::tls::server_config(cert, key).map_err(|e| {
                    ConfigError::Invalid {
                        setting: e.setting,
                        message: e.message,
                    }
                })?)
            }
            _ => None,
        };
        let (listener, local) = bind(settings.bind_addr()?, "TESSERA_BIND")?;
        let metrics_listener = settings
            .metrics_addr()?
            .map(|addr| bind(addr, "TESSERA_METRICS_BIND"))
            .transpose()?;
        let issuer = match &settings.issuer {
            Some(issuer) => issuer.clone(),
            None => {
                let issuer = default_issuer(local, tls.is_some());
                // An unspecified address (0.0.0.0) is no place a client can
                // reach, with or without TLS.
                if local.ip().is_unspecified() || validate_issuer(&issuer).is_err() {
                    return Err(ConfigError::Invalid {
                        setting: "TESSERA_ISSUER",
                        message: format!(
                            "must be set when listening on the non-loopback address {local} \
                             (an https URL under which clients reach this server)"
                        ),
                    }
                    .into());
                }
                issuer
            }
        };
        let default_audience = settings
            .default_audience
            .clone()
            .unwrap_or_else(|| issuer.clone());

        let opened = {
            let settings = settings.clone();
            let now = clock.now();
            actix_web::rt::task::spawn_blocking(move || -> Result<_, StartupError> {
                let (db, migrations) = open_database(&settings)?;
                let keys = open_keys(&db, &settings, now)?;
                let clients = clients::count_clients(&mut *db.conn()?)?;
                Ok((db, migrations, keys, clients))
            })
            .await
            .map_err(|e| StartupError::Io(format!("start-up task failed: {e}")))??
        };
        let (db, migrations, keys, client_count) = opened;
        let now = clock.now();
        let store = Arc::new(KeyStore::new(keys.ring, now)?);
        let report = StartupReport {
            migrations,
            kek_source: keys.kek_source,
            new_key: keys.new_key,
            active_kid: store.current(now).active.kid.clone(),
            clients: client_count,
        };
        let key_maintainer = KeyMaintainer {
            db: db.clone(),
            kek: Arc::new(keys.kek),
            clock: clock.clone(),
            policy: settings.rotation_policy()?,
            store: Arc::clone(&store),
            // Twice per check interval: a key created at any moment is read
            // by every node before its `publishes_at`, one interval later.
            interval: Duration::from_millis(settings.key_check_interval.unsigned_abs() * 500),
        };

        let metrics = crate::metrics::Metrics::new()
            .map_err(|e| StartupError::Io(format!("cannot set up metrics: {e}")))?;
        let janitor = Janitor {
            db: db.clone(),
            clock: clock.clone(),
            interval: Duration::from_secs(settings.janitor_interval),
            leeway: settings.clock_leeway,
            audit_retention: settings.audit_retention,
        };
        let pool = db.clone();
        let metrics = Arc::new(metrics);
        let client_cache = Arc::new(ClientCache::new(
            (settings.client_check_interval > 0)
                .then(|| Duration::from_secs(settings.client_check_interval)),
        ));
        let state = web::Data::new(HttpState {
            oauth: OAuthState {
                db,
                keys: store,
                clock,
                issuer: Arc::from(issuer.as_str()),
                default_audience: Arc::from(default_audience.as_str()),
                refresh: RefreshPolicy {
                    token_ttl: settings.refresh_token_ttl,
                    family_ttl: settings.refresh_family_ttl,
                    grace: settings.refresh_grace,
                },
                leeway: settings.clock_leeway,
                cutoff: crate::clients::CutoffTiming::from_settings(&settings),
                limiter: Arc::new(crate::oauth::limiter::FailureLimiter::new(
                    settings.auth_failure_burst,
                    settings.auth_failure_refill,
                )),
                metrics: Arc::clone(&metrics),
                clients: Arc::clone(&client_cache),
            },
            discovery: Discovery::new(),
            jwks_max_age: settings.jwks_max_age,
            max_body_bytes: settings.max_body_bytes,
            keys: key_maintainer.clone(),
            trusted_proxies: crate::oauth::network::parse_list(&settings.trusted_proxies)
                .unwrap_or_default(),
            default_access_token_ttl: settings.access_token_ttl,
            metrics_addr: metrics_listener.as_ref().map(|(_, addr)| *addr),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(http::catch_panics))
                .wrap(actix_web::middleware::from_fn(http::listener_scope))
                .wrap(actix_web::middleware::from_fn(http::observe::observe))
                .wrap(http::default_headers())
                .configure(http::configure)
        })
        .shutdown_timeout(settings.shutdown_timeout)
        // Signals are handled by `drain_on_signal`.
        .disable_signals();
        let io = |e: std::io::Error| StartupError::Io(e.to_string());
        let tls_on = tls.is_some();
        server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config).map_err(io)?,
            None => server.listen(listener).map_err(io)?,
        };
        let metrics_port = match metrics_listener {
            Some((listener, addr)) => {
                server = server.listen(listener).map_err(io)?;
                Some(addr.port())
            }
            None => None,
        };
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port: local.port(),
            metrics_port,
            tls: tls_on,
            issuer,
            server: server.run(),
            report,
            janitor,
            key_maintainer,
            client_cache,
            db: pool,
            metrics,
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port `/metrics` is served on when it has an address of its own.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Whether the main port speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn report(&self) -> &StartupReport {
        &self.report
    }

    /// Stops the server gracefully when awaited on.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// What keeps this node's keys current; tests drive it by hand after
    /// moving the clock.
    pub fn key_maintainer(&self) -> KeyMaintainer {
        self.key_maintainer.clone()
    }

    /// The node's client cache: tests check it by hand after changing a
    /// client behind the server's back, as its background loop would within
    /// one check interval.
    pub fn client_cache(&self) -> Arc<ClientCache> {
        Arc::clone(&self.client_cache)
    }

    /// The node's database handle, its SQLite writer included: for checks
    /// of how the server's own connections are set up.
    pub fn database(&self) -> Database {
        self.db.clone()
    }

    /// Serves until stopped, with the janitor and the key maintainer running
    /// alongside. On SIGTERM or SIGINT: stop accepting, give in-flight
    /// requests the shutdown timeout, stop the background tasks, then close
    /// the database pool, so the process exits with no connection and no
    /// transaction left open.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let janitor = actix_web::rt::spawn(self.janitor.run());
        let keys = actix_web::rt::spawn(self.key_maintainer.run());
        let clients = actix_web::rt::spawn(self.client_cache.run(self.db.clone()));
        let drain = actix_web::rt::spawn(drain_on_signal(
            self.server.handle(),
            Arc::clone(&self.metrics),
            self.shutdown_timeout,
        ));
        let result = self.server.await;
        drain.abort();
        log::info!("shutting down: requests finished or timed out");
        janitor.abort();
        keys.abort();
        clients.abort();
        // Wait for the aborted tasks to drop what they hold.
        let _ = janitor.await;
        let _ = keys.await;
        let _ = clients.await;
        match self.db.close(self.shutdown_timeout).await {
            Ok(n) => log::info!("database pool closed ({n} connections)"),
            Err(held) => log::warn!(
                "database pool not closed: {held} handles still in use after the shutdown timeout"
            ),
        }
        result
    }
}

/// On SIGTERM or SIGINT: stop accepting connections, let the requests in
/// flight finish (up to `timeout`), then stop the server gracefully.
/// Draining before stopping matters: actix-server's own graceful stop can
/// drop a request that is still running on a keep-alive connection.
async fn drain_on_signal(
    handle: ServerHandle,
    metrics: Arc<crate::metrics::Metrics>,
    timeout: Duration,
) {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    use futures_util::future::{Either, select};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            log::error!("cannot listen for SIGTERM/SIGINT: {e}; stop the server with SIGKILL");
            return;
        }
    };
    let name = match select(Box::pin(term.recv()), Box::pin(int.recv())).await {
        Either::Left(_) => "SIGTERM",
        Either::Right(_) => "SIGINT",
    };
    log::info!("{name} received: no new connections; draining the requests in flight");
    handle.pause().await;
    let deadline = std::time::Instant::now() + timeout;
    while metrics.in_flight_now() > 0 && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    handle.stop(true).await;
}
