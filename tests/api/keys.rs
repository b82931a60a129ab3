//! Key handling at start-up: the key-encryption key's file rules, restart
//! persistence, and the refusal to paper over a lost key.

use crate::both_backends;
use crate::helpers::{build_app, spawn_app, spec};

const API: &str = "https://api.example.com";

both_backends! {
    async fn a_restart_keeps_the_signing_key_and_the_clients(backend) {
        // A fixed issuer: the default one names the port, which a restart on
        // port 0 changes.
        let mut app = crate::helpers::spawn_app_with(&backend, |s| {
            s.issuer = Some("https://auth.example.com".to_owned());
        })
        .await;
        let client = app.create_client(spec("read", &[API])).await;
        let before = app.token(&client, &[]).await;
        let token = before["access_token"].as_str().expect("token").to_owned();
        let jwks_before = app.jwks().await;

        app.restart().await.expect("restarts");

        assert_eq!(app.jwks().await, jwks_before, "same JWKS after a restart");
        app.verify_offline(&token, API).await.expect("old token still verifies");
        let after = app.token(&client, &[]).await;
        app.verify_offline(after["access_token"].as_str().expect("token"), API)
            .await
            .expect("new token verifies");
    }
}

both_backends! {
    async fn first_start_creates_a_private_key_encryption_key(backend) {
        use std::os::unix::fs::PermissionsExt;
        let app = spawn_app(&backend).await;
        let dir = &app.settings.keys_dir;
        let dir_mode = std::fs::metadata(dir).expect("keys dir").permissions().mode();
        let file_mode = std::fs::metadata(dir.join("kek")).expect("kek").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(file_mode & 0o777, 0o600);
    }
}

both_backends! {
    async fn a_key_encryption_key_readable_by_others_stops_start_up(backend) {
        use std::os::unix::fs::PermissionsExt;
        let mut app = spawn_app(&backend).await;
        app.stop().await;
        let kek = app.settings.keys_dir.join("kek");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = app.restart().await.expect_err("start-up must fail");
        let message = err.to_string();
        assert!(message.contains("kek") && message.contains("chmod 600"), "{message}");
    }
}

both_backends! {
    async fn a_missing_key_encryption_key_beside_existing_keys_stops_start_up(backend) {
        let mut app = spawn_app(&backend).await;
        app.stop().await;
        std::fs::remove_file(app.settings.keys_dir.join("kek")).expect("remove kek");
        let err = app.restart().await.expect_err("start-up must fail");
        let message = err.to_string();
        assert!(message.contains("missing") && message.contains("TESSERA_KEK"), "{message}");
        assert!(
            !app.settings.keys_dir.join("kek").exists(),
            "no new key-encryption key may be made silently"
        );
    }
}

both_backends! {
    async fn a_different_key_encryption_key_is_reported_as_such(backend) {
        use base64::Engine;
        let app = spawn_app(&backend).await;
        app.stop().await;
        let mut settings = app.settings.clone();
        settings.kek = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]));
        let err = build_app(settings).await.expect_err("start-up must fail");
        assert!(err.to_string().contains("key-encryption key"), "{err}");
    }
}

both_backends! {
    async fn the_key_encryption_key_can_come_from_the_environment(backend) {
        use base64::Engine;
        let kek = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let mut app = crate::helpers::spawn_app_with(&backend, |s| s.kek = Some(kek.clone())).await;
        assert!(!app.settings.keys_dir.join("kek").exists(), "no file when the KEK is given");
        let jwks = app.jwks().await;
        app.restart().await.expect("restarts with the same KEK");
        assert_eq!(app.jwks().await, jwks);
    }
}

both_backends! {
    async fn the_database_holds_no_plaintext_private_key(backend) {
        // Every key, the first and a rotated one: no 16-byte stretch of its
        // PKCS#8 document appears anywhere in its row.
        let app = spawn_app(&backend).await;
        let (kek, _) = tessera::keys::KeyEncryptionKey::load(&app.settings.keys_dir, None)
            .expect("KEK")
            .expect("KEK exists");
        let db = app.database();
        let mut conn = db.conn().expect("connection");
        let policy = app.settings.rotation_policy().expect("policy");
        tessera::keys::rotation::rotate_now(&mut conn, &kek, &policy, app.clock_now(), None)
            .expect("rotate");
        let rows = tessera::store::signing_keys::list_keys(&mut conn).expect("keys");
        assert_eq!(rows.len(), 2);
        for row in rows {
            let pkcs8 = kek.open(row.kid.as_bytes(), &row.private_key_sealed).expect("unseal");
            let mut dump = row.private_key_sealed.clone();
            dump.extend_from_slice(row.public_jwk.as_bytes());
            dump.extend_from_slice(row.kid.as_bytes());
            for window in pkcs8.windows(16) {
                assert!(!dump.windows(16).any(|w| w == window), "plaintext key material in {}", row.kid);
            }
        }
    }
}
