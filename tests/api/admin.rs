//! The admin API: authorization per RFC 6750, and every action on both
//! databases.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, spawn_app, spec};

const API: &str = "https://api.example.com";

fn tessera(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .env_remove("TESSERA_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the tessera binary")
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document")
}

/// A client with the admin scope whose tokens are meant for this issuer.
async fn admin_token(app: &TestApp) -> String {
    let mut admin = spec("tessera:admin", &[]);
    admin.name = "admin".to_owned();
    let client = app.create_client(admin).await;
    app.access_token(&client).await
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

both_backends! {
    async fn the_admin_api_wants_a_tessera_admin_token_of_this_issuer(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let (status, challenge, _) = call(&app, Method::GET, "/admin/clients", None, None).await;
        assert_eq!(status, 401);
        assert!(challenge.starts_with("Bearer realm=") && !challenge.contains("error="), "{challenge}");

        let (status, challenge, body) = call(&app, Method::GET, "/admin/clients", Some("garbage"), None).await;
        assert_eq!(status, 401);
        assert!(challenge.contains("error=\"invalid_token\""));
        assert_eq!(body["error"], "invalid_token");

        let plain = app.create_client(spec("read", &[])).await;
        let token = app.access_token(&plain).await;
        let (status, challenge, _) = call(&app, Method::GET, "/admin/clients", Some(&token), None).await;
        assert_eq!(status, 403);
        assert!(challenge.contains("insufficient_scope") && challenge.contains("scope=\"tessera:admin\""));

        // The admin scope, but a token meant for another API.
        let elsewhere = app.create_client(spec("tessera:admin", &[API])).await;
        let token = app.access_token(&elsewhere).await;
        let (status, _, _) = call(&app, Method::GET, "/admin/clients", Some(&token), None).await;
        assert_eq!(status, 401);

        // A revoked admin token stops working at once.
        let admin = app.create_client(spec("tessera:admin", &[])).await;
        let token = app.access_token(&admin).await;
        assert_eq!(call(&app, Method::GET, "/admin/clients", Some(&token), None).await.0, 200);
        assert_eq!(app.revoke(&admin, &token).await.status(), 200);
        assert_eq!(call(&app, Method::GET, "/admin/clients", Some(&token), None).await.0, 401);
    }
}

both_backends! {
    async fn every_client_action_works_through_the_admin_api(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());

        let (status, _, created) = call(&app, Method::POST, "/admin/clients", t,
            Some(json!({"name": "billing", "scope": "read write", "audiences": [API], "client_id": "billing"}))).await;
        assert_eq!(status, 201, "{created}");
        let billing = TestClient {
            id: created["client_id"].as_str().expect("id").to_owned(),
            secret: created["client_secret"].as_str().expect("secret").to_owned(),
        };
        assert_eq!(billing.id, "billing");
        assert_eq!(call(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "again", "client_id": "billing"}))).await.0, 409);
        let (status, _, body) = call(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "x", "scope": "bad\"scope"}))).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(call(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "x", "nonsense": 1}))).await.0, 400);

        let (_, _, page) = call(&app, Method::GET, "/admin/clients?limit=1", t, None).await;
        assert_eq!(page["clients"].as_array().expect("clients").len(), 1);
        let next = page["next"].as_str().expect("a next cursor").to_owned();
        let (_, _, rest) = call(&app, Method::GET, &format!("/admin/clients?after={next}"), t, None).await;
        assert!(!rest["clients"].as_array().expect("clients").is_empty());

        let (status, _, shown) = call(&app, Method::GET, "/admin/clients/billing", t, None).await;
        assert_eq!(status, 200);
        assert_eq!(shown["scope"], "read write");
        assert!(!shown.to_string().contains(&billing.secret));

        let (status, _, updated) = call(&app, Method::PATCH, "/admin/clients/billing", t, Some(json!({"scope": "read", "access_token_ttl": 120}))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["scope"], "read");
        let body = app.token(&billing, &[]).await;
        assert_eq!(body["scope"], "read");
        assert_eq!(body["expires_in"], 120);
        assert_eq!(call(&app, Method::PATCH, "/admin/clients/billing", t, Some(json!({"secret": "x"}))).await.0, 400);

        assert_eq!(call(&app, Method::POST, "/admin/clients/billing/disable", t, None).await.0, 200);
        let form = [("grant_type", "client_credentials")];
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 401);
        assert_eq!(call(&app, Method::POST, "/admin/clients/billing/enable", t, None).await.0, 200);
        app.clock.advance(1);
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 200);

        let held = app.access_token(&billing).await;
        let (status, _, done) = call(&app, Method::POST, "/admin/clients/billing/revoke-all", t, None).await;
        assert_eq!(status, 200);
        assert!(done["tokens_valid_after"].is_i64());
        assert_eq!(app.introspect(&billing, &held).await, json!({"active": false}));

        let (status, _, _) = call(&app, Method::POST, "/admin/clients/billing/rotate-secret", t, Some(json!({"grace_seconds": "zero"}))).await;
        assert_eq!(status, 400, "a bad grace is refused, not defaulted");
        let (status, _, rotated) = call(&app, Method::POST, "/admin/clients/billing/rotate-secret", t, Some(json!({"grace_seconds": 0}))).await;
        assert_eq!(status, 200);
        let new_secret = rotated["client_secret"].as_str().expect("secret").to_owned();
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 401);
        assert_eq!(app.post_token(&form, Some((&billing.id, &new_secret))).await.status(), 200);

        let (_, _, events) = call(&app, Method::GET, "/admin/audit?client=billing", t, None).await;
        let kinds: Vec<&str> = events.as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
        for kind in ["client_created", "client_changed", "client_disabled", "client_enabled", "revoke_all", "secret_rotated"] {
            assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
        }

        assert_eq!(call(&app, Method::DELETE, "/admin/clients/billing", t, None).await.0, 204);
        assert_eq!(call(&app, Method::GET, "/admin/clients/billing", t, None).await.0, 404);
        assert_eq!(call(&app, Method::DELETE, "/admin/clients/billing", t, None).await.0, 404);
    }
}

