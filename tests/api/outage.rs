//! Database outages under load. PostgreSQL: a TCP relay the test controls
//! sits between the server and the database and is cut mid-load, then
//! restored. SQLite: another process holds the database's write lock.
//! Either way: every answer is a success or a 503 `temporarily_unavailable`
//! (never `invalid_client`, never a 500), nothing acknowledged is lost, and
//! the server recovers by itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestClient, spawn_app_with, spec};

const API: &str = "https://api.example.com";

/// A TCP relay that forwards to `upstream` until cut: then it closes every
/// open connection and refuses new ones, until restored.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, o) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for inbound in listener.incoming().map_while(Result::ok) {
                if c.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(upstream) else {
                    continue;
                };
                if let (Ok(a), Ok(b), Ok(mut list)) =
                    (inbound.try_clone(), outbound.try_clone(), o.lock())
                {
                    list.push(a);
                    list.push(b);
                }
                pump(&inbound, &outbound);
                pump(&outbound, &inbound);
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().expect("list").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// `scheme://user@host:port/db` with the host and port replaced.
fn through(url: &str, port: u16) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").expect("URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, h)| (u, h));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let upstream = host
        .to_socket_addrs()
        .expect("address")
        .next()
        .expect("an address");
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    (format!("{scheme}://{at}127.0.0.1:{port}/{path}"), upstream)
}

/// What one request got.
struct Answer {
    status: u16,
    body: Value,
}

async fn form(app: &TestApp, client: &TestClient, path: &str, pairs: &[(&str, &str)]) -> Answer {
    let resp = app
        .post_form(path, pairs, Some((&client.id, &client.secret)))
        .await;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer { status, body }
}

async fn client_credentials(app: &TestApp, client: &TestClient) -> Answer {
    form(
        app,
        client,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
    )
    .await
}

/// Checks an answer given during an outage: a success, or a retryable 503.
fn success_or_retry(answer: &Answer, what: &str) -> bool {
    match answer.status {
        200 => true,
        503 => {
            assert_eq!(
                answer.body["error"], "temporarily_unavailable",
                "{what}: {}",
                answer.body
            );
            assert!(
                answer.body.get("access_token").is_none(),
                "{what}: a 503 with a token"
            );
            false
        }
        other => panic!(
            "{what}: {other} {} (only 200 or 503 may answer an outage)",
            answer.body
        ),
    }
}

/// One worker of the load: issue, refresh, revoke, over and over. Returns
/// the refresh tokens it holds at the end and the access tokens whose
/// revocation was acknowledged.
async fn load(
    app: Arc<TestApp>,
    client: TestClient,
    until: Instant,
) -> (Vec<String>, Vec<String>, usize) {
    let (mut live_refresh, mut revoked, mut unavailable) = (Vec::new(), Vec::new(), 0);
    while Instant::now() < until {
        let issued = client_credentials(&app, &client).await;
        if !success_or_retry(&issued, "client credentials") {
            unavailable += 1;
            continue;
        }
        let at = issued.body["access_token"].as_str().expect("at").to_owned();
        let mut rt = issued.body["refresh_token"]
            .as_str()
            .expect("rt")
            .to_owned();
        let refreshed = form(
            &app,
            &client,
            "/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        if success_or_retry(&refreshed, "refresh") {
            rt = refreshed.body["refresh_token"]
                .as_str()
                .expect("rt")
                .to_owned();
            live_refresh.push(rt);
        } else {
            // The refresh may or may not have happened: the old token's
            // state is unknown, so it is not counted either way.
            unavailable += 1;
        }
        let revocation = form(&app, &client, "/oauth2/revoke", &[("token", &at)]).await;
        if success_or_retry(&revocation, "revocation") {
            revoked.push(at);
        } else {
            unavailable += 1;
        }
    }
    (live_refresh, revoked, unavailable)
}

async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the server did not recover by itself"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After the outage: every acknowledged revocation holds, every refresh
/// token handed out is live (it was recorded before it was sent).
async fn nothing_acknowledged_was_lost(
    app: &TestApp,
    client: &TestClient,
    live_refresh: &[String],
    revoked: &[String],
) {
    for rt in live_refresh {
        assert_eq!(
            app.introspect(client, rt).await["active"],
            true,
            "a refresh token was handed out but not recorded"
        );
    }
    for at in revoked {
        assert_eq!(
            app.introspect(client, at).await["active"],
            false,
            "an acknowledged revocation was lost"
        );
    }
}

/// A server on PostgreSQL through a relay the test can cut, with a
/// one-second database timeout; `None` when PostgreSQL is not configured
/// (which `Backend::postgres` reports, and fails under CI).
async fn app_behind_a_relay(test: &str) -> Option<(TestApp, Relay)> {
    let backend = Backend::postgres(test)?;
    let Backend::Postgres { admin_url } = &backend else {
        return None;
    };
    let (_, upstream) = through(admin_url, 0);
    let relay = Relay::start(upstream);
    let port = relay.port;
    let app = spawn_app_with(&backend, move |s| {
        s.database_url = through(&s.database_url, port).0;
        s.db_timeout = 1;
    })
    .await;
    Some((app, relay))
}

