//! The test harness: every test starts the real application on port 0, on a
//! fresh database of its own (a SQLite file in a temp dir, or a PostgreSQL
//! database created for it and dropped afterwards), and talks to it over real
//! HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::Value;
use tessera::clients::{self, ClientSpec};
use tessera::clock::{Clock, ManualClock};
use tessera::config::Settings;
use tessera::keys::maintainer::KeyMaintainer;
use tessera::oauth::client_cache::ClientCache;
use tessera::startup::{Application, StartupError};
use tessera::store::Database;

/// Runs a test body once on SQLite and once on PostgreSQL. Without
/// `TEST_DATABASE_URL` the PostgreSQL run says it was skipped; under CI it
/// fails instead, so a CI run can never pass without PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($backend: $crate::helpers::Backend) $body

            #[actix_web::test]
            async fn sqlite() {
                body($crate::helpers::Backend::Sqlite).await
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(backend) = $crate::helpers::Backend::postgres(module_path!()) {
                    body(backend).await
                }
            }
        }
    };
}

/// The cut-off timing the helpers below use: no propagation margin, because
/// each of them drops the app's client cache at once (`sync_clients`), so no
/// server is left authenticating from stale data.
pub const IMMEDIATE_CUTOFF: tessera::clients::CutoffTiming = tessera::clients::CutoffTiming {
    leeway: 60,
    propagation: 0,
};

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    pub fn postgres(test: &str) -> Option<Self> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres { admin_url: url }),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "TEST_DATABASE_URL must be set under CI: {test} cannot be skipped there"
                );
                eprintln!("SKIPPED {test} on PostgreSQL: TEST_DATABASE_URL is not set");
                None
            }
        }
    }
}

/// One test's database; a PostgreSQL one is dropped when this is.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn create(backend: &Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.join("data").join("tessera.db").display()),
                postgres: None,
            },
            Backend::Postgres { admin_url } => {
                let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    PgConnection::establish(admin_url).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .expect("create the test database");
                Self {
                    url: with_database(admin_url, &name),
                    postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres {
            postgres::drop_database(admin_url, name);
        }
    }
}

#[path = "../shared/postgres.rs"]
mod postgres;
pub use postgres::with_database;

pub struct TestApp {
    pub base: String,
    pub issuer: String,
    pub port: u16,
    /// With `metrics_bind` set: the port `/metrics` has to itself.
    pub metrics_port: Option<u16>,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub clock: Arc<ManualClock>,
    handle: ServerHandle,
    /// The node's key maintainer: tests run it by hand after moving the
    /// clock, as its background loop would within one check interval.
    pub keys: KeyMaintainer,
    /// The node's client cache: tests that change a client behind the
    /// server's back check it, as its background loop would within one
    /// check interval.
    pub clients: Arc<ClientCache>,
    // Dropped last: the server must stop before its database and files go.
    pub db: TestDatabase,
    pub dir: tempfile::TempDir,
}

/// Another node started by [`TestApp::start_twin`]; stopped when dropped.
pub struct Twin {
    pub base: String,
    pub keys: KeyMaintainer,
    handle: ServerHandle,
}

impl Drop for Twin {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub fn test_settings(dir: &Path, db: &TestDatabase) -> Settings {
    Settings {
        bind: "127.0.0.1:0".to_owned(),
        database_url: db.url.clone(),
        keys_dir: dir.join("keys"),
        db_pool_size: 4,
        workers: Some(1),
        ..Settings::default()
    }
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: &Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::create(backend, dir.path());
    let mut settings = test_settings(dir.path(), &db);
    tweak(&mut settings);
    let clock = Arc::new(ManualClock::starting_now());
    start(settings, clock, db, dir)
        .await
        .expect("the application starts")
}

struct Launched {
    base: String,
    issuer: String,
    port: u16,
    metrics_port: Option<u16>,
    handle: ServerHandle,
    keys: KeyMaintainer,
    clients: Arc<ClientCache>,
}

async fn launch(settings: &Settings, clock: Arc<ManualClock>) -> Result<Launched, StartupError> {
    let app = Application::build(settings.clone(), clock).await?;
    let scheme = if app.tls() { "https" } else { "http" };
    let launched = Launched {
        base: format!("{scheme}://127.0.0.1:{}", app.port()),
        issuer: app.issuer().to_owned(),
        port: app.port(),
        metrics_port: app.metrics_port(),
        handle: app.handle(),
        keys: app.key_maintainer(),
        clients: app.client_cache(),
    };
    actix_web::rt::spawn(app.run_until_stopped());
    Ok(launched)
}

async fn start(
    settings: Settings,
    clock: Arc<ManualClock>,
    db: TestDatabase,
    dir: tempfile::TempDir,
) -> Result<TestApp, StartupError> {
    let Launched {
        base,
        issuer,
        port,
        metrics_port,
        handle,
        keys,
        clients,
    } = launch(&settings, clock.clone()).await?;
    Ok(TestApp {
        base,
        issuer,
        port,
        metrics_port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client"),
        settings,
        clock,
        handle,
        keys,
        clients,
        db,
        dir,
    })
}

/// Builds the application on an existing database and keys folder, without
/// starting it: for start-up failure tests.
pub async fn build_app(settings: Settings) -> Result<Application, StartupError> {
    Application::build(settings, Arc::new(ManualClock::starting_now())).await
}

#[derive(Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

pub fn spec(scope: &str, audiences: &[&str]) -> ClientSpec {
    ClientSpec {
        id: None,
        name: "test client".to_owned(),
        scope: scope.to_owned(),
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        access_token_ttl: 300,
        refresh_tokens: true,
        refresh_token_ttl: None,
        refresh_family_ttl: None,
        can_introspect: false,
        allowed_networks: Vec::new(),
    }
}

impl TestApp {
    pub fn clock_now(&self) -> i64 {
        self.clock.now()
    }

