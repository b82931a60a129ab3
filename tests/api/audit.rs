//! The audit log: each listed action leaves its event, failed
//! authentications with their source address, no row ever holds a secret
//! or a token, `--since` and `since=` leave older events out, and the
//! janitor keeps the log to its retention.

use std::process::Command;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";

fn tessera(app: &TestApp, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .env_remove("TESSERA_CONFIG")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn audit(app: &TestApp, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--json", "--limit", "10000"];
    args.extend_from_slice(extra);
    let out = tessera(app, &args);
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// The events of `client_id` (all when `None`), read from the database.
async fn stored(app: &TestApp, client_id: Option<&str>) -> Vec<tessera::store::audit::AuditEvent> {
    let db = app.database();
    let client_id = client_id.map(str::to_owned);
    actix_web::rt::task::spawn_blocking(move || {
        tessera::store::audit::list(
            &mut db.conn().expect("connection"),
            client_id.as_deref(),
            None,
            10_000,
        )
        .expect("audit")
    })
    .await
    .expect("blocking task")
}

/// Follows the log: each check sees only the events written since the last.
struct Log {
    seen: i64,
}

impl Log {
    async fn new(app: &TestApp) -> Self {
        let seen = stored(app, None)
            .await
            .iter()
            .map(|e| e.id)
            .max()
            .unwrap_or(0);
        Self { seen }
    }

    /// Asserts that the action just taken wrote each of `expected`.
    async fn wrote(&mut self, app: &TestApp, action: &str, expected: &[&str]) {
        let fresh: Vec<_> = stored(app, None)
            .await
            .into_iter()
            .filter(|e| e.id > self.seen)
            .collect();
        let kinds: Vec<&str> = fresh.iter().map(|e| e.kind.as_str()).collect();
        for kind in expected {
            assert!(
                kinds.contains(kind),
                "{action}: no {kind} event among {kinds:?}"
            );
        }
        self.seen = fresh.iter().map(|e| e.id).max().unwrap_or(self.seen);
    }
}

async fn admin_call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, body) =
        crate::helpers::bearer_request(app, method, path, Some(token), body).await;
    (status, body)
}

