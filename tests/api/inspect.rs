//! `tessera token inspect` on a good, an expired, a revoked and a forged
//! token, on one with several problems at once, and on refresh tokens.

use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, claims_of, spawn_app_with, spec};

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

fn problem_list(body: &Value) -> Vec<String> {
    body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p.as_str().expect("a sentence").to_owned())
        .collect()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
}

/// A compact JWS over `header` and `claims`, signed with `pkcs8` (ES256).
fn sign(pkcs8: &[u8], header: &Value, claims: &Value) -> String {
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).expect("key");
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"));
    let input = format!("{}.{}", part(header), part(claims));
    let signature = key.sign(&rng, input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
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
        assert_eq!(body["not_checked"], json!([]));

        // Without --audience the answer says the audience was not checked.
        let (out, body) = inspect(&app, &good, &[]);
        assert!(out.status.success());
        assert_eq!(body["valid"], true);
        let unchecked = body["not_checked"].to_string();
        assert!(unchecked.contains("audience") && unchecked.contains(API), "{body}");
        let text = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["token", "inspect", &good])
            .current_dir(app.dir.path())
            .env("TESSERA_DATABASE_URL", &app.db.url)
            .env("TESSERA_ISSUER", ISSUER)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("verdict: valid") && text.contains("not checked: audience"), "{text}");

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

both_backends! {
    async fn inspect_names_every_problem_at_once(backend) {
        let app = spawn_app_with(&backend, |s| s.issuer = Some(ISSUER.to_owned())).await;
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 60;
        let client = app.create_client(short).await;
        // Minted an hour before the inspection's wall clock, revoked, and
        // its client disabled since.
        app.clock.advance(-3600);
        let token = app.access_token(&client).await;
        assert_eq!(app.revoke(&client, &token).await.status(), 200);
        app.clock.advance(3600);
        app.disable_client(&client.id).await;

        let (out, body) = inspect(&app, &token, &["--audience", "https://elsewhere.example.com"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(body["valid"], false);
        let found = problem_list(&body);
        for words in ["expired", "audience", "revoked", "disabled", "issued until"] {
            assert!(found.iter().any(|p| p.contains(words)), "no problem about {words:?} in {found:?}");
        }
        assert_eq!(found.len(), 5, "{found:?}");
        assert_eq!(body["not_checked"], json!([]));

        // Signed with the server's own key, so every claim is genuine:
        // another issuer, expired and for another audience, all named.
        let (kid, pkcs8) = app.signing_key();
        let good = app.access_token(&app.create_client(spec("read", &[API])).await).await;
        let mut claims = claims_of(&good);
        claims["iss"] = json!("https://other.example.com");
        let iat = claims["iat"].as_i64().expect("iat");
        claims["exp"] = json!(iat - 10);
        claims["iat"] = json!(iat - 100);
        claims["nbf"] = json!(iat - 100);
        assert_eq!(header_of(&good)["kid"], kid.as_str());
        let reissued = sign(&pkcs8, &header_of(&good), &claims);
        let (out, body) = inspect(&app, &reissued, &["--audience", "https://elsewhere.example.com"]);
        assert_eq!(out.status.code(), Some(1));
        let found = problem_list(&body);
        for words in ["other.example.com", "expired", "audience"] {
            assert!(found.iter().any(|p| p.contains(words)), "no problem about {words:?} in {found:?}");
        }
        assert_eq!(found.len(), 3, "{found:?}");
    }
}

both_backends! {
    async fn a_foreign_key_under_our_kid_and_a_tampered_payload_are_forgeries(backend) {
        let app = spawn_app_with(&backend, |s| s.issuer = Some(ISSUER.to_owned())).await;
        let client = app.create_client(spec("read", &[API])).await;
        let good = app.access_token(&client).await;
        let header = header_of(&good);
        let claims = claims_of(&good);

        // Every claim as the server would write it, the header naming the
        // server's key, the signature by another key.
        let rng = ring::rand::SystemRandom::new();
        let foreign = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let forged = sign(foreign.as_ref(), &header, &claims);
        let (out, body) = inspect(&app, &forged, &["--audience", API]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(body["valid"], false);
        assert_eq!(problem_list(&body).len(), 1);
        assert!(problems(&body).contains("signature"), "{body}");
        assert!(body["not_checked"].to_string().contains("revocation"), "nothing else is trusted: {body}");

        // The server's signature over a payload that says more than it did.
        let mut wider = claims.clone();
        wider["scope"] = json!("read admin");
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).expect("JSON"));
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        let (out, body) = inspect(&app, &tampered, &["--audience", API]);
        assert_eq!(out.status.code(), Some(1));
        assert!(problems(&body).contains("signature"), "{body}");

        // The untouched token still passes, so the two above failed on
        // their signatures alone.
        let (out, _) = inspect(&app, &good, &["--audience", API]);
        assert!(out.status.success());
    }
}
