//! The `tessera` binary itself: client management with `--json`, migrate,
//! configuration errors, and a client it creates getting a token over HTTP
//! from curl and from the oauth2 crate.

use std::process::Command;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{cli_json, spawn_app, tessera_cli};

const API: &str = "https://api.example.com";

both_backends! {
    async fn client_create_json_prints_only_the_id_and_the_secret(backend) {
        let app = spawn_app(&backend).await;
        let out = tessera_cli(&app, &["client", "create", "--name", "billing", "--scope", "read write",
            "--audience", API, "--access-token-ttl", "120", "--json"]);
        let created = cli_json(&out);
        let fields: Vec<&String> = created.as_object().expect("object").keys().collect();
        assert_eq!(fields, ["client_id", "client_secret"]);
        let secret = created["client_secret"].as_str().expect("secret");
        assert!(secret.starts_with("tsec_"));

        let shown = cli_json(&tessera_cli(&app, &["client", "show", created["client_id"].as_str().expect("id"), "--json"]));
        assert_eq!(shown["name"], "billing");
        assert_eq!(shown["scope"], "read write");
        assert_eq!(shown["audiences"], serde_json::json!([API]));
        assert_eq!(shown["access_token_ttl"], 120);
        assert_eq!(shown["disabled"], false);
        let text = serde_json::to_string(&shown).expect("JSON");
        assert!(!text.contains(secret), "show never reveals the secret");
    }
}

both_backends! {
    async fn a_client_created_by_the_cli_gets_a_token_from_the_oauth2_crate(backend) {
        let app = spawn_app(&backend).await;
        let created = cli_json(&tessera_cli(&app, &["client", "create", "--name", "svc", "--scope", "read",
            "--audience", API, "--json"]));
        let oauth = BasicClient::new(ClientId::new(created["client_id"].as_str().expect("id").to_owned()))
            .set_client_secret(ClientSecret::new(created["client_secret"].as_str().expect("secret").to_owned()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"));
        let token = oauth
            .exchange_client_credentials()
            .request_async(&app.http)
            .await
            .expect("token");
        app.verify_offline(token.access_token().secret(), API).await.expect("verifies");
    }
}

both_backends! {
    async fn a_client_created_by_the_cli_gets_a_token_with_curl(backend) {
        let app = spawn_app(&backend).await;
        let created = cli_json(&tessera_cli(&app, &["client", "create", "--name", "svc", "--scope", "read",
            "--audience", API, "--json"]));
        let user = format!(
            "{}:{}",
            created["client_id"].as_str().expect("id"),
            created["client_secret"].as_str().expect("secret")
        );
        let url = app.url("/oauth2/token");
        // curl runs in a blocking task: the server shares this test's runtime.
        let out = actix_web::rt::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "--fail-with-body", "-u", &user, "-d", "grant_type=client_credentials", &url])
                .output()
        })
        .await
        .expect("task")
        .expect("curl is installed");
        let body = cli_json(&out);
        assert_eq!(body["expires_in"], 300, "the default access-token lifetime");
        let token = body["access_token"].as_str().expect("token");
        app.verify_offline(token, API).await.expect("verifies");
        // The README's whole path: that same token validated by another
        // stack, PyJWT, against the published JWKS (typ, iss, aud checked).
        if let Some(out) =
            crate::interop::pyjwt_validate(token, &app.url("/.well-known/jwks.json"), &app.issuer, API).await
        {
            assert!(out.status.success(), "PyJWT refused: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), created["client_id"]);
        }
    }
}

