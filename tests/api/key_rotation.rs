//! Signing-key lifecycle under an injected clock: a validator that caches the
//! JWKS for exactly its max-age never meets an unknown kid across rotations;
//! retired keys outlive their tokens; emergency retirement; import; several
//! nodes on one database agree.

use std::process::{Command, Output};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app_with, spec};

const API: &str = "https://api.example.com";
const PERIOD: i64 = 7200;
const LEAD: i64 = 360;

fn fast_rotation(s: &mut tessera::config::Settings) {
    s.key_rotation_period = PERIOD;
    s.key_prepublish = LEAD;
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("b64"),
    )
    .expect("JSON");
    header["kid"].as_str().expect("kid").to_owned()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn tessera(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .env("TESSERA_KEY_ROTATION_PERIOD", PERIOD.to_string())
        .env("TESSERA_KEY_PREPUBLISH", LEAD.to_string())
        .env_remove("RUST_LOG")
        .output()
        .expect("run tessera")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

both_backends! {
    async fn a_validator_caching_the_jwks_for_max_age_never_meets_an_unknown_kid(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let max_age = app.settings.jwks_max_age as i64;
        let mut cache: Option<(i64, Value)> = None;
        let mut seen_kids: Vec<String> = Vec::new();
        let mut unknown_kid = 0;
        let mut last_of_first_key: Option<String> = None;
        // Two and a half rotation periods, a token every simulated minute.
        for _ in 0..(PERIOD * 5 / 2 / 60) {
            app.clock.advance(60);
            app.keys.run_once().await.expect("key maintenance");
            let token = app.access_token(&client).await;
            let kid = kid_of(&token);
            if !seen_kids.contains(&kid) {
                seen_kids.push(kid.clone());
            }
            if seen_kids.len() == 1 {
                last_of_first_key = Some(token.clone());
            }
            let now = app.clock_now();
            if cache.as_ref().is_none_or(|(fetched, _)| now - fetched >= max_age) {
                cache = Some((now, app.jwks().await));
            }
            let (_, jwks) = cache.as_ref().expect("cached");
            if !kids(jwks).contains(&kid) {
                unknown_kid += 1;
                continue;
            }
            crate::helpers::verify_with_jwks(&token, jwks, &app.issuer, API, now)
                .expect("verifies with the cached JWKS");
        }
        assert!(seen_kids.len() >= 3, "two rotations happened: {seen_kids:?}");
        assert_eq!(unknown_kid, 0, "a validator met a kid it could not know");
        assert!(last_of_first_key.is_some(), "the first key signed tokens");
    }
}

both_backends! {
    async fn a_retired_key_verifies_its_tokens_until_they_expire_then_leaves(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first_kid = kids(&app.jwks().await)[0].clone();
        // Reach the point where the next key is published, then its activation.
        app.clock.advance(PERIOD - LEAD);
        assert!(app.keys.run_once().await.expect("maintenance").is_some(), "a rotation starts");
        assert_eq!(kids(&app.jwks().await).len(), 1, "the next key waits a check interval");
        let interval = app.settings.key_check_interval;
        app.clock.advance(interval);
        assert_eq!(kids(&app.jwks().await).len(), 2, "the next key is pre-published");
        app.clock.advance(LEAD - interval - 1);
        let old_token = app.access_token(&client).await;
        assert_eq!(kid_of(&old_token), first_kid, "the old key signs until the next activates");
        app.clock.advance(1);
        let new_token = app.access_token(&client).await;
        assert_ne!(kid_of(&new_token), first_kid, "the new key signs from its activation");
        // The old key's last token lives 300 s; it keeps verifying meanwhile.
        app.clock.advance(290);
        app.verify_offline(&old_token, API).await.expect("the retired key's token still verifies");

        // After the retention, the key leaves the JWKS and the janitor
        // deletes its row.
        app.clock.advance(app.settings.key_retention);
        app.keys.run_once().await.expect("maintenance");
        assert!(!kids(&app.jwks().await).contains(&first_kid));
        // (The state is read at the server's clock: the CLI would use the
        // wall clock, which this test has left behind.)
        let rows = tessera::store::signing_keys::list_keys(&mut app.database().conn().expect("conn"))
            .expect("keys");
        let state = rows.iter().find(|r| r.kid == first_kid)
            .map(|r| tessera::keys::keyset::key_state(r, app.clock_now()));
        assert!(matches!(state, None | Some("removed")), "{state:?}");
    }
}

both_backends! {
    async fn retire_now_takes_a_key_out_at_once_and_a_successor_signs(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let kid = kids(&app.jwks().await)[0].clone();
        let before = app.access_token(&client).await;

        let refused = tessera(&app, &["keys", "retire", &kid]);
        assert!(!refused.status.success(), "--now is required");
        let done = json_of(&tessera(&app, &["keys", "retire", &kid, "--now", "--json"]));
        assert_eq!(done["kid"], kid.as_str());
        let successor = done["successor"].as_str().expect("a successor").to_owned();

        // The CLI used the wall clock; the server's clock catches up.
        app.catch_up_with_wall_clock(5);
        app.keys.run_once().await.expect("maintenance");
        assert_eq!(kids(&app.jwks().await), vec![successor.clone()]);
        assert!(app.verify_offline(&before, API).await.is_err(), "its tokens fail at once");
        let rs = {
            let mut s = spec("", &[]);
            s.can_introspect = true;
            app.create_client(s).await
        };
        assert_eq!(app.introspect(&rs, &before).await, serde_json::json!({"active": false}));
        let after = app.access_token(&client).await;
        assert_eq!(kid_of(&after), successor);
        app.verify_offline(&after, API).await.expect("the successor's tokens verify");
    }
}

both_backends! {
    async fn keys_rotate_pre_publishes_and_export_matches_the_served_jwks(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let listed = json_of(&tessera(&app, &["keys", "list", "--json"]));
        assert_eq!(listed.as_array().expect("array").len(), 1);
        assert_eq!(listed[0]["state"], "active");
        assert_eq!(listed[0]["alg"], "ES256");

        let rotated = json_of(&tessera(&app, &["keys", "rotate", "--json"]));
        assert_eq!(rotated["state"], "pending", "in the JWKS one check interval later");
        assert!(rotated["activates_at"].as_i64().expect("activates_at") >= rotated["created_at"].as_i64().expect("created_at") + LEAD);
        let again = tessera(&app, &["keys", "rotate"]);
        assert!(!again.status.success(), "one pending key at a time");
        assert!(String::from_utf8_lossy(&again.stderr).contains("already pending or published"));

        let exported = json_of(&tessera(&app, &["keys", "export-jwks"]));
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

fn openssl_key(dir: &std::path::Path, name: &str, args: &[&str]) -> Option<std::path::PathBuf> {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&path)
        .output()
        .ok()?;
    out.status.success().then_some(path)
}

fn import_at_server_time(app: &TestApp, pem: &std::path::Path) -> String {
    use tessera::keys::{KeyEncryptionKey, import, rotation};
    let text = std::fs::read_to_string(pem).expect("PEM");
    let (alg, der) = import::pkcs8_from_pem(&text).expect("a supported key");
    let (kek, _) = KeyEncryptionKey::load(&app.settings.keys_dir, None)
        .expect("KEK")
        .expect("KEK exists");
    let db = app.database();
    let mut conn = db.conn().expect("connection");
    let policy = app.settings.rotation_policy().expect("policy");
    rotation::rotate_now(&mut conn, &kek, &policy, app.clock_now(), Some((alg, &der)))
        .expect("import")
        .kid
}

both_backends! {
    async fn keys_of_each_algorithm_can_be_imported_and_sign(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rs = {
            let mut s = spec("", &[]);
            s.can_introspect = true;
            app.create_client(s).await
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = [
            ("ES256", "EC", openssl_key(dir.path(), "ec.pem", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])),
            ("EdDSA", "OKP", openssl_key(dir.path(), "ed.pem", &["-algorithm", "ed25519"])),
            ("RS256", "RSA", openssl_key(dir.path(), "rsa.pem", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])),
        ];
        if keys.iter().any(|(_, _, k)| k.is_none()) {
            assert!(std::env::var_os("CI").is_none(), "openssl must be installed under CI");
            eprintln!("SKIPPED key import: the openssl command is not available");
            return;
        }
        for (n, (alg, kty, pem)) in keys.into_iter().enumerate() {
            let pem = pem.expect("generated");
            let kid = if n == 0 {
                let imported = json_of(&tessera(&app, &["keys", "import", pem.to_str().expect("path"), "--json"]));
                assert_eq!(imported["alg"], alg);
                assert_eq!(imported["state"], "pending");
                imported["kid"].as_str().expect("kid").to_owned()
            } else {
                // The CLI runs on the wall clock, which the test's clock has
                // left behind: import the later keys at the server's time.
                import_at_server_time(&app, &pem)
            };
            // Pre-published like any rotation; after the lead it signs. (The
            // CLI stamped the key with the wall clock, which may be ahead of
            // the test's clock: catch up first.)
            app.catch_up_with_wall_clock(LEAD + 10);
            app.keys.run_once().await.expect("maintenance");
            let jwks = app.jwks().await;
            let jwk = jwks["keys"].as_array().expect("keys").iter()
                .find(|k| k["kid"] == kid.as_str())
                .unwrap_or_else(|| panic!("{alg} key {kid} is not published at {}: {jwks}", app.clock_now()))
                .clone();
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["alg"], alg);
            assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
            let token = app.access_token(&client).await;
            assert_eq!(kid_of(&token), kid, "{alg} key signs");
            assert_eq!(app.introspect(&rs, &token).await["active"], true, "{alg} token verifies");
        }
        // A key too weak is refused.
        let weak = openssl_key(dir.path(), "weak.pem", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])
            .expect("openssl");
        let out = tessera(&app, &["keys", "import", weak.to_str().expect("path")]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("2048"), "{}", String::from_utf8_lossy(&out.stderr));
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
            let url = format!("{}/oauth2/token", twin.base);
            let http = app.http.clone();
            let auth = crate::helpers::basic_header(&client.id, &client.secret);
            async move {
                let body: Value = http.post(url).header("authorization", auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials").send().await.expect("POST")
                    .json().await.expect("JSON");
                body["access_token"].as_str().expect("token").to_owned()
            }
        };
        let own_jwks = || async {
            app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("GET").bytes().await.expect("body")
        };
        assert_eq!(own_jwks().await, twin_jwks(&twin).await, "byte-identical JWKS");
        assert_eq!(kid_of(&app.access_token(&client).await), kid_of(&twin_token(&twin).await));

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
        let (ta, tb) = (app.access_token(&client).await, twin_token(&twin).await);
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
        assert_eq!(kid_of(&app.access_token(&client).await), current);
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
        let listed = json_of(&tessera(&app, &["keys", "list", "--json"]));
        assert_eq!(listed.as_array().expect("array").len(), 1, "nothing was added");
        let usage = tessera(&app, &["keys", "retire", "some-kid"]);
        assert_eq!(usage.status.code(), Some(2), "retire without --now is a usage error");
    }
}