both_backends! {
    async fn keys_can_be_listed_and_rotated_through_the_admin_api(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());
        let (_, _, keys) = call(&app, Method::GET, "/admin/keys", t, None).await;
        assert_eq!(keys.as_array().expect("keys").len(), 1);
        assert_eq!(keys[0]["state"], "active");
        let (status, _, rotated) = call(&app, Method::POST, "/admin/keys/rotate", t, None).await;
        assert_eq!(status, 200);
        assert_eq!(rotated["state"], "pending");
        let interval = app.settings.key_check_interval;
        assert_eq!(rotated["publishes_at"].as_i64(), rotated["created_at"].as_i64().map(|t| t + interval));
        assert_eq!(app.jwks().await["keys"].as_array().expect("keys").len(), 1,
            "not before every node has had a check interval to read it");
        app.clock.advance(interval);
        assert_eq!(app.jwks().await["keys"].as_array().expect("keys").len(), 2, "then published");
        let (_, _, keys) = call(&app, Method::GET, "/admin/keys", t, None).await;
        assert_eq!(keys[1]["state"], "published");
        assert_eq!(call(&app, Method::POST, "/admin/keys/rotate", t, None).await.0, 409);
    }
}

both_backends! {
    async fn an_anonymous_request_learns_nothing_from_validation(backend) {
        use reqwest::Method;
        let app = crate::helpers::spawn_app_with(&backend, |s| s.access_token_ttl = 120).await;
        let (status, _, _) = call(&app, Method::POST, "/admin/clients", None, Some(json!({"nonsense": true}))).await;
        assert_eq!(status, 401, "authorization comes before the body");
        let (status, _, _) = call(&app, Method::GET, "/admin/audit?limit=notanumber", None, None).await;
        assert_eq!(status, 401);

        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());
        let (status, _, created) = call(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "svc", "client_id": "svc"}))).await;
        assert_eq!(status, 201, "{created}");
        let (_, _, shown) = call(&app, Method::GET, "/admin/clients/svc", t, None).await;
        assert_eq!(shown["access_token_ttl"], 120, "the server's default lifetime");
        let (status, _, body) = call(&app, Method::PATCH, "/admin/clients/svc", t, Some(json!({}))).await;
        assert_eq!(status, 400);
        assert!(body["error_description"].as_str().unwrap_or_default().contains("nothing to change"));
        assert_eq!(call(&app, Method::GET, "/admin/audit?limit=notanumber", t, None).await.0, 400);
    }
}

both_backends! {
    async fn responses_that_carry_a_secret_are_never_cached(backend) {
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let send = |req: reqwest::RequestBuilder| req.header("authorization", format!("Bearer {admin}")).send();
        let created = send(app.http.post(app.url("/admin/clients")).json(&json!({"name": "svc", "client_id": "svc"})))
            .await
            .expect("request");
        let rotated = send(app.http.post(app.url("/admin/clients/svc/rotate-secret")).json(&json!({"grace_seconds": 0})))
            .await
            .expect("request");
        for (what, resp) in [("create", created), ("rotate-secret", rotated)] {
            assert!(resp.status().is_success(), "{what}: {}", resp.status());
            assert_eq!(resp.headers()["cache-control"], "no-store", "{what}");
            assert_eq!(resp.headers()["pragma"], "no-cache", "{what}");
            let body: Value = resp.json().await.expect("JSON");
            assert!(body["client_secret"].as_str().is_some_and(|s| s.starts_with("tsec_")), "{what}");
        }
    }
}

both_backends! {
    async fn disable_answers_the_same_from_the_cli_and_the_admin_api(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let one = app.create_client(spec("read", &[API])).await;
        let two = app.create_client(spec("read", &[API])).await;
        app.token(&one, &[]).await;

        let by_cli = json_stdout(&tessera(&app, &["client", "disable", &one.id, "--json"]));
        let (status, _, by_api) = call(&app, Method::POST, &format!("/admin/clients/{}/disable", two.id), Some(&admin), None).await;
        assert_eq!(status, 200);
        let keys = |v: &Value| v.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&by_cli), keys(&by_api));
        assert_eq!(by_cli["client_id"], one.id.as_str());
        assert_eq!((by_cli["disabled"].as_bool(), by_api["disabled"].as_bool()), (Some(true), Some(true)));
        assert_eq!(by_cli["refresh_families_revoked"], 1);
        assert_eq!(by_api["refresh_families_revoked"], 0);
        assert!(by_cli["tokens_valid_after"].is_i64() && by_api["tokens_valid_after"].is_i64());
    }
}