both_backends! {
    async fn list_disable_and_delete_speak_json(backend) {
        let app = spawn_app(&backend).await;
        let a = cli_json(&tessera_cli(&app, &["client", "create", "--name", "a", "--json"]));
        let b = cli_json(&tessera_cli(&app, &["client", "create", "--name", "b", "--id", "service-b", "--json"]));
        assert_eq!(b["client_id"], "service-b");
        let a_id = a["client_id"].as_str().expect("id");

        let listed = cli_json(&tessera_cli(&app, &["client", "list", "--json"]));
        let ids: Vec<&str> = listed.as_array().expect("array").iter().map(|c| c["client_id"].as_str().expect("id")).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&a_id) && ids.contains(&"service-b"));

        let disabled = cli_json(&tessera_cli(&app, &["client", "disable", a_id, "--json"]));
        assert_eq!(disabled["client_id"], a_id);
        assert_eq!(disabled["disabled"], true);
        assert!(disabled["tokens_valid_after"].is_i64());
        let shown = cli_json(&tessera_cli(&app, &["client", "show", a_id, "--json"]));
        assert_eq!(shown["disabled"], true);
        assert!(shown["disabled_at"].is_i64());

        let deleted = cli_json(&tessera_cli(&app, &["client", "delete", "service-b", "--json"]));
        assert_eq!(deleted, serde_json::json!({"client_id": "service-b", "deleted": true}));
        let gone = tessera_cli(&app, &["client", "show", "service-b", "--json"]);
        assert_eq!(gone.status.code(), Some(1));
        assert!(gone.stdout.is_empty());
        assert!(String::from_utf8_lossy(&gone.stderr).contains("no client"));
    }
}

both_backends! {
    async fn invalid_client_options_exit_2_and_name_the_flag(backend) {
        let app = spawn_app(&backend).await;
        for (args, flag) in [
            (&["--name", "x", "--scope", "bad\"scope"][..], "--scope"),
            (&["--name", "x", "--audience", "not a uri"][..], "--audience"),
            (&["--name", "x", "--access-token-ttl", "0"][..], "--access-token-ttl"),
            (&["--name", "x", "--id", "has space"][..], "--id"),
            (&["--name", ""][..], "--name"),
        ] {
            let mut all = vec!["client", "create"];
            all.extend_from_slice(args);
            let out = tessera_cli(&app, &all);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(String::from_utf8_lossy(&out.stderr).contains(flag), "{args:?}");
        }
        let dup = tessera_cli(&app, &["client", "create", "--name", "x", "--id", "same"]);
        assert!(dup.status.success());
        let again = tessera_cli(&app, &["client", "create", "--name", "x", "--id", "same"]);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    }
}

both_backends! {
    async fn migrate_reports_an_up_to_date_database(backend) {
        let app = spawn_app(&backend).await;
        let out = tessera_cli(&app, &["migrate"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
}

#[test]
fn migrate_on_an_empty_database_lists_what_it_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("migrate")
        .current_dir(dir.path())
        .env("TESSERA_DATABASE_URL", "sqlite://fresh.db")
        .output()
        .expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("applied 20261128000001"), "{stdout}");
}

#[test]
fn a_bad_setting_stops_the_cli_with_its_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, value) in [
        ("TESSERA_BIND", "not-an-address"),
        ("TESSERA_DATABASE_URL", "mysql://x"),
        ("TESSERA_ISSUER", "http://auth.example.com"),
        ("TESSERA_ACCESS_TOKEN_TTL", "forever"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["client", "list"])
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{var}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(var), "{var}");
    }
}

#[test]
fn a_config_file_is_read_and_its_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "database_url = \"sqlite://from-file.db\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["client", "list", "--json"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("from-file.db").exists());

    std::fs::write(&file, "no_such_setting = 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["client", "list"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tessera.toml") && stderr.contains("no_such_setting"),
        "{stderr}"
    );
}

both_backends! {
    async fn revoke_all_cuts_off_every_token_the_client_holds(backend) {
        let app = spawn_app(&backend).await;
        let created = cli_json(&tessera_cli(&app, &["client", "create", "--name", "svc", "--scope", "read",
            "--audience", API, "--json"]));
        let client = crate::helpers::TestClient {
            id: created["client_id"].as_str().expect("id").to_owned(),
            secret: created["client_secret"].as_str().expect("secret").to_owned(),
        };
        let body = app.token(&client, &[]).await;
        let at = body["access_token"].as_str().expect("at");
        let rt = body["refresh_token"].as_str().expect("rt");

        let done = cli_json(&tessera_cli(&app, &["client", "revoke-all", &client.id, "--json"]));
        assert_eq!(done["client_id"], client.id.as_str());
        assert_eq!(done["refresh_families_revoked"], 1);
        assert!(done["tokens_valid_after"].is_i64());
        // The server learns of a change made elsewhere at its next client
        // cache check; run it now.
        app.sync_clients().await;

        assert_eq!(app.introspect(&client, at).await, serde_json::json!({"active": false}));
        assert_eq!(app.introspect(&client, rt).await, serde_json::json!({"active": false}));
        let fresh = app.access_token(&client).await;
        assert_eq!(app.introspect(&client, &fresh).await["active"], true, "the client keeps working");

        let missing = tessera_cli(&app, &["client", "revoke-all", "no-such-client", "--json"]);
        assert_eq!(missing.status.code(), Some(1));
    }
}

