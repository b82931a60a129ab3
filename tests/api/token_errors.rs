//! Every way a token request can be wrong gets the RFC 6749 §5.2 error it
//! deserves, as JSON, never cached, never echoing input, and never a token.

use reqwest::Response;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{TestApp, basic_header, spawn_app, spec};

const API: &str = "https://api.example.com";
const CC: (&str, &str) = ("grant_type", "client_credentials");

/// Asserts the status and error code, the headers every error carries, and
/// that no token leaked into the body; returns the body.
async fn expect_error(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(body["error"], code, "{text}");
    assert!(body.get("access_token").is_none());
    if let Some(d) = body["error_description"].as_str() {
        assert!(
            d.bytes()
                .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
            "RFC 6749 §5.2 character set: {d:?}"
        );
    }
    body
}

async fn post_raw(
    app: &TestApp,
    path_and_query: &str,
    content_type: &str,
    body: &str,
    auth: Option<String>,
) -> Response {
    let mut req = app
        .http
        .post(app.url(path_and_query))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request")
}

both_backends! {
    async fn get_on_the_token_endpoint_is_405_json(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .http
            .get(app.url("/oauth2/token?grant_type=client_credentials"))
            .header("authorization", basic_header(&client.id, &client.secret))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.headers()["allow"], "POST");
        expect_error(resp, 405, "invalid_request").await;
    }
}

both_backends! {
    async fn missing_grant_type_is_invalid_request(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app.post_token(&[("scope", "read")], Some((&client.id, &client.secret))).await;
        expect_error(resp, 400, "invalid_request").await;
    }
}

both_backends! {
    async fn other_grant_types_are_unsupported_grant_type(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        for grant in ["password", "authorization_code", "implicit", "foo"] {
            let resp = app
                .post_token(&[("grant_type", grant)], Some((&client.id, &client.secret)))
                .await;
            expect_error(resp, 400, "unsupported_grant_type").await;
        }
    }
}

both_backends! {
    async fn a_repeated_parameter_is_invalid_request(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read write", &[API])).await;
        for form in [
            &[CC, ("grant_type", "refresh_token")][..],
            &[CC, ("scope", "read"), ("scope", "write")][..],
        ] {
            let resp = app.post_token(form, Some((&client.id, &client.secret))).await;
            expect_error(resp, 400, "invalid_request").await;
        }
    }
}

both_backends! {
    async fn unknown_parameters_are_ignored(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app.post_token(&[CC, ("foo", "bar")], Some((&client.id, &client.secret))).await;
        assert_eq!(resp.status(), 200);
    }
}

both_backends! {
    async fn credentials_in_the_query_string_are_refused(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let query = format!(
            "/oauth2/token?client_id={}&client_secret={}",
            client.id, client.secret
        );
        let resp = post_raw(
            &app,
            &query,
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials",
            None,
        )
        .await;
        expect_error(resp, 400, "invalid_request").await;
    }
}

both_backends! {
    async fn a_body_that_is_not_form_encoded_is_invalid_request(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let auth = Some(basic_header(&client.id, &client.secret));
        let json = post_raw(&app, "/oauth2/token", "application/json",
            r#"{"grant_type":"client_credentials"}"#, auth.clone()).await;
        expect_error(json, 400, "invalid_request").await;
        let bad_escape = post_raw(&app, "/oauth2/token", "application/x-www-form-urlencoded",
            "grant_type=client_credentials&scope=%ZZ", auth.clone()).await;
        expect_error(bad_escape, 400, "invalid_request").await;
        let not_utf8 = post_raw(&app, "/oauth2/token", "application/x-www-form-urlencoded",
            "grant_type=client_credentials&scope=%FF", auth).await;
        expect_error(not_utf8, 400, "invalid_request").await;
    }
}

both_backends! {
    async fn an_oversized_body_is_refused_with_413(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let big = format!("grant_type=client_credentials&pad={}", "a".repeat(100 * 1024));
        let resp = post_raw(&app, "/oauth2/token", "application/x-www-form-urlencoded", &big,
            Some(basic_header(&client.id, &client.secret))).await;
        expect_error(resp, 413, "invalid_request").await;
    }
}

both_backends! {
    async fn credentials_in_both_header_and_body_are_invalid_request(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .post_token(
                &[CC, ("client_id", &client.id), ("client_secret", &client.secret)],
                Some((&client.id, &client.secret)),
            )
            .await;
        expect_error(resp, 400, "invalid_request").await;
    }
}

both_backends! {
    async fn wrong_secret_with_basic_auth_returns_401_invalid_client_with_a_challenge(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app.post_token(&[CC], Some((&client.id, "tsec_wrong"))).await;
        assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"tessera\"");
        expect_error(resp, 401, "invalid_client").await;
    }
}

