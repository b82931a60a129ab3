//! HTTP: extract form fields and headers, call `oauth`, and turn results and
//! [`OAuthError`](crate::oauth::OAuthError)s into responses. One file per
//! endpoint; no grant rule and no query lives here.

pub mod admin;
mod discovery;
mod error;
mod fallback;
mod form;
mod health;
mod introspect;
mod jwks;
mod metadata;
pub mod observe;
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
    /// Access-token lifetime of clients created without one.
    pub default_access_token_ttl: i64,
    /// The address `/metrics` has to itself, if it has one.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
pub const REVOCATIONS_PATH: &str = "/oauth2/revocations";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Declares every route once: the router is built from this table, and
/// [`ROUTES`] lists it for the OpenAPI consistency test, so the document and
/// the server cannot drift apart. A path answers 405 (with `Allow`) to the
/// methods it lacks.
macro_rules! routes {
    ($($path:expr => { $($method:ident : $handler:path),+ $(,)? })*) => {
        /// Every (method, path) the server answers.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path),)+)*];

        fn register(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $(.route(web::$method().to($handler)))+
                        .default_service(web::to(|| {
                            fallback::method_not_allowed(&[$(stringify!($method)),+])
                        })),
                );
            )*
        }
    };
}

routes! {
    TOKEN_PATH => { post: token::token }
    REVOKE_PATH => { post: revoke::revoke }
    INTROSPECT_PATH => { post: introspect::introspect }
    REVOCATIONS_PATH => { get: revocations::revocations }
    JWKS_PATH => { get: jwks::jwks }
    METADATA_PATH => { get: metadata::metadata }
    "/healthz" => { get: health::healthz, head: health::healthz }
    "/readyz" => { get: health::readyz }
    METRICS_PATH => { get: observe::metrics }
    OPENAPI_PATH => { get: openapi }
    "/admin/clients" => { get: admin::list_clients, post: admin::create_client }
    "/admin/clients/{id}" => {
        get: admin::show_client,
        patch: admin::update_client,
        delete: admin::delete_client,
    }
    "/admin/clients/{id}/disable" => { post: admin::disable_client }
    "/admin/clients/{id}/enable" => { post: admin::enable_client }
    "/admin/clients/{id}/rotate-secret" => { post: admin::rotate_secret }
    "/admin/clients/{id}/revoke-all" => { post: admin::revoke_all }
    "/admin/keys" => { get: admin::list_keys }
    "/admin/keys/rotate" => { post: admin::rotate_keys }
    "/admin/keys/{kid}/retire" => { post: admin::retire_key }
    "/admin/audit" => { get: admin::read_audit }
}

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const METRICS_PATH: &str = "/metrics";

/// The OpenAPI 3.1 document, kept in `docs/openapi.json` and compiled in.
pub const OPENAPI_DOCUMENT: &str = include_str!("../docs/openapi.json");

async fn openapi() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(OPENAPI_DOCUMENT)
}

/// The route table, with the admin API's extractor settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg);
    cfg.default_service(web::to(fallback::not_found));
}

/// A panic in a handler becomes a generic JSON 500 instead of a dropped
/// connection; the panic message goes to the log, never to the client.
pub async fn catch_panics<B>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error>
where
    B: actix_web::body::MessageBody + 'static,
{
    use futures_util::FutureExt;
    let (method, path) = (req.method().clone(), req.path().to_owned());
    match std::panic::AssertUnwindSafe(next.call(req))
        .catch_unwind()
        .await
    {
        Ok(result) => result.map(actix_web::dev::ServiceResponse::map_into_boxed_body),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("handler panicked on {method} {path}: {message}");
            // The request went down with the handler; an error is rendered
            // by the server itself.
            let response = actix_web::HttpResponse::InternalServerError()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({
                    "error": "server_error",
                    "error_description": "internal server error",
                }));
            Err(actix_web::error::InternalError::from_response("handler panicked", response).into())
        }
    }
}

/// With `TESSERA_METRICS_BIND`, the metrics address serves `/metrics` and
/// nothing else, and the main address does not serve `/metrics`.
pub async fn listener_scope<B>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error>
where
    B: actix_web::body::MessageBody + 'static,
{
    let metrics_addr = req
        .app_data::<web::Data<HttpState>>()
        .and_then(|s| s.metrics_addr);
    if let Some(metrics_addr) = metrics_addr {
        let on_metrics_listener = req.app_config().local_addr() == metrics_addr;
        if on_metrics_listener != (req.path() == METRICS_PATH) {
            let (req, _) = req.into_parts();
            let response = fallback::not_found().await;
            return Ok(actix_web::dev::ServiceResponse::new(req, response));
        }
    }
    next.call(req)
        .await
        .map(actix_web::dev::ServiceResponse::map_into_boxed_body)
}

/// Headers on every response.
pub fn default_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}
