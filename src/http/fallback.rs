//! 404 and 405 in the same JSON shape as every other error.

use actix_web::HttpResponse;
use actix_web::http::header;

use super::error::ErrorBody;

pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ErrorBody {
            error: "not_found",
            error_description: "no such endpoint",
        })
}

/// `allowed`: the path's methods, lower-case as the route table has them.
pub async fn method_not_allowed(allowed: &[&str]) -> HttpResponse {
    let allow = allowed
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ErrorBody {
            error: "invalid_request",
            error_description: "method not allowed",
        })
}
