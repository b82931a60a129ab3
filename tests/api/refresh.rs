//! The refresh-token grant: rotation, reuse detection, the race, lifetimes,
//! the grace window, and the janitor keeping the tables bounded.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use diesel::prelude::*;
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
use serde_json::{Value, json};
use tessera::clock::SharedClock;
use tessera::janitor::Janitor;
use tessera::store::refresh::Counts;
use tessera::store::schema::{refresh_families, refresh_tokens};

use crate::both_backends;
use crate::helpers::{
    ProcessConfig, TestApp, TestClient, basic_header, claims_of, cli_json, encode_form, spawn_app,
    spawn_app_with, spec, start_binary, tessera_cli,
};

const API: &str = "https://api.example.com";
const OTHER_API: &str = "https://other.example.com";
const INVALID_GRANT: u16 = 400;

/// Parallel requests per round of the race tests.
const RACERS: usize = 20;
/// Rounds per backend of each race test, unless `TESSERA_RACE_ROUNDS` says
/// otherwise. A round costs well under 100 ms here, so the default keeps a
/// race test to a few seconds per backend.
const DEFAULT_RACE_ROUNDS: usize = 100;

fn race_rounds() -> usize {
    match std::env::var("TESSERA_RACE_ROUNDS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TESSERA_RACE_ROUNDS must be a number, not {v:?}")),
        Err(_) => DEFAULT_RACE_ROUNDS,
    }
}

/// `grant_type=refresh_token` with Basic credentials; returns status and body.
async fn refresh(
    app: &TestApp,
    client: &TestClient,
    rt: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend_from_slice(extra);
    let resp = app
        .post_token(&form, Some((&client.id, &client.secret)))
        .await;
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.expect("JSON"))
}

fn rt_of(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

fn jti_of(body: &Value) -> String {
    claims_of(body["access_token"].as_str().expect("access_token"))["jti"]
        .as_str()
        .expect("jti")
        .to_owned()
}

async fn is_revoked(app: &TestApp, jti: &str) -> bool {
    let db = app.database();
    let jti = jti.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        tessera::store::revocation::is_revoked(&mut db.conn().expect("conn"), &jti).expect("query")
    })
    .await
    .expect("task")
}

fn at_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A resource server's client: it may introspect any token.
async fn resource_server(app: &TestApp) -> TestClient {
    let mut rs = spec("", &[]);
    rs.can_introspect = true;
    app.create_client(rs).await
}

/// For every family: how many of its refresh tokens are unused and
/// unexpired at `now`, and whether it is revoked.
fn live_tokens_per_family(url: &str, now: i64) -> HashMap<String, (usize, bool)> {
    let db = tessera::store::Database::open_single(url, Duration::from_secs(10)).expect("open");
    let mut conn = db.conn().expect("connection");
    let mut families: HashMap<String, (usize, bool)> = refresh_families::table
        .select((refresh_families::id, refresh_families::revoked_at))
        .load::<(String, Option<i64>)>(&mut *conn)
        .expect("families")
        .into_iter()
        .map(|(id, revoked_at)| (id, (0, revoked_at.is_some())))
        .collect();
    let live: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::used_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now))
        .select(refresh_tokens::family_id)
        .load(&mut *conn)
        .expect("refresh tokens");
    for family in live {
        families.entry(family).or_default().0 += 1;
    }
    families
}

/// After `rounds` races, one family each: no family forked (at most one
/// live token at `now`), and every one was revoked by its race's reuse.
async fn races_left_no_fork(url: &str, now: i64, rounds: usize) {
    let url = url.to_owned();
    let families = actix_web::rt::task::spawn_blocking(move || live_tokens_per_family(&url, now))
        .await
        .expect("task");
    assert_eq!(families.len(), rounds, "one family per round");
    assert_no_family_forked(&families);
    assert!(
        families.values().all(|(_, revoked)| *revoked),
        "every raced family was revoked"
    );
}

/// No family has two live refresh tokens (a forked chain), and a revoked
/// one has none.
fn assert_no_family_forked(families: &HashMap<String, (usize, bool)>) {
    for (family, (live, revoked)) in families {
        assert!(*live <= 1, "family {family} has {live} live refresh tokens");
        if *revoked {
            assert_eq!(*live, 0, "revoked family {family} has a live refresh token");
        }
    }
}

async fn counts(app: &TestApp) -> tessera::store::refresh::Counts {
    let db = app.database();
    actix_web::rt::task::spawn_blocking(move || {
        tessera::store::refresh::counts(&mut db.conn().expect("conn")).expect("counts")
    })
    .await
    .expect("task")
}