both_backends! {
    async fn wrong_secret_in_the_body_returns_401_invalid_client(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .post_token(&[CC, ("client_id", &client.id), ("client_secret", "tsec_wrong")], None)
            .await;
        expect_error(resp, 401, "invalid_client").await;
    }
}

both_backends! {
    async fn unknown_wrong_disabled_and_deleted_clients_are_indistinguishable(backend) {
        let app = spawn_app(&backend).await;
        let good = app.create_client(spec("read", &[API])).await;
        let disabled = app.create_client(spec("read", &[API])).await;
        app.disable_client(&disabled.id).await;
        let deleted = app.create_client(spec("read", &[API])).await;
        app.delete_client(&deleted.id).await;

        let mut seen = Vec::new();
        for (id, secret) in [
            ("no-such-client", good.secret.as_str()),
            (good.id.as_str(), "tsec_wrong"),
            (good.id.as_str(), ""),
            (disabled.id.as_str(), disabled.secret.as_str()),
            (deleted.id.as_str(), deleted.secret.as_str()),
        ] {
            let resp = app.post_token(&[CC], Some((id, secret))).await;
            let status = resp.status();
            let mut headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter(|(name, _)| *name != "date")
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            headers.sort();
            let body = resp.bytes().await.expect("body");
            seen.push((status, headers, body));
        }
        assert_eq!(seen[0].0, 401);
        for other in &seen[1..] {
            assert_eq!(other, &seen[0], "byte-identical failure responses");
        }
    }
}

both_backends! {
    async fn a_client_without_a_secret_is_invalid_client(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app.post_token(&[CC, ("client_id", &client.id)], None).await;
        expect_error(resp, 401, "invalid_client").await;
        let resp = app.post_token(&[CC], None).await;
        expect_error(resp, 401, "invalid_client").await;
    }
}

both_backends! {
    async fn malformed_authorization_headers_never_cause_a_500(backend) {
        let app = spawn_app(&backend).await;
        for header in ["Basic", "Basic !!!notbase64", "Basic Og==", "Bearer abc", "basic"] {
            let resp = post_raw(&app, "/oauth2/token", "application/x-www-form-urlencoded",
                "grant_type=client_credentials", Some(header.to_owned())).await;
            expect_error(resp, 401, "invalid_client").await;
        }
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .http
            .post(app.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic_header(&client.id, &client.secret))
            .header("authorization", basic_header(&client.id, &client.secret))
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("request");
        expect_error(resp, 400, "invalid_request").await;
    }
}

both_backends! {
    async fn a_scope_beyond_the_clients_is_invalid_scope(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let auth = Some((client.id.as_str(), client.secret.as_str()));
        let resp = app.post_token(&[CC, ("scope", "read admin")], auth).await;
        expect_error(resp, 400, "invalid_scope").await;
        let resp = app.post_token(&[CC, ("scope", "re\"ad")], auth).await;
        expect_error(resp, 400, "invalid_scope").await;
    }
}

both_backends! {
    async fn an_unregistered_or_malformed_resource_is_invalid_target(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let auth = Some((client.id.as_str(), client.secret.as_str()));
        for resource in ["https://evil.example.com", "https://api.example.com#x", "not-a-uri"] {
            let resp = app.post_token(&[CC, ("resource", resource)], auth).await;
            expect_error(resp, 400, "invalid_target").await;
        }
    }
}

both_backends! {
    async fn client_authentication_comes_before_scope_and_audience_checks(backend) {
        // An attacker without credentials learns nothing about a client's
        // scopes or audiences.
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let resp = app
            .post_token(&[CC, ("scope", "admin"), ("resource", "https://x.example")], Some((&client.id, "tsec_wrong")))
            .await;
        expect_error(resp, 401, "invalid_client").await;
    }
}

both_backends! {
    async fn error_descriptions_never_echo_the_request(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[API])).await;
        let probe = "\"<script>\\";
        let auth = Some((client.id.as_str(), client.secret.as_str()));
        for form in [
            &[("grant_type", probe)][..],
            &[CC, ("scope", probe)][..],
            &[CC, ("resource", probe)][..],
        ] {
            let resp = app.post_token(form, auth).await;
            let text = resp.text().await.expect("body");
            assert!(!text.contains("<script>") && !text.contains("\\\\"), "{text}");
        }
    }
}
