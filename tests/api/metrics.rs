//! `GET /metrics`: Prometheus text that counts what happened, with labels
//! from fixed sets only, on the main address or on one of its own.

use std::collections::HashMap;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";

/// `name{labels} value` lines, keyed by everything before the value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(app: &TestApp, base: &str) -> (u16, String, String) {
    let resp = app
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.text().await.expect("body"))
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key}"))
}

both_backends! {
    async fn metrics_count_tokens_failures_reuse_revocations_and_introspections(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;

        let before = samples(&scrape(&app, &app.base).await.2);
        assert_eq!(value(&before, r#"tessera_token_requests_total{grant="client_credentials",outcome="issued"}"#), 0.0,
            "known series start at zero");

        let first = app.token(&client, &[]).await;
        let rt = first["refresh_token"].as_str().expect("rt").to_owned();
        let at = first["access_token"].as_str().expect("at").to_owned();
        let wrong = app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, "tsec_wrong"))).await;
        assert_eq!(wrong.status(), 401);
        let unknown = app.post_token(&[("grant_type", "client_credentials")], Some(("nobody", "tsec_x"))).await;
        assert_eq!(unknown.status(), 401);
        let refreshed = app.post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;
        assert_eq!(refreshed.status(), 200);
        let reused = app.post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;
        assert_eq!(reused.status(), 400, "reuse");
        let fresh = app.access_token(&client).await;
        assert_eq!(app.introspect(&client, &fresh).await["active"], true);
        assert_eq!(app.revoke(&client, &fresh).await.status(), 200);
        assert_eq!(app.introspect(&client, &fresh).await["active"], false);
        assert_eq!(app.introspect(&client, &at).await["active"], false, "revoked with its family");
        let missing = app.http.get(app.url("/no/such/path/12345")).send().await.expect("404");
        assert_eq!(missing.status(), 404);

        let (status, content_type, text) = scrape(&app, &app.base).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let after = samples(&text);
        let count = |key: &str| value(&after, key);
        assert_eq!(count(r#"tessera_token_requests_total{grant="client_credentials",outcome="issued"}"#), 2.0);
        assert_eq!(count(r#"tessera_token_requests_total{grant="client_credentials",outcome="invalid_client"}"#), 2.0);
        assert_eq!(count(r#"tessera_token_requests_total{grant="refresh_token",outcome="issued"}"#), 1.0);
        assert_eq!(count(r#"tessera_token_requests_total{grant="refresh_token",outcome="invalid_grant"}"#), 1.0);
        assert_eq!(count(r#"tessera_client_auth_failures_total{reason="wrong_secret"}"#), 1.0);
        assert_eq!(count(r#"tessera_client_auth_failures_total{reason="unknown_client"}"#), 1.0);
        assert_eq!(count(r#"tessera_client_auth_failures_total{reason="rate_limited"}"#), 0.0);
        assert_eq!(count("tessera_refresh_reuse_detected_total"), 1.0);
        assert_eq!(count(r#"tessera_revocations_total{kind="access_token"}"#), 1.0);
        assert_eq!(count(r#"tessera_revocations_total{kind="refresh_family"}"#), 0.0, "reuse is counted apart");
        assert_eq!(count(r#"tessera_introspections_total{result="active"}"#), 1.0);
        assert_eq!(count(r#"tessera_introspections_total{result="inactive"}"#), 2.0);
        assert!(count(r#"tessera_http_request_duration_seconds_count{endpoint="/oauth2/token",method="POST"}"#) >= 6.0);
        assert_eq!(count(r#"tessera_http_requests_total{endpoint="/oauth2/token",method="POST",status="401"}"#), 2.0);
        assert_eq!(count(r#"tessera_http_requests_total{endpoint="unmatched",method="GET",status="404"}"#), 1.0);
        assert_eq!(count("tessera_db_pool_max_connections"), f64::from(app.settings.db_pool_size));
        assert!(count(r#"tessera_db_pool_connections{state="idle"}"#) + count(r#"tessera_db_pool_connections{state="in_use"}"#) >= 1.0);
        assert_eq!(count(r#"tessera_db_errors_total{kind="unavailable"}"#), 0.0);
        assert_eq!(count("tessera_published_keys"), 1.0);
        assert_eq!(count("tessera_http_requests_in_flight"), 1.0, "the scrape itself");
        app.clock.advance(120);
        let aged = samples(&scrape(&app, &app.base).await.2);
        assert!(value(&aged, "tessera_signing_key_age_seconds") >= 120.0);

        // Bounded labels: no client id, no raw path, no token.
        for leak in [client.id.as_str(), "/no/such/path", "nobody", &rt] {
            assert!(!text.contains(leak), "{leak} in the metrics");
        }
    }
}

both_backends! {
    async fn metrics_can_have_an_address_of_their_own(backend) {
        let app = spawn_app_with(&backend, |s| s.metrics_bind = Some("127.0.0.1:0".into())).await;
        let port = app.metrics_port.expect("a metrics port");
        assert_ne!(port, app.port);
        let metrics_base = format!("http://127.0.0.1:{port}");

        let (status, _, text) = scrape(&app, &metrics_base).await;
        assert_eq!(status, 200);
        assert!(text.contains("tessera_token_requests_total"));
        let (status, _, _) = scrape(&app, &app.base).await;
        assert_eq!(status, 404, "not on the public address");
        let token = app.http.post(format!("{metrics_base}/oauth2/token")).send().await.expect("request");
        assert_eq!(token.status(), 404, "nothing else on the metrics address");
        let jwks = app.http.get(app.url("/.well-known/jwks.json")).send().await.expect("request");
        assert_eq!(jwks.status(), 200, "the public address serves the rest");
        let body: Value = app.http.get(app.url("/healthz")).send().await.expect("healthz").json().await.expect("JSON");
        assert_eq!(body["status"], "ok");
    }
}