both_backends! {
    async fn oauth2_crate_refreshes_and_every_use_rotates(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let oauth = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"));
        let first = oauth.exchange_client_credentials().request_async(&app.http).await.expect("token");
        let rt1 = first.refresh_token().expect("refresh token").clone();

        let second = oauth.exchange_refresh_token(&rt1).request_async(&app.http).await.expect("refresh");
        let rt2 = second.refresh_token().expect("rotated refresh token").clone();
        assert_ne!(rt1.secret(), rt2.secret());
        assert!(rt2.secret().starts_with("trt_"));
        let claims = app
            .verify_offline(second.access_token().secret(), API)
            .await
            .expect("refreshed access token verifies");
        assert_ne!(claims["jti"], claims_of(first.access_token().secret())["jti"]);
        assert_eq!(claims["sub"], client.id.as_str());

        let third = oauth.exchange_refresh_token(&rt2).request_async(&app.http).await.expect("refresh again");
        assert!(third.refresh_token().is_some());
        let again = oauth.exchange_refresh_token(&rt1).request_async(&app.http).await;
        assert!(again.is_err(), "a used refresh token is refused");
    }
}

both_backends! {
    async fn reuse_revokes_the_family_and_every_access_token_it_issued(backend) {
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first = app.token(&client, &[]).await;
        let rt1 = rt_of(&first);
        let (status, second) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200);
        let rt2 = rt_of(&second);
        assert!(!is_revoked(&app, &jti_of(&first)).await);
        let dead_after_reuse = [
            ("the first access token", at_of(&first)),
            ("the refreshed access token", at_of(&second)),
            ("the successor refresh token", rt2.clone()),
        ];
        for (what, token) in &dead_after_reuse {
            assert_eq!(app.introspect(&rs, token).await["active"], true, "{what} before the reuse");
        }

        let (status, body) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");

        // Through introspection, as a resource server and as the owner sees
        // it, before anything else touches the family.
        for caller in [&rs, &client] {
            for (what, token) in &dead_after_reuse {
                assert_eq!(app.introspect(caller, token).await, json!({"active": false}), "{what}");
            }
        }

        let (status, body) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT, "the whole family is revoked");
        assert_eq!(body["error"], "invalid_grant");
        assert!(is_revoked(&app, &jti_of(&first)).await, "the first access token is on the list");
        assert!(is_revoked(&app, &jti_of(&second)).await, "the refreshed access token is on the list");

        // Other families of the same client are untouched.
        let other = app.token(&client, &[]).await;
        assert_eq!(refresh(&app, &client, &rt_of(&other), &[]).await.0, 200);
    }
}

both_backends! {
    async fn another_clients_refresh_token_is_refused_and_its_family_left_alone(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let thief = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&owner, &[]).await);
        for _ in 0..2 {
            let (status, body) = refresh(&app, &thief, &rt, &[]).await;
            assert_eq!(status, INVALID_GRANT);
            assert_eq!(body["error"], "invalid_grant");
        }
        assert_eq!(refresh(&app, &owner, &rt, &[]).await.0, 200, "the owner's token still works");
    }
}

both_backends! {
    async fn another_clients_used_refresh_token_is_refused_and_does_not_revoke_its_family(backend) {
        // Replaying a used token is reuse only for its owner: anyone else
        // could otherwise kill a family with a token that leaked after use.
        let app = spawn_app(&backend).await;
        let rs = resource_server(&app).await;
        let owner = app.create_client(spec("read", &[API])).await;
        let thief = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&owner, &[]).await);
        let (status, second) = refresh(&app, &owner, &rt1, &[]).await;
        assert_eq!(status, 200);
        for _ in 0..2 {
            let (status, body) = refresh(&app, &thief, &rt1, &[]).await;
            assert_eq!(status, INVALID_GRANT);
            assert_eq!(body["error"], "invalid_grant");
        }
        assert_eq!(app.introspect(&rs, &at_of(&second)).await["active"], true, "the family's access token");
        assert_eq!(app.introspect(&rs, &rt_of(&second)).await["active"], true, "the family's live refresh token");
        assert_eq!(refresh(&app, &owner, &rt_of(&second), &[]).await.0, 200, "the owner refreshes on");
        // The same used token from its owner is reuse: the check above was
        // not passing for want of detection.
        assert_eq!(refresh(&app, &owner, &rt1, &[]).await.0, INVALID_GRANT);
        assert_eq!(app.introspect(&rs, &at_of(&second)).await, json!({"active": false}));
    }
}

