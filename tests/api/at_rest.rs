//! What the database holds at rest: the connection that commits a SQLite
//! server's writes syncs every commit, and no refresh token or client
//! secret is ever stored in the clear, on either backend.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::both_backends;
use crate::helpers::{
    Backend, TestDatabase, build_app, database_dump, spawn_app, spec, test_settings,
};

const API: &str = "https://api.example.com";

/// The setting is read through the application's own database handle, on
/// the writer thread's connection (through its queue, as every write goes):
/// a fresh connection would only show what `Manager::connect` sets, not
/// what the connection that commits revocations runs with.
#[actix_web::test]
async fn the_sqlite_write_path_syncs_every_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::create(&Backend::Sqlite, dir.path());
    let app = build_app(test_settings(dir.path(), &db))
        .await
        .expect("the application builds");
    let level = app
        .database()
        .write_path_synchronous()
        .await
        .expect("PRAGMA synchronous");
    assert_eq!(
        level,
        Some(2),
        "synchronous = FULL on the writer's connection"
    );
}

/// Every form a secret could take in storage: as issued, its random part
/// as text, and that part's raw bytes, in binary and as PostgreSQL's hex.
fn forms_of(secret: &str) -> Vec<(String, Vec<u8>)> {
    let body = secret
        .split_once('_')
        .map(|(_, body)| body)
        .expect("a prefixed secret");
    let raw = URL_SAFE_NO_PAD.decode(body).expect("base64url");
    vec![
        (
            "the secret as issued".to_owned(),
            secret.as_bytes().to_vec(),
        ),
        ("its base64url body".to_owned(), body.as_bytes().to_vec()),
        ("its raw random bytes".to_owned(), raw.clone()),
        ("their hex".to_owned(), hex(&raw).into_bytes()),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

both_backends! {
    async fn no_secret_refresh_token_or_access_token_is_stored_in_the_clear(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let first = app.token(&client, &[]).await;
        let rt1 = first["refresh_token"].as_str().expect("refresh token").to_owned();
        let resp = app
            .post_token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some((&client.id, &client.secret)))
            .await;
        assert_eq!(resp.status(), 200);
        let second: serde_json::Value = resp.json().await.expect("JSON");
        let rt2 = second["refresh_token"].as_str().expect("refresh token").to_owned();
        let access: Vec<String> = [&first, &second]
            .iter()
            .map(|body| body["access_token"].as_str().expect("access token").to_owned())
            .collect();
        // One access token revoked, so the revocation list holds an entry.
        assert_eq!(app.revoke(&client, &access[0]).await.status(), 200);
        let revoked_jti = crate::helpers::claims_of(&access[0])["jti"]
            .as_str()
            .expect("jti")
            .to_owned();

        let Some(stored) = database_dump(&app, &backend) else {
            return;
        };
        // The search sees what is stored: the hashes are there, as raw bytes
        // in SQLite and as hex in the dump.
        for secret in [&client.secret, &rt1, &rt2] {
            let hash = tessera::token::secret::SecretHash::of(secret);
            assert!(
                contains(&stored, hash.as_bytes()) || contains(&stored, hex(hash.as_bytes()).as_bytes()),
                "the stored SHA-256 of a secret was not found: the search is blind"
            );
        }
        for (what, secret) in [("client secret", &client.secret), ("first refresh token", &rt1), ("rotated refresh token", &rt2)] {
            for (form, needle) in forms_of(secret) {
                assert!(!contains(&stored, &needle), "the {what} is stored in the clear ({form})");
            }
        }
        // Access tokens are never stored, not even in part: the revocation
        // list and the family's record hold the `jti`, not the token.
        assert!(contains(&stored, revoked_jti.as_bytes()), "the revocation list is keyed by jti");
        for token in &access {
            let mut parts = token.split('.');
            let (_, payload, signature) = (parts.next(), parts.next().expect("payload"), parts.next().expect("signature"));
            assert!(!contains(&stored, token.as_bytes()), "an access token is stored");
            assert!(!contains(&stored, payload.as_bytes()), "an access token's payload is stored");
            assert!(!contains(&stored, signature.as_bytes()), "an access token's signature is stored");
        }
    }
}
