//! Verifications per second of `tessera::verifier`, beside the raw ring
//! ES256 verify rate measured in the same run, on one thread.
//!
//! Run: `cargo bench --bench verify`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera::clients::{self, ClientSpec};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Settings;
use tessera::startup::Application;
use tessera::store::Database;
use tessera::verifier::Verifier;

const AUDIENCE: &str = "https://api.example.com";
const RUN: Duration = Duration::from_secs(3);

fn main() {
    actix_web::rt::System::new().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            bind: "127.0.0.1:0".into(),
            database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
            keys_dir: dir.path().join("keys"),
            ..Settings::default()
        };
        let app = Application::build(settings.clone(), Arc::new(SystemClock))
            .await
            .expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let issuer = app.issuer().to_owned();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());

        let db = Database::open(&settings.database_url, 1, Duration::from_secs(5)).expect("db");
        let created = clients::create(
            &mut db.conn().expect("conn"),
            &ClientSpec {
                id: None,
                name: "bench".into(),
                scope: "read".into(),
                audiences: vec![AUDIENCE.into()],
                access_token_ttl: 3600,
                refresh_tokens: false,
                refresh_token_ttl: None,
                refresh_family_ttl: None,
                can_introspect: false,
                allowed_networks: Vec::new(),
            },
            SystemClock.now(),
        )
        .expect("client");
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                created.client_id,
                created.client_secret.expose()
            ))
        );
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/oauth2/token"))
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("JSON");
        let token = body["access_token"].as_str().expect("token").to_owned();

        let verifier = Verifier::builder(issuer, AUDIENCE)
            .discover()
            .await
            .expect("discovery");
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < RUN {
            verifier
                .verify(&token, verifier.expectations())
                .await
                .expect("valid");
            n += 1;
        }
        let library = n as f64 / started.elapsed().as_secs_f64();

        // The ceiling: ring's ES256 verify of the same signature.
        let jwks: serde_json::Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
            .await
            .expect("JWKS")
            .json()
            .await
            .expect("JSON");
        let key = &jwks["keys"][0];
        let mut point = vec![4u8];
        point.extend(
            URL_SAFE_NO_PAD
                .decode(key["x"].as_str().expect("x"))
                .expect("b64"),
        );
        point.extend(
            URL_SAFE_NO_PAD
                .decode(key["y"].as_str().expect("y"))
                .expect("b64"),
        );
        let (signed, sig) = token.rsplit_once('.').expect("signature");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point,
        );
        let started = Instant::now();
        let mut m = 0u64;
        while started.elapsed() < RUN {
            public.verify(signed.as_bytes(), &sig).expect("valid");
            m += 1;
        }
        let ring_rate = m as f64 / started.elapsed().as_secs_f64();
        println!(
            "one thread: tessera::verifier {library:>8.0} verifications/s; raw ring ES256 verify \
             {ring_rate:>8.0}/s; ratio {:.0}%",
            100.0 * library / ring_rate
        );
        handle.stop(true).await;
    });
}
