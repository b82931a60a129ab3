//! The soak: the real release binary under mixed traffic for a long time,
//! with the janitor, key rotation and expiry all running on short timers,
//! so every table fills and is swept many times over.
//!
//! Run deliberately (it is not part of `cargo test`):
//! `cargo bench --bench soak`. Settings, from the environment:
//!
//! - `SOAK_DURATION` seconds (default 1800);
//! - `SOAK_CONCURRENCY` client tasks (default 8);
//! - `SOAK_SAMPLE` seconds between samples (default 60);
//! - `SOAK_DATABASE_URL` a PostgreSQL server URL (a database is created in
//!   it and dropped); default: a SQLite file;
//! - `SOAK_SERVER_CPU` the core the server is pinned to (default 0).
//!
//! Every sample prints the server's resident memory, the requests answered
//! by class, and the row count of every table the janitor sweeps. At the
//! end, every revocation acknowledged in the last minutes is checked to be
//! still in force. It exits non-zero on any 5xx, transport error, or
//! revocation not in force.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::Value;

#[path = "support/server.rs"]
mod support;
use support::{Server, number, setting};

/// Lifetimes short enough that a soak of minutes sees many expiries,
/// sweeps and rotations; each at the minimum the server accepts, or near.
fn soak_env() -> Vec<(&'static str, String)> {
    [
        ("TESSERA_WORKERS", "1"),
        ("RUST_LOG", "warn,tessera::cli=info"),
        ("TESSERA_ACCESS_TOKEN_TTL", "60"),
        ("TESSERA_CLOCK_LEEWAY", "5"),
        ("TESSERA_REFRESH_TOKEN_TTL", "60"),
        ("TESSERA_REFRESH_FAMILY_TTL", "120"),
        ("TESSERA_JANITOR_INTERVAL", "15"),
        ("TESSERA_JWKS_MAX_AGE", "30"),
        ("TESSERA_KEY_CHECK_INTERVAL", "10"),
        ("TESSERA_KEY_PREPUBLISH", "40"),
        ("TESSERA_KEY_ROTATION_PERIOD", "300"),
        ("TESSERA_KEY_RETENTION", "86405"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

const TABLES: &[&str] = &[
    "revoked_tokens",
    "refresh_families",
    "refresh_tokens",
    "family_access_tokens",
    "signing_keys",
    "audit_events",
];

#[derive(Default)]
struct Tally {
    ok: u64,
    client_errors: u64,
    server_errors: u64,
    transport_errors: u64,
    /// Access tokens whose revocation was answered 200, with when.
    revoked_access: Vec<(String, Instant)>,
    /// Refresh tokens whose revocation was answered 200, with when.
    revoked_refresh: Vec<(String, Instant)>,
    /// The first few failures, for the report.
    failures: Vec<String>,
}

impl Tally {
    fn note(&mut self, what: &str, status: Option<u16>, body: &str) {
        match status {
            Some(200..=299) => self.ok += 1,
            Some(s @ 400..=499) => {
                self.client_errors += 1;
                self.keep(format!("{what}: {s} {body}"));
            }
            Some(s) => {
                self.server_errors += 1;
                self.keep(format!("{what}: {s} {body}"));
            }
            None => {
                self.transport_errors += 1;
                self.keep(format!("{what}: {body}"));
            }
        }
    }

    fn keep(&mut self, line: String) {
        if self.failures.len() < 20 {
            self.failures.push(line);
        }
    }
}

struct Traffic {
    http: reqwest::Client,
    base: String,
    plain: String,
    refreshing: String,
    introspector: String,
    tally: Rc<RefCell<Tally>>,
}

impl Traffic {
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Option<Value> {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                self.tally.borrow_mut().note(what, Some(status), &text);
                (200..300)
                    .contains(&status)
                    .then(|| serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(e) => {
                self.tally.borrow_mut().note(what, None, &e.to_string());
                None
            }
        }
    }

    async fn form(&self, what: &str, path: &str, auth: &str, body: String) -> Option<Value> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(what, req).await
    }

    /// One round of what a deployment sees: tokens with and without a
    /// refresh token, a refresh chain, revocations of both kinds,
    /// introspection, the JWKS and the revocation feed.
    async fn round(&self, n: u64) {
        let grant = || "grant_type=client_credentials".to_owned();
        self.form("client_credentials", "/oauth2/token", &self.plain, grant())
            .await;
        let Some(issued) = self
            .form(
                "client_credentials+refresh",
                "/oauth2/token",
                &self.refreshing,
                grant(),
            )
            .await
        else {
            return;
        };
        let mut access = str_of(&issued, "access_token");
        let mut refresh = str_of(&issued, "refresh_token");
        for _ in 0..3 {
            let body = format!("grant_type=refresh_token&refresh_token={refresh}");
            let Some(next) = self
                .form("refresh", "/oauth2/token", &self.refreshing, body)
                .await
            else {
                return;
            };
            access = str_of(&next, "access_token");
            refresh = str_of(&next, "refresh_token");
        }
        let body = format!("token={access}");
        self.form("introspect", "/oauth2/introspect", &self.introspector, body)
            .await;
        let body = format!("token={access}&token_type_hint=access_token");
        if self
            .form("revoke access", "/oauth2/revoke", &self.refreshing, body)
            .await
            .is_some()
        {
            let mut tally = self.tally.borrow_mut();
            tally.revoked_access.push((access, Instant::now()));
        }
        if n % 2 == 0 {
            let body = format!("token={refresh}&token_type_hint=refresh_token");
            if self
                .form("revoke refresh", "/oauth2/revoke", &self.refreshing, body)
                .await
                .is_some()
            {
                let mut tally = self.tally.borrow_mut();
                tally.revoked_refresh.push((refresh, Instant::now()));
            }
        }
        if n % 10 == 0 {
            let req = self
                .http
                .get(format!("{}/.well-known/jwks.json", self.base));
            self.send("jwks", req).await;
            let req = self
                .http
                .get(format!("{}/oauth2/revocations", self.base))
                .header("authorization", &self.introspector);
            self.send("revocation feed", req).await;
        }
    }
}

fn str_of(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

fn counts(url: &str) -> Vec<i64> {
    let db = tessera::store::Database::open(url, 1, Duration::from_secs(30)).expect("database");
    let mut conn = db.conn().expect("connection");
    TABLES
        .iter()
        .map(|t| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "(SELECT COUNT(*) FROM {t})"
            )))
            .get_result::<i64>(&mut *conn)
            .expect("count")
        })
        .collect()
}

