//! Logs never contain a secret or a token: the real binary runs at
//! RUST_LOG=trace through issuance, refresh, revocation, introspection,
//! the feed, the admin API and failed authentications, and its whole output
//! is searched for every secret and token the run handled.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    ProcessConfig, basic_header, claims_of, spawn_app, spec, start_binary_logging,
};

both_backends! {
    async fn a_trace_level_run_logs_no_secret_and_no_token(backend) {
        let app = spawn_app(&backend).await;
        app.stop().await;
        let client = app.create_client(spec("read", &["https://api.example.com"])).await;
        let rs = {
            let mut s = spec("", &[]);
            s.can_introspect = true;
            app.create_client(s).await
        };
        let admin = app.create_client(spec("tessera:admin", &[])).await;
        let config = ProcessConfig::of(&app);
        let (mut server, base, log) = actix_web::rt::task::spawn_blocking(move || {
            start_binary_logging(&config, &[("RUST_LOG", "trace")])
        })
        .await
        .expect("task");
        let http = reqwest::Client::new();
        let mut secrets = vec![client.secret.clone(), rs.secret.clone(), admin.secret.clone()];
        let post = |path: &str, auth: String, body: String| {
            let (http, url) = (http.clone(), format!("{base}{path}"));
            async move {
                http.post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .expect("request")
            }
        };
        let auth = basic_header(&client.id, &client.secret);
        let body: Value = post("/oauth2/token", auth.clone(), "grant_type=client_credentials".into())
            .await.json().await.expect("JSON");
        let at = body["access_token"].as_str().expect("at").to_owned();
        let rt = body["refresh_token"].as_str().expect("rt").to_owned();
        let refreshed: Value = post("/oauth2/token", auth.clone(), format!("grant_type=refresh_token&refresh_token={rt}"))
            .await.json().await.expect("JSON");
        let rt2 = refreshed["refresh_token"].as_str().expect("rt").to_owned();
        let at2 = refreshed["access_token"].as_str().expect("at").to_owned();
        // Reuse, a failed login, a secret sent as an id, revocation, introspection.
        post("/oauth2/token", auth.clone(), format!("grant_type=refresh_token&refresh_token={rt}")).await;
        post("/oauth2/token", basic_header(&client.id, "tsec_wrongwrongwrong"), "grant_type=client_credentials".into()).await;
        post("/oauth2/token", basic_header(&client.secret, &client.id), "grant_type=client_credentials".into()).await;
        post("/oauth2/revoke", auth.clone(), format!("token={at2}")).await;
        post("/oauth2/introspect", basic_header(&rs.id, &rs.secret), format!("token={at}")).await;
        http.get(format!("{base}/oauth2/revocations"))
            .header("authorization", basic_header(&rs.id, &rs.secret))
            .send().await.expect("feed");
        let admin_body: Value = post("/oauth2/token", basic_header(&admin.id, &admin.secret), "grant_type=client_credentials".into())
            .await.json().await.expect("JSON");
        let admin_token = admin_body["access_token"].as_str().expect("at").to_owned();
        let rotated: Value = http.post(format!("{base}/admin/clients/{}/rotate-secret", client.id))
            .header("authorization", format!("Bearer {admin_token}"))
            .json(&serde_json::json!({"grace_seconds": 60}))
            .send().await.expect("admin").json().await.expect("JSON");
        let jti_of = |token: &str| claims_of(token)["jti"].as_str().expect("jti").to_owned();
        let (issued_jti, revoked_jti) = (jti_of(&at), jti_of(&at2));
        secrets.extend([at, rt, rt2, at2, admin_token, auth, rotated["client_secret"].as_str().expect("secret").to_owned()]);
        // Also a token in a query string, where it does not belong.
        http.post(format!("{base}/oauth2/token?client_secret={}", client.secret)).send().await.expect("request");

        actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
        server.kill().expect("stop");
        server.wait().expect("reaped");
        let log = log.lock().expect("log").clone();
        assert!(log.contains("TRACE") || log.contains("DEBUG"), "the run really logged at trace level");
        for secret in &secrets {
            assert!(!log.contains(secret.as_str()), "the log contains a secret or token:\n{secret}");
        }
        for part in secrets.iter().filter(|s| s.starts_with("eyJ")).flat_map(|t| t.split('.')) {
            assert!(!log.contains(part), "the log contains part of a token");
        }
        assert!(!log.contains("tsec_") && !log.contains("trt_"), "a prefixed secret reached the log");

        // One line per request: method, path, status, latency, client, jti.
        let line = |needle: &str| {
            log.lines().find(|l| l.contains(needle)).map(str::to_owned)
                .unwrap_or_else(|| panic!("no request line with {needle:?} in:\n{log}"))
        };
        let issued = line(&format!("jti={issued_jti}"));
        assert!(issued.contains("POST /oauth2/token 200 "), "{issued}");
        assert!(issued.contains(&format!("client_id={} ", client.id)), "{issued}");
        assert!(issued.contains("ms "), "the latency: {issued}");
        let revoked = line("POST /oauth2/revoke 200 ");
        assert!(revoked.contains(&format!("client_id={} jti={revoked_jti}", client.id)), "{revoked}");
        let rotation = line("/rotate-secret 200 ");
        assert!(rotation.contains(&format!("client_id={} ", admin.id)), "the acting admin: {rotation}");
        let refused = line("POST /oauth2/token 401 ");
        assert!(refused.contains("client_id=- jti=-"), "{refused}");
    }
}
