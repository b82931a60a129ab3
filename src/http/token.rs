//! `POST /oauth2/token` (RFC 6749 §3.2, §5).

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

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
    let mut attribution = oauth::Attribution::default();
    let result = oauth::token(
        &state.oauth,
        params,
        authorization,
        peer(&req, &state.trusted_proxies),
        &mut attribution,
    )
    .await;
    req.extensions_mut().insert(attribution);
    let response = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}
