//! Introspection against a small and a large revocation list.
//!
//! Starts the real server, fills `revoked_tokens` with N entries (10, then
//! 1,000,000), and drives `POST /oauth2/introspect` for a live token over
//! keep-alive connections, reporting throughput and latency. The lookup is
//! by the unique index on `jti`, so the two sizes should perform alike; this
//! measures that instead of asserting it.
//!
//! Run: `cargo bench --bench revocation_lookup` (SQLite), and with
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres` set for
//! PostgreSQL too. `BENCH_REQUESTS` and `BENCH_CONCURRENCY` tune the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use tessera::clients::{self, ClientSpec};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Settings;
use tessera::startup::Application;
use tessera::store::Database;

fn spec(can_introspect: bool) -> ClientSpec {
    ClientSpec {
        id: None,
        name: "bench".into(),
        scope: "read".into(),
        audiences: vec!["https://api.example.com".into()],
        access_token_ttl: 3600,
        refresh_tokens: false,
        refresh_token_ttl: None,
        refresh_family_ttl: None,
        can_introspect,
        allowed_networks: Vec::new(),
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Report {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn drive(base: &str, auth: &str, token: &str, requests: usize, concurrency: usize) -> Report {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let body = format!("token={token}");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, url, auth, body) = (
            http.clone(),
            format!("{base}/oauth2/introspect"),
            auth.to_owned(),
            body.clone(),
        );
        let share = requests / concurrency + usize::from(worker < requests % concurrency);
        tasks.push(actix_web::rt::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                let answer: serde_json::Value = resp.json().await.expect("JSON");
                assert_eq!(
                    answer["active"], true,
                    "the benchmark token must stay active"
                );
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Report {
        requests: all.len(),
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        max: *all.last().expect("latencies"),
    }
}

fn fill(db: &Database, offset: usize, entries: usize) {
    let mut conn = db.conn().expect("connection");
    let exp = SystemClock.now() + 86_400;
    // A standard recursive CTE: the same statement on SQLite and PostgreSQL.
    diesel::sql_query(format!(
        "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {entries}) \
         SELECT 'bench-' || (x + {offset}), 'bench', {exp}, {exp} - 86400 FROM n"
    ))
    .execute(&mut *conn)
    .expect("fill the revocation list");
}

async fn run(label: &str, database_url: String, dir: &std::path::Path) {
    let requests = env_number("BENCH_REQUESTS", 5000);
    let concurrency = env_number("BENCH_CONCURRENCY", 16);
    let settings = Settings {
        bind: "127.0.0.1:0".into(),
        database_url: database_url.clone(),
        keys_dir: dir.join("keys"),
        ..Settings::default()
    };
    let app = Application::build(settings, Arc::new(SystemClock))
        .await
        .expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());

    let db = Database::open(&database_url, 2, Duration::from_secs(5)).expect("database");
    let now = SystemClock.now();
    let (client, rs) = {
        let mut conn = db.conn().expect("connection");
        let c = clients::create(&mut conn, &spec(false), now).expect("client");
        let r = clients::create(&mut conn, &spec(true), now).expect("resource server");
        (c, r)
    };
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/oauth2/token"))
        .header(
            "authorization",
            basic(&client.client_id, client.client_secret.expose()),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let auth = basic(&rs.client_id, rs.client_secret.expose());

    let mut filled = 0;
    for entries in [10usize, 1_000_000] {
        let t = Instant::now();
        fill(&db, filled, entries - filled);
        filled = entries;
        let fill_time = t.elapsed();
        drive(&base, &auth, &token, requests / 10, concurrency).await; // warm-up
        let r = drive(&base, &auth, &token, requests, concurrency).await;
        println!(
            "{label:<10} {entries:>9} entries (filled in {:>5.1}s): {:>6} req in {:>6.2}s = {:>7.0} req/s, \
             p50 {:>6.2} ms, p99 {:>6.2} ms, max {:>6.2} ms (concurrency {concurrency})",
            fill_time.as_secs_f64(),
            r.requests,
            r.elapsed.as_secs_f64(),
            r.requests as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
        );
    }
    handle.stop(true).await;
}

fn main() {
    actix_web::rt::System::new().block_on(async {
        println!(
            "introspection of a live token; machine: {} cores; server and load generator share them",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let dir = tempfile::tempdir().expect("temp dir");
        run("SQLite", format!("sqlite://{}", dir.path().join("bench.db").display()), dir.path()).await;
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!("tessera_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin).expect("PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).expect("create");
                let (base, _) = admin.rsplit_once('/').expect("URL with a database");
                let pg_dir = tempfile::tempdir().expect("temp dir");
                run("PostgreSQL", format!("{base}/{name}"), pg_dir.path()).await;
                diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)")).execute(&mut conn).expect("drop");
            }
            _ => println!("PostgreSQL skipped: TEST_DATABASE_URL is not set"),
        }
    });
}
