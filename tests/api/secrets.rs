//! Secret rotation with a grace period: the old secret keeps working until
//! the grace ends, then stops; never more than two live secrets.

use std::process::Command;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, spawn_app, spec};

const API: &str = "https://api.example.com";

async fn token_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.post_token(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await
        .status()
        .as_u16()
}

async fn rotate(app: &TestApp, id: &str, grace: i64) -> String {
    let db = app.database();
    let (id, now) = (id.to_owned(), app.clock_now());
    let secret = actix_web::rt::task::spawn_blocking(move || {
        let mut conn = db.conn().expect("connection");
        tessera::clients::rotate_secret(&mut conn, &id, grace, now)
            .expect("rotate")
            .0
            .expose()
            .to_owned()
    })
    .await
    .expect("task");
    app.sync_clients().await;
    secret
}

both_backends! {
    async fn the_old_secret_works_until_the_grace_ends(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let new = rotate(&app, &client.id, 3600).await;
        assert_ne!(new, client.secret);
        assert_eq!(token_status(&app, &client.id, &client.secret).await, 200, "old, within grace");
        assert_eq!(token_status(&app, &client.id, &new).await, 200, "new");
        app.clock.advance(3600);
        assert_eq!(token_status(&app, &client.id, &client.secret).await, 401, "old, after grace");
        assert_eq!(token_status(&app, &client.id, &new).await, 200);
    }
}

both_backends! {
    async fn grace_zero_stops_the_old_secret_at_once_and_two_secrets_at_most_live(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let second = rotate(&app, &client.id, 0).await;
        assert_eq!(token_status(&app, &client.id, &client.secret).await, 401);
        assert_eq!(token_status(&app, &client.id, &second).await, 200);

        let third = rotate(&app, &client.id, 3600).await;
        let fourth = rotate(&app, &client.id, 3600).await;
        assert_eq!(token_status(&app, &client.id, &second).await, 401, "only the newest old secret keeps its grace");
        assert_eq!(token_status(&app, &client.id, &third).await, 200);
        assert_eq!(token_status(&app, &client.id, &fourth).await, 200);
    }
}

both_backends! {
    async fn rotate_secret_on_the_cli_prints_the_new_secret_once(backend) {
        let app = spawn_app(&backend).await;
        let client: TestClient = app.create_client(spec("read", &[API])).await;
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(args)
                .current_dir(app.dir.path())
                .env("TESSERA_DATABASE_URL", &app.db.url)
                .env("TESSERA_KEYS_DIR", &app.settings.keys_dir)
                .output()
                .expect("run")
        };
        let out = run(&["client", "rotate-secret", &client.id, "--grace", "0", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let body: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let mut fields: Vec<&String> = body.as_object().expect("object").keys().collect();
        fields.sort();
        assert_eq!(fields, ["client_id", "client_secret", "previous_secret_expires_at"]);
        let secret = body["client_secret"].as_str().expect("secret");
        assert!(secret.starts_with("tsec_"));
        // The CLI ran on the wall clock; let the server's clock catch up.
        app.catch_up_with_wall_clock(1);
        app.sync_clients().await;
        assert_eq!(token_status(&app, &client.id, &client.secret).await, 401);
        assert_eq!(token_status(&app, &client.id, secret).await, 200);

        let bad = run(&["client", "rotate-secret", &client.id, "--grace", "forever"]);
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--grace"));
        let missing = run(&["client", "rotate-secret", "no-such-client"]);
        assert_eq!(missing.status.code(), Some(1));
    }
}
