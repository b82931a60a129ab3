//! The audit log: each listed action leaves an event, failed
//! authentications with their source address, and no row ever holds a
//! secret or a token.

use std::process::Command;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, spawn_app, spec};

const API: &str = "https://api.example.com";

fn audit(app: &TestApp, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--json", "--limit", "1000"];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(&args)
        .current_dir(app.dir.path())
        .env("TESSERA_DATABASE_URL", &app.db.url)
        .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

both_backends! {
    async fn every_listed_action_leaves_an_event_and_none_holds_a_secret(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let mut secrets = vec![client.secret.clone()];

        // A failed authentication, with where it came from.
        let resp = app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, "tsec_wrong"))).await;
        assert_eq!(resp.status(), 401);
        // A swapped id and secret: the secret must not reach the log.
        let resp = app.post_token(&[("grant_type", "client_credentials")], Some((&client.secret, &client.id))).await;
        assert_eq!(resp.status(), 401);

        let body = app.token(&client, &[]).await;
        let at = body["access_token"].as_str().expect("at").to_owned();
        let rt = body["refresh_token"].as_str().expect("rt").to_owned();
        secrets.push(at.clone());
        secrets.push(rt.clone());
        assert_eq!(app.revoke(&client, &at).await.status(), 200);
        // Reuse detection.
        let second = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;
        let second: Value = second.json().await.expect("JSON");
        secrets.push(second["refresh_token"].as_str().expect("rt").to_owned());
        app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some((&client.id, &client.secret))).await;

        let new_secret = {
            let db = app.database();
            let (id, now) = (client.id.clone(), app.clock_now());
            actix_web::rt::task::spawn_blocking(move || {
                tessera::clients::rotate_secret(&mut db.conn().expect("conn"), &id, 60, now)
                    .expect("rotate").0.expose().to_owned()
            }).await.expect("task")
        };
        secrets.push(new_secret);
        app.revoke_all(&client.id).await;
        app.disable_client(&client.id).await;
        app.delete_client(&client.id).await;

        let events = audit(&app, &[]);
        let seen = kinds(&events);
        for kind in [
            "client_created", "client_auth_failed", "access_token_revoked", "refresh_token_reuse",
            "secret_rotated", "revoke_all", "client_disabled", "client_deleted",
        ] {
            assert!(seen.iter().any(|k| k == kind), "no {kind} event in {seen:?}");
        }
        let failed = events.iter().find(|e| e["kind"] == "client_auth_failed" && e["client_id"] == client.id.as_str())
            .expect("a failed authentication of the client");
        assert_eq!(failed["source"], "127.0.0.1");
        assert!(failed["detail"].as_str().expect("detail").contains("wrong client secret"));

        let everything = serde_json::to_string(&events).expect("JSON");
        for secret in &secrets {
            assert!(!everything.contains(secret.as_str()), "a secret or token reached the audit log");
        }
        assert!(!everything.contains("tsec_") && !everything.contains("trt_"), "{everything}");

        // Filters.
        let mine = audit(&app, &["--client", &client.id]);
        assert!(mine.iter().all(|e| e["client_id"] == client.id.as_str()));
        assert!(!mine.is_empty());
        let recent = audit(&app, &["--since", "1h"]);
        assert_eq!(recent.len(), events.len());
    }
}

both_backends! {
    async fn key_rotations_are_audited_and_clients_record_their_last_token(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        app.token(&client, &[]).await;
        let shown = tessera::clients::show(&mut app.database().conn().expect("conn"), &client.id).expect("client");
        assert_eq!(shown.last_token_at, Some(app.clock_now()));

        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["keys", "rotate"])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
            .output()
            .expect("run");
        assert!(out.status.success());
        assert!(kinds(&audit(&app, &[])).iter().any(|k| k == "key_published"));
    }
}
