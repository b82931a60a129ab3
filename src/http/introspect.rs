//! `POST /oauth2/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::{peer, read_form, single_header};
use crate::oauth::request::TokenOperationRequest;
use crate::oauth::{self, OAuthError};

pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let params = read_form(&req, payload, state.max_body_bytes).await?;
    let authorization = single_header(&req, header::AUTHORIZATION)?;
    let request = TokenOperationRequest::from_params(params)?;
    let caller = oauth::authenticate_client(
        &state.oauth,
        authorization,
        request.client_id,
        request.client_secret,
        peer(&req, &state.trusted_proxies),
    )
    .await?;
    let answer = oauth::introspect::introspect(&state.oauth, &caller, request.token).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}