both_backends! {
    async fn garbage_or_tampered_refresh_tokens_are_invalid_grant_and_revoke_nothing(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let mut tampered = rt.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ASCII");
        for bad in [tampered.as_str(), "trt_", "garbage", &rt[..rt.len() - 3]] {
            let (status, body) = refresh(&app, &client, bad, &[]).await;
            assert_eq!(status, INVALID_GRANT, "{bad}");
            assert_eq!(body["error"], "invalid_grant");
        }
        assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200);
    }
}

both_backends! {
    async fn scope_may_narrow_on_refresh_but_never_widen(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;

        let narrow_family = rt_of(&app.token(&client, &[("scope", "read")]).await);
        let (status, body) = refresh(&app, &client, &narrow_family, &[("scope", "read write")]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_scope");
        let (status, body) = refresh(&app, &client, &narrow_family, &[]).await;
        assert_eq!(status, 200, "a refused widening changes nothing");
        assert_eq!(body["scope"], "read");

        let full = rt_of(&app.token(&client, &[]).await);
        let (status, narrowed) = refresh(&app, &client, &full, &[("scope", "read")]).await;
        assert_eq!(status, 200);
        assert_eq!(narrowed["scope"], "read");
        assert_eq!(claims_of(narrowed["access_token"].as_str().expect("token"))["scope"], "read");
        // RFC 6749 §6: the new refresh token keeps the original scope.
        let (status, restored) = refresh(&app, &client, &rt_of(&narrowed), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(restored["scope"], "read write");
    }
}

both_backends! {
    async fn resource_may_pick_among_the_familys_audiences(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API, OTHER_API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let (status, body) = refresh(&app, &client, &rt, &[("resource", OTHER_API)]).await;
        assert_eq!(status, 200);
        assert_eq!(claims_of(body["access_token"].as_str().expect("token"))["aud"], OTHER_API);

        let only_api = rt_of(&app.token(&client, &[("resource", API)]).await);
        let (status, body) = refresh(&app, &client, &only_api, &[("resource", OTHER_API)]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_target");
    }
}

both_backends! {
    async fn idle_and_absolute_lifetimes_end_a_family(backend) {
        let app = spawn_app(&backend).await;
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(3600);
        short.refresh_family_ttl = Some(7200);
        let client = app.create_client(short).await;

        // Idle: unused for longer than its lifetime.
        let idle = rt_of(&app.token(&client, &[]).await);
        app.clock.advance(3600);
        let (status, body) = refresh(&app, &client, &idle, &[]).await;
        assert_eq!(status, INVALID_GRANT, "idle for exactly its lifetime: expired");
        assert_eq!(body["error"], "invalid_grant");
        let fresh = rt_of(&app.token(&client, &[]).await);
        app.clock.advance(3599);
        assert_eq!(refresh(&app, &client, &fresh, &[]).await.0, 200, "one second before, it works");

        // Absolute: rotated often, still ends when the family does.
        let mut rt = rt_of(&app.token(&client, &[]).await);
        for _ in 0..2 {
            app.clock.advance(3000);
            let (status, body) = refresh(&app, &client, &rt, &[]).await;
            assert_eq!(status, 200);
            rt = rt_of(&body);
        }
        app.clock.advance(1201);
        let (status, body) = refresh(&app, &client, &rt, &[]).await;
        assert_eq!(status, INVALID_GRANT, "the family's absolute lifetime has passed");
        assert_eq!(body["error"], "invalid_grant");
    }
}

/// `grant_type=refresh_token` at `base`, which may be another process.
async fn refresh_at(
    http: &reqwest::Client,
    base: &str,
    client: &TestClient,
    rt: &str,
) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/oauth2/token"))
        .header("authorization", basic_header(&client.id, &client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
        ]))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

/// One round of a race: `RACERS` refreshes of `rt` at once, spread over
/// `bases` in turn. Exactly one must win; every loser is `invalid_grant`,
/// and since the losers were reuse, the winner's successor is dead too.
async fn race_round(
    http: &reqwest::Client,
    bases: &[&str],
    client: &TestClient,
    rt: &str,
    round: usize,
) {
    let attempts = (0..RACERS).map(|i| refresh_at(http, bases[i % bases.len()], client, rt));
    let results = futures_util::future::join_all(attempts).await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        ok.len(),
        1,
        "round {round}: exactly one success, got {results:?}"
    );
    for (status, body) in &results {
        if *status != 200 {
            assert_eq!(*status, INVALID_GRANT, "round {round}: {body}");
            assert_eq!(body["error"], "invalid_grant", "round {round}");
        }
    }
    let (status, _) = refresh_at(http, bases[0], client, &rt_of(ok[0])).await;
    assert_eq!(
        status, INVALID_GRANT,
        "round {round}: no live token survives the race"
    );
}

both_backends! {
    /// `TESSERA_RACE_ROUNDS` rounds (100 by default) of 20 parallel
    /// refreshes of one token, then a look into the database: no family
    /// forked. On PostgreSQL the racers' transactions run on separate pooled
    /// connections and meet at the family row lock. On SQLite a server sends
    /// every write through its one writer thread, so inside one process the
    /// race is at the HTTP level and in that thread's queue; the two-process
    /// test below makes two writers meet at SQLite's own lock.
    async fn parallel_refreshes_of_one_token_let_exactly_one_succeed(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.workers = Some(2);
            s.db_pool_size = 8;
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        let rounds = race_rounds();
        for round in 0..rounds {
            let rt = rt_of(&app.token(&client, &[]).await);
            race_round(&app.http, &[&app.base], &client, &rt, round).await;
        }
        races_left_no_fork(&app.db.url, app.clock_now(), rounds).await;
    }
}

/// Real server processes; killed when dropped, so a failing test leaves
/// none running.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

both_backends! {
    /// Two server processes on one database, the racers spread over both.
    /// On SQLite that is two writer threads in two processes on one file,
    /// meeting at SQLite's write lock (the family row lock, on PostgreSQL).
    async fn parallel_refreshes_across_two_server_processes_let_exactly_one_succeed(backend) {
        let app = spawn_app(&backend).await;
        app.stop().await;
        let client = app.create_client(spec("read", &[API])).await;
        let config = ProcessConfig::of(&app);
        let mut servers = Processes(Vec::new());
        let mut bases = Vec::new();
        for _ in 0..2 {
            let config = config.clone();
            let (child, base) = actix_web::rt::task::spawn_blocking(move || start_binary(&config, &[]))
                .await
                .expect("the server starts");
            servers.0.push(child);
            bases.push(base);
        }
        let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
        let rounds = race_rounds();
        for round in 0..rounds {
            let resp = app
                .http
                .post(format!("{}/oauth2/token", bases[round % 2]))
                .header("authorization", basic_header(&client.id, &client.secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("token request");
            assert_eq!(resp.status(), 200);
            let rt = rt_of(&resp.json().await.expect("JSON"));
            race_round(&app.http, &bases, &client, &rt, round).await;
        }
        drop(servers);
        races_left_no_fork(&app.db.url, tessera::clock::Clock::now(&tessera::clock::SystemClock), rounds).await;
    }
}

both_backends! {
    async fn within_the_grace_window_a_lost_response_can_be_retried(backend) {
        let app = spawn_app_with(&backend, |s| s.refresh_grace = 30).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (status, lost) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200);
        let rt2 = rt_of(&lost);

        app.clock.advance(5);
        let (status, retried) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200, "retry within the window");
        let rt3 = rt_of(&retried);
        assert_ne!(rt3, rt2);

        // The retry used up the successor the client never saw, so the family
        // still has exactly one live token: rt3.
        app.clock.advance(60);
        let (status, _) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT, "rt2 was superseded; presenting it after the window is reuse");
        let (status, _) = refresh(&app, &client, &rt3, &[]).await;
        assert_eq!(status, INVALID_GRANT, "and reuse revoked the family");
    }
}

