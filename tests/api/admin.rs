//! The admin API: authorization per RFC 6750, and every action on both
//! databases.

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    TestApp, TestClient, bearer_request, claims_of, cli_json, spawn_app, spec, tessera_cli,
};

const API: &str = "https://api.example.com";
const API2: &str = "https://reports.example.com";

/// An access token for `client`, obtained the way an automation would get
/// its admin token: with a stock OAuth client.
async fn oauth2_token(app: &TestApp, client: &TestClient) -> String {
    BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("URL"))
        .exchange_client_credentials()
        .request_async(&app.http)
        .await
        .expect("a token from the oauth2 crate")
        .access_token()
        .secret()
        .to_owned()
}

async fn refresh(app: &TestApp, client: &TestClient, rt: &str) -> (u16, Value) {
    let resp = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            Some((&client.id, &client.secret)),
        )
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

fn rt_of(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// Everything an admin request could change, as one comparable string.
async fn snapshot(app: &TestApp) -> String {
    let db = app.database();
    let now = app.clock_now();
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = db.conn().expect("connection");
        let clients = tessera::clients::list(&mut conn).expect("clients");
        let events = tessera::store::audit::list(&mut conn, None, None, 10_000).expect("audit");
        let keys: Vec<tessera::keys::keyset::KeySummary> =
            tessera::store::signing_keys::list_keys(&mut conn)
                .expect("keys")
                .iter()
                .map(|r| tessera::keys::keyset::KeySummary::of(r, now))
                .collect();
        serde_json::to_string(&(clients, events, keys)).expect("JSON")
    })
    .await
    .expect("blocking task")
}

/// A client with the admin scope whose tokens are meant for this issuer.
async fn admin_token(app: &TestApp) -> String {
    let mut admin = spec("tessera:admin", &[]);
    admin.name = "admin".to_owned();
    let client = app.create_client(admin).await;
    app.access_token(&client).await
}

both_backends! {
    async fn the_admin_api_wants_a_tessera_admin_token_of_this_issuer(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let (status, challenge, _) = bearer_request(&app, Method::GET, "/admin/clients", None, None).await;
        assert_eq!(status, 401);
        assert!(challenge.starts_with("Bearer realm=") && !challenge.contains("error="), "{challenge}");

        let (status, challenge, body) = bearer_request(&app, Method::GET, "/admin/clients", Some("garbage"), None).await;
        assert_eq!(status, 401);
        assert!(challenge.contains("error=\"invalid_token\""));
        assert_eq!(body["error"], "invalid_token");

        let plain = app.create_client(spec("read", &[])).await;
        let token = app.access_token(&plain).await;
        let (status, challenge, _) = bearer_request(&app, Method::GET, "/admin/clients", Some(&token), None).await;
        assert_eq!(status, 403);
        assert!(challenge.contains("insufficient_scope") && challenge.contains("scope=\"tessera:admin\""));

        // The admin scope, but a token meant for another API.
        let elsewhere = app.create_client(spec("tessera:admin", &[API])).await;
        let token = app.access_token(&elsewhere).await;
        let (status, _, _) = bearer_request(&app, Method::GET, "/admin/clients", Some(&token), None).await;
        assert_eq!(status, 401);

        // A revoked admin token stops working at once.
        let admin = app.create_client(spec("tessera:admin", &[])).await;
        let token = app.access_token(&admin).await;
        assert_eq!(bearer_request(&app, Method::GET, "/admin/clients", Some(&token), None).await.0, 200);
        assert_eq!(app.revoke(&admin, &token).await.status(), 200);
        assert_eq!(bearer_request(&app, Method::GET, "/admin/clients", Some(&token), None).await.0, 401);
    }
}

