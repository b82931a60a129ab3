//! The client-credentials grant, happy paths, with the real `oauth2` crate
//! as the client and tokens verified the way an offline resource server would.

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, TestClient, claims_of, spawn_app, spawn_app_with, spec};

const API: &str = "https://api.example.com";
const OTHER_API: &str = "https://other.example.com";

async fn oauth2_token(
    app: &TestApp,
    client: &TestClient,
    auth: AuthType,
    scopes: &[&str],
) -> oauth2::basic::BasicTokenResponse {
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_auth_type(auth)
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).expect("token URL"));
    let mut request = oauth.exchange_client_credentials();
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    request
        .request_async(&app.http)
        .await
        .expect("the oauth2 crate gets a token")
}

both_backends! {
    async fn oauth2_crate_gets_a_token_that_verifies_against_the_published_jwks(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;

        let token = oauth2_token(&app, &client, AuthType::BasicAuth, &["read"]).await;

        assert_eq!(token.token_type().as_ref(), "bearer");
        assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(300));
        assert_eq!(
            token.scopes().map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Some(vec!["read".to_owned()])
        );
        assert!(
            token.refresh_token().is_some_and(|rt| rt.secret().starts_with("trt_")),
            "refresh tokens are on by default"
        );
        let claims = app
            .verify_offline(token.access_token().secret(), API)
            .await
            .expect("verifies offline");
        assert_eq!(claims["iss"], app.issuer.as_str());
        assert_eq!(claims["sub"], client.id.as_str());
        assert_eq!(claims["client_id"], client.id.as_str());
        assert_eq!(claims["aud"], API);
        assert_eq!(claims["scope"], "read");
        let iat = claims["iat"].as_i64().expect("iat");
        assert_eq!(claims["exp"].as_i64(), Some(iat + 300));
        assert_eq!(claims["nbf"].as_i64(), Some(iat));
        assert_eq!(iat, app.clock_now());
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
    }
}

both_backends! {
    async fn oauth2_crate_authenticates_with_client_secret_post(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let token = oauth2_token(&app, &client, AuthType::RequestBody, &[]).await;
        app.verify_offline(token.access_token().secret(), API)
            .await
            .expect("verifies offline");
    }
}

both_backends! {
    async fn token_response_is_json_bearer_and_never_cached(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .post_token(&[("grant_type", "client_credentials")], Some((&client.id, &client.secret)))
            .await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["pragma"], "no-cache");
        let body: Value = resp.json().await.expect("JSON");
        assert!(body["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")));
        assert_eq!(body["expires_in"], 300);
        assert!(body["access_token"].is_string());
    }
}

both_backends! {
    async fn omitted_or_empty_scope_grants_every_registered_scope(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;
        for extra in [&[][..], &[("scope", "")][..]] {
            let body = app.token(&client, extra).await;
            assert_eq!(body["scope"], "read write");
            assert_eq!(claims_of(body["access_token"].as_str().expect("token"))["scope"], "read write");
        }
    }
}

both_backends! {
    async fn a_narrower_scope_is_granted_as_requested(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write admin", &[API])).await;
        let body = app.token(&client, &[("scope", "write read")]).await;
        assert_eq!(body["scope"], "write read");
        assert_eq!(claims_of(body["access_token"].as_str().expect("token"))["scope"], "write read");
    }
}

both_backends! {
    async fn resource_and_audience_select_among_registered_audiences(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API, OTHER_API])).await;

        let default = app.token(&client, &[]).await;
        assert_eq!(claims_of(default["access_token"].as_str().expect("token"))["aud"], API);

        let other = app.token(&client, &[("resource", OTHER_API)]).await;
        let token = other["access_token"].as_str().expect("token");
        assert_eq!(claims_of(token)["aud"], OTHER_API);
        app.verify_offline(token, OTHER_API).await.expect("verifies for its audience");
        assert!(app.verify_offline(token, API).await.is_err());

        let both = app.token(&client, &[("resource", API), ("resource", OTHER_API)]).await;
        assert_eq!(
            claims_of(both["access_token"].as_str().expect("token"))["aud"],
            serde_json::json!([API, OTHER_API])
        );

        let by_audience = app.token(&client, &[("audience", OTHER_API)]).await;
        assert_eq!(claims_of(by_audience["access_token"].as_str().expect("token"))["aud"], OTHER_API);
    }
}

both_backends! {
    async fn a_client_without_audience_gets_the_configured_default(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.default_audience = Some("urn:example:default-api".to_owned());
        })
        .await;
        let client = app.create_client(spec("read", &[])).await;
        let body = app.token(&client, &[]).await;
        assert_eq!(
            claims_of(body["access_token"].as_str().expect("token"))["aud"],
            "urn:example:default-api"
        );
    }
}

both_backends! {
    async fn without_configuration_the_default_audience_is_the_issuer(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[])).await;
        let body = app.token(&client, &[]).await;
        assert_eq!(
            claims_of(body["access_token"].as_str().expect("token"))["aud"],
            app.issuer.as_str()
        );
    }
}

both_backends! {
    async fn access_token_lifetime_is_the_clients(backend) {
        let app = spawn_app(&backend).await;
        let mut short = spec("read", &[API]);
        short.access_token_ttl = 60;
        let client = app.create_client(short).await;
        let body = app.token(&client, &[]).await;
        assert_eq!(body["expires_in"], 60);
        let claims = claims_of(body["access_token"].as_str().expect("token"));
        assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 60);
    }
}

both_backends! {
    async fn every_token_gets_its_own_jti(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let body = app.token(&client, &[]).await;
            let jti = claims_of(body["access_token"].as_str().expect("token"))["jti"].clone();
            assert!(seen.insert(jti.to_string()), "jti repeated");
        }
    }
}

both_backends! {
    async fn basic_credentials_are_form_urldecoded(backend) {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64, so
        // an encoded form of the same characters authenticates the same client.
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let encoded_id: String = client.id.bytes().map(|b| format!("%{b:02X}")).collect();
        let raw = format!("{encoded_id}:{}", client.secret);
        use base64::Engine;
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
        let resp = app
            .http
            .post(app.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", header)
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
    }
}

both_backends! {
    async fn tokens_verify_with_jsonwebtoken_and_strict_validation(backend) {
        // A second, independent verifier: the jsonwebtoken crate, configured
        // the way DESIGN.md asks resource servers to (alg pinned, iss, aud,
        // exp, nbf and every RFC 9068 claim required).
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let body = app.token(&client, &[]).await;
        let token = body["access_token"].as_str().expect("token");
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(app.jwks().await).expect("JWKS parses as a JwkSet");
        let header = jsonwebtoken::decode_header(token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid in JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[app.issuer.as_str()]);
        validation.set_audience(&[API]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]);
        tessera::crypto::jwt_provider::install();
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("valid");
        assert_eq!(data.claims["client_id"], client.id.as_str());
    }
}