both_backends! {
    async fn every_listed_action_leaves_its_event_and_none_holds_a_secret(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let mut log = Log::new(&app).await;
        let mut secrets: Vec<String> = Vec::new();

        let client = app.create_client(spec("read", &[API])).await;
        secrets.push(client.secret.clone());
        log.wrote(&app, "create", &["client_created", "secret_created"]).await;

        // A failed authentication, with where it came from; then a swapped
        // id and secret, whose secret must not reach the log.
        let form = [("grant_type", "client_credentials")];
        let wrong = "tsec_wrongwrongwrongwrongwrongwrongwrongwrong";
        secrets.push(wrong.to_owned());
        assert_eq!(app.post_token(&form, Some((&client.id, wrong))).await.status(), 401);
        log.wrote(&app, "wrong secret", &["client_auth_failed"]).await;
        assert_eq!(app.post_token(&form, Some((&client.secret, &client.id))).await.status(), 401);
        log.wrote(&app, "swapped credentials", &["client_auth_failed"]).await;

        let body = app.token(&client, &[]).await;
        let at = body["access_token"].as_str().expect("at").to_owned();
        let rt = body["refresh_token"].as_str().expect("rt").to_owned();
        secrets.extend([at.clone(), rt.clone()]);
        assert_eq!(app.revoke(&client, &at).await.status(), 200);
        log.wrote(&app, "revoke an access token", &["access_token_revoked"]).await;

        let refreshed = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;
        let refreshed: Value = refreshed.json().await.expect("JSON");
        secrets.push(refreshed["refresh_token"].as_str().expect("rt").to_owned());
        secrets.push(refreshed["access_token"].as_str().expect("at").to_owned());
        let reuse = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;
        assert_eq!(reuse.status(), 400);
        log.wrote(&app, "reuse a refresh token", &["refresh_token_reuse"]).await;

        let rt = app.token(&client, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        secrets.push(rt.clone());
        assert_eq!(app.revoke(&client, &rt).await.status(), 200);
        log.wrote(&app, "revoke a refresh token", &["refresh_token_revoked"]).await;

        let new_secret = {
            let db = app.database();
            let (id, now) = (client.id.clone(), app.clock_now());
            actix_web::rt::task::spawn_blocking(move || {
                tessera::clients::rotate_secret(&mut db.conn().expect("conn"), &id, 60, now)
                    .expect("rotate").0.expose().to_owned()
            }).await.expect("task")
        };
        secrets.push(new_secret);
        log.wrote(&app, "rotate a secret", &["secret_rotated"]).await;
        app.revoke_all(&client.id).await;
        log.wrote(&app, "revoke-all", &["revoke_all"]).await;
        app.disable_client(&client.id).await;
        log.wrote(&app, "disable", &["client_disabled"]).await;
        app.delete_client(&client.id).await;
        log.wrote(&app, "delete", &["client_deleted"]).await;

        // The same through the admin API, whose answers carry secrets too.
        let mut admin = spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        let token = app.access_token(&admin).await;
        secrets.extend([admin.secret.clone(), token.clone()]);
        log.wrote(&app, "create the admin client", &["client_created", "secret_created"]).await;
        let (status, created) = admin_call(&app, &token, Method::POST, "/admin/clients", Some(json!({"name": "svc", "client_id": "svc"}))).await;
        assert_eq!(status, 201);
        secrets.push(created["client_secret"].as_str().expect("secret").to_owned());
        log.wrote(&app, "POST /admin/clients", &["client_created", "secret_created"]).await;
        let (status, _) = admin_call(&app, &token, Method::PATCH, "/admin/clients/svc", Some(json!({"scope": "read"}))).await;
        assert_eq!(status, 200);
        log.wrote(&app, "PATCH", &["client_changed"]).await;
        let (status, rotated) = admin_call(&app, &token, Method::POST, "/admin/clients/svc/rotate-secret", Some(json!({"grace_seconds": 0}))).await;
        assert_eq!(status, 200);
        secrets.push(rotated["client_secret"].as_str().expect("secret").to_owned());
        log.wrote(&app, "rotate-secret", &["secret_rotated"]).await;
        for (action, kind) in [("revoke-all", "revoke_all"), ("disable", "client_disabled"), ("enable", "client_enabled")] {
            let (status, _) = admin_call(&app, &token, Method::POST, &format!("/admin/clients/svc/{action}"), None).await;
            assert_eq!(status, 200);
            log.wrote(&app, action, &[kind]).await;
        }
        assert_eq!(admin_call(&app, &token, Method::DELETE, "/admin/clients/svc", None).await.0, 204);
        log.wrote(&app, "DELETE", &["client_deleted"]).await;
        let (status, key) = admin_call(&app, &token, Method::POST, "/admin/keys/rotate", None).await;
        assert_eq!(status, 200);
        log.wrote(&app, "rotate keys", &["key_published"]).await;
        tessera(&app, &["keys", "retire", key["kid"].as_str().expect("kid"), "--now"]);
        log.wrote(&app, "retire a key", &["key_retired"]).await;

        let failed = audit(&app, &["--client", &client.id])
            .into_iter()
            .find(|e| e["kind"] == "client_auth_failed")
            .expect("a failed authentication of the client");
        assert_eq!(failed["source"], "127.0.0.1");
        assert!(failed["detail"].as_str().expect("detail").contains("wrong client secret"));

        // Every row, as the CLI and the admin API show it and as stored.
        let (status, over_http) = admin_call(&app, &token, Method::GET, "/admin/audit?limit=10000", None).await;
        assert_eq!(status, 200);
        let everything = format!(
            "{}\n{}\n{:?}",
            serde_json::to_string(&audit(&app, &[])).expect("JSON"),
            over_http,
            stored(&app, None).await
        );
        for secret in &secrets {
            assert!(!everything.contains(secret.as_str()), "a secret or token reached the audit log");
        }
        assert!(!everything.contains("tsec_") && !everything.contains("trt_"), "{everything}");
    }
}

both_backends! {
    async fn since_leaves_older_events_out_on_the_cli_and_the_admin_api(backend) {
        let app = spawn_app(&backend).await;
        let now = app.clock_now();
        app.clock.set(now - 2 * 3600 - 60);
        let old = app.create_client(spec("read", &[API])).await;
        app.clock.set(now);
        let new = app.create_client(spec("read", &[API])).await;
        let created = |events: &[Value], client: &TestClient| {
            events.iter().any(|e| e["kind"] == "client_created" && e["client_id"] == client.id.as_str())
        };

        let all = audit(&app, &[]);
        assert!(created(&all, &old) && created(&all, &new));
        // A duration counts back from the wall clock, at or after `now`.
        let hour = audit(&app, &["--since", "1h"]);
        assert!(created(&hour, &new) && !created(&hour, &old), "{hour:?}");
        let three_hours = audit(&app, &["--since", "3h"]);
        assert!(created(&three_hours, &new) && created(&three_hours, &old));
        let instant = audit(&app, &["--since", &(now - 3600).to_string()]);
        assert!(created(&instant, &new) && !created(&instant, &old), "{instant:?}");

        let mut admin = spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        let token = app.access_token(&admin).await;
        let read = |since: i64| {
            let (app, token) = (&app, &token);
            async move {
                let (status, events) = admin_call(app, token, reqwest::Method::GET, &format!("/admin/audit?since={since}&limit=10000"), None).await;
                assert_eq!(status, 200, "{events}");
                events.as_array().expect("events").clone()
            }
        };
        let recent = read(now - 3600).await;
        assert!(created(&recent, &new) && !created(&recent, &old), "{recent:?}");
        assert!(recent.iter().all(|e| e["at"].as_i64() >= Some(now - 3600)));
        let older = read(now - 3 * 3600).await;
        assert!(created(&older, &new) && created(&older, &old));
    }
}

both_backends! {
    async fn the_janitor_deletes_events_past_the_retention_and_keeps_the_rest(backend) {
        let retention = 86_400;
        let app = spawn_app_with(&backend, |s| {
            s.janitor_interval = 1;
            s.audit_retention = retention;
        })
        .await;
        let start = app.clock_now();
        let old = app.create_client(spec("read", &[API])).await;
        app.clock.advance(1);
        let kept = app.create_client(spec("read", &[API])).await;
        assert_eq!(stored(&app, Some(&old.id)).await.len(), 2);

        // The older client's events are now one second past the retention;
        // the newer's are exactly at it, which is still kept.
        app.clock.set(start + retention + 1);
        let mut left = stored(&app, Some(&old.id)).await;
        for _ in 0..300 {
            if left.is_empty() {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
            left = stored(&app, Some(&old.id)).await;
        }
        assert!(left.is_empty(), "the janitor left {left:?}");
        let mut still: Vec<String> = stored(&app, Some(&kept.id)).await.into_iter().map(|e| e.kind).collect();
        still.sort();
        assert_eq!(still, ["client_created", "secret_created"]);
    }
}

both_backends! {
    async fn key_rotations_are_audited_and_clients_record_their_last_token(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.token(&client, &[]).await;
        let shown = tessera::clients::show(&mut app.database().conn().expect("conn"), &client.id).expect("client");
        assert_eq!(shown.last_token_at, Some(app.clock_now()));

        tessera(&app, &["keys", "rotate"]);
        assert!(kinds(&audit(&app, &[])).iter().any(|k| k == "key_published"));
    }
}

both_backends! {
    async fn last_token_at_moves_only_when_a_token_is_issued(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let last = |app: &TestApp| {
            tessera::clients::show(&mut app.database().conn().expect("conn"), &client.id)
                .expect("client")
                .last_token_at
        };
        let first = app.clock_now();
        let rt = app.token(&client, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        assert_eq!(last(&app), Some(first));

        // Past the once-a-minute throttle, refused grants of an
        // authenticated client: an unknown refresh token, a scope it lacks.
        app.clock.advance(120);
        let creds = Some((client.id.as_str(), client.secret.as_str()));
        let resp = app.post_token(&[("grant_type", "refresh_token"), ("refresh_token", "trt_unknown")], creds).await;
        assert_eq!(resp.status(), 400);
        let resp = app.post_token(&[("grant_type", "client_credentials"), ("scope", "admin")], creds).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(last(&app), Some(first), "a refused grant is not a token obtained");

        let resp = app.post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], creds).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(last(&app), Some(first + 120));
    }
}