both_backends! {
    async fn every_client_action_works_through_the_admin_api(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());

        let (status, _, created) = bearer_request(&app, Method::POST, "/admin/clients", t,
            Some(json!({"name": "billing", "scope": "read write", "audiences": [API], "client_id": "billing"}))).await;
        assert_eq!(status, 201, "{created}");
        let billing = TestClient {
            id: created["client_id"].as_str().expect("id").to_owned(),
            secret: created["client_secret"].as_str().expect("secret").to_owned(),
        };
        assert_eq!(billing.id, "billing");
        assert_eq!(bearer_request(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "again", "client_id": "billing"}))).await.0, 409);
        let (status, _, body) = bearer_request(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "x", "scope": "bad\"scope"}))).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(bearer_request(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "x", "nonsense": 1}))).await.0, 400);

        let (_, _, page) = bearer_request(&app, Method::GET, "/admin/clients?limit=1", t, None).await;
        assert_eq!(page["clients"].as_array().expect("clients").len(), 1);
        let next = page["next"].as_str().expect("a next cursor").to_owned();
        let (_, _, rest) = bearer_request(&app, Method::GET, &format!("/admin/clients?after={next}"), t, None).await;
        assert!(!rest["clients"].as_array().expect("clients").is_empty());

        let (status, _, shown) = bearer_request(&app, Method::GET, "/admin/clients/billing", t, None).await;
        assert_eq!(status, 200);
        assert_eq!(shown["scope"], "read write");
        assert!(!shown.to_string().contains(&billing.secret));

        let (status, _, updated) = bearer_request(&app, Method::PATCH, "/admin/clients/billing", t, Some(json!({"scope": "read", "access_token_ttl": 120}))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["scope"], "read");
        let body = app.token(&billing, &[]).await;
        assert_eq!(body["scope"], "read");
        assert_eq!(body["expires_in"], 120);
        assert_eq!(bearer_request(&app, Method::PATCH, "/admin/clients/billing", t, Some(json!({"secret": "x"}))).await.0, 400);

        assert_eq!(bearer_request(&app, Method::POST, "/admin/clients/billing/disable", t, None).await.0, 200);
        let form = [("grant_type", "client_credentials")];
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 401);
        assert_eq!(bearer_request(&app, Method::POST, "/admin/clients/billing/enable", t, None).await.0, 200);
        app.clock.advance(1);
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 200);

        let held = app.access_token(&billing).await;
        let (status, _, done) = bearer_request(&app, Method::POST, "/admin/clients/billing/revoke-all", t, None).await;
        assert_eq!(status, 200);
        assert!(done["tokens_valid_after"].is_i64());
        assert_eq!(app.introspect(&billing, &held).await, json!({"active": false}));

        let (status, _, _) = bearer_request(&app, Method::POST, "/admin/clients/billing/rotate-secret", t, Some(json!({"grace_seconds": "zero"}))).await;
        assert_eq!(status, 400, "a bad grace is refused, not defaulted");
        let (status, _, rotated) = bearer_request(&app, Method::POST, "/admin/clients/billing/rotate-secret", t, Some(json!({"grace_seconds": 0}))).await;
        assert_eq!(status, 200);
        let new_secret = rotated["client_secret"].as_str().expect("secret").to_owned();
        assert_eq!(app.post_token(&form, Some((&billing.id, &billing.secret))).await.status(), 401);
        assert_eq!(app.post_token(&form, Some((&billing.id, &new_secret))).await.status(), 200);

        let (_, _, events) = bearer_request(&app, Method::GET, "/admin/audit?client=billing", t, None).await;
        let kinds: Vec<&str> = events.as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
        for kind in ["client_created", "client_changed", "client_disabled", "client_enabled", "revoke_all", "secret_rotated"] {
            assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
        }

        assert_eq!(bearer_request(&app, Method::DELETE, "/admin/clients/billing", t, None).await.0, 204);
        assert_eq!(bearer_request(&app, Method::GET, "/admin/clients/billing", t, None).await.0, 404);
        assert_eq!(bearer_request(&app, Method::DELETE, "/admin/clients/billing", t, None).await.0, 404);
    }
}

both_backends! {
    async fn keys_can_be_listed_and_rotated_through_the_admin_api(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());
        let (_, _, keys) = bearer_request(&app, Method::GET, "/admin/keys", t, None).await;
        assert_eq!(keys.as_array().expect("keys").len(), 1);
        assert_eq!(keys[0]["state"], "active");
        let (status, _, rotated) = bearer_request(&app, Method::POST, "/admin/keys/rotate", t, None).await;
        assert_eq!(status, 200);
        assert_eq!(rotated["state"], "pending");
        let interval = app.settings.key_check_interval;
        assert_eq!(rotated["publishes_at"].as_i64(), rotated["created_at"].as_i64().map(|t| t + interval));
        assert_eq!(app.jwks().await["keys"].as_array().expect("keys").len(), 1,
            "not before every node has had a check interval to read it");
        app.clock.advance(interval);
        assert_eq!(app.jwks().await["keys"].as_array().expect("keys").len(), 2, "then published");
        let (_, _, keys) = bearer_request(&app, Method::GET, "/admin/keys", t, None).await;
        assert_eq!(keys[1]["state"], "published");
        assert_eq!(bearer_request(&app, Method::POST, "/admin/keys/rotate", t, None).await.0, 409);
    }
}

