//! CORS (checklist F8): Tessera's clients are servers, so no endpoint opts
//! into cross-origin use. A browser page from any origin gets no
//! `Access-Control-Allow-Origin` from the token, revocation or introspection
//! endpoints, whether it asks with a preflight or sends the request; the
//! public JWKS and metadata allow any origin, never with credentials.

use crate::both_backends;
use crate::helpers::{basic_header, spawn_app, spec};

const ORIGIN: &str = "https://evil.example";

both_backends! {
    async fn no_endpoint_allows_a_foreign_origin(backend) {
        let app = spawn_app(&backend).await;
        let client = app.create_client(spec("read", &[])).await;
        let token = app.access_token(&client).await;
        for path in ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"] {
            let preflight = app
                .http
                .request(reqwest::Method::OPTIONS, app.url(path))
                .header("origin", ORIGIN)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, content-type")
                .send()
                .await
                .expect("preflight");
            assert!(
                preflight.headers().get("access-control-allow-origin").is_none(),
                "{path}: preflight allowed {ORIGIN}"
            );
            let body = if path == "/oauth2/token" {
                "grant_type=client_credentials".to_owned()
            } else {
                format!("token={token}")
            };
            let resp = app
                .http
                .post(app.url(path))
                .header("origin", ORIGIN)
                .header("authorization", basic_header(&client.id, &client.secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200, "{path}: the request itself is served");
            assert!(
                resp.headers().get("access-control-allow-origin").is_none(),
                "{path}: allowed {ORIGIN}"
            );
            assert!(
                resp.headers().get("access-control-allow-credentials").is_none(),
                "{path}: allowed credentials"
            );
        }
        for path in ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server"] {
            let resp = app
                .http
                .get(app.url(path))
                .header("origin", ORIGIN)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
            // Public documents: any page may read them (RFC 9700 §2.6), but
            // never with credentials.
            assert_eq!(resp.headers()["access-control-allow-origin"], "*", "{path}");
            assert!(
                resp.headers().get("access-control-allow-credentials").is_none(),
                "{path}: allowed credentials"
            );
        }
    }
}
