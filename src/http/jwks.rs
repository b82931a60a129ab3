//! `GET /.well-known/jwks.json` (RFC 7517 §5): served from memory, with a
//! strong ETag so resource servers can revalidate cheaply, and open to
//! cross-origin reads (RFC 9700 §2.6).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;

pub async fn jwks(req: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let keys = state.oauth.keys.current(state.oauth.clock.now());
    let cache_control = format!("public, max-age={}", state.jwks_max_age);
    let not_modified = if_none_match(&req, &keys.etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, keys.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if not_modified {
        return response.finish();
    }
    response
        .content_type("application/json")
        .body(keys.jwks_json.clone())
}

/// RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`.
fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}