#[actix_web::test]
async fn postgres_cut_mid_load_answers_503_loses_nothing_and_recovers() {
    let Some((app, relay)) = app_behind_a_relay("outage::postgres_cut_mid_load").await else {
        return;
    };
    let app = Arc::new(app);
    let client = app.create_client(spec("read", &[API])).await;
    let keys_before = app.jwks().await;

    let started = Instant::now();
    let until = started + Duration::from_secs(6);
    let workers: Vec<_> = (0..3)
        .map(|_| actix_web::rt::spawn(load(Arc::clone(&app), client.clone(), until)))
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    relay.cut();
    // Mid-outage: public keys and metadata are served from memory.
    assert_eq!(app.jwks().await, keys_before);
    let metadata = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(metadata.status(), 200);
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    relay.restore();

    let (mut live_refresh, mut revoked, mut unavailable) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (l, r, u) = worker.await.expect("worker");
        live_refresh.extend(l);
        revoked.extend(r);
        unavailable += u;
    }
    assert!(unavailable > 0, "the cut never reached a request");
    wait_until_ready(&app).await;
    let after = client_credentials(&app, &client).await;
    assert_eq!(
        after.status, 200,
        "tokens again after the outage: {}",
        after.body
    );
    assert!(
        !revoked.is_empty() && !live_refresh.is_empty(),
        "the load did real work"
    );
    nothing_acknowledged_was_lost(&app, &client, &live_refresh, &revoked).await;
}

#[actix_web::test]
async fn sqlite_locked_by_another_process_answers_503_changes_nothing_and_recovers() {
    let app = spawn_app_with(&Backend::Sqlite, |s| s.db_timeout = 1).await;
    let client = app.create_client(spec("read", &[API])).await;
    let held = app.token(&client, &[]).await;
    let at = held["access_token"].as_str().expect("at").to_owned();
    let rt = held["refresh_token"].as_str().expect("rt").to_owned();

    let path = app
        .db
        .url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL")
        .to_owned();
    let mut other = SqliteConnection::establish(&path).expect("a second process's connection");
    other
        .batch_execute("BEGIN IMMEDIATE")
        .expect("the write lock");

    let (refresh_form, revoke_form) = (
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ],
        [("token", at.as_str())],
    );
    let (issue, refresh, revoke) = futures_util::future::join3(
        client_credentials(&app, &client),
        form(&app, &client, "/oauth2/token", &refresh_form),
        form(&app, &client, "/oauth2/revoke", &revoke_form),
    )
    .await;
    for (answer, what) in [
        (&issue, "client credentials"),
        (&refresh, "refresh"),
        (&revoke, "revocation"),
    ] {
        assert_eq!(answer.status, 503, "{what}: {}", answer.body);
        assert!(!success_or_retry(answer, what));
    }
    assert_eq!(
        app.jwks().await["keys"].as_array().map(Vec::len),
        Some(1),
        "JWKS from memory"
    );

    other.batch_execute("COMMIT").expect("release");
    wait_until_ready(&app).await;
    assert_eq!(
        app.introspect(&client, &at).await["active"],
        true,
        "the failed revocation changed nothing"
    );
    let refreshed = form(
        &app,
        &client,
        "/oauth2/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(
        refreshed.status, 200,
        "the failed refresh used nothing up: {}",
        refreshed.body
    );
    let issued = client_credentials(&app, &client).await;
    assert_eq!(issued.status, 200);
}

/// Introspection during an outage (checklist G4): a resource server asking
/// about a live token and about a revoked one gets 503
/// `temporarily_unavailable` for both, never an `active` answer it could
/// cache, neither a guess of `true` for the revoked token nor a `false` for
/// the live one; once the database is back, both answers are right again.
#[actix_web::test]
async fn postgres_cut_introspection_answers_503_and_never_guesses() {
    let Some((app, relay)) = app_behind_a_relay("outage::postgres_cut_introspection").await else {
        return;
    };
    let mut rs = spec("", &[]);
    rs.can_introspect = true;
    let rs = app.create_client(rs).await;
    let client = app.create_client(spec("read", &[API])).await;
    let live = app.access_token(&client).await;
    let revoked = app.access_token(&client).await;
    assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
    // Both callers are in the client cache now: authentication alone would
    // not notice the outage.
    assert_eq!(app.introspect(&rs, &live).await["active"], true);
    assert_eq!(app.introspect(&rs, &revoked).await["active"], false);

    relay.cut();
    for (token, what) in [(&live, "live"), (&revoked, "revoked")] {
        let answer = form(&app, &rs, "/oauth2/introspect", &[("token", token)]).await;
        assert_eq!(answer.status, 503, "{what}: {}", answer.body);
        assert_eq!(answer.body["error"], "temporarily_unavailable", "{what}");
        assert!(
            answer.body.get("active").is_none(),
            "{what}: {}",
            answer.body
        );
    }
    relay.restore();
    wait_until_ready(&app).await;
    assert_eq!(app.introspect(&rs, &live).await["active"], true);
    assert_eq!(app.introspect(&rs, &revoked).await["active"], false);
}
