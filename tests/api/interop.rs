//! Another stack validates Tessera's tokens: PyJWT's `PyJWKClient`, fetching
//! the JWKS over HTTP and checking `typ`, `iss`, `aud`, the algorithm and the
//! RFC 9068 claims, exactly as docs/resource-servers.md tells Python users to.
//!
//! Needs `python3` with PyJWT and `cryptography` (`.ci/run` installs them).
//! Without them the test says it was skipped; under CI it fails instead.

use std::process::{Command, Output};

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

/// Validates `token` with PyJWT against the JWKS at `jwks_url`, in a blocking
/// task; the output's stdout is the token's `client_id`. `None` when PyJWT
/// is not installed (after saying so), which under CI is a failure.
pub async fn pyjwt_validate(
    token: &str,
    jwks_url: &str,
    issuer: &str,
    audience: &str,
) -> Option<Output> {
    if !pyjwt_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PyJWT and cryptography must be installed under CI (see .ci/run)"
        );
        eprintln!("SKIPPED pyjwt interop: python3 with PyJWT and cryptography is not installed");
        return None;
    }
    let args = [VALIDATE, token, jwks_url, issuer, audience].map(str::to_owned);
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .args(args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("task");
    Some(out)
}

both_backends! {
    async fn pyjwt_validates_tokens_against_the_jwks(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let token = body["access_token"].as_str().expect("token").to_owned();
        let jwks_url = app.url("/.well-known/jwks.json");

        let Some(ok) = pyjwt_validate(&token, &jwks_url, &app.issuer, API).await else {
            return;
        };
        assert!(ok.status.success(), "PyJWT refused: {}", String::from_utf8_lossy(&ok.stderr));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), client.id);

        // And it must be able to fail: a token with one signature byte
        // changed, and the right token for another audience.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ASCII");
        let bad = pyjwt_validate(&tampered, &jwks_url, &app.issuer, API).await.expect("PyJWT");
        assert!(!bad.status.success(), "PyJWT accepted a tampered token");
        let elsewhere = pyjwt_validate(&token, &jwks_url, &app.issuer, "https://other.example.com")
            .await
            .expect("PyJWT");
        assert!(!elsewhere.status.success(), "PyJWT accepted a token for another audience");
    }
}