both_backends! {
    async fn without_grace_a_retry_is_reuse(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(refresh(&app, &client, &rt1, &[]).await.0, INVALID_GRANT);
        assert_eq!(refresh(&app, &client, &rt_of(&second), &[]).await.0, INVALID_GRANT);
    }
}

both_backends! {
    async fn a_used_token_presented_after_the_grace_window_is_reuse(backend) {
        let app = spawn_app_with(&backend, |s| s.refresh_grace = 30).await;
        let rs = resource_server(&app).await;
        let client = app.create_client(spec("read", &[API])).await;

        // The window's last second still re-issues ...
        let rt1 = rt_of(&app.token(&client, &[]).await);
        assert_eq!(refresh(&app, &client, &rt1, &[]).await.0, 200);
        app.clock.advance(30);
        assert_eq!(refresh(&app, &client, &rt1, &[]).await.0, 200, "30 s after use: within the window");

        // ... and the second after it is reuse, revoking the family.
        let first = app.token(&client, &[]).await;
        let rt1 = rt_of(&first);
        let (status, second) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200);
        app.clock.advance(31);
        let (status, body) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");
        for token in [at_of(&first), at_of(&second), rt_of(&second)] {
            assert_eq!(app.introspect(&rs, &token).await, json!({"active": false}));
        }
        let (status, body) = refresh(&app, &client, &rt_of(&second), &[]).await;
        assert_eq!(status, INVALID_GRANT, "the live successor died with the family");
        assert_eq!(body["error"], "invalid_grant");
    }
}

