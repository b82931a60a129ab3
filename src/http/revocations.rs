//! `GET /oauth2/revocations?after=CURSOR&limit=N`: the revocation feed that
//! offline validators follow. Client authentication by HTTP Basic only (a GET
//! has no body, and credentials never go in a URL).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::{peer, single_header};
use crate::oauth::revoke::FEED_PAGE_MAX;
use crate::oauth::{self, OAuthError, form, request};

pub async fn revocations(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let params = form::parse_pairs(req.query_string().as_bytes()).ok_or(
        OAuthError::InvalidRequest("the query string is not valid form encoding"),
    )?;
    request::refuse_repeats(&params, &[])?;
    let number = |name: &str, default: i64| -> Result<i64, OAuthError> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) if v.is_empty() => Ok(default),
            Some((_, v)) => {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or(OAuthError::InvalidRequest(
                        "after and limit must be non-negative integers",
                    ))
            }
        }
    };
    let after = number("after", 0)?;
    let limit = number("limit", FEED_PAGE_MAX)?.clamp(1, FEED_PAGE_MAX);
    if params
        .iter()
        .any(|(k, _)| k == "client_secret" || k == "client_id")
    {
        return Err(OAuthError::InvalidRequest(
            "client credentials must be sent in the Authorization header",
        ));
    }
    let authorization = single_header(&req, header::AUTHORIZATION)?;
    let caller = oauth::authenticate_client(
        &state.oauth,
        authorization,
        None,
        None,
        peer(&req, &state.trusted_proxies),
    )
    .await?;
    super::observe::attribute(&req, &caller.id, None);
    let page = oauth::revoke::feed(&state.oauth, &caller, after, limit).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(page))
}
