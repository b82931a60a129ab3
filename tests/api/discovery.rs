//! JWKS, RFC 8414 metadata, health and the generic 404.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_app, spec};

both_backends! {
    async fn jwks_publishes_only_public_members_with_kid_use_and_alg(backend) {
        let app = spawn_app(&backend).await;
        let resp = app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "public, max-age=300");
        assert!(resp.headers().contains_key("etag"));
        let jwks: Value = resp.json().await.expect("JSON");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let key = keys[0].as_object().expect("object");
        let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
    }
}

both_backends! {
    async fn jwks_kid_is_the_rfc_7638_thumbprint(backend) {
        use base64::Engine;
        let app = spawn_app(&backend).await;
        let jwks = app.jwks().await;
        let key = &jwks["keys"][0];
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            key["crv"].as_str().expect("crv"),
            key["kty"].as_str().expect("kty"),
            key["x"].as_str().expect("x"),
            key["y"].as_str().expect("y"),
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        assert_eq!(
            key["kid"],
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        );
    }
}

both_backends! {
    async fn jwks_answers_304_to_a_matching_if_none_match(backend) {
        let app = spawn_app(&backend).await;
        let first = app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("request");
        let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
        let again = app
            .http
            .get(app.url("/.well-known/jwks.json"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("request");
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.expect("body").is_empty());
        let other = app
            .http
            .get(app.url("/.well-known/jwks.json"))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .expect("request");
        assert_eq!(other.status(), 200);
    }
}

both_backends! {
    async fn metadata_follows_rfc_8414_with_the_exact_issuer(backend) {
        let app = spawn_app(&backend).await;
        app.create_client(spec("read write", &[])).await;
        let resp = app
            .http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let meta: Value = resp.json().await.expect("JSON");
        assert_eq!(meta["issuer"], app.issuer.as_str());
        assert_eq!(meta["token_endpoint"], format!("{}/oauth2/token", app.issuer));
        assert_eq!(meta["jwks_uri"], format!("{}/.well-known/jwks.json", app.issuer));
        assert_eq!(
            meta["grant_types_supported"],
            serde_json::json!(["client_credentials", "refresh_token"])
        );
        assert_eq!(
            meta["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(meta["access_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
        assert_eq!(meta["scopes_supported"], serde_json::json!(["read", "write"]));
    }
}

both_backends! {
    async fn a_configured_issuer_is_used_byte_for_byte(backend) {
        let app = crate::helpers::spawn_app_with(&backend, |s| {
            s.issuer = Some("https://auth.example.com/tenant-a".to_owned());
        })
        .await;
        let meta: Value = app
            .http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON");
        assert_eq!(meta["issuer"], "https://auth.example.com/tenant-a");
        assert_eq!(meta["token_endpoint"], "https://auth.example.com/tenant-a/oauth2/token");
        let client = app.create_client(spec("read", &["https://api.example.com"])).await;
        let body = app.token(&client, &[]).await;
        let claims = crate::helpers::claims_of(body["access_token"].as_str().expect("token"));
        assert_eq!(claims["iss"], "https://auth.example.com/tenant-a");
    }
}

both_backends! {
    async fn healthz_answers_and_unknown_paths_are_json_404(backend) {
        let app = spawn_app(&backend).await;
        let health = app.http.get(app.url("/healthz")).send().await.expect("request");
        assert_eq!(health.status(), 200);
        assert_eq!(health.headers()["x-content-type-options"], "nosniff");
        let missing = app.http.get(app.url("/nope")).send().await.expect("request");
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.headers()["content-type"], "application/json");
        let body: Value = missing.json().await.expect("JSON");
        assert_eq!(body["error"], "not_found");
    }
}

both_backends! {
    async fn readyz_is_ready_with_a_database_and_an_active_key(backend) {
        let app = spawn_app(&backend).await;
        let resp = app.http.get(app.url("/readyz")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["database"], "ok");
        assert_eq!(body["checks"]["signing_key"], "ok");
    }
}

/// PostgreSQL only: an outage is made by refusing new connections and
/// ending the open ones (SQLite has no server to take away).
#[actix_web::test]
async fn readyz_answers_503_while_the_database_is_away_and_recovers() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let Some(backend) = crate::helpers::Backend::postgres("readyz_outage") else {
        return;
    };
    let crate::helpers::Backend::Postgres { admin_url } = &backend else {
        return;
    };
    let app = crate::helpers::spawn_app_with(&backend, |s| s.db_timeout = 1).await;
    let client = app
        .create_client(spec("read", &["https://api.example.com"]))
        .await;
    let held = app.access_token(&client).await;
    let name = app
        .db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();
    let mut admin = PgConnection::establish(admin_url).expect("admin connection");
    // ALLOW_CONNECTIONS binds superusers too (a connection limit does not).
    let cut = |away: bool, admin: &mut PgConnection| {
        diesel::sql_query(format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {}",
            !away
        ))
        .execute(admin)
        .expect("alter");
        if away {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .execute(admin)
            .expect("terminate");
        }
    };
    cut(true, &mut admin);
    let mut saw_503 = false;
    for _ in 0..5 {
        let resp = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request");
        if resp.status() == 503 {
            let body: Value = resp.json().await.expect("JSON");
            assert_eq!(body["checks"]["database"], "unavailable");
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "readiness never noticed the outage");
    // A client with good credentials is told to retry, never that they are
    // wrong, and gets no token (checklist G1).
    let resp = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body.get("access_token").is_none());
    // A revocation that cannot be recorded is never acknowledged (RFC 7009
    // §2.2.1: on 503 the client must assume the token still exists).
    assert_eq!(app.revoke(&client, &held).await.status(), 503);
    // JWKS and metadata keep being served from memory meanwhile.
    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(jwks.status(), 200);
    cut(false, &mut admin);
    let mut recovered = false;
    for _ in 0..20 {
        if app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("request")
            .status()
            == 200
        {
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(recovered, "the server did not recover by itself");
    let resp = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_eq!(resp.status(), 200, "tokens again after the outage");
    assert_eq!(
        app.introspect(&client, &held).await["active"],
        true,
        "the failed revocation changed nothing"
    );
}

/// A panicking handler behind the server's middleware answers a generic
/// JSON 500 that leaks nothing (checklist F3).
#[actix_web::test]
async fn a_panicking_handler_becomes_a_generic_json_500() {
    use actix_web::{App, test as atest, web};
    async fn boom() -> actix_web::HttpResponse {
        panic!("secret detail: /etc/tessera/keys/kek at src/oops.rs:42");
    }
    let app = atest::init_service(
        App::new()
            .wrap(actix_web::middleware::from_fn(tessera::http::catch_panics))
            .route("/boom", web::get().to(boom))
            .route("/fine", web::get().to(|| async { "fine" })),
    )
    .await;
    // The server renders the middleware's error; the test service hands it
    // back as an error, rendered here the same way.
    let error = atest::try_call_service(&app, atest::TestRequest::get().uri("/boom").to_request())
        .await
        .expect_err("the panic became an error response");
    let resp = error.error_response();
    assert_eq!(resp.status(), 500);
    let bytes = actix_web::body::to_bytes(resp.into_body())
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"error": "server_error", "error_description": "internal server error"})
    );
    let ok = atest::call_service(&app, atest::TestRequest::get().uri("/fine").to_request()).await;
    assert_eq!(ok.status(), 200, "the worker survives");
}
