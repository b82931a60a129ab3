//! Signing-key lifecycle under an injected clock: validators that cache the
//! JWKS for exactly its max-age, in every phase, never meet an unknown kid
//! across rotations; retired keys outlive their longest tokens; emergency
//! retirement over the admin API and through the CLI; import of every
//! algorithm; metadata and ETag follow the published keys; several nodes on
//! one database agree.

use std::collections::{BTreeSet, HashSet};
use std::process::{Child, Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    TestApp, TestClient, claims_of, cli_json, spawn_app_with, spec, tessera_cli_with,
    verify_with_jwks,
};

const API: &str = "https://api.example.com";
const PERIOD: i64 = 7200;
const LEAD: i64 = 360;

fn fast_rotation(s: &mut tessera::config::Settings) {
    s.key_rotation_period = PERIOD;
    s.key_prepublish = LEAD;
}

/// A period far longer than any test's jumps in time: no scheduled rotation
/// (from the test or from the node's own maintainer loop) gets in the way.
fn slow_rotation(s: &mut tessera::config::Settings) {
    s.key_rotation_period = 30 * 86_400;
    s.key_prepublish = LEAD;
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("JSON")
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("kid").to_owned()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The CLI with this file's rotation schedule.
fn tessera(app: &TestApp, args: &[&str]) -> Output {
    tessera_cli_with(
        app,
        args,
        &[
            ("TESSERA_KEY_ROTATION_PERIOD", &PERIOD.to_string()),
            ("TESSERA_KEY_PREPUBLISH", &LEAD.to_string()),
        ],
    )
}

/// An access token the way a client application gets one: the real `oauth2`
/// crate's client-credentials exchange against `base`'s token endpoint.
async fn oauth2_token(http: &reqwest::Client, base: &str, client: &TestClient) -> String {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
    BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).expect("token URL"))
        .exchange_client_credentials()
        .request_async(http)
        .await
        .expect("the oauth2 crate gets a token")
        .access_token()
        .secret()
        .to_owned()
}

async fn token_of(app: &TestApp, client: &TestClient) -> String {
    oauth2_token(&app.http, &app.base, client).await
}

/// A client whose tokens the server itself accepts on `/admin`.
async fn admin_token(app: &TestApp) -> String {
    let mut admin = spec("tessera:admin", &[]);
    admin.name = "admin".to_owned();
    let client = app.create_client(admin).await;
    token_of(app, &client).await
}

async fn admin_post(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, body) =
        crate::helpers::bearer_request(app, reqwest::Method::POST, path, token, body).await;
    (status, body)
}

/// The JWKS as served, with the max-age of its `Cache-Control` header.
async fn fetch_jwks(app: &TestApp) -> (Value, i64) {
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("GET JWKS");
    assert_eq!(resp.status(), 200);
    let max_age = resp.headers()["cache-control"]
        .to_str()
        .expect("ASCII")
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .expect("a max-age")
        .parse::<i64>()
        .expect("seconds");
    (resp.json().await.expect("JSON"), max_age)
}

fn key_row(app: &TestApp, kid: &str) -> tessera::store::signing_keys::SigningKeyRow {
    tessera::store::signing_keys::list_keys(&mut app.database().conn().expect("conn"))
        .expect("keys")
        .into_iter()
        .find(|r| r.kid == kid)
        .expect("the key is stored")
}

/// One simulated resource server: it fetches the JWKS first at
/// `first_fetch`, then again exactly when its copy's max-age runs out, and
/// checks every token against the copy it holds.
struct Validator {
    first_fetch: i64,
    cache: Option<(i64, i64, Value)>,
}

impl Validator {
    fn new(first_fetch: i64) -> Self {
        Self {
            first_fetch,
            cache: None,
        }
    }

    fn next_fetch(&self) -> i64 {
        self.cache
            .as_ref()
            .map_or(self.first_fetch, |(at, max_age, _)| at + max_age)
    }
}

/// Fetch phases this far apart cover the whole max-age period.
const PHASE_STEP: usize = 15;

