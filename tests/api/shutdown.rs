//! Graceful shutdown of the real binary: SIGTERM while a request is held up
//! in the database stops serving new connections at once, lets the request
//! (on a keep-alive connection) finish with everything it wrote committed,
//! closes the pool and exits 0.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{ProcessConfig, basic_header, spawn_app, spec, start_binary_logging};

/// Holds the database's lock for clients from another connection, as a long
/// transaction or a migration would: requests that need it wait.
enum Blocker {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Blocker {
    fn hold(url: &str) -> Self {
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut conn = SqliteConnection::establish(path).expect("SQLite");
                // A write lock: the server's writes wait in its busy handler.
                conn.batch_execute("BEGIN IMMEDIATE").expect("lock");
                Self::Sqlite(conn)
            }
            None => {
                let mut conn = PgConnection::establish(url).expect("PostgreSQL");
                conn.batch_execute("BEGIN; LOCK TABLE clients IN ACCESS EXCLUSIVE MODE")
                    .expect("lock");
                Self::Postgres(conn)
            }
        }
    }

    fn release(self) {
        match self {
            Self::Sqlite(mut c) => c.batch_execute("COMMIT").expect("release"),
            Self::Postgres(mut c) => c.batch_execute("COMMIT").expect("release"),
        }
    }
}

fn gauge(metrics: &str, key: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or(0.0)
}

both_backends! {
    async fn sigterm_finishes_the_request_in_flight_then_closes_the_pool(backend) {
        let app = spawn_app(&backend).await;
        app.stop().await;
        let client = app.create_client(spec("read", &["https://api.example.com"])).await;
        let config = ProcessConfig::of(&app);
        let start = |config: ProcessConfig| {
            actix_web::rt::task::spawn_blocking(move || start_binary_logging(&config, &[("RUST_LOG", "info")]))
        };
        let (mut server, base, log) = start(config.clone()).await.expect("task");
        let port = base.rsplit(':').next().expect("port").to_owned();
        let http = reqwest::Client::new();

        // The request in flight goes over a connection the server accepted
        // long before: actix-server counts a connection only after handing
        // it to the worker, and a SIGTERM in between (milliseconds under
        // load) finds the worker "idle" and drops a fresh connection.
        let warm = http.get(format!("{base}/healthz")).send().await.expect("healthz");
        assert_eq!(warm.status(), 200);
        warm.bytes().await.expect("body");
        let blocker = actix_web::rt::task::spawn_blocking({
            let url = app.db.url.clone();
            move || Blocker::hold(&url)
        }).await.expect("task");
        let in_flight = actix_web::rt::spawn({
            let (http, url, auth) = (http.clone(), format!("{base}/oauth2/token"), basic_header(&client.id, &client.secret));
            let log = std::sync::Arc::clone(&log);
            async move {
                let resp = match http.post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send().await {
                    Ok(resp) => resp,
                    Err(e) => {
                        // Let the server finish logging before showing it.
                        std::thread::sleep(Duration::from_secs(2));
                        panic!("the request in flight was not answered: {e}\n{}", log.lock().expect("log"))
                    }
                };
                (resp.status().as_u16(), resp.json::<Value>().await.expect("JSON"))
            }
        });
        // The request is in flight once the server counts it (besides the
        // scrape itself).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = reqwest::Client::new().get(format!("{base}/metrics"))
                .send().await.expect("metrics").text().await.expect("text");
            if gauge(&metrics, "tessera_http_requests_in_flight") >= 2.0 {
                break;
            }
            assert!(Instant::now() < deadline, "the token request never reached the database");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }

        let term = std::process::Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status().expect("kill -TERM");
        assert!(term.success());
        // Once the drain has begun, a new connection is not served while the
        // request is still held (it waits in the listen queue, and is
        // closed unanswered when the server stops).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log.lock().expect("log").contains("SIGTERM received") {
            assert!(Instant::now() < deadline, "the server never saw SIGTERM");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let late = reqwest::Client::builder()
            .timeout(Duration::from_millis(700))
            .build()
            .expect("client")
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        assert!(late.is_err(), "a new connection was served during the drain: {late:?}");
        assert!(!in_flight.is_finished(), "the request was held by the lock");
        actix_web::rt::task::spawn_blocking(move || blocker.release()).await.expect("task");

        let (status, body) = in_flight.await.expect("task");
        assert_eq!(status, 200, "the request in flight finished: {body}");
        let refresh_token = body["refresh_token"].as_str().expect("a refresh token").to_owned();
        let exit = actix_web::rt::task::spawn_blocking(move || server.wait()).await.expect("task").expect("exit");
        assert!(exit.success(), "exit status {exit:?}");
        let log = log.lock().expect("log").clone();
        // The pool was closed by the server itself, connection by connection,
        // after the last request and before exit.
        let shutting = log.find("shutting down").expect("a shutdown line");
        let closed = log.find("database pool closed (").expect("the pool was closed");
        assert!(shutting < closed, "{log}");
        let count: u32 = log[closed..].trim_start_matches("database pool closed (")
            .split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
        assert!(count >= 1, "{log}");

        // What the request wrote was committed: its refresh token is live.
        let (mut server, base, _) = start(config).await.expect("task");
        let answer: Value = http.post(format!("{base}/oauth2/introspect"))
            .header("authorization", basic_header(&client.id, &client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={refresh_token}"))
            .send().await.expect("introspect").json().await.expect("JSON");
        assert_eq!(answer["active"], true, "{answer}");
        server.kill().expect("stop");
        server.wait().expect("reaped");
    }
}
