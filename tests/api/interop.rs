//! Another stack validates Tessera's tokens: PyJWT's `PyJWKClient`, fetching
//! the JWKS over HTTP and checking `typ`, `iss`, `aud`, the algorithm and the
//! RFC 9068 claims, exactly as docs/resource-servers.md tells Python users to.
//!
//! Needs `python3` with PyJWT and `cryptography` (`.ci/run` installs them).
//! Without them the test says it was skipped; under CI it fails instead.

use std::process::Command;

use crate::both_backends;
use crate::helpers::{spawn_app, spec};

const API: &str = "https://api.example.com";

const VALIDATE: &str = r#"
import sys, jwt
token, jwks_url, issuer, audience = sys.argv[1:]
if jwt.get_unverified_header(token).get("typ") not in ("at+jwt", "application/at+jwt"):
    sys.exit("wrong typ")
key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=issuer,
                    options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]})
print(claims["client_id"])
"#;

fn pyjwt_available() -> bool {
    Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
}

both_backends! {
    async fn pyjwt_validates_tokens_against_the_jwks(backend) {
        if !pyjwt_available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "PyJWT and cryptography must be installed under CI (see .ci/run)"
            );
            eprintln!("SKIPPED pyjwt interop: python3 with PyJWT and cryptography is not installed");
            return;
        }
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let token = body["access_token"].as_str().expect("token").to_owned();
        let jwks_url = app.url("/.well-known/jwks.json");
        let issuer = app.issuer.clone();

        let run = |token: String| {
            let (jwks_url, issuer) = (jwks_url.clone(), issuer.clone());
            actix_web::rt::task::spawn_blocking(move || {
                Command::new("python3")
                    .args(["-c", VALIDATE, &token, &jwks_url, &issuer, API])
                    .output()
                    .expect("python3 runs")
            })
        };
        let ok = run(token.clone()).await.expect("task");
        assert!(ok.status.success(), "PyJWT refused: {}", String::from_utf8_lossy(&ok.stderr));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), client.id);

        // And it must be able to fail: a token with one signature byte changed.
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let bad = run(String::from_utf8(tampered).expect("ASCII")).await.expect("task");
        assert!(!bad.status.success(), "PyJWT accepted a tampered token");
    }
}
