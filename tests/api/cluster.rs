//! Three real `tessera` processes on one PostgreSQL database, sharing one
//! key-encryption key (through the environment, as separate machines
//! would), each with its own working directory. PostgreSQL only: the tests
//! say so and stop when TEST_DATABASE_URL is unset, and CI always sets it.

use std::process::{Child, Command};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, ProcessConfig, TestDatabase, basic_header, claims_of, start_binary_logging,
    verify_with_jwks,
};

const API: &str = "https://api.example.com";
const ISSUER: &str = "https://auth.example.com";

struct Node {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    nodes: Vec<Node>,
    db: TestDatabase,
    kek: String,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

/// Starts one node in a directory of its own. Blocks until it listens.
fn launch(url: String, env: &[(&'static str, String)], barrier: Option<&Barrier>) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ProcessConfig {
        dir: dir.path().to_owned(),
        db_url: url,
        keys_dir: dir.path().join("keys"),
    };
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RUST_LOG", "info"));
    if let Some(barrier) = barrier {
        barrier.wait();
    }
    let (child, base, log) = start_binary_logging(&config, &env);
    Node {
        child,
        base,
        log,
        _dir: dir,
    }
}

impl Cluster {
    /// Starts `n` nodes at the same moment on an empty database.
    async fn start(backend: &Backend, n: usize, env: &[(&'static str, &'static str)]) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::create(backend, home.path());
        let kek = URL_SAFE_NO_PAD.encode(tessera::crypto::random::bytes::<32>().expect("random"));
        let barrier = Arc::new(Barrier::new(n));
        let env: Vec<(&'static str, String)> = env
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .chain([("TESSERA_KEK", kek.clone())])
            .collect();
        let starts: Vec<_> = (0..n)
            .map(|_| {
                let (barrier, env, url) = (Arc::clone(&barrier), env.clone(), db.url.clone());
                std::thread::spawn(move || launch(url, &env, Some(&barrier)))
            })
            .collect();
        let nodes = actix_web::rt::task::spawn_blocking(move || {
            starts
                .into_iter()
                .map(|t| t.join().expect("a node starts"))
                .collect::<Vec<_>>()
        })
        .await
        .expect("task");
        Self {
            nodes,
            db,
            kek,
            env,
            http: reqwest::Client::new(),
        }
    }

    /// Replaces node `i` with a freshly started one (a new port).
    async fn restart(&mut self, i: usize) {
        let (url, env) = (self.db.url.clone(), self.env.clone());
        let node = actix_web::rt::task::spawn_blocking(move || launch(url, &env, None))
            .await
            .expect("task");
        self.nodes[i] = node;
    }

    /// Runs the CLI against the cluster's database, as an operator would.
    fn cli(&self, args: &[&str]) -> Value {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(dir.path())
            .env("TESSERA_DATABASE_URL", &self.db.url)
            .env("TESSERA_KEK", &self.kek)
            .output()
            .expect("run tessera");
        assert!(
            out.status.success(),
            "tessera {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    fn client(&self, scope: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "client", "create", "--name", "svc", "--scope", scope, "--json",
        ];
        // The admin API takes tokens for the issuer, the default audience.
        if scope != "tessera:admin" {
            args.extend_from_slice(&["--audience", API]);
        }
        args.extend_from_slice(extra);
        let c = self.cli(&args);
        (
            c["client_id"].as_str().expect("id").to_owned(),
            c["client_secret"].as_str().expect("secret").to_owned(),
        )
    }

    fn pg(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).expect("PostgreSQL")
    }

    async fn form(&self, node: usize, path: &str, auth: (&str, &str), body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.nodes[node].url(path))
            .header("authorization", basic_header(auth.0, auth.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, node: usize, auth: (&str, &str)) -> (u16, Value) {
        self.form(node, "/oauth2/token", auth, "grant_type=client_credentials")
            .await
    }

    /// The JWKS exactly as served, byte for byte.
    async fn jwks(&self, node: usize) -> String {
        self.http
            .get(self.nodes[node].url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("JWKS")
            .text()
            .await
            .expect("body")
    }

    async fn admin(
        &self,
        node: usize,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.nodes[node].url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn logs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::log).collect()
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .expect("count")
        .n
}

/// Waits until the wall clock is half-way through a second: key-set
/// changes happen on whole seconds, so three nodes asked within a few
/// milliseconds of mid-second answer for the same second.
async fn mid_second() {
    #[expect(
        clippy::disallowed_methods,
        reason = "the real processes run on the wall clock; the test waits for a point within its second"
    )]
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let wait = (1_500_000_000 - u64::from(nanos)) % 1_000_000_000;
    actix_web::rt::time::sleep(Duration::from_nanos(wait)).await;
}

fn kids(jwks: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(jwks).expect("JWKS JSON");
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[actix_web::test]
async fn three_nodes_first_start_make_one_key_and_publish_identical_jwks_across_a_rotation() {
    let Some(backend) = Backend::postgres("cluster::first_start_and_rotation") else {
        return;
    };
    // Timings shrunk so a scheduled rotation happens within seconds: keys
    // re-read every 1.5 s (half the check interval), JWKS cached for one
    // second, the next key made 4 s before the first key's 8 s are up.
    let mut cluster = Cluster::start(
        &backend,
        3,
        &[
            ("TESSERA_JWKS_MAX_AGE", "1"),
            ("TESSERA_KEY_CHECK_INTERVAL", "3"),
            ("TESSERA_KEY_PREPUBLISH", "4"),
            ("TESSERA_KEY_ROTATION_PERIOD", "8"),
        ],
    )
    .await;
    let mut pg = cluster.pg();
    assert_eq!(
        count(&mut pg, "SELECT count(*) AS n FROM signing_keys"),
        1,
        "one first key, not three"
    );
    let made_first: usize = cluster
        .logs()
        .iter()
        .filter(|l| l.contains("generated the first signing key"))
        .count();
    assert_eq!(made_first, 1, "exactly one node made the first key");
    // Nodes started together re-read keys in step. Real nodes do not: restart
    // two of them apart, so their key checks fall at different moments of
    // the interval.
    for node in [1, 2] {
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        cluster.restart(node).await;
    }

    let (id, secret) = cluster.client("read", &["--no-refresh-tokens"]);
    let mut seen = std::collections::BTreeSet::new();
    for second in 0..11 {
        mid_second().await;
        let (a, b, c) =
            futures_util::future::join3(cluster.jwks(0), cluster.jwks(1), cluster.jwks(2)).await;
        assert_eq!(a, b, "second {second}: A and B publish different JWKS");
        assert_eq!(a, c, "second {second}: A and C publish different JWKS");
        seen.insert(kids(&a));
        // A token from A verifies with the JWKS B and C serve.
        let (status, body) = cluster.token(0, (&id, &secret)).await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().expect("token");
        let now = tessera::clock::Clock::now(&tessera::clock::SystemClock);
        for jwks in [&b, &c] {
            let doc: Value = serde_json::from_str(jwks).expect("JSON");
            verify_with_jwks(token, &doc, ISSUER, API, now)
                .expect("A's token verifies with B's and C's JWKS");
        }
    }
    assert!(seen.len() >= 2, "the rotation was seen: {seen:?}");
    // Each scheduled rotation made one key, on one node (a second rotation
    // may have begun by the end).
    let rotated: i64 = cluster
        .logs()
        .iter()
        .map(|l| l.matches("key rotation: made key").count())
        .sum::<usize>()
        .try_into()
        .expect("count");
    assert!(rotated >= 1, "a scheduled rotation ran");
    assert_eq!(
        count(&mut pg, "SELECT count(*) AS n FROM signing_keys"),
        1 + rotated,
        "one key per rotation, whichever node made it"
    );
    assert_eq!(
        count(
            &mut pg,
            "SELECT count(DISTINCT activates_at) AS n FROM signing_keys"
        ),
        1 + rotated,
        "no two keys made for the same turn"
    );
    for (node, log) in cluster.logs().iter().enumerate() {
        assert!(
            !log.contains("key maintenance failed"),
            "node {node}: {log}"
        );
    }
}

#[actix_web::test]
async fn a_revocation_or_a_refresh_race_on_one_node_holds_on_every_node() {
    let Some(backend) = Backend::postgres("cluster::revocation_and_refresh") else {
        return;
    };
    let cluster = Cluster::start(&backend, 3, &[]).await;
    let (id, secret) = cluster.client("read", &[]);
    let (rs_id, rs_secret) = cluster.client("", &["--can-introspect"]);
    let auth = (id.as_str(), secret.as_str());
    let rs = (rs_id.as_str(), rs_secret.as_str());

    // Revoked at A: inactive at B and C at once, and in C's feed.
    let (_, body) = cluster.token(0, auth).await;
    let at = body["access_token"].as_str().expect("at").to_owned();
    assert_eq!(
        cluster
            .form(1, "/oauth2/introspect", rs, &format!("token={at}"))
            .await
            .1["active"],
        true
    );
    assert_eq!(
        cluster
            .form(0, "/oauth2/revoke", auth, &format!("token={at}"))
            .await
            .0,
        200
    );
    for node in [1, 2] {
        let (status, answer) = cluster
            .form(node, "/oauth2/introspect", rs, &format!("token={at}"))
            .await;
        assert_eq!(
            (status, answer),
            (200, json!({"active": false})),
            "node {node}"
        );
    }
    let feed: Value = cluster
        .http
        .get(cluster.nodes[2].url("/oauth2/revocations?after=0"))
        .header("authorization", basic_header(rs.0, rs.1))
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("JSON");
    let jti = claims_of(&at)["jti"].clone();
    assert!(
        feed.to_string().contains(jti.as_str().expect("jti")),
        "C's feed lists it: {feed}"
    );

    // One refresh token at A, B and C at once: exactly one success. The
    // others are reuse, so the family, the winner's new tokens included,
    // is revoked everywhere.
    for round in 0..5 {
        let (_, body) = cluster.token(round % 3, auth).await;
        let rt = body["refresh_token"].as_str().expect("rt").to_owned();
        let form = format!("grant_type=refresh_token&refresh_token={rt}");
        let (a, b, c) = futures_util::future::join3(
            cluster.form(0, "/oauth2/token", auth, &form),
            cluster.form(1, "/oauth2/token", auth, &form),
            cluster.form(2, "/oauth2/token", auth, &form),
        )
        .await;
        let answers = [a, b, c];
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
            assert_eq!(
                (*status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "round {round}"
            );
        }
        let won = winners[0];
        for token in [
            won["refresh_token"].as_str().expect("rt"),
            won["access_token"].as_str().expect("at"),
        ] {
            for node in 0..3 {
                let answer = cluster
                    .form(node, "/oauth2/introspect", auth, &format!("token={token}"))
                    .await
                    .1;
                assert_eq!(
                    answer,
                    json!({"active": false}),
                    "round {round}, node {node}: the family is revoked"
                );
            }
        }
        let again = cluster
            .form(
                (round + 1) % 3,
                "/oauth2/token",
                auth,
                &format!(
                    "grant_type=refresh_token&refresh_token={}",
                    won["refresh_token"].as_str().expect("rt")
                ),
            )
            .await;
        assert_eq!(again.0, 400, "round {round}");
    }
}

/// With the client cache off, every authentication reads the database: a
/// change holds on every node on the next request.
#[actix_web::test]
async fn client_changes_through_one_node_or_the_cli_hold_on_every_node_at_once() {
    let Some(backend) = Backend::postgres("cluster::client_changes") else {
        return;
    };
    client_changes_hold_on_every_node(&backend, "0").await;
}

/// With the client cache on (the default, checking every second), a change
/// made at one node or by the CLI holds at the other nodes within two check
/// intervals.
#[actix_web::test]
async fn client_changes_hold_on_every_node_within_two_cache_checks() {
    let Some(backend) = Backend::postgres("cluster::client_changes_cached") else {
        return;
    };
    client_changes_hold_on_every_node(&backend, "1").await;
}

/// The token endpoint's status for `auth` at `node`, once it is `expected`.
/// With the cache on, other nodes may answer from their cache until their
/// next check: wait for the bound (two intervals, plus slack for a loaded
/// machine), and fail if it passes. With the cache off, the first answer
/// must be the expected one.
async fn settled_status(
    cluster: &Cluster,
    node: usize,
    auth: (&str, &str),
    expected: u16,
    interval: u64,
) -> u16 {
    let deadline =
        std::time::Instant::now() + Duration::from_secs(2 * interval + 3 * interval.min(1));
    loop {
        let status = cluster.token(node, auth).await.0;
        if status == expected || std::time::Instant::now() >= deadline {
            return status;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn client_changes_hold_on_every_node(backend: &Backend, interval: &'static str) {
    let cluster = Cluster::start(backend, 3, &[("TESSERA_CLIENT_CHECK_INTERVAL", interval)]).await;
    let interval: u64 = interval.parse().expect("interval");
    let (admin_id, admin_secret) = cluster.client("tessera:admin", &[]);
    let (_, body) = cluster.token(0, (&admin_id, &admin_secret)).await;
    let admin = body["access_token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    use reqwest::Method;

    // Created at A: B and C issue tokens to it on the next request.
    let (status, created) = cluster
        .admin(
            0,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": "svc", "scope": "read", "audiences": [API]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["client_id"].as_str().expect("id").to_owned();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    for node in [1, 2] {
        assert_eq!(
            cluster.token(node, (&id, &secret)).await.0,
            200,
            "node {node}"
        );
    }

    // Secret rotated at A with no grace: the old one fails at B and C, the
    // new one works there.
    let (status, rotated) = cluster
        .admin(
            0,
            &admin,
            Method::POST,
            &format!("/admin/clients/{id}/rotate-secret"),
            Some(json!({"grace_seconds": 0})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    for node in [1, 2] {
        assert_eq!(
            settled_status(&cluster, node, (&id, &secret), 401, interval).await,
            401,
            "node {node}: the old secret"
        );
        assert_eq!(
            cluster.token(node, (&id, &new_secret)).await.0,
            200,
            "node {node}: the new secret"
        );
    }

    // Disabled at A: refused at B and C, and its tokens inactive there.
    let (_, body) = cluster.token(2, (&id, &new_secret)).await;
    let held = body["access_token"].as_str().expect("at").to_owned();
    let (status, _) = cluster
        .admin(
            0,
            &admin,
            Method::POST,
            &format!("/admin/clients/{id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    for node in [1, 2] {
        assert_eq!(
            settled_status(&cluster, node, (&id, &new_secret), 401, interval).await,
            401,
            "node {node}: disabled"
        );
        let (status, answer) = cluster
            .form(
                node,
                "/oauth2/introspect",
                (&admin_id, &admin_secret),
                &format!("token={held}"),
            )
            .await;
        assert_eq!(
            (status, answer["active"].clone()),
            (200, json!(false)),
            "node {node}"
        );
    }

    // The CLI, with every server running: enabled again, then revoke-all.
    cluster.cli(&["client", "enable", &id, "--json"]);
    for node in 0..3 {
        assert_eq!(
            settled_status(&cluster, node, (&id, &new_secret), 200, interval).await,
            200,
            "node {node}: enabled by the CLI"
        );
    }
    let (_, body) = cluster.token(1, (&id, &new_secret)).await;
    let before_cutoff = body["access_token"].as_str().expect("at").to_owned();
    cluster.cli(&["client", "revoke-all", &id, "--json"]);
    for node in 0..3 {
        let answer = cluster
            .form(
                node,
                "/oauth2/introspect",
                (&id, &new_secret),
                &format!("token={before_cutoff}"),
            )
            .await
            .1;
        assert_eq!(
            answer,
            json!({"active": false}),
            "node {node}: cut off by the CLI"
        );
    }
}

#[actix_web::test]
async fn janitors_on_three_nodes_take_turns_and_keep_what_is_still_needed() {
    let Some(backend) = Backend::postgres("cluster::janitors") else {
        return;
    };
    // Sweeping every second on every node, with no leeway: entries go as
    // soon as they can.
    let cluster = Cluster::start(
        &backend,
        3,
        &[
            ("TESSERA_JANITOR_INTERVAL", "1"),
            ("TESSERA_CLOCK_LEEWAY", "0"),
            // A client cache needs a leeway that covers its cut-off margin.
            ("TESSERA_CLIENT_CHECK_INTERVAL", "0"),
        ],
    )
    .await;
    let (short_id, short_secret) =
        cluster.client("read", &["--access-token-ttl", "2", "--no-refresh-tokens"]);
    let (long_id, long_secret) = cluster.client("read", &["--access-token-ttl", "3600"]);
    let short = (short_id.as_str(), short_secret.as_str());
    let long = (long_id.as_str(), long_secret.as_str());

    // Revocations that expire in seconds, and some that must stay; a live
    // refresh family that must stay usable.
    let mut expiring = Vec::new();
    let mut lasting = Vec::new();
    for n in 0..6 {
        let (_, body) = cluster.token(n % 3, short).await;
        let at = body["access_token"].as_str().expect("at").to_owned();
        assert_eq!(
            cluster
                .form(n % 3, "/oauth2/revoke", short, &format!("token={at}"))
                .await
                .0,
            200
        );
        expiring.push(at);
        let (_, body) = cluster.token(n % 3, long).await;
        let at = body["access_token"].as_str().expect("at").to_owned();
        assert_eq!(
            cluster
                .form(n % 3, "/oauth2/revoke", long, &format!("token={at}"))
                .await
                .0,
            200
        );
        lasting.push(at);
    }
    let (_, body) = cluster.token(0, long).await;
    let mut rt = body["refresh_token"].as_str().expect("rt").to_owned();
    let mut pg = cluster.pg();
    assert_eq!(
        count(&mut pg, "SELECT count(*) AS n FROM revoked_tokens"),
        12
    );

    // Several seconds of three janitors sweeping at once.
    for step in 0..6 {
        actix_web::rt::time::sleep(Duration::from_millis(800)).await;
        let (status, body) = cluster
            .form(
                step % 3,
                "/oauth2/token",
                long,
                &format!("grant_type=refresh_token&refresh_token={rt}"),
            )
            .await;
        assert_eq!(
            status, 200,
            "step {step}: the live family survived the janitors: {body}"
        );
        rt = body["refresh_token"].as_str().expect("rt").to_owned();
    }
    assert_eq!(
        count(&mut pg, "SELECT count(*) AS n FROM revoked_tokens"),
        6,
        "expired entries went, live ones stayed"
    );
    for at in &lasting {
        for node in 0..3 {
            let answer = cluster
                .form(node, "/oauth2/introspect", long, &format!("token={at}"))
                .await
                .1;
            assert_eq!(
                answer,
                json!({"active": false}),
                "node {node}: a revocation still needed was kept"
            );
        }
    }
    for (node, log) in cluster.logs().iter().enumerate() {
        assert!(
            !log.contains("sweep failed"),
            "node {node}: janitors fought:\n{log}"
        );
    }
    let swept: usize = cluster
        .logs()
        .iter()
        .map(|l| l.matches("janitor: removed").count())
        .sum();
    assert!(swept >= 1, "some janitor removed the expired entries");
    let _ = expiring;
}