both_backends! {
    /// `client create` decides with `--refresh-tokens` / `--no-refresh-tokens`
    /// (the last one given wins, on by default); `client show` reports it and
    /// the token endpoint obeys it.
    async fn the_cli_switch_decides_whether_a_client_gets_refresh_tokens(backend) {
        let app = spawn_app(&backend).await;
        let cases: [(&[&str], bool); 5] = [
            (&[], true),
            (&["--no-refresh-tokens"], false),
            (&["--refresh-tokens"], true),
            (&["--refresh-tokens", "--no-refresh-tokens"], false),
            (&["--no-refresh-tokens", "--refresh-tokens"], true),
        ];
        for (flags, on) in cases {
            let mut args = vec!["client", "create", "--name", "svc", "--scope", "read", "--audience", API, "--json"];
            args.extend_from_slice(flags);
            let created = cli_json(&tessera_cli(&app, &args));
            let client = TestClient {
                id: created["client_id"].as_str().expect("client_id").to_owned(),
                secret: created["client_secret"].as_str().expect("client_secret").to_owned(),
            };
            let shown = cli_json(&tessera_cli(&app, &["client", "show", &client.id, "--json"]));
            assert_eq!(shown["refresh_tokens"], on, "{flags:?}");
            let text = tessera_cli(&app, &["client", "show", &client.id]);
            assert!(text.status.success());
            assert!(
                String::from_utf8_lossy(&text.stdout)
                    .lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["refresh_tokens:", if on { "true" } else { "false" }]),
                "{flags:?}: the plain `client show` says so too"
            );
            let body = app.token(&client, &[]).await;
            assert_eq!(body.get("refresh_token").is_some(), on, "{flags:?}: {body}");
            if on {
                assert_eq!(refresh(&app, &client, &rt_of(&body), &[]).await.0, 200, "{flags:?}");
            } else {
                let (status, body) = refresh(&app, &client, "trt_anything", &[]).await;
                assert_eq!(status, 400, "{flags:?}");
                assert_eq!(body["error"], "unauthorized_client", "{flags:?}");
            }
        }
    }
}

both_backends! {
    /// Switching refresh tokens off stops the client's existing ones at its
    /// next request, without revoking them (as Hydra treats a grant type
    /// removed from a client): switched back on, they work again until they
    /// expire. `revoke-all` is what ends them for good.
    async fn turning_refresh_tokens_off_makes_existing_ones_unauthorized_client(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);

        let updated = cli_json(&tessera_cli(&app, &["client", "update", &client.id, "--no-refresh-tokens", "--json"]));
        assert_eq!(updated["refresh_tokens"], false);
        app.sync_clients().await;
        for _ in 0..2 {
            let (status, body) = refresh(&app, &client, &rt, &[]).await;
            assert_eq!(status, 400);
            assert_eq!(body["error"], "unauthorized_client");
        }
        assert!(app.token(&client, &[]).await.get("refresh_token").is_none(), "no new ones either");
        assert_eq!(
            app.introspect(&client, &rt).await,
            serde_json::json!({"active": false}),
            "a token that cannot be used is not active"
        );

        cli_json(&tessera_cli(&app, &["client", "update", &client.id, "--refresh-tokens", "--json"]));
        app.sync_clients().await;
        assert_eq!(app.introspect(&client, &rt).await["active"], true, "switched back on, it is");
        assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200, "refused requests used nothing up");
    }
}

both_backends! {
    async fn a_client_with_refresh_tokens_off_gets_none_and_may_not_refresh(backend) {
        let app = spawn_app(&backend).await;
        let mut off = spec("read", &[API]);
        off.refresh_tokens = false;
        let client = app.create_client(off).await;
        let body = app.token(&client, &[]).await;
        assert!(body.get("refresh_token").is_none());
        let (status, body) = refresh(&app, &client, "trt_anything", &[]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "unauthorized_client");
    }
}