    /// CLI commands stamp instants with the wall clock, which a slow machine
    /// can move past the test's clock: bring the server's clock level with it
    /// (plus `ahead` seconds) so what the CLI wrote is in the server's past.
    pub fn catch_up_with_wall_clock(&self, ahead: i64) {
        self.clock
            .set(self.clock_now().max(tessera::clock::SystemClock.now()) + ahead);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Stops the server and starts a new one on the same database, keys
    /// folder and settings (on a new port).
    pub async fn restart(&mut self) -> Result<(), StartupError> {
        self.stop().await;
        let launched = launch(&self.settings, self.clock.clone()).await?;
        self.base = launched.base;
        self.issuer = launched.issuer;
        self.port = launched.port;
        self.metrics_port = launched.metrics_port;
        self.handle = launched.handle;
        self.keys = launched.keys;
        self.clients = launched.clients;
        Ok(())
    }

    /// A second server on the same database, keys folder, settings and
    /// clock: another node of the same deployment.
    pub async fn start_twin(&self) -> Twin {
        let launched = launch(&self.settings, self.clock.clone())
            .await
            .expect("the second node starts");
        Twin {
            base: launched.base,
            keys: launched.keys,
            handle: launched.handle,
        }
    }

    /// Runs the client cache's check now, as its loop would within one
    /// interval: after a test changed a client directly in the database.
    pub async fn sync_clients(&self) {
        self.clients
            .check(&self.database())
            .await
            .expect("client cache check");
    }

    /// Opens the application's database directly, as the CLI does.
    pub fn database(&self) -> Database {
        Database::open(&self.db.url, 1, std::time::Duration::from_secs(5)).expect("open database")
    }

    pub async fn create_client(&self, spec: ClientSpec) -> TestClient {
        let db = self.database();
        let now = self.clock.now();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db.conn().expect("connection");
            clients::create(&mut conn, &spec, now).expect("create client")
        })
        .await
        .map(|c| TestClient {
            id: c.client_id,
            secret: c.client_secret.expose().to_owned(),
        })
        .expect("blocking task")
    }

    pub async fn disable_client(&self, id: &str) {
        let db = self.database();
        let id = id.to_owned();
        let now = self.clock.now();
        actix_web::rt::task::spawn_blocking(move || {
            clients::disable(
                &mut db.conn().expect("connection"),
                &id,
                now,
                IMMEDIATE_CUTOFF,
            )
            .expect("disable")
        })
        .await
        .expect("blocking task");
        self.sync_clients().await;
    }

    pub async fn revoke_all(&self, id: &str) {
        let db = self.database();
        let id = id.to_owned();
        let now = self.clock.now();
        actix_web::rt::task::spawn_blocking(move || {
            clients::revoke_all(
                &mut db.conn().expect("connection"),
                &id,
                now,
                IMMEDIATE_CUTOFF,
            )
            .expect("revoke-all")
        })
        .await
        .expect("blocking task");
        self.sync_clients().await;
    }

    pub async fn delete_client(&self, id: &str) {
        let db = self.database();
        let id = id.to_owned();
        let now = self.clock.now();
        actix_web::rt::task::spawn_blocking(move || {
            clients::delete(
                &mut db.conn().expect("connection"),
                &id,
                now,
                IMMEDIATE_CUTOFF,
            )
            .expect("delete")
        })
        .await
        .expect("blocking task");
        self.sync_clients().await;
    }

