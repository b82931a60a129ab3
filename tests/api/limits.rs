//! Brute-force limits on client authentication: 429 with Retry-After after
//! a burst of failures, per client and address; a spoofed X-Forwarded-For
//! from an untrusted peer does not reset them; time does.

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app_with, spec};

const API: &str = "https://api.example.com";

async fn attempt(
    app: &TestApp,
    id: &str,
    secret: &str,
    forwarded: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", crate::helpers::basic_header(id, secret))
        .body("grant_type=client_credentials");
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("request")
}

both_backends! {
    async fn a_burst_of_failures_gets_429_until_time_passes(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.auth_failure_burst = 5;
            s.auth_failure_refill = 10;
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        for _ in 0..5 {
            assert_eq!(attempt(&app, &client.id, "tsec_wrong", None).await.status(), 401);
        }
        let refused = attempt(&app, &client.id, &client.secret, None).await;
        assert_eq!(refused.status(), 429, "even the right secret waits");
        let wait: i64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!(wait >= 1);
        let body: serde_json::Value = refused.json().await.expect("JSON");
        assert_eq!(body["error"], "temporarily_unavailable");
        // A spoofed header from an untrusted peer changes nothing.
        assert_eq!(attempt(&app, &client.id, &client.secret, Some("198.51.100.7")).await.status(), 429);

        app.clock.advance(wait);
        assert_eq!(attempt(&app, &client.id, &client.secret, None).await.status(), 200);

        let db = app.database();
        let events = tessera::store::audit::list(&mut db.conn().expect("conn"), Some(&client.id), None, 50)
            .expect("audit");
        assert!(events.iter().any(|e| e.kind == "auth_rate_limited"), "the lockout is audited");
    }
}

both_backends! {
    async fn successful_clients_are_not_slowed(backend) {
        let app = spawn_app_with(&backend, |s| s.auth_failure_burst = 2).await;
        let client = app.create_client(spec("read", &[API])).await;
        for _ in 0..20 {
            assert_eq!(attempt(&app, &client.id, &client.secret, None).await.status(), 200);
        }
    }
}
