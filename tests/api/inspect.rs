//! `tessera token inspect` on a good, an expired, a revoked and a forged
//! token, and on refresh tokens.

use std::process::{Command, Output};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app_with, spec};

const API: &str = "https://api.example.com";
const ISSUER: &str = "https://auth.example.com";

fn inspect(app: &TestApp, token: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["token", "inspect", token, "--json"];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(&args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .env("TESSERA_ISSUER", ISSUER)
        .output()
        .expect("run");
    let body = serde_json::from_slice(&out.stdout).expect("JSON");
    (out, body)
}

fn problems(body: &Value) -> String {
    body["problems"].to_string()
}

both_backends! {
    async fn inspect_tells_good_tokens_from_expired_revoked_and_forged_ones(backend) {
        let app = spawn_app_with(&backend, |s| s.issuer = Some(ISSUER.to_owned())).await;
        let client = app.create_client(spec("read", &[API])).await;

        let good = app.access_token(&client).await;
        let (out, body) = inspect(&app, &good, &["--audience", API]);
        assert!(out.status.success());
        assert_eq!(body["valid"], true);
        assert_eq!(body["kind"], "access_token");
        assert_eq!(body["claims"]["client_id"], client.id.as_str());

        let (out, body) = inspect(&app, &good, &["--audience", "https://elsewhere.example.com"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(problems(&body).contains("audience"), "{body}");

        let revoked = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &revoked).await.status(), 200);
        let (out, body) = inspect(&app, &revoked, &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(problems(&body).contains("revoked"), "{body}");

        let mut forged = good.clone().into_bytes();
        let i = forged.len() - 3;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let (_, body) = inspect(&app, &String::from_utf8(forged).expect("ASCII"), &[]);
        assert_eq!(body["valid"], false);
        assert!(problems(&body).contains("signature"), "{body}");

        let (_, body) = inspect(&app, "not-a-token", &[]);
        assert_eq!(body["valid"], false);
        assert!(problems(&body).contains("well-formed"), "{body}");

        // Expired: a token whose lifetime ended before the inspection's
        // wall clock. (The server's clock is moved back to mint it.)
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 60;
        let brief = app.create_client(short).await;
        app.clock.advance(-3600);
        let old = app.access_token(&brief).await;
        let (_, body) = inspect(&app, &old, &[]);
        assert_eq!(body["valid"], false);
        assert!(problems(&body).contains("expired"), "{body}");
    }
}

both_backends! {
    async fn inspect_explains_refresh_tokens(backend) {
        let app = spawn_app_with(&backend, |s| s.issuer = Some(ISSUER.to_owned())).await;
        let client = app.create_client(spec("read", &[API])).await;
        let rt = app.token(&client, &[]).await["refresh_token"].as_str().expect("rt").to_owned();
        let (out, body) = inspect(&app, &rt, &[]);
        assert!(out.status.success(), "{body}");
        assert_eq!(body["kind"], "refresh_token");
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        assert_eq!(app.post_token(&form, Some((&client.id, &client.secret))).await.status(), 200);
        let (_, body) = inspect(&app, &rt, &[]);
        assert_eq!(body["valid"], false);
        assert!(problems(&body).contains("already used"), "{body}");
    }
}