both_backends! {
    async fn a_validator_caching_the_jwks_for_max_age_never_meets_an_unknown_kid(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let mut reader = spec("read", &[API]);
        reader.refresh_tokens = false;
        let client = app.create_client(reader).await;
        let start = app.clock_now();
        let end = start + PERIOD * 5 / 2;
        let (_, max_age) = fetch_jwks(&app).await;
        // The node's own maintainer runs twice per check interval.
        let tick = app.settings.key_check_interval / 2;

        // Validators in every phase of the max-age period, one each
        // PHASE_STEP seconds; one more joins for each new key, fetching one
        // second before the key enters the JWKS: the worst phase there is.
        let mut validators: Vec<Validator> = (0..max_age)
            .step_by(PHASE_STEP)
            .map(|phase| Validator::new(start + phase))
            .collect();
        let mut events: BTreeSet<i64> = validators.iter().map(Validator::next_fetch).collect();
        events.extend((start..=end).step_by(tick as usize));
        // A token every simulated minute, and one at each key's activation.
        let mut token_at: BTreeSet<i64> = (start + 60..=end).step_by(60).collect();
        events.extend(token_at.iter().copied());
        let mut known: HashSet<String> = kids(&app.jwks().await).into_iter().collect();
        let mut activations: Vec<(i64, String)> = Vec::new();
        let mut activation_tokens = 0;
        let mut unknown: Vec<String> = Vec::new();
        let mut tokens = 0;
        let db = app.database();

        while let Some(t) = events.pop_first().filter(|t| *t <= end) {
            app.clock.set(t);
            if (t - start) % tick == 0 {
                app.keys.run_once().await.expect("key maintenance");
                let rows = tessera::store::signing_keys::list_keys(&mut db.conn().expect("conn"))
                    .expect("keys");
                for row in rows.into_iter().filter(|r| known.insert(r.kid.clone())) {
                    assert!(row.publishes_at > t, "a new key is read before it is published");
                    validators.push(Validator::new(row.publishes_at - 1));
                    events.insert(row.publishes_at - 1);
                    token_at.insert(row.activates_at);
                    events.insert(row.activates_at);
                    activations.push((row.activates_at, row.kid));
                }
            }
            // Every validator due now fetches (one request serves them all:
            // the server's answer depends only on the instant).
            let mut served: Option<(Value, i64)> = None;
            for v in validators.iter_mut().filter(|v| v.next_fetch() == t) {
                if served.is_none() {
                    served = Some(fetch_jwks(&app).await);
                }
                let (jwks, max_age) = served.clone().expect("fetched");
                events.insert(t + max_age);
                v.cache = Some((t, max_age, jwks));
            }
            if !token_at.contains(&t) {
                continue;
            }
            let token = token_of(&app, &client).await;
            let kid = kid_of(&token);
            tokens += 1;
            if let Some((_, next)) = activations.iter().find(|(at, _)| *at == t) {
                assert_eq!(&kid, next, "the next key signs from its activation instant");
                activation_tokens += 1;
            }
            // The signature is the same for every validator holding the
            // key: check it once per token.
            let mut verified = false;
            for v in validators.iter().filter(|v| v.cache.is_some()) {
                let (fetched, max_age, jwks) = v.cache.as_ref().expect("cached");
                assert!(t < fetched + max_age, "a validator only uses a fresh copy");
                if !kids(jwks).contains(&kid) {
                    unknown.push(format!(
                        "at {} a validator first fetching at {} (copy from {}) lacks {kid}",
                        t - start,
                        v.first_fetch - start,
                        fetched - start
                    ));
                } else if !verified {
                    verify_with_jwks(&token, jwks, &app.issuer, API, t).expect("verifies with a cached JWKS");
                    verified = true;
                }
            }
        }
        assert_eq!(activations.len(), 2, "two rotations happened: {activations:?}");
        assert_eq!(activation_tokens, 2, "a token was issued at each activation instant");
        assert!(tokens >= (end - start) / 60, "{tokens} tokens");
        assert!(unknown.is_empty(), "{} unknown-kid failures, first: {:?}", unknown.len(), &unknown[..unknown.len().min(5)]);
    }
}

both_backends! {
    async fn a_retired_key_verifies_a_day_long_token_until_it_expires_then_leaves_at_removes_at(backend) {
        let app = spawn_app_with(&backend, slow_rotation).await;
        let mut day = spec("read", &[API]);
        day.access_token_ttl = 86_400;
        let client = app.create_client(day).await;
        let old = kids(&app.jwks().await)[0].clone();

        let admin = admin_token(&app).await;
        let (status, next) = admin_post(&app, "/admin/keys/rotate", Some(&admin), None).await;
        assert_eq!(status, 200, "{next}");
        let activates_at = next["activates_at"].as_i64().expect("activates_at");

        // The old key's last token: signed one second before the next key
        // takes over, valid for a whole day.
        app.clock.set(activates_at - 1);
        let last = token_of(&app, &client).await;
        assert_eq!(kid_of(&last), old);
        let exp = claims_of(&last)["exp"].as_i64().expect("exp");
        assert_eq!(exp, activates_at - 1 + 86_400);
        app.clock.set(activates_at);
        assert_eq!(kid_of(&token_of(&app, &client).await), next["kid"].as_str().expect("kid"));

        // A validator fetching the JWKS one second before the token expires
        // still finds its key.
        app.clock.set(exp - 1);
        verify_with_jwks(&last, &app.jwks().await, &app.issuer, API, exp - 1)
            .expect("the retired key's token verifies until its exp");
        let rs = {
            let mut s = spec("", &[]);
            s.can_introspect = true;
            app.create_client(s).await
        };
        assert_eq!(app.introspect(&rs, &last).await["active"], true);

        // It stays published through the clock leeway, up to removes_at.
        let removes_at = key_row(&app, &old).removes_at.expect("removal scheduled");
        assert_eq!(removes_at, activates_at + app.settings.key_retention);
        assert!(removes_at >= exp + app.settings.clock_leeway, "retention covers exp + leeway");
        app.clock.set(removes_at - 1);
        assert!(kids(&app.jwks().await).contains(&old), "still published at removes_at - 1");
        app.clock.set(removes_at);
        assert!(!kids(&app.jwks().await).contains(&old), "gone at removes_at");
    }
}