/// A database of its own in the PostgreSQL server at `server_url`.
fn postgres_database(server_url: &str) -> (String, impl FnOnce() + use<>) {
    use diesel::Connection;
    let name = format!("tessera_soak_{}", std::process::id());
    let mut admin = diesel::PgConnection::establish(server_url).expect("PostgreSQL");
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .expect("drop");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("create");
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    let url = format!("{base}/{name}");
    let drop = move || {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin);
    };
    (url, drop)
}

fn main() {
    let duration = Duration::from_secs(number("SOAK_DURATION", 1800));
    let concurrency = number("SOAK_CONCURRENCY", 8);
    let sample = Duration::from_secs(number("SOAK_SAMPLE", 60));
    let cpu = setting("SOAK_SERVER_CPU", "0");
    let scratch = tempfile::tempdir().expect("temp dir");
    let (url, cleanup): (String, Box<dyn FnOnce()>) = match std::env::var("SOAK_DATABASE_URL") {
        Ok(server_url) => {
            let (url, drop) = postgres_database(&server_url);
            (url, Box::new(drop))
        }
        Err(_) => (
            format!("sqlite://{}", scratch.path().join("soak.db").display()),
            Box::new(|| {}),
        ),
    };
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let server = Server::start(url.clone(), &cpu, &soak_env());
    let ttl = ["--access-token-ttl", "60"];
    let plain = server.client(&[&ttl[..], &["--no-refresh-tokens"]].concat());
    let refreshing = server.client(&ttl);
    let introspector = server.client(&[&ttl[..], &["--can-introspect"]].concat());
    println!(
        "soak: {backend}, {} s, {concurrency} client tasks, server pinned to CPU {cpu}; \
         access tokens 60 s, refresh tokens 60 s, families 120 s, janitor every 15 s, \
         key rotation every 300 s",
        duration.as_secs()
    );
    println!(
        "| minute | RSS MiB | 2xx | 4xx | 5xx | transport errors | {} |",
        TABLES.join(" | ")
    );
    println!("|{}", " ---: |".repeat(6 + TABLES.len()));

    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    let mut rss = Vec::new();
    let failed = actix_web::rt::System::new().block_on(async {
        let traffic = Rc::new(Traffic {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            plain,
            refreshing,
            introspector,
            tally: Rc::clone(&tally),
        });
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let traffic = Rc::clone(&traffic);
                actix_web::rt::spawn(async move {
                    let mut n = 0;
                    while started.elapsed() < duration {
                        traffic.round(n).await;
                        n += 1;
                    }
                })
            })
            .collect();
        let mut next = sample;
        while started.elapsed() < duration {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            if started.elapsed() < next {
                continue;
            }
            next += sample;
            let (now, _) = server.memory();
            rss.push(now);
            let url = url.clone();
            let rows = actix_web::rt::task::spawn_blocking(move || counts(&url))
                .await
                .expect("count task");
            let t = tally.borrow();
            println!(
                "| {:.1} | {now:.1} | {} | {} | {} | {} | {} |",
                started.elapsed().as_secs_f64() / 60.0,
                t.ok,
                t.client_errors,
                t.server_errors,
                t.transport_errors,
                rows.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            drop(t);
            // Keep the lists of acknowledged revocations to what can still
            // be checked: tokens that have not expired.
            let mut t = tally.borrow_mut();
            let fresh = |at: &Instant| at.elapsed() < Duration::from_secs(40);
            t.revoked_access.retain(|(_, at)| fresh(at));
            t.revoked_refresh.retain(|(_, at)| fresh(at));
        }
        for task in tasks {
            let _ = task.await;
        }

        // Nothing acknowledged was lost: every revocation still checkable.
        let (access, refresh) = {
            let t = tally.borrow();
            (t.revoked_access.clone(), t.revoked_refresh.clone())
        };
        let mut lost = 0;
        for (token, _) in access.iter().filter(|(_, at)| at.elapsed() < Duration::from_secs(50)) {
            let answer = traffic
                .form("check", "/oauth2/introspect", &traffic.introspector, format!("token={token}"))
                .await;
            if answer.is_none_or(|a| a["active"] != Value::Bool(false)) {
                lost += 1;
            }
        }
        for (token, _) in refresh.iter().filter(|(_, at)| at.elapsed() < Duration::from_secs(50)) {
            let body = format!("grant_type=refresh_token&refresh_token={token}");
            let resp = traffic
                .http
                .post(format!("{}/oauth2/token", traffic.base))
                .header("authorization", &traffic.refreshing)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            if resp.map(|r| r.status().as_u16()).ok() != Some(400) {
                lost += 1;
            }
        }
        let t = tally.borrow();
        let (first, last, peak) = (
            rss.first().copied().unwrap_or(f64::NAN),
            rss.last().copied().unwrap_or(f64::NAN),
            rss.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "\nsoak done: {} requests in {:.1} min ({:.0} req/s); 5xx {}, transport errors {}, 4xx {}; \
             RSS first sample {first:.1} MiB, last {last:.1} MiB, highest {peak:.1} MiB; \
             revocations checked at the end: {} access, {} refresh, not in force: {lost}",
            t.ok + t.client_errors + t.server_errors + t.transport_errors,
            started.elapsed().as_secs_f64() / 60.0,
            (t.ok + t.client_errors + t.server_errors) as f64 / started.elapsed().as_secs_f64(),
            t.server_errors,
            t.transport_errors,
            t.client_errors,
            access.len(),
            refresh.len(),
        );
        for line in &t.failures {
            println!("  failure: {line}");
        }
        t.server_errors > 0 || t.transport_errors > 0 || lost > 0
    });
    drop(server);
    cleanup();
    if failed {
        std::process::exit(1);
    }
}