both_backends! {
    async fn a_disabled_or_deleted_client_cannot_refresh(backend) {
        let app = spawn_app(&backend).await;
        for delete in [false, true] {
            let client = app.create_client(spec("read", &[API])).await;
            let rt = rt_of(&app.token(&client, &[]).await);
            if delete {
                app.delete_client(&client.id).await;
            } else {
                app.disable_client(&client.id).await;
            }
            let (status, body) = refresh(&app, &client, &rt, &[]).await;
            assert_eq!(status, 401);
            assert_eq!(body["error"], "invalid_client");
        }
    }
}

both_backends! {
    async fn refreshing_without_client_authentication_is_invalid_client(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = rt_of(&app.token(&client, &[]).await);
        let resp = app
            .post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], None)
            .await;
        assert_eq!(resp.status(), 401);
        assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200, "and the token was not touched");
    }
}

both_backends! {
    async fn the_janitor_keeps_the_tables_bounded(backend) {
        let app = spawn_app_with(&backend, |s| s.janitor_interval = 1).await;
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 60;
        short.refresh_token_ttl = Some(60);
        short.refresh_family_ttl = Some(120);
        let client = app.create_client(short).await;
        for _ in 0..10 {
            let rt = rt_of(&app.token(&client, &[]).await);
            assert_eq!(refresh(&app, &client, &rt, &[]).await.0, 200);
            // Reuse, so revocation entries exist too.
            assert_eq!(refresh(&app, &client, &rt, &[]).await.0, INVALID_GRANT);
        }
        let before = counts(&app).await;
        assert_eq!(before.families, 10);
        assert!(before.refresh_tokens >= 20 && before.revoked_tokens >= 20, "{before:?}");

        // Past every expiry plus the clock leeway: everything can go.
        app.clock.advance(120 + 60 + 1);
        let mut after = counts(&app).await;
        for _ in 0..100 {
            if after == tessera::store::refresh::Counts::default() {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
            after = counts(&app).await;
        }
        assert_eq!(after, tessera::store::refresh::Counts::default(), "janitor left {after:?}");
    }
}

/// The node's janitor, swept by hand at the test's clock as its loop would
/// at its next tick: the same `sweep_once`, on the same database.
fn janitor(app: &TestApp) -> Janitor {
    Janitor {
        db: app.database(),
        clock: app.clock.clone() as SharedClock,
        interval: Duration::from_secs(3600),
        leeway: app.settings.clock_leeway,
        audit_retention: app.settings.audit_retention,
    }
}

async fn sweep(janitor: &Janitor) {
    // On PostgreSQL a sweep skips its turn while another holds the lock
    // (the server's own janitor, at start-up): then it is tried again.
    for _ in 0..50 {
        if janitor.sweep_once().await.expect("sweep").is_some() {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the janitor never got its turn");
}

both_backends! {
    /// Twenty cycles under the test's clock. Each cycle, at T: the family
    /// started just before the previous sweep refreshes; four families are
    /// started (one refreshed, one refreshed and then reused, one whose
    /// access token is revoked at /oauth2/revoke, one whose refresh token
    /// is); at T+129 one more family starts; at T+130 the janitor sweeps.
    /// Every lifetime is 100 s and the leeway 60 s, so a sweep must remove
    /// exactly the previous cycle's rows (expired 130 s before), and keep
    /// this cycle's (expired 30 s before: only the leeway keeps them), the
    /// family refreshed at T and the newest one (both live).
    async fn the_janitor_keeps_the_live_set_and_only_it_cycle_after_cycle(backend) {
        let app = spawn_app_with(&backend, |s| s.janitor_interval = 3600).await;
        assert_eq!(app.settings.clock_leeway, 60);
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 100;
        short.refresh_token_ttl = Some(100);
        short.refresh_family_ttl = Some(100);
        let client = app.create_client(short).await;
        let janitor = janitor(&app);
        let mut newest: Option<String> = None;
        for cycle in 0..20 {
            if let Some(rt) = newest.take() {
                let (status, body) = refresh(&app, &client, &rt, &[]).await;
                assert_eq!(status, 200, "cycle {cycle}: the family started before the sweep survived it: {body}");
            }
            let f1 = rt_of(&app.token(&client, &[]).await);
            assert_eq!(refresh(&app, &client, &f1, &[]).await.0, 200);
            let f2 = rt_of(&app.token(&client, &[]).await);
            assert_eq!(refresh(&app, &client, &f2, &[]).await.0, 200);
            assert_eq!(refresh(&app, &client, &f2, &[]).await.0, INVALID_GRANT, "reuse");
            let f3 = app.token(&client, &[]).await;
            assert_eq!(app.revoke(&client, &at_of(&f3)).await.status(), 200);
            let f4 = app.token(&client, &[]).await;
            assert_eq!(app.revoke(&client, &rt_of(&f4)).await.status(), 200);
            app.clock.advance(129);
            newest = Some(rt_of(&app.token(&client, &[]).await));
            app.clock.advance(1);
            sweep(&janitor).await;

            // Rows of the family refreshed at T (started at T-1): 2 tokens,
            // 2 access-token records. This cycle: F1 2+2, F2 2+2, F3 1+1,
            // F4 1+1, the newest 1+1. Revocation entries: F2's two access
            // tokens, F3's, F4's.
            let carried = if cycle == 0 { 0 } else { 1 };
            let expected = Counts {
                families: 5 + carried,
                refresh_tokens: 7 + 2 * carried,
                family_access_tokens: 7 + 2 * carried,
                revoked_tokens: 4,
            };
            assert_eq!(counts(&app).await, expected, "cycle {cycle}");
        }
        // Once everything is past its expiry and the leeway, nothing stays.
        app.clock.advance(100 + 60 + 1);
        sweep(&janitor).await;
        assert_eq!(counts(&app).await, Counts::default());
    }
}

both_backends! {
    /// Revocation entries from /oauth2/revoke (an access token's, and a
    /// revoked family's access token) and a client cut-off each stay until
    /// their `expires_at` plus the leeway has passed, to the second.
    async fn revocation_entries_and_cut_offs_go_once_past_exp_plus_leeway_and_not_before(backend) {
        let app = spawn_app_with(&backend, |s| s.janitor_interval = 3600).await;
        let leeway = app.settings.clock_leeway;
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 100;
        let client = app.create_client(short).await;
        let cut = app.create_client(spec("read", &[API])).await;
        let janitor = janitor(&app);
        let t0 = app.clock_now();

        let at = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &at).await.status(), 200);
        let family = app.token(&client, &[]).await;
        assert_eq!(app.revoke(&client, &rt_of(&family)).await.status(), 200);
        app.revoke_all(&cut.id).await;
        let cut_off_exp = tessera::oauth::revoke::cutoff_relevant_until(t0, leeway);
        assert_eq!(counts(&app).await.revoked_tokens, 3);

        async fn entries_after_a_sweep_at(app: &TestApp, janitor: &Janitor, t: i64) -> i64 {
            app.clock.set(t);
            sweep(janitor).await;
            counts(app).await.revoked_tokens
        }
        assert_eq!(entries_after_a_sweep_at(&app, &janitor, t0 + 100 + leeway).await, 3, "at exp + leeway: kept");
        assert_eq!(
            entries_after_a_sweep_at(&app, &janitor, t0 + 100 + leeway + 1).await,
            1,
            "a second later the token entries go"
        );
        assert_eq!(
            entries_after_a_sweep_at(&app, &janitor, cut_off_exp + leeway).await,
            1,
            "the cut-off is kept to its exp + leeway"
        );
        assert_eq!(entries_after_a_sweep_at(&app, &janitor, cut_off_exp + leeway + 1).await, 0, "and goes after");
    }
}

both_backends! {
    async fn a_bad_scope_does_not_hide_reuse(backend) {
        // A thief replaying a used token cannot dodge reuse detection by
        // sending a scope or resource the family does not allow.
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        let (status, body) = refresh(&app, &client, &rt1, &[("scope", "admin")]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");
        let (status, _) = refresh(&app, &client, &rt_of(&second), &[]).await;
        assert_eq!(status, INVALID_GRANT, "the family was revoked");

        // An expired token with a bad scope is invalid_grant too.
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(60);
        let other = app.create_client(short).await;
        let rt = rt_of(&app.token(&other, &[]).await);
        app.clock.advance(61);
        let (_, body) = refresh(&app, &other, &rt, &[("resource", "https://x.example")]).await;
        assert_eq!(body["error"], "invalid_grant");
    }
}

both_backends! {
    async fn grace_does_not_let_a_thief_and_the_client_take_turns(backend) {
        // Within the window, a thief replays rt1 and gets a successor; the
        // client then presents rt2, which is no longer the live token's
        // predecessor: that is reuse, and the family dies.
        let app = spawn_app_with(&backend, |s| s.refresh_grace = 30).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt1 = rt_of(&app.token(&client, &[]).await);
        let (_, second) = refresh(&app, &client, &rt1, &[]).await;
        let rt2 = rt_of(&second);
        app.clock.advance(2);
        let (status, stolen) = refresh(&app, &client, &rt1, &[]).await;
        assert_eq!(status, 200, "a retry of the head's predecessor");
        app.clock.advance(2);
        let (status, body) = refresh(&app, &client, &rt2, &[]).await;
        assert_eq!(status, INVALID_GRANT);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(refresh(&app, &client, &rt_of(&stolen), &[]).await.0, INVALID_GRANT, "family revoked");
    }
}

both_backends! {
    /// Taking a scope or an audience from a client reaches its existing
    /// families at their next refresh, as it does in Keycloak: a refresh
    /// never grants what the client is no longer registered for. Giving it
    /// back restores it, since the family's record is unchanged.
    async fn a_scope_or_audience_taken_from_the_client_is_not_granted_by_a_refresh(backend) {
        const OTHER: &str = "https://other.example.com";
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API, OTHER])).await;
        let first = app.token(&client, &[]).await;
        assert_eq!(first["scope"], "read write");
        let mut rt = rt_of(&first);

        let update = |args: &[&str]| {
            let mut all = vec!["client", "update", &client.id];
            all.extend_from_slice(args);
            all.push("--json");
            cli_json(&tessera_cli(&app, &all));
        };
        update(&["--scope", "read", "--audience", API]);
        app.sync_clients().await;
        // Introspection says what a refresh would grant now.
        let seen = app.introspect(&client, &rt).await;
        assert_eq!((seen["active"].as_bool(), seen["scope"].as_str()), (Some(true), Some("read")), "{seen}");
        assert_eq!(seen["aud"], API);

        let (status, body) = refresh(&app, &client, &rt, &[("scope", "write")]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
        let (status, body) = refresh(&app, &client, &rt, &[("resource", OTHER)]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{body}");
        let (status, body) = refresh(&app, &client, &rt, &[]).await;
        assert_eq!(status, 200, "refused requests used nothing up: {body}");
        assert_eq!(body["scope"], "read");
        assert_eq!(claims_of(body["access_token"].as_str().expect("at"))["aud"], API);
        rt = rt_of(&body);

        update(&["--scope", "read write", "--audience", API, "--audience", OTHER]);
        app.sync_clients().await;
        let (status, body) = refresh(&app, &client, &rt, &[("resource", OTHER)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["scope"], "read write", "restored with the registration");
        assert_eq!(claims_of(body["access_token"].as_str().expect("at"))["aud"], OTHER);
        rt = rt_of(&body);

        update(&["--audience", "https://elsewhere.example.com"]);
        app.sync_clients().await;
        assert_eq!(app.introspect(&client, &rt).await, json!({"active": false}), "nothing left to grant");
        let (status, body) = refresh(&app, &client, &rt, &[]).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }
}

both_backends! {
    /// A family goes with its last refresh token, not only at its absolute
    /// lifetime: one unused past the idle lifetime, and a revoked one once
    /// its tokens reach their idle expiry. A family still in use stays,
    /// though its used tokens go.
    async fn a_family_whose_last_token_is_swept_goes_with_it(backend) {
        let app = spawn_app_with(&backend, |s| s.janitor_interval = 3600).await;
        let mut short = spec("read", &[API]);
        short.refresh_token_ttl = Some(100);
        short.refresh_family_ttl = Some(100_000);
        let client = app.create_client(short).await;
        let janitor = janitor(&app);
        let idle = rt_of(&app.token(&client, &[]).await);
        let revoked = rt_of(&app.token(&client, &[]).await);
        assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
        let mut active = rt_of(&app.token(&client, &[]).await);
        assert_eq!(counts(&app).await.families, 3);

        // Past the idle lifetime and the leeway, with the active family
        // refreshed just before, so its newest token is live.
        app.clock.advance(99);
        let (status, body) = refresh(&app, &client, &active, &[]).await;
        assert_eq!(status, 200, "{body}");
        active = rt_of(&body);
        app.clock.advance(62);
        sweep(&janitor).await;
        let after = counts(&app).await;
        assert_eq!(after.families, 1, "only the family in use is left: {after:?}");
        assert_eq!(after.refresh_tokens, 1, "and only its live token: {after:?}");
        assert_eq!(refresh(&app, &client, &active, &[]).await.0, 200, "and it still works");
        for gone in [&idle, &revoked] {
            assert_eq!(refresh(&app, &client, gone, &[]).await.0, INVALID_GRANT);
        }
    }
}