both_backends! {
    async fn retiring_a_key_over_the_admin_api_takes_it_out_at_once_on_that_node(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rs = {
            let mut s = spec("", &[]);
            s.can_introspect = true;
            app.create_client(s).await
        };
        let admin = admin_token(&app).await;
        let before = token_of(&app, &client).await;
        let kid = kid_of(&before);
        let path = format!("/admin/keys/{kid}/retire");

        assert_eq!(admin_post(&app, &path, None, None).await.0, 401);
        let (status, body) = admin_post(&app, &path, Some(&admin), Some(json!({"now": false}))).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = admin_post(&app, "/admin/keys/no-such-kid/retire", Some(&admin), None).await;
        assert_eq!(status, 404);
        assert!(!body.to_string().contains("no-such-kid"), "the error does not echo the kid: {body}");
        assert_eq!(kids(&app.jwks().await), vec![kid.clone()], "refusals change nothing");

        let (status, done) = admin_post(&app, &path, Some(&admin), Some(json!({"now": true}))).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["kid"], kid.as_str());
        assert_eq!(done["retired_at"], app.clock_now());
        assert_eq!(done["reloaded"], true);
        let successor = done["successor"].as_str().expect("a successor").to_owned();

        // No key check has run: the answering node applied it already.
        assert_eq!(kids(&app.jwks().await), vec![successor.clone()]);
        assert!(app.verify_offline(&before, API).await.is_err(), "its tokens fail at once");
        assert_eq!(app.introspect(&rs, &before).await, json!({"active": false}));
        let after = token_of(&app, &client).await;
        assert_eq!(kid_of(&after), successor);
        app.verify_offline(&after, API).await.expect("the successor's tokens verify");

        // Audited like the CLI's retirement (the admin token signed by the
        // retired key is dead too: a fresh one reads the log).
        let fresh = admin_token(&app).await;
        let events: Value = app.http.get(app.url("/admin/audit?limit=20"))
            .header("authorization", format!("Bearer {fresh}"))
            .send().await.expect("GET").json().await.expect("JSON");
        assert!(
            events.as_array().expect("events").iter().any(|e| e["kind"] == "key_retired"
                && e["detail"].as_str().is_some_and(|d| d.contains(&kid))),
            "{events}"
        );
        assert_eq!(admin_post(&app, &path, Some(&admin), None).await.0, 401, "the old admin token died with its key");
        assert_eq!(admin_post(&app, &path, Some(&fresh), None).await.0, 404, "a removed key cannot be retired again");
    }
}

/// A server process, killed when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

both_backends! {
    async fn a_running_server_applies_cli_retire_now_within_its_key_check_bound(backend) {
        use crate::helpers::{ProcessConfig, start_binary};
        // A real process on the wall clock, checking keys every second (half
        // of its interval of two).
        const INTERVAL: u64 = 2;
        let app = spawn_app_with(&backend, fast_rotation).await;
        app.stop().await;
        let client = app.create_client(spec("read", &[API])).await;
        let env = [
            ("TESSERA_JWKS_MAX_AGE", "1"),
            ("TESSERA_KEY_CHECK_INTERVAL", "2"),
            ("TESSERA_KEY_PREPUBLISH", "3"),
            ("TESSERA_KEY_ROTATION_PERIOD", "86400"),
        ];
        let config = ProcessConfig::of(&app);
        let (child, base) = actix_web::rt::task::spawn_blocking(move || start_binary(&config, &env))
            .await
            .expect("task");
        let _server = Running(child);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let jwks_kids = || async {
            let body: Value = http.get(format!("{base}/.well-known/jwks.json")).send().await
                .expect("GET").json().await.expect("JSON");
            kids(&body)
        };
        let kid = kid_of(&oauth2_token(&http, &base, &client).await);
        assert_eq!(jwks_kids().await, vec![kid.clone()]);

        let cli = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(args)
                .current_dir(app.dir.path())
                .env("TESSERA_DATABASE_URL", &app.db.url)
                .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
                .envs(env)
                .env_remove("RUST_LOG")
                .output()
                .expect("run tessera")
        };
        let refused = cli(&["keys", "retire", &kid]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "--now is required: {stderr}");
        assert!(stderr.contains("--now"), "{stderr}");
        let done = cli_json(&cli(&["keys", "retire", &kid, "--now", "--json"]));
        assert_eq!(done["kid"], kid.as_str());
        let successor = done["successor"].as_str().expect("a successor").to_owned();

        // The documented bound is half an interval plus the check's own
        // time. The deadline is ten whole intervals: a loaded CI machine can
        // stall a process for seconds, and any deadline still fails a server
        // that never re-reads its keys (the admin route's test shows the
        // immediate path).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10 * INTERVAL);
        loop {
            let served = jwks_kids().await;
            if served == vec![successor.clone()] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still serving {served:?} {} s after the retirement",
                10 * INTERVAL
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(kid_of(&oauth2_token(&http, &base, &client).await), successor);
    }
}