both_backends! {
    async fn update_and_enable_change_a_client_from_the_cli(backend) {
        let app = spawn_app(&backend).await;
        let created = cli_json(&tessera_cli(&app, &["client", "create", "--name", "svc", "--scope", "read write",
            "--audience", API, "--id", "svc", "--json"]));
        let _ = created;
        let updated = cli_json(&tessera_cli(&app, &["client", "update", "svc", "--scope", "read", "--name", "service",
            "--access-token-ttl", "60", "--no-refresh-tokens", "--can-introspect", "--json"]));
        assert_eq!(updated["scope"], "read");
        assert_eq!(updated["name"], "service");
        assert_eq!(updated["access_token_ttl"], 60);
        assert_eq!(updated["refresh_tokens"], false);
        assert_eq!(updated["can_introspect"], true);
        let cleared = cli_json(&tessera_cli(&app, &["client", "update", "svc", "--clear-audiences", "--json"]));
        assert_eq!(cleared["audiences"], serde_json::json!([]));
        let bad = tessera_cli(&app, &["client", "update", "svc", "--access-token-ttl", "0"]);
        assert_eq!(bad.status.code(), Some(2));

        cli_json(&tessera_cli(&app, &["client", "disable", "svc", "--json"]));
        let enabled = cli_json(&tessera_cli(&app, &["client", "enable", "svc", "--json"]));
        assert_eq!(enabled["disabled"], false);
        let missing = tessera_cli(&app, &["client", "enable", "nope"]);
        assert_eq!(missing.status.code(), Some(1));
    }
}

/// The first run, as the README describes it: `tessera` with no subcommand
/// and no configuration serves, on an empty SQLite database under `data/`
/// and a new key-encryption key under `keys/`, with the issuer derived from
/// the address it listens on, and says how to create the first client.
#[test]
fn a_bare_first_run_serves_with_the_defaults_and_says_how_to_begin() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        // Only the port changes: the default 8080 may be taken here.
        .env("TESSERA_BIND", "127.0.0.1:0")
        .env_remove("TESSERA_CONFIG")
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_KEYS_DIR")
        .env_remove("TESSERA_ISSUER")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tessera");
    // Lines arrive through a channel, so a server that never prints the
    // hint fails the test instead of hanging it.
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut port, mut hint) = (None, false);
    while !hint {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            break;
        };
        if let Some(rest) = line.split("listening on port ").nth(1) {
            port = rest
                .split([' ', ','])
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
        hint = line.contains("no clients yet; create one with: tessera client create");
    }
    let issuer = port.map(|port| format!("http://127.0.0.1:{port}"));
    let metadata = issuer.as_ref().map(|issuer| {
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                &format!("{issuer}/.well-known/oauth-authorization-server"),
            ])
            .output()
            .expect("curl is installed")
    });
    let _ = child.kill();
    let _ = child.wait();
    let (issuer, metadata) = issuer
        .zip(metadata)
        .expect("the server says where it listens");
    assert!(hint, "no hint to create the first client");
    let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("metadata JSON");
    assert_eq!(metadata["issuer"], issuer.as_str());
    let db = dir.path().join("data/tessera.db");
    assert!(db.is_file(), "the default database");
    // WAL is a property of the file, so it shows from outside the server.
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::SqliteConnection::establish(&db.to_string_lossy()).expect("open it");
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(&mut conn)
        .expect("journal mode");
    assert_eq!(mode.journal_mode, "wal");
    let keys = std::fs::metadata(dir.path().join("keys")).expect("the default keys folder");
    assert_eq!(keys.permissions().mode() & 0o777, 0o700);
}