both_backends! {
    async fn two_server_processes_agree_on_the_jwks_and_the_signing_key_across_a_rotation(backend) {
        use crate::helpers::{ProcessConfig, basic_header, start_binary};
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
        let http = reqwest::Client::new();
        let jwks = |base: &str| {
            let (http, url) = (http.clone(), format!("{base}/.well-known/jwks.json"));
            async move { http.get(url).send().await.expect("GET").bytes().await.expect("body") }
        };
        let token_kid = |base: &str| {
            let (http, url) = (http.clone(), format!("{base}/oauth2/token"));
            let auth = basic_header(&client.id, &client.secret);
            async move {
                let body: Value = http.post(url).header("authorization", auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials").send().await.expect("POST")
                    .json().await.expect("JSON");
                kid_of(body["access_token"].as_str().expect("token"))
            }
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
        let next = json_of(&out)["kid"].as_str().expect("kid").to_owned();
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

both_backends! {
    async fn keys_list_shows_created_activates_and_retires_in_text_and_json(backend) {
        let app = spawn_app_with(&backend, fast_rotation).await;
        let rotated = json_of(&tessera(&app, &["keys", "rotate", "--json"]));
        for name in ["created", "activates", "retires"] {
            assert_eq!(rotated[name], rotated[format!("{name}_at")], "{name} in the rotate output");
        }
        let listed = json_of(&tessera(&app, &["keys", "list", "--json"]));
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