both_backends! {
    async fn keys_rotate_pre_publishes_and_export_matches_the_served_jwks(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let listed = cli_json(&tessera(&app, &["keys", "list", "--json"]));
        assert_eq!(listed.as_array().expect("array").len(), 1);
        assert_eq!(listed[0]["state"], "active");
        assert_eq!(listed[0]["alg"], "ES256");

        let rotated = cli_json(&tessera(&app, &["keys", "rotate", "--json"]));
        assert_eq!(rotated["state"], "pending", "in the JWKS one check interval later");
        assert!(rotated["activates_at"].as_i64().expect("activates_at") >= rotated["created_at"].as_i64().expect("created_at") + LEAD);
        let again = tessera(&app, &["keys", "rotate"]);
        assert!(!again.status.success(), "one pending key at a time");
        assert!(String::from_utf8_lossy(&again.stderr).contains("already pending or published"));

        let exported = cli_json(&tessera(&app, &["keys", "export-jwks"]));
        assert_eq!(kids(&exported).len(), 1, "a pending key is not exported");
        // The server reads the key at once and serves what the CLI exports;
        // both publish it at its `publishes_at`.
        app.catch_up_with_wall_clock(5);
        app.keys.run_once().await.expect("maintenance");
        assert_eq!(exported, app.jwks().await);
        let publishes_at = rotated["publishes_at"].as_i64().expect("publishes_at");
        assert_eq!(publishes_at, rotated["created_at"].as_i64().expect("created_at") + app.settings.key_check_interval);
        app.clock.set(publishes_at);
        assert_eq!(kids(&app.jwks().await).len(), 2);
    }
}

both_backends! {
    async fn keys_list_shows_created_activates_and_retires_in_text_and_json(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let rotated = cli_json(&tessera(&app, &["keys", "rotate", "--json"]));
        for name in ["created", "activates", "retires"] {
            assert_eq!(rotated[name], rotated[format!("{name}_at")], "{name} in the rotate output");
        }
        let listed = cli_json(&tessera(&app, &["keys", "list", "--json"]));
        let listed = listed.as_array().expect("array");
        assert_eq!(listed.len(), 2);
        for key in listed {
            for name in ["created", "activates", "retires", "created_at", "activates_at", "retires_at", "publishes_at", "removes_at"] {
                assert!(key.get(name).is_some(), "{name} is a member of {key}");
            }
            assert_eq!(key["created"], key["created_at"]);
            assert_eq!(key["activates"], key["activates_at"]);
            assert_eq!(key["retires"], key["retires_at"]);
        }
        let old = listed.iter().find(|k| k["kid"] != rotated["kid"]).expect("the first key");
        assert_eq!(old["retires"], rotated["activates"], "the first key retires when the next activates");
        assert!(rotated["retires"].is_null());

        let text = tessera(&app, &["keys", "list"]);
        assert!(text.status.success());
        let stdout = String::from_utf8(text.stdout).expect("UTF-8");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        let shown = |v: &Value| v.as_i64().map_or("-".to_owned(), |t| t.to_string());
        for (line, key) in lines.iter().zip(listed) {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(
                fields,
                vec![
                    key["kid"].as_str().expect("kid").to_owned(),
                    key["alg"].as_str().expect("alg").to_owned(),
                    key["state"].as_str().expect("state").to_owned(),
                    format!("activates {}", shown(&key["activates"])),
                    format!("retires {}", shown(&key["retires"])),
                    format!("removed {}", shown(&key["removes_at"])),
                    format!("created {}", shown(&key["created"])),
                ],
                "{line}"
            );
        }
    }
}