both_backends! {
    async fn an_anonymous_request_learns_nothing_from_validation(backend) {
        use reqwest::Method;
        let app = crate::helpers::spawn_app_with(&backend, |s| s.access_token_ttl = 120).await;
        let (status, _, _) = bearer_request(&app, Method::POST, "/admin/clients", None, Some(json!({"nonsense": true}))).await;
        assert_eq!(status, 401, "authorization comes before the body");
        let (status, _, _) = bearer_request(&app, Method::GET, "/admin/audit?limit=notanumber", None, None).await;
        assert_eq!(status, 401);

        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());
        let (status, _, created) = bearer_request(&app, Method::POST, "/admin/clients", t, Some(json!({"name": "svc", "client_id": "svc"}))).await;
        assert_eq!(status, 201, "{created}");
        let (_, _, shown) = bearer_request(&app, Method::GET, "/admin/clients/svc", t, None).await;
        assert_eq!(shown["access_token_ttl"], 120, "the server's default lifetime");
        let (status, _, body) = bearer_request(&app, Method::PATCH, "/admin/clients/svc", t, Some(json!({}))).await;
        assert_eq!(status, 400);
        assert!(body["error_description"].as_str().unwrap_or_default().contains("nothing to change"));
        assert_eq!(bearer_request(&app, Method::GET, "/admin/audit?limit=notanumber", t, None).await.0, 400);
    }
}

/// A body that would do harm if the route accepted it.
fn harmful_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/admin/clients") => {
            Some(json!({"name": "intruder", "client_id": "intruder", "scope": "tessera:admin"}))
        }
        ("patch", _) => {
            Some(json!({"scope": "tessera:admin", "allowed_networks": ["192.0.2.0/24"]}))
        }
        (_, p) if p.ends_with("/rotate-secret") => Some(json!({"grace_seconds": 0})),
        _ => None,
    }
}

