//! `POST /oauth2/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::token_operation;
use crate::oauth::{self, OAuthError};

pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let (caller, token) = token_operation(&req, payload, &state).await?;
    let answer = oauth::introspect::introspect(&state.oauth, &caller, token).await?;
    state.oauth.metrics.introspection(answer.active);
    super::observe::attribute(&req, &caller.id, answer.jti.clone());
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}