/// Runs `openssl`; `None` when the command is not installed. A failing
/// openssl is a broken test machine, not a reason to skip.
fn openssl(args: &[&str]) -> Option<()> {
    match Command::new("openssl").args(args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("openssl {args:?}: {e}"),
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(())
        }
    }
}

/// Whether `openssl` can make keys here. Under CI its absence fails the
/// test instead of skipping it, so CI can never pass without the imports.
pub fn have_openssl(test: &str) -> bool {
    if openssl(&["version"]).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "openssl must be installed under CI: {test} cannot be skipped there"
    );
    eprintln!("SKIPPED {test}: the openssl command is not available");
    false
}

/// A PEM PKCS#8 private key of `alg` ("ES256", "EdDSA", "RS256"), the way an
/// operator makes one (call [`have_openssl`] first).
pub fn openssl_key(dir: &std::path::Path, alg: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{alg}.pem"));
    let out = path.to_str().expect("UTF-8 path");
    let args: &[&str] = match alg {
        "ES256" => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            out,
        ],
        "EdDSA" => &["genpkey", "-algorithm", "ed25519", "-out", out],
        "RS256" => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            out,
        ],
        other => panic!("no recipe for {other}"),
    };
    openssl(args).expect("openssl is installed");
    path
}

const ALGORITHMS: [(&str, &str); 3] = [("ES256", "EC"), ("EdDSA", "OKP"), ("RS256", "RSA")];

both_backends! {
    async fn keys_of_each_algorithm_imported_with_the_cli_sign_tokens_that_verify_offline(backend) {
        if !have_openssl(module_path!()) {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for (alg, kty) in ALGORITHMS {
            // A fresh deployment per key: the CLI stamps keys with the wall
            // clock, and a second import would wait for the first to activate.
            let app = spawn_app_with(&backend, fast_rotation).await;
            let client = app.create_client(spec("read", &[API])).await;
            let pem = openssl_key(dir.path(), alg);
            let imported = cli_json(&tessera(&app, &["keys", "import", pem.to_str().expect("path"), "--json"]));
            assert_eq!(imported["alg"], alg);
            assert_eq!(imported["state"], "pending");
            let kid = imported["kid"].as_str().expect("kid").to_owned();

            // Pre-published like any rotation; once the lead has passed it
            // signs. (The server's clock catches up with the CLI's.)
            app.catch_up_with_wall_clock(LEAD + 10);
            app.keys.run_once().await.expect("maintenance");
            let jwks = app.jwks().await;
            let jwk = jwks["keys"].as_array().expect("keys").iter()
                .find(|k| k["kid"] == kid.as_str())
                .unwrap_or_else(|| panic!("{alg} key {kid} is not published: {jwks}"));
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["alg"], alg);
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(jwk.get(private).is_none(), "{alg} JWK carries {private}");
            }
            let token = token_of(&app, &client).await;
            assert_eq!(header_of(&token)["alg"], alg);
            assert_eq!(kid_of(&token), kid, "the {alg} key signs");
            verify_with_jwks(&token, &jwks, &app.issuer, API, app.clock_now())
                .unwrap_or_else(|e| panic!("{alg} token does not verify offline: {e}"));
            // A signature by another key under this kid must fail: the check
            // above is a real one.
            let mut forged: Vec<&str> = token.split('.').collect();
            let other = token_of(&app, &client).await;
            let other_sig = other.split('.').nth(2).expect("signature").to_owned();
            forged[2] = &other_sig;
            assert!(verify_with_jwks(&forged.join("."), &jwks, &app.issuer, API, app.clock_now()).is_err());
        }
    }
}

both_backends! {
    async fn keys_import_refuses_a_short_rsa_key_and_a_pem_that_is_not_pkcs8(backend) {
        if !have_openssl(module_path!()) {
            return;
        }
        let app = spawn_app_with(&backend, fast_rotation).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", &path("rsa1024.pem")]).expect("openssl");
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &path("sec1.pem")]).expect("openssl");
        openssl(&["genrsa", "-traditional", "-out", &path("pkcs1.pem"), "2048"]).expect("openssl");
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", &path("p384.pem")]).expect("openssl");
        for (file, expected) in [
            ("rsa1024.pem", "this RSA key has 1024 bits; RS256 needs 2048 to 4096 bits"),
            ("sec1.pem", "not PKCS#8; convert it: openssl pkcs8 -topk8 -nocrypt"),
            ("pkcs1.pem", "not PKCS#8; convert it: openssl pkcs8 -topk8 -nocrypt"),
            ("p384.pem", "unsupported key: use a P-256 (ES256), Ed25519 (EdDSA) or RSA >= 2048-bit (RS256) key"),
        ] {
            let out = tessera(&app, &["keys", "import", &path(file)]);
            assert_eq!(out.status.code(), Some(1), "{file} is refused");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(expected), "{file}: {stderr}");
            let pem = std::fs::read_to_string(path(file)).expect("PEM");
            let body = pem.lines().nth(1).expect("a base64 line");
            assert!(!stderr.contains(body), "the error does not echo the key");
        }
        let listed = cli_json(&tessera(&app, &["keys", "list", "--json"]));
        assert_eq!(listed.as_array().expect("array").len(), 1, "nothing was stored");
    }
}