    /// POSTs a form to the token endpoint, with Basic credentials if given.
    pub async fn post_token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        self.post_form("/oauth2/token", form, basic).await
    }

    /// Introspects `token` as `caller`; asserts a 200 JSON answer.
    pub async fn introspect(&self, caller: &TestClient, token: &str) -> Value {
        let resp = self
            .post_form(
                "/oauth2/introspect",
                &[("token", token)],
                Some((&caller.id, &caller.secret)),
            )
            .await;
        assert_eq!(resp.status(), 200, "introspection answers 200");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        resp.json().await.expect("JSON")
    }

    /// Revokes `token` as `caller`.
    pub async fn revoke(&self, caller: &TestClient, token: &str) -> reqwest::Response {
        self.post_form(
            "/oauth2/revoke",
            &[("token", token)],
            Some((&caller.id, &caller.secret)),
        )
        .await
    }

    /// The server's active signing key, unsealed the way the server does it:
    /// a test signer for tokens the server must refuse despite a valid
    /// signature. Returns the kid and the PKCS#8 document.
    pub fn signing_key(&self) -> (String, Vec<u8>) {
        let db = self.database();
        let mut conn = db.conn().expect("connection");
        let (kek, _) = tessera::keys::KeyEncryptionKey::load(
            &self.settings.keys_dir,
            self.settings.kek.as_deref(),
        )
        .expect("KEK")
        .expect("KEK exists");
        let row = tessera::store::signing_keys::list_keys(&mut conn)
            .expect("keys")
            .into_iter()
            .next()
            .expect("a key");
        let pkcs8 = kek
            .open(row.kid.as_bytes(), &row.private_key_sealed)
            .expect("unseal");
        (row.kid, pkcs8)
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form));
        if let Some((id, secret)) = basic {
            req = req.header("authorization", basic_header(id, secret));
        }
        req.send().await.expect("request")
    }

    /// A client-credentials token for `client`, with extra form fields.
    pub async fn access_token(&self, client: &TestClient) -> String {
        self.token(client, &[]).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn token(&self, client: &TestClient, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let resp = self
            .post_token(&form, Some((&client.id, &client.secret)))
            .await;
        assert_eq!(resp.status(), 200, "token request failed");
        resp.json().await.expect("JSON token response")
    }

    pub async fn jwks(&self) -> Value {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("JWKS request")
            .json()
            .await
            .expect("JWKS JSON")
    }

    /// Verifies `token` the way an offline resource server does: fetch the
    /// published JWKS over HTTP, pick the key by `kid`, verify the ES256
    /// signature with ring directly (no code of the server involved), then
    /// check `typ`, `iss`, `aud` and the time claims. Returns the claims.
    pub async fn verify_offline(&self, token: &str, audience: &str) -> Result<Value, String> {
        let jwks = self.jwks().await;
        verify_with_jwks(token, &jwks, &self.issuer, audience, self.clock.now())
    }
}

fn b64(field: &Value) -> Result<Vec<u8>, String> {
    let text = field.as_str().ok_or("missing member")?;
    URL_SAFE_NO_PAD.decode(text).map_err(|e| e.to_string())
}

