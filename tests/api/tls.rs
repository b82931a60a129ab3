//! Direct HTTPS with rustls: a certificate made with the `openssl` CLI, the
//! real `oauth2` crate as the client, and start-up refusing what cannot work.

use std::path::{Path, PathBuf};
use std::process::Command;

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, AuthUrl, ClientId, ClientSecret, IntrospectionUrl, RevocationUrl,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, TestDatabase, build_app, spawn_app_with, spec, test_settings,
};

/// A self-signed P-256 certificate for 127.0.0.1, valid for a day.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (see the README's test prerequisites)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A server speaking HTTPS with a fresh certificate in `dir`, and a client
/// that trusts that certificate.
async fn https_app(backend: &Backend, dir: &Path) -> (TestApp, reqwest::Client) {
    let (cert, key) = certificate(dir);
    let (c, k) = (cert.clone(), key);
    let app = spawn_app_with(backend, move |s| {
        s.tls_cert = Some(c);
        s.tls_key = Some(k);
    })
    .await;
    let pem = std::fs::read(&cert).expect("certificate");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTPS client");
    (app, https)
}

both_backends! {
    async fn the_server_speaks_https_and_the_oauth2_crate_gets_a_token(backend) {
        let certs = tempfile::tempdir().expect("temp dir");
        let (app, https) = https_app(&backend, certs.path()).await;
        assert!(app.base.starts_with("https://"));
        assert_eq!(app.issuer, format!("https://127.0.0.1:{}", app.port), "the default issuer follows the scheme");

        let metadata: Value = https.get(app.url("/.well-known/oauth-authorization-server"))
            .send().await.expect("metadata over HTTPS").json().await.expect("JSON");
        assert_eq!(metadata["issuer"], app.issuer.as_str());
        assert!(metadata["token_endpoint"].as_str().expect("token_endpoint").starts_with("https://"));

        let client = app.create_client(spec("read", &["https://api.example.com"])).await;
        let oauth = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_auth_uri(AuthUrl::new(app.url("/unused")).expect("url"))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("url"));
        let token = oauth
            .exchange_client_credentials()
            .request_async(&https)
            .await
            .expect("a token over HTTPS");
        let jwks: Value = https.get(app.url("/.well-known/jwks.json"))
            .send().await.expect("JWKS").json().await.expect("JSON");
        crate::helpers::verify_with_jwks(token.access_token().secret(), &jwks, &app.issuer, "https://api.example.com", app.clock_now())
            .expect("the token verifies");

        // Plain HTTP on the HTTPS port gets no answer.
        let plain = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/healthz", app.port))
            .send()
            .await;
        assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP was served");
    }
}

both_backends! {
    /// RFC 7009 over TLS with the `oauth2` crate's own `revoke_token`, which
    /// refuses plain http: an access token, then a refresh token, revoked
    /// for real, and the crate's `introspect` watching the effect.
    async fn the_oauth2_crate_revokes_access_and_refresh_tokens_over_https(backend) {
        let certs = tempfile::tempdir().expect("temp dir");
        let (app, https) = https_app(&backend, certs.path()).await;
        let client = app.create_client(spec("read", &["https://api.example.com"])).await;
        let oauth = BasicClient::new(ClientId::new(client.id.clone()))
            .set_client_secret(ClientSecret::new(client.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("url"))
            .set_revocation_url(RevocationUrl::new(app.url("/oauth2/revoke")).expect("url"))
            .set_introspection_url(IntrospectionUrl::new(app.url("/oauth2/introspect")).expect("url"));
        let active = |token: AccessToken| {
            let (oauth, https) = (&oauth, &https);
            async move { oauth.introspect(&token).request_async(https).await.expect("introspection").active() }
        };

        let first = oauth.exchange_client_credentials().request_async(&https).await.expect("token");
        let at1 = first.access_token().clone();
        let rt1 = first.refresh_token().expect("refresh token").clone();
        assert!(active(at1.clone()).await);
        oauth
            .revoke_token(StandardRevocableToken::AccessToken(at1.clone()))
            .expect("https is accepted")
            .request_async(&https)
            .await
            .expect("the access token is revoked");
        assert!(!active(at1).await);

        // Revoking the access token left its family alone; revoking the
        // refresh token ends the family, the access token it came with too.
        let second = oauth.exchange_refresh_token(&rt1).request_async(&https).await.expect("refresh");
        let at2 = second.access_token().clone();
        let rt2 = second.refresh_token().expect("rotated refresh token").clone();
        assert!(active(at2.clone()).await);
        assert!(active(AccessToken::new(rt2.secret().clone())).await, "the owner sees its refresh token");
        oauth
            .revoke_token(StandardRevocableToken::RefreshToken(rt2.clone()))
            .expect("https is accepted")
            .request_async(&https)
            .await
            .expect("the refresh token is revoked");
        assert!(!active(at2).await);
        assert!(!active(AccessToken::new(rt2.secret().clone())).await);
        assert!(oauth.exchange_refresh_token(&rt2).request_async(&https).await.is_err(), "the family is revoked");
    }
}

#[actix_web::test]
async fn start_up_refuses_a_broken_certificate_or_an_http_issuer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::create(&Backend::Sqlite, dir.path());
    let (cert, key) = certificate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let other_key = {
        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("dir");
        certificate(&other).1
    };
    for (cert, key, issuer, named) in [
        (garbage.clone(), key.clone(), None, "TESSERA_TLS_CERT"),
        (cert.clone(), garbage.clone(), None, "TESSERA_TLS_KEY"),
        (cert.clone(), other_key, None, "TESSERA_TLS_KEY"),
        (
            cert.clone(),
            dir.path().join("missing.pem"),
            None,
            "TESSERA_TLS_KEY",
        ),
        (
            cert.clone(),
            key.clone(),
            Some("http://127.0.0.1:8080"),
            "TESSERA_ISSUER",
        ),
    ] {
        let mut settings = test_settings(dir.path(), &db);
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
        settings.issuer = issuer.map(str::to_owned);
        let err = build_app(settings)
            .await
            .expect_err("start-up refuses")
            .to_string();
        assert!(err.contains(named), "{err:?} should name {named}");
        assert!(
            !err.contains("BEGIN"),
            "no key material in the message: {err}"
        );
    }
}
