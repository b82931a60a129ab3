//! HTTP: extract form fields and headers, call `oauth`, and turn results and
//! [`OAuthError`](crate::oauth::OAuthError)s into responses. One file per
//! endpoint; no grant rule and no query lives here.

mod admin;
mod discovery;
mod error;
mod fallback;
mod form;
mod health;
mod introspect;
mod jwks;
mod metadata;
mod revocations;
mod revoke;
mod token;

use actix_web::http::header;
use actix_web::web;

pub use discovery::Discovery;

use crate::oauth::OAuthState;

/// Shared by every request.
pub struct HttpState {
    pub oauth: OAuthState,
    pub discovery: Discovery,
    pub jwks_max_age: u64,
    pub max_body_bytes: usize,
    /// For the admin API's key actions.
    pub keys: crate::keys::maintainer::KeyMaintainer,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::oauth::network::Cidr>,
}

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
pub const REVOCATIONS_PATH: &str = "/oauth2/revocations";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(TOKEN_PATH)
            .route(web::post().to(token::token))
            .default_service(web::to(|| fallback::method_not_allowed("POST"))),
    )
    .service(
        web::resource(REVOKE_PATH)
            .route(web::post().to(revoke::revoke))
            .default_service(web::to(|| fallback::method_not_allowed("POST"))),
    )
    .service(
        web::resource(INTROSPECT_PATH)
            .route(web::post().to(introspect::introspect))
            .default_service(web::to(|| fallback::method_not_allowed("POST"))),
    )
    .service(
        web::resource(REVOCATIONS_PATH)
            .route(web::get().to(revocations::revocations))
            .default_service(web::to(|| fallback::method_not_allowed("GET"))),
    )
    .service(
        web::resource(JWKS_PATH)
            .route(web::get().to(jwks::jwks))
            .default_service(web::to(|| fallback::method_not_allowed("GET"))),
    )
    .service(
        web::resource(METADATA_PATH)
            .route(web::get().to(metadata::metadata))
            .default_service(web::to(|| fallback::method_not_allowed("GET"))),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .route(web::head().to(health::healthz))
            .default_service(web::to(|| fallback::method_not_allowed("GET, HEAD"))),
    )
    .service(admin::scope())
    .default_service(web::to(fallback::not_found));
}

/// Headers on every response.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}
