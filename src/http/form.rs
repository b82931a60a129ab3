//! Reads a form body the way RFC 6749 §3.2 wants it: POSTed as
//! `application/x-www-form-urlencoded`, nothing in the query string (so no
//! credential ends up in a URL, a proxy log or a browser history, RFC 6749
//! §2.3.1), and no larger than the configured limit.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::oauth::{OAuthError, form};

pub async fn read_form(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<(String, String)>, OAuthError> {
    if !req.query_string().is_empty() {
        return Err(OAuthError::InvalidRequest(
            "parameters must be sent in the request body, not in the URL",
        ));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(OAuthError::PayloadTooLarge);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| OAuthError::InvalidRequest("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(OAuthError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    form::parse_pairs(&body).ok_or(OAuthError::InvalidRequest(
        "the body is not valid form encoding",
    ))
}

/// The value of a header that must appear at most once.
pub fn single_header(
    req: &HttpRequest,
    name: header::HeaderName,
) -> Result<Option<&str>, OAuthError> {
    let mut values = req.headers().get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidRequest(
            "a header was sent more than once",
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| OAuthError::InvalidClient {
            kind: crate::oauth::error::AuthFailure::Malformed,
            reason: "Authorization header is not visible ASCII",
        })
}

/// The caller's address: the TCP peer, or, behind a trusted proxy, the
/// address `X-Forwarded-For` names (see `oauth::network`).
pub fn peer(
    req: &HttpRequest,
    trusted: &[crate::oauth::network::Cidr],
) -> Option<std::net::IpAddr> {
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    crate::oauth::network::client_address(req.peer_addr().map(|a| a.ip()), &forwarded, trusted)
}

/// A request about one token (revocation, introspection): the form read,
/// the caller authenticated. Returns the caller and the token.
pub async fn token_operation(
    req: &HttpRequest,
    payload: web::Payload,
    state: &super::HttpState,
) -> Result<(crate::store::clients::Client, String), OAuthError> {
    let params = read_form(req, payload, state.max_body_bytes).await?;
    let authorization = single_header(req, header::AUTHORIZATION)?;
    let request = crate::oauth::request::TokenOperationRequest::from_params(params)?;
    let caller = crate::oauth::authenticate_client(
        &state.oauth,
        authorization,
        request.client_id,
        request.client_secret,
        peer(req, &state.trusted_proxies),
    )
    .await?;
    super::observe::attribute(req, &caller.id, None);
    Ok((caller, request.token))
}
