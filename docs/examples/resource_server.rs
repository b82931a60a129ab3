//! A resource server that admits requests with a Tessera access token.
//!
//! Run Tessera (`cargo run --release`), create a client with the `read`
//! scope and this audience, then:
//!
//! ```sh
//! TESSERA_ISSUER=http://127.0.0.1:8080 API_AUDIENCE=https://api.example.com \
//!     cargo run --example resource_server
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:8081/hello
//! ```
//!
//! Set `FEED_CLIENT_ID` and `FEED_CLIENT_SECRET` (a client created with
//! `--can-introspect`) to also reject revoked tokens, learned from the
//! revocation feed every 10 seconds.
//!
//! The test suite serves these same routes on a real socket
//! (`tests/api/verifier.rs`), so what this file shows is what is tested.

use std::time::Duration;

use actix_web::{App, HttpServer, get, web};
use tessera::verifier::{BearerToken, RequiredScope, Verifier};

pub struct Read;

impl RequiredScope for Read {
    const SCOPES: &'static [&'static str] = &["read"];
}

pub struct Admin;

impl RequiredScope for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

#[get("/hello")]
async fn hello(token: BearerToken<Read>) -> String {
    format!(
        "hello, {} (scope: {})\n",
        token.claims.client_id, token.claims.scope
    )
}

#[get("/admin")]
async fn admin(token: BearerToken<Admin>) -> String {
    format!("welcome, administrator {}\n", token.claims.client_id)
}

/// The routes, for `App::configure`; the app must hold a
/// `web::Data<Verifier>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(hello).service(admin);
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer =
        std::env::var("TESSERA_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let audience =
        std::env::var("API_AUDIENCE").unwrap_or_else(|_| "https://api.example.com".to_owned());
    let mut builder = Verifier::builder(issuer, audience);
    if let (Ok(id), Ok(secret)) = (
        std::env::var("FEED_CLIENT_ID"),
        std::env::var("FEED_CLIENT_SECRET"),
    ) {
        builder = builder.follow_revocations(id, secret, Duration::from_secs(10));
    }
    let verifier = web::Data::new(builder.discover().await?);
    println!("listening on http://127.0.0.1:8081/hello");
    HttpServer::new(move || App::new().app_data(verifier.clone()).configure(routes))
        .bind(("127.0.0.1", 8081))?
        .run()
        .await?;
    Ok(())
}
