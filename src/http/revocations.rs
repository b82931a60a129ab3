//! `GET /oauth2/revocations?after=CURSOR&limit=N`: the revocation feed that
//! offline validators follow. Client authentication by HTTP Basic only (a GET
//! has no body, and credentials never go in a URL).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpState;
use super::form::{peer, single_header};
use crate::oauth::revoke::FeedQuery;
use crate::oauth::{self, OAuthError};

pub async fn revocations(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, OAuthError> {
    let FeedQuery { after, limit } = FeedQuery::parse(req.query_string().as_bytes())?;
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
