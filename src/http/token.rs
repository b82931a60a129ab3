//! `POST /oauth2/token` (RFC 6749 §3.2, §5).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::{peer, read_form, single_header};
use crate::oauth::{self, OAuthError};

pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let params = read_form(&req, payload, state.max_body_bytes).await?;
    let authorization = single_header(&req, header::AUTHORIZATION)?;
    let response = oauth::token(
        &state.oauth,
        params,
        authorization,
        peer(&req, &state.trusted_proxies),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}
