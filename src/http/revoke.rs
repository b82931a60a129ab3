//! `POST /oauth2/revoke` (RFC 7009).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::token_operation;
use crate::oauth::{self, OAuthError};

pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let (caller, token) = token_operation(&req, payload, &state).await?;
    let jti = oauth::revoke::revoke(&state.oauth, &caller, token).await?;
    super::observe::attribute(&req, &caller.id, jti);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .finish())
}