/// Verifies `token` the way an offline resource server does, for every
/// algorithm Tessera signs with: the key is picked from `jwks` by `kid` and
/// the signature checked with `ring` directly from the JWK's public members
/// (ES256 from `x`/`y`, EdDSA from `x`, RS256 from `n`/`e`), no code of the
/// server involved; then `typ`, `iss`, `aud` and the time claims.
pub fn verify_with_jwks(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<Value, String> {
    use ring::signature;
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| e.to_string())?;
    if header["typ"] != "at+jwt" {
        return Err(format!("typ is {}", header["typ"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or(format!("kid {kid} is not in the JWKS"))?;
    // The algorithm comes from the key, never from the token alone.
    if header["alg"] != jwk["alg"] {
        return Err(format!(
            "alg {} against a {} key",
            header["alg"], jwk["alg"]
        ));
    }
    let message = format!("{h}.{p}");
    let sig = decode(s)?;
    let checked = match (jwk["kty"].as_str(), jwk["alg"].as_str()) {
        (Some("EC"), Some("ES256")) if jwk["crv"] == "P-256" => {
            let mut point = vec![0x04];
            point.extend(b64(&jwk["x"])?);
            point.extend(b64(&jwk["y"])?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message.as_bytes(), &sig)
        }
        (Some("OKP"), Some("EdDSA")) if jwk["crv"] == "Ed25519" => {
            signature::UnparsedPublicKey::new(&signature::ED25519, b64(&jwk["x"])?)
                .verify(message.as_bytes(), &sig)
        }
        (Some("RSA"), Some("RS256")) => {
            let (n, e) = (b64(&jwk["n"])?, b64(&jwk["e"])?);
            signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message.as_bytes(),
                &sig,
            )
        }
        other => return Err(format!("unexpected key {other:?}")),
    };
    checked.map_err(|_| "bad signature".to_owned())?;
    let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|e| e.to_string())?;
    if claims["iss"] != issuer {
        return Err(format!("iss is {}", claims["iss"]));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == audience,
        Value::Array(list) => list.iter().any(|a| a == audience),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud is {}", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    let nbf = claims["nbf"].as_i64().ok_or("no nbf")?;
    if now >= exp || now < nbf {
        return Err("outside its validity window".into());
    }
    Ok(claims)
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
pub fn basic_header(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", form_encode(id), form_encode(secret)))
    )
}

pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The claims of a JWT, decoded without verification (for assertions on a
/// token already verified).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the returned future
        // only waits for completion, which a destructor cannot do.
        drop(self.handle.stop(false));
    }
}

/// Where a test's real server process keeps its state: the test app's.
#[derive(Clone)]
pub struct ProcessConfig {
    pub dir: std::path::PathBuf,
    pub db_url: String,
    pub keys_dir: std::path::PathBuf,
}

impl ProcessConfig {
    pub fn of(app: &TestApp) -> Self {
        Self {
            dir: app.dir.path().to_owned(),
            db_url: app.db.url.clone(),
            keys_dir: app.settings.keys_dir.clone(),
        }
    }
}

/// Starts the real binary on an ephemeral port; returns the child and its
/// base URL once it listens. Blocks: call it from a blocking task.
pub fn start_binary(config: &ProcessConfig, env: &[(&str, &str)]) -> (Child, String) {
    let mut with_info = vec![("RUST_LOG", "info")];
    with_info.extend_from_slice(env);
    let (child, base, _log) = start_binary_logging(config, &with_info);
    (child, base)
}

/// As [`start_binary`], keeping everything the server logs (and reading
/// `RUST_LOG` from `env`).
pub fn start_binary_logging(
    config: &ProcessConfig,
    env: &[(&str, &str)],
) -> (Child, String, Arc<std::sync::Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .current_dir(&config.dir)
        .env("TESSERA_BIND", "127.0.0.1:0")
        .env("TESSERA_ISSUER", "https://auth.example.com")
        .env("TESSERA_DATABASE_URL", &config.db_url)
        .env("TESSERA_KEYS_DIR", &config.keys_dir)
        .env("TESSERA_WORKERS", "1")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(stdout) = child.stdout.take() {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server logs until it listens")
            .expect("UTF-8");
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
        if let Some(rest) = line.split("listening on port ").nth(1) {
            break rest.split(',').next().expect("port").trim().to_owned();
        }
    };
    let keep = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(mut l) = keep.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    (child, format!("http://127.0.0.1:{port}"), log)
}

/// Runs the real `tessera` binary on the app's database and keys folder, as
/// an operator would next to the server, with `env` added.
pub fn tessera_cli_with(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .env_remove("TESSERA_CONFIG")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run the tessera binary")
}

pub fn tessera_cli(app: &TestApp, args: &[&str]) -> Output {
    tessera_cli_with(app, args, &[])
}

/// The stdout of a successful CLI run, which must be exactly one JSON
/// document.
pub fn cli_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document")
}

/// Everything the database keeps, as bytes, the way a backup would hold it:
/// the SQLite file with its write-ahead log and index, or a `pg_dump` of the
/// test database. `None` when `pg_dump` is not installed and the run is not
/// under CI (under CI that fails).
pub fn database_dump(app: &TestApp, backend: &Backend) -> Option<Vec<u8>> {
    match backend {
        Backend::Sqlite => {
            let file = app.db.url.strip_prefix("sqlite://").expect("a SQLite URL");
            let mut bytes = std::fs::read(file).expect("the database file");
            for suffix in ["-wal", "-shm"] {
                if let Ok(more) = std::fs::read(format!("{file}{suffix}")) {
                    bytes.extend(more);
                }
            }
            Some(bytes)
        }
        Backend::Postgres { .. } => match Command::new("pg_dump")
            .arg("--dbname")
            .arg(&app.db.url)
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(out.stdout)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "pg_dump must be installed under CI"
                );
                eprintln!("SKIPPED a PostgreSQL dump check: pg_dump is not installed");
                None
            }
            Err(e) => panic!("pg_dump: {e}"),
        },
    }
}

/// A request as the admin API gets them: `method path`, with a Bearer token
/// and a JSON body when given. Returns the status, the `WWW-Authenticate`
/// challenge (empty when there is none) and the body as JSON (`Null` when
/// it is not JSON).
pub async fn bearer_request(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Signs `header.payload`, given as raw JSON text so that duplicate members
/// and odd types survive, with a P-256 key in PKCS#8: forged tokens whose
/// signature holds, so the check under test is the one that refuses them.
pub fn sign_raw(pkcs8: &[u8], header: &str, payload: &str) -> String {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).expect("key");
    let b64 = |data: &[u8]| URL_SAFE_NO_PAD.encode(data);
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = pair.sign(&rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64(sig.as_ref()))
}