both_backends! {
    async fn every_admin_route_refuses_callers_without_a_valid_admin_token_and_changes_nothing(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let mut victim = spec("read", &[API]);
        victim.id = Some("victim".to_owned());
        let victim = app.create_client(victim).await;
        let mut admin = spec("tessera:admin", &[]);
        admin.name = "admin".to_owned();
        let admin = app.create_client(admin).await;
        // No audience of its own: the issuer's, as an admin token's.
        let plain = app.create_client(spec("read", &[])).await;

        let expired = oauth2_token(&app, &admin).await;
        app.clock.advance(300 + 1);
        let revoked = oauth2_token(&app, &admin).await;
        assert_eq!(app.revoke(&admin, &revoked).await.status(), 200);
        let unscoped = oauth2_token(&app, &plain).await;
        let (kid, _) = app.signing_key();

        let cases: [(&str, Option<&str>, u16, Option<&str>); 5] = [
            ("no token", None, 401, None),
            ("a malformed token", Some("not-a-jwt"), 401, Some("invalid_token")),
            ("a token without tessera:admin", Some(unscoped.as_str()), 403, Some("insufficient_scope")),
            ("an expired admin token", Some(expired.as_str()), 401, Some("invalid_token")),
            ("a revoked admin token", Some(revoked.as_str()), 401, Some("invalid_token")),
        ];
        let routes: Vec<&(&str, &str)> = tessera::http::ROUTES
            .iter()
            .filter(|(_, path)| path.starts_with("/admin"))
            .collect();
        assert!(routes.len() >= 12, "the admin routes: {routes:?}");

        let before = snapshot(&app).await;
        for (method, path) in routes {
            let url: Vec<&str> = path
                .split('/')
                .map(|segment| match segment {
                    "{kid}" => kid.as_str(),
                    s if s.starts_with('{') => victim.id.as_str(),
                    s => s,
                })
                .collect();
            let url = url.join("/");
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            for (what, token, status, error) in &cases {
                let (got, challenge, body) =
                    bearer_request(&app, verb.clone(), &url, *token, harmful_body(method, path)).await;
                let case = format!("{method} {path} with {what}");
                assert_eq!(got, *status, "{case}: {body}");
                assert!(challenge.starts_with("Bearer realm=\"tessera-admin\""), "{case}: {challenge}");
                match error {
                    None => {
                        assert!(!challenge.contains("error="), "{case}: {challenge}");
                        assert_eq!(body, Value::Null, "{case}: no body");
                    }
                    Some(code) => {
                        assert!(challenge.contains(&format!("error=\"{code}\"")), "{case}: {challenge}");
                        assert_eq!(body["error"], *code, "{case}");
                    }
                }
                if *status == 403 {
                    assert!(challenge.contains("scope=\"tessera:admin\""), "{case}: {challenge}");
                }
            }
        }
        assert_eq!(snapshot(&app).await, before, "a refused admin request changed something");

        // The refusals were about the tokens: a valid one is admitted, and
        // the victim's secret was never rotated.
        let valid = oauth2_token(&app, &admin).await;
        assert_eq!(bearer_request(&app, Method::GET, "/admin/clients/victim", Some(&valid), None).await.0, 200);
        let form = [("grant_type", "client_credentials")];
        assert_eq!(app.post_token(&form, Some((&victim.id, &victim.secret))).await.status(), 200);
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
    async fn every_patchable_field_takes_effect_over_http(backend) {
        use reqwest::Method;
        let app = spawn_app(&backend).await;
        let admin = admin_token(&app).await;
        let t = Some(admin.as_str());
        let patch = |body: Value| {
            let app = &app;
            async move {
                let (status, _, view) = bearer_request(app, Method::PATCH, "/admin/clients/svc", t, Some(body)).await;
                assert_eq!(status, 200, "{view}");
                view
            }
        };
        let (status, _, created) = bearer_request(&app, Method::POST, "/admin/clients", t,
            Some(json!({"name": "svc", "client_id": "svc", "scope": "read", "audiences": [API]}))).await;
        assert_eq!(status, 201, "{created}");
        let svc = TestClient {
            id: "svc".to_owned(),
            secret: created["client_secret"].as_str().expect("secret").to_owned(),
        };
        let other = app.create_client(spec("read", &[API])).await;
        let others_token = app.access_token(&other).await;

        assert_eq!(patch(json!({"name": "renamed"})).await["name"], "renamed");

        // Audiences: replaced, and the first is the default `aud`.
        assert_eq!(patch(json!({"audiences": [API2, API]})).await["audiences"], json!([API2, API]));
        assert_eq!(claims_of(&app.access_token(&svc).await)["aud"], API2);
        let body = app.token(&svc, &[("resource", API)]).await;
        assert_eq!(claims_of(body["access_token"].as_str().expect("at"))["aud"], API);

        // The introspection permission: another client's token, granted
        // and withdrawn.
        assert_eq!(app.introspect(&svc, &others_token).await, json!({"active": false}));
        assert_eq!(patch(json!({"can_introspect": true})).await["can_introspect"], true);
        let seen = app.introspect(&svc, &others_token).await;
        assert_eq!(seen["active"], true);
        assert_eq!(seen["client_id"], other.id.as_str());
        patch(json!({"can_introspect": false})).await;
        assert_eq!(app.introspect(&svc, &others_token).await, json!({"active": false}));

        // Refresh tokens off: none issued, and those held stop working.
        let held = rt_of(&app.token(&svc, &[]).await);
        assert_eq!(patch(json!({"refresh_tokens": false})).await["refresh_tokens"], false);
        assert!(app.token(&svc, &[]).await.get("refresh_token").is_none());
        let (status, body) = refresh(&app, &svc, &held).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
        patch(json!({"refresh_tokens": true})).await;
        rt_of(&app.token(&svc, &[]).await);

        // The family's absolute lifetime ends a chain of refreshes whose
        // idle lifetime has not run out (the server default is days).
        let view = patch(json!({"refresh_token_ttl": 120, "refresh_family_ttl": 150})).await;
        assert_eq!((view["refresh_token_ttl"].as_i64(), view["refresh_family_ttl"].as_i64()), (Some(120), Some(150)));
        let rt = rt_of(&app.token(&svc, &[]).await);
        app.clock.advance(100);
        let (status, body) = refresh(&app, &svc, &rt).await;
        assert_eq!(status, 200, "{body}");
        app.clock.advance(51);
        let (status, body) = refresh(&app, &svc, &rt_of(&body)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family ended at 150 s");

        // The idle lifetime on its own.
        patch(json!({"refresh_family_ttl": 3600})).await;
        let rt = rt_of(&app.token(&svc, &[]).await);
        app.clock.advance(121);
        let (status, body) = refresh(&app, &svc, &rt).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "idle for more than 120 s");
    }
}

both_backends! {
    async fn the_cli_manages_clients_while_the_server_is_stopped(backend) {
        let mut app = spawn_app(&backend).await;
        let mut kept = spec("read", &[API]);
        kept.id = Some("kept".to_owned());
        let kept = app.create_client(kept).await;
        let mut quiet = spec("read", &[API]);
        quiet.id = Some("quiet".to_owned());
        let quiet = app.create_client(quiet).await;
        let other = app.create_client(spec("read", &[API])).await;

        app.stop().await;
        assert!(app.http.get(app.url("/healthz")).send().await.is_err(), "the server is down");

        let created = cli_json(&tessera_cli(&app, &["client", "create", "--name", "offline", "--id", "offline",
            "--scope", "read", "--audience", API, "--json"]));
        let offline = TestClient {
            id: "offline".to_owned(),
            secret: created["client_secret"].as_str().expect("secret").to_owned(),
        };
        let rotated = cli_json(&tessera_cli(&app, &["client", "rotate-secret", "kept", "--grace", "0", "--json"]));
        let kept_secret = rotated["client_secret"].as_str().expect("secret").to_owned();
        let updated = cli_json(&tessera_cli(&app, &["client", "update", "offline", "--access-token-ttl", "90",
            "--audience", API2, "--audience", API, "--can-introspect", "--json"]));
        assert_eq!(updated["audiences"], json!([API2, API]));
        cli_json(&tessera_cli(&app, &["client", "update", "kept", "--refresh-token-ttl", "120",
            "--refresh-family-ttl", "150", "--json"]));
        cli_json(&tessera_cli(&app, &["client", "update", "quiet", "--no-refresh-tokens", "--json"]));

        app.restart().await.expect("restart");
        // What the CLI wrote is stamped with the wall clock.
        app.catch_up_with_wall_clock(1);

        let body = app.token(&offline, &[]).await;
        assert_eq!(body["expires_in"], 90);
        assert_eq!(claims_of(body["access_token"].as_str().expect("at"))["aud"], API2);
        let others_token = app.access_token(&other).await;
        assert_eq!(app.introspect(&offline, &others_token).await["active"], true, "--can-introspect");

        let form = [("grant_type", "client_credentials")];
        assert_eq!(app.post_token(&form, Some((&kept.id, &kept.secret))).await.status(), 401, "rotated with --grace 0");
        let kept = TestClient { id: kept.id, secret: kept_secret };
        let rt = rt_of(&app.token(&kept, &[]).await);
        app.clock.advance(100);
        let (status, body) = refresh(&app, &kept, &rt).await;
        assert_eq!(status, 200, "{body}");
        app.clock.advance(51);
        let (status, _) = refresh(&app, &kept, &rt_of(&body)).await;
        assert_eq!(status, 400, "--refresh-family-ttl 150");
        let rt = rt_of(&app.token(&kept, &[]).await);
        app.clock.advance(121);
        assert_eq!(refresh(&app, &kept, &rt).await.0, 400, "--refresh-token-ttl 120");

        assert!(app.token(&quiet, &[]).await.get("refresh_token").is_none(), "--no-refresh-tokens");
        cli_json(&tessera_cli(&app, &["client", "update", "quiet", "--refresh-tokens", "--json"]));
        app.sync_clients().await;
        app.catch_up_with_wall_clock(1);
        rt_of(&app.token(&quiet, &[]).await);
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

        let by_cli = cli_json(&tessera_cli(&app, &["client", "disable", &one.id, "--json"]));
        let (status, _, by_api) = bearer_request(&app, Method::POST, &format!("/admin/clients/{}/disable", two.id), Some(&admin), None).await;
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