both_backends! {
    async fn a_server_set_to_eddsa_generates_ed25519_keys_whose_tokens_verify_offline(backend) {
        use crate::helpers::{ProcessConfig, TestDatabase, start_binary};
        // A fresh deployment started by the binary with TESSERA_SIGNING_ALG,
        // so its very first key is generated as EdDSA.
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::create(&backend, dir.path());
        let config = ProcessConfig {
            dir: dir.path().to_owned(),
            db_url: db.url.clone(),
            keys_dir: dir.path().join("keys"),
        };
        let (child, base) = actix_web::rt::task::spawn_blocking(move || {
            start_binary(&config, &[("TESSERA_SIGNING_ALG", "EdDSA")])
        })
        .await
        .expect("task");
        let _server = Running(child);
        let client = {
            let database = tessera::store::Database::open(&db.url, 1, std::time::Duration::from_secs(5))
                .expect("open database");
            let created = tessera::clients::create(
                &mut database.conn().expect("conn"),
                &spec("read", &[API]),
                tessera::clock::Clock::now(&tessera::clock::SystemClock),
            )
            .expect("create client");
            TestClient { id: created.client_id, secret: created.client_secret.expose().to_owned() }
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let jwks: Value = http.get(format!("{base}/.well-known/jwks.json")).send().await
            .expect("GET").json().await.expect("JSON");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        assert_eq!((&keys[0]["kty"], &keys[0]["crv"], &keys[0]["alg"]), (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA")));
        let metadata: Value = http.get(format!("{base}/.well-known/oauth-authorization-server")).send().await
            .expect("GET").json().await.expect("JSON");
        assert_eq!(metadata["access_token_signing_alg_values_supported"], json!(["EdDSA"]));

        let token = oauth2_token(&http, &base, &client).await;
        assert_eq!(header_of(&token)["alg"], "EdDSA");
        let now = tessera::clock::Clock::now(&tessera::clock::SystemClock);
        verify_with_jwks(&token, &jwks, "https://auth.example.com", API, now).expect("an EdDSA token verifies offline");
    }
}

async fn signing_algs(app: &TestApp) -> Vec<String> {
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let mut algs: Vec<String> = metadata["access_token_signing_alg_values_supported"]
        .as_array()
        .expect("algorithms")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect();
    algs.sort();
    algs
}

both_backends! {
    async fn the_metadata_lists_the_algorithm_of_every_published_key(backend) {
        if !have_openssl(module_path!()) {
            return;
        }
        let app = spawn_app_with(&backend, slow_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let old = kids(&app.jwks().await)[0].clone();
        assert_eq!(signing_algs(&app).await, ["ES256"]);

        let dir = tempfile::tempdir().expect("temp dir");
        let pem = openssl_key(dir.path(), "RS256");
        let imported = cli_json(&tessera(&app, &["keys", "import", pem.to_str().expect("path"), "--json"]));
        let at = |name: &str| imported[name].as_i64().expect("a time");
        // Each instant is set from the key's own schedule (the CLI stamped
        // it with the wall clock).
        app.clock.set(at("created_at"));
        app.keys.run_once().await.expect("maintenance");
        assert_eq!(signing_algs(&app).await, ["ES256"], "a pending key is not advertised");
        app.clock.set(at("publishes_at"));
        assert_eq!(signing_algs(&app).await, ["ES256", "RS256"], "published before it signs");
        app.clock.set(at("activates_at"));
        let token = token_of(&app, &client).await;
        assert_eq!(header_of(&token)["alg"], "RS256");
        verify_with_jwks(&token, &app.jwks().await, &app.issuer, API, app.clock_now()).expect("an RS256 token verifies offline");
        assert_eq!(signing_algs(&app).await, ["ES256", "RS256"], "the retired key is still published");

        let removes_at = key_row(&app, &old).removes_at.expect("removal scheduled");
        app.clock.set(removes_at - 1);
        assert_eq!(signing_algs(&app).await, ["ES256", "RS256"]);
        app.clock.set(removes_at);
        assert_eq!(signing_algs(&app).await, ["RS256"], "the removed key's algorithm goes with it");
        assert_eq!(kids(&app.jwks().await), vec![imported["kid"].as_str().expect("kid").to_owned()]);
    }
}

/// The JWKS's ETag, and the status of a request revalidating `tag`.
async fn etag_and_revalidation(app: &TestApp, tag: Option<&str>) -> (String, u16) {
    let mut req = app.http.get(app.url("/.well-known/jwks.json"));
    if let Some(tag) = tag {
        req = req.header("if-none-match", tag);
    }
    let resp = req.send().await.expect("GET JWKS");
    let etag = resp.headers()["etag"].to_str().expect("ASCII").to_owned();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    if status == 304 {
        assert!(body.is_empty(), "a 304 has no body");
    }
    (etag, status)
}

both_backends! {
    async fn the_jwks_etag_changes_when_a_key_is_published_or_removed(backend) {
        let app = spawn_app_with(&backend, slow_rotation).await;
        let old = kids(&app.jwks().await)[0].clone();
        let (first, status) = etag_and_revalidation(&app, None).await;
        assert_eq!(status, 200);
        assert!(first.starts_with('"') && first.ends_with('"'), "a strong ETag: {first}");
        assert_eq!(etag_and_revalidation(&app, Some(&first)).await, (first.clone(), 304));

        let admin = admin_token(&app).await;
        let (status, next) = admin_post(&app, "/admin/keys/rotate", Some(&admin), None).await;
        assert_eq!(status, 200, "{next}");
        let at = |name: &str| next[name].as_i64().expect("a time");
        assert_eq!(etag_and_revalidation(&app, Some(&first)).await, (first.clone(), 304), "a pending key changes nothing");

        app.clock.set(at("publishes_at"));
        let (published, status) = etag_and_revalidation(&app, Some(&first)).await;
        assert_eq!(status, 200, "a cached copy without the next key is stale");
        assert_ne!(published, first);
        assert_eq!(etag_and_revalidation(&app, Some(&published)).await, (published.clone(), 304));

        // Activation changes which key signs, not which keys are published.
        app.clock.set(at("activates_at"));
        assert_eq!(etag_and_revalidation(&app, Some(&published)).await, (published.clone(), 304));

        let removes_at = key_row(&app, &old).removes_at.expect("removal scheduled");
        app.clock.set(removes_at);
        let (removed, status) = etag_and_revalidation(&app, Some(&published)).await;
        assert_eq!(status, 200, "a cached copy with the removed key is stale");
        assert_ne!(removed, published);
        assert_ne!(removed, first);
        assert_eq!(kids(&app.jwks().await), vec![next["kid"].as_str().expect("kid").to_owned()]);
    }
}

both_backends! {
    async fn two_nodes_on_one_database_publish_the_same_jwks_and_sign_with_the_same_key(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let twin = app.start_twin().await;
        let twin_jwks = |twin: &crate::helpers::Twin| {
            let url = format!("{}/.well-known/jwks.json", twin.base);
            let http = app.http.clone();
            async move { http.get(url).send().await.expect("GET").bytes().await.expect("body") }
        };
        let twin_token = |twin: &crate::helpers::Twin| {
            let (http, base, client) = (app.http.clone(), twin.base.clone(), client.clone());
            async move { oauth2_token(&http, &base, &client).await }
        };
        let own_jwks = || async {
            app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("GET").bytes().await.expect("body")
        };
        assert_eq!(own_jwks().await, twin_jwks(&twin).await, "byte-identical JWKS");
        assert_eq!(kid_of(&token_of(&app, &client).await), kid_of(&twin_token(&twin).await));

        // Rotation due: both nodes run their maintainer; exactly one key is made.
        app.clock.advance(PERIOD - LEAD);
        let (a, b) = futures_util::future::join(app.keys.run_once(), twin.keys.run_once()).await;
        let made = [a.expect("A"), b.expect("B")].into_iter().flatten().count();
        assert_eq!(made, 1, "exactly one node creates the next key");
        app.keys.run_once().await.expect("A reloads");
        assert_eq!(own_jwks().await, twin_jwks(&twin).await, "neither publishes it yet, though A has read it");
        twin.keys.run_once().await.expect("B reloads");
        let interval = app.settings.key_check_interval;
        app.clock.advance(interval);
        assert_eq!(own_jwks().await, twin_jwks(&twin).await, "both publish the next key");
        assert_eq!(kids(&serde_json::from_slice(&own_jwks().await).expect("JSON")).len(), 2);

        app.clock.advance(LEAD - interval);
        let (ta, tb) = (token_of(&app, &client).await, twin_token(&twin).await);
        assert_eq!(kid_of(&ta), kid_of(&tb), "both sign with the new key at its activation");
        assert_eq!(own_jwks().await, twin_jwks(&twin).await);
    }
}

both_backends! {
    async fn a_lead_shorter_than_the_jwks_max_age_is_refused(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        app.stop().await;
        let mut settings = app.settings.clone();
        settings.key_prepublish = 299;
        let err = crate::helpers::build_app(settings).await.expect_err("refused");
        assert!(err.to_string().contains("TESSERA_KEY_PREPUBLISH"), "{err}");
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["keys", "list"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .env("TESSERA_KEY_PREPUBLISH", "60")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("TESSERA_KEY_PREPUBLISH"));
    }
}

both_backends! {
    async fn withdrawing_a_pending_key_leaves_the_current_key_signing(backend) {
        use tessera::keys::{KeyEncryptionKey, rotation};
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let current = kids(&app.jwks().await)[0].clone();
        let (kek, _) = KeyEncryptionKey::load(&app.settings.keys_dir, None).expect("KEK").expect("KEK exists");
        let policy = app.settings.rotation_policy().expect("policy");
        let db = app.database();
        let mut conn = db.conn().expect("connection");
        let pending = rotation::rotate_now(&mut conn, &kek, &policy, app.clock_now(), None).expect("rotate");
        rotation::retire_now(&mut conn, &kek, &policy, &pending.kid, app.clock_now()).expect("withdraw");
        // Past the withdrawn key's activation time, the old key still signs
        // and nothing is generated in a hurry.
        app.clock.advance(LEAD + 60);
        app.keys.run_once().await.expect("maintenance");
        assert_eq!(kids(&app.jwks().await), vec![current.clone()]);
        assert_eq!(kid_of(&token_of(&app, &client).await), current);
    }
}

both_backends! {
    async fn key_commands_refuse_a_different_key_encryption_key(backend) {
        use base64::Engine;
        let app = spawn_app_with(&backend, fast_rotation).await;
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([3u8; 32]);
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["keys", "rotate"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .env("TESSERA_KEK", other)
            .output()
            .expect("run");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("key-encryption key"));
        let listed = cli_json(&tessera(&app, &["keys", "list", "--json"]));
        assert_eq!(listed.as_array().expect("array").len(), 1, "nothing was added");
        let usage = tessera(&app, &["keys", "retire", "some-kid"]);
        assert_eq!(usage.status.code(), Some(2), "retire without --now is a usage error");
    }
}

both_backends! {
    async fn two_server_processes_agree_on_the_jwks_and_the_signing_key_across_a_rotation(backend) {
        use crate::helpers::{ProcessConfig, start_binary};
        // Real processes on the wall clock, with timings shrunk so a whole
        // rotation fits in seconds: keys re-read every second, JWKS cached
        // for one, the next key pre-published for three.
        let app = spawn_app_with(&backend, fast_rotation).await;
        app.stop().await;
        let client = app.create_client(spec("read", &[API])).await;
        let env = [
            ("TESSERA_JWKS_MAX_AGE", "1"),
            ("TESSERA_KEY_CHECK_INTERVAL", "1"),
            ("TESSERA_KEY_PREPUBLISH", "3"),
            ("TESSERA_KEY_ROTATION_PERIOD", "86400"),
        ];
        let start = |config: ProcessConfig| {
            actix_web::rt::task::spawn_blocking(move || start_binary(&config, &env))
        };
        let (mut a, base_a) = start(ProcessConfig::of(&app)).await.expect("task");
        let (mut b, base_b) = start(ProcessConfig::of(&app)).await.expect("task");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let jwks = |base: &str| {
            let (http, url) = (http.clone(), format!("{base}/.well-known/jwks.json"));
            async move { http.get(url).send().await.expect("GET").bytes().await.expect("body") }
        };
        let token_kid = |base: &str| {
            let (http, base, client) = (http.clone(), base.to_owned(), client.clone());
            async move { kid_of(&oauth2_token(&http, &base, &client).await) }
        };
        assert_eq!(jwks(&base_a).await, jwks(&base_b).await, "byte-identical JWKS");
        let first = token_kid(&base_a).await;
        assert_eq!(token_kid(&base_b).await, first);

        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["keys", "rotate", "--json"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
            .envs(env)
            .output()
            .expect("run");
        let next = cli_json(&out)["kid"].as_str().expect("kid").to_owned();
        // Within a check interval both publish it, before it signs.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
        let (ja, jb) = (jwks(&base_a).await, jwks(&base_b).await);
        assert_eq!(ja, jb, "both nodes publish the same keys");
        assert!(kids(&serde_json::from_slice(&ja).expect("JSON")).contains(&next));
        assert_eq!(token_kid(&base_a).await, first, "the old key still signs during the lead");
        // After the lead, both sign with the new key.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(token_kid(&base_a).await, next);
        assert_eq!(token_kid(&base_b).await, next);
        assert_eq!(jwks(&base_a).await, jwks(&base_b).await);
        for child in [&mut a, &mut b] {
            child.kill().expect("stop");
            child.wait().expect("reaped");
        }
    }
}
