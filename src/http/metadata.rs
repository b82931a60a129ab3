//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::HttpState;

pub async fn metadata(state: web::Data<HttpState>) -> HttpResponse {
    let body = state.discovery.metadata_json(&state.oauth).await;
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.jwks_max_age),
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/json")
        .body(body)
}
