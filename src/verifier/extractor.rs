//! An actix-web extractor: `BearerToken<S>` in a handler's arguments admits
//! only requests with a valid access token holding the scopes `S` requires,
//! and answers everything else as RFC 6750 §3 says.
//!
//! The token is read from the `Authorization` header. A token in the query
//! string (RFC 6750 §2.3) or in a form body (§2.2) is refused unless the app
//! opts in with [`BearerOptions`]: URLs end up in logs, proxies and browser
//! histories, which is why RFC 6750 §2.3 and RFC 9700 discourage the query
//! string, and a form body is only possible on requests that have one. A
//! token in two places is always refused (RFC 6750 §2: one method per
//! request).
//!
//! ```no_run
//! use actix_web::{get, web, App, HttpServer};
//! use tessera::verifier::{BearerToken, RequiredScope, Verifier};
//!
//! struct InvoicesRead;
//! impl RequiredScope for InvoicesRead {
//!     const SCOPES: &'static [&'static str] = &["invoices:read"];
//! }
//!
//! #[get("/invoices")]
//! async fn invoices(token: BearerToken<InvoicesRead>) -> String {
//!     format!("hello, {}", token.claims.client_id)
//! }
//! # async fn run(verifier: Verifier) -> std::io::Result<()> {
//! HttpServer::new(move || App::new().app_data(web::Data::new(verifier.clone())).service(invoices))
//!     .bind(("127.0.0.1", 8081))?
//!     .run()
//!     .await
//! # }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::{Expectations, Rejection, Verifier};
use crate::token::access::AccessTokenClaims;

/// What `Payload::Stream` holds (actix-web does not re-export the alias).
type BoxedPayloadStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<web::Bytes, PayloadError>>>>;

/// The scopes a handler requires; every one must be in the token's `scope`.
pub trait RequiredScope {
    const SCOPES: &'static [&'static str];
}

/// Any valid token, whatever its scope.
pub struct NoScope;

impl RequiredScope for NoScope {
    const SCOPES: &'static [&'static str] = &[];
}

/// Opt-ins for the extractor, given as `app_data(BearerOptions { .. })`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerOptions {
    /// Accept `?access_token=` when no `Authorization` header is sent.
    pub allow_query_token: bool,
    /// Accept an `access_token` field in an
    /// `application/x-www-form-urlencoded` body of a POST, PUT or PATCH
    /// (RFC 6750 §2.2). The extractor then reads the body (at most
    /// [`FORM_BODY_LIMIT`] bytes) and hands the same bytes on, so extractors
    /// after it in the handler's arguments (`web::Form`, `web::Bytes`) still
    /// see the whole body, the `access_token` field included.
    pub allow_form_token: bool,
}

/// The largest form body the extractor reads when looking for a token;
/// a larger one is answered `413`.
pub const FORM_BODY_LIMIT: usize = 64 * 1024;

/// A verified access token carrying the scopes `S` requires.
pub struct BearerToken<S: RequiredScope = NoScope> {
    pub claims: AccessTokenClaims,
    scope: PhantomData<S>,
}

/// RFC 6750 §3: the challenge, and the error body beside it.
fn challenge(
    status: StatusCode,
    realm: &str,
    error: Option<(&str, &str)>,
    scope: Option<&str>,
) -> actix_web::Error {
    let realm = realm.replace(['"', '\\'], "");
    let mut value = format!("Bearer realm=\"{realm}\"");
    if let Some((code, description)) = error {
        value.push_str(&format!(
            ", error=\"{code}\", error_description=\"{description}\""
        ));
    }
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::WWW_AUTHENTICATE, value))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    let response = match error {
        Some((code, description)) => response.json(serde_json::json!({
            "error": code,
            "error_description": description,
        })),
        None => response.finish(),
    };
    actix_web::error::InternalError::from_response("bearer token refused", response).into()
}

/// The token from the request, or the RFC 6750 error for its absence or
/// malformation. `form` holds the `access_token` fields of the body when the app allows
/// form tokens and the request has a form body, `None` otherwise.
fn bearer(
    req: &HttpRequest,
    realm: &str,
    options: BearerOptions,
    form: Option<Vec<String>>,
) -> Result<String, actix_web::Error> {
    let bad = |description| {
        challenge(
            StatusCode::BAD_REQUEST,
            realm,
            Some(("invalid_request", description)),
            None,
        )
    };
    let in_query: Vec<&str> = req
        .query_string()
        .split('&')
        .filter_map(|p| p.strip_prefix("access_token="))
        .collect();
    let query_named = req
        .query_string()
        .split('&')
        .any(|p| p == "access_token" || p.starts_with("access_token="));
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let in_form = form.unwrap_or_default();
    let places = usize::from(req.headers().contains_key(header::AUTHORIZATION))
        + usize::from(query_named)
        + usize::from(!in_form.is_empty());
    if places > 1 {
        return Err(bad("send the token in one place only"));
    }
    if !in_form.is_empty() {
        return match in_form.as_slice() {
            [token] if !token.is_empty() && !token.contains(char::is_whitespace) => {
                Ok(token.clone())
            }
            _ => Err(bad("malformed access_token")),
        };
    }
    let Some(value) = values.next() else {
        if query_named {
            if !options.allow_query_token {
                return Err(bad(
                    "send the token in the Authorization header, not the URL",
                ));
            }
            return match in_query.as_slice() {
                [token] if !token.is_empty() => crate::form_encoding::decode_component(token)
                    .ok_or_else(|| bad("malformed access_token")),
                _ => Err(bad("malformed access_token")),
            };
        }
        // RFC 6750 §3.1: no credentials, no error code.
        return Err(challenge(StatusCode::UNAUTHORIZED, realm, None, None));
    };
    if values.next().is_some() {
        return Err(bad("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| bad("malformed Authorization header"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(challenge(StatusCode::UNAUTHORIZED, realm, None, None));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(bad("malformed Bearer token"));
    }
    Ok(token.to_owned())
}

/// RFC 6750 §2.2: a form body of a method whose body has defined
/// semantics (never GET), single-part `application/x-www-form-urlencoded`.
fn has_form_body(req: &HttpRequest) -> bool {
    let method = req.method();
    let body_method = method == Method::POST || method == Method::PUT || method == Method::PATCH;
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    body_method && form
}

/// The body we read, handed on to the extractors after us.
type Replay = tokio::sync::oneshot::Sender<Result<web::Bytes, PayloadError>>;

/// Puts a stream in place of the request's payload that yields, once
/// `Replay` is fed, exactly the bytes this extractor read; returns the
/// original payload to read.
fn intercept(payload: &mut Payload) -> (Payload, Replay) {
    let (replay, replayed) = tokio::sync::oneshot::channel();
    let original = payload.take();
    let stream = futures_util::stream::once(async move {
        replayed
            .await
            .unwrap_or(Err(PayloadError::Incomplete(None)))
    });
    let boxed: BoxedPayloadStream = Box::pin(stream);
    *payload = Payload::from(boxed);
    (original, replay)
}

/// Reads the whole form body, gives it to `replay`, and returns the values
/// of its `access_token` fields.
async fn form_tokens(mut body: Payload, replay: Replay) -> Result<Vec<String>, actix_web::Error> {
    let mut buffer = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                let _ = replay.send(Err(PayloadError::Incomplete(None)));
                return Err(e.into());
            }
        };
        if buffer.len() + chunk.len() > FORM_BODY_LIMIT {
            return Err(actix_web::error::ErrorPayloadTooLarge(
                "form body too large",
            ));
        }
        buffer.extend_from_slice(&chunk);
    }
    let buffer = buffer.freeze();
    let tokens = buffer
        .split(|b| *b == b'&')
        .filter_map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Only our field's name is decoded: the handler's own fields
            // are its business, however they are encoded.
            if crate::form_encoding::decode_component(name)? != "access_token" {
                return None;
            }
            // An undecodable value still counts, so it is refused as
            // malformed rather than ignored.
            Some(crate::form_encoding::decode_component(value).unwrap_or_default())
        })
        .collect();
    // The handler may have stopped listening; nothing is lost then.
    let _ = replay.send(Ok(buffer));
    Ok(tokens)
}

impl<S: RequiredScope + 'static> FromRequest for BearerToken<S> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let options = req.app_data::<BearerOptions>().copied().unwrap_or_default();
        // With the token in the header, a form body too large for us to read
        // is the handler's business: it passes untouched (and a second
        // token inside it goes unnoticed). A smaller one is still read, so
        // a token in two places is refused.
        let header_token = req.headers().contains_key(header::AUTHORIZATION);
        let small = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n <= FORM_BODY_LIMIT);
        let read_form = options.allow_form_token && has_form_body(req) && (!header_token || small);
        let form = read_form.then(|| intercept(payload));
        let req = req.clone();
        Box::pin(async move {
            let Some(verifier) = verifier else {
                log::error!("BearerToken used without web::Data<Verifier> in the app");
                return Err(actix_web::error::ErrorInternalServerError("not configured"));
            };
            let realm = verifier.audience().to_owned();
            let in_form = match form {
                Some((body, replay)) => Some(form_tokens(body, replay).await?),
                None => None,
            };
            let token = bearer(&req, &realm, options, in_form)?;
            let expect = Expectations::new(realm.clone()).scopes(S::SCOPES.iter().copied());
            let claims = match verifier.verify(&token, &expect).await {
                Ok(claims) => claims,
                Err(Rejection::KeysUnavailable | Rejection::IntrospectionUnavailable) => {
                    return Err(actix_web::error::ErrorServiceUnavailable(
                        "token keys unavailable",
                    ));
                }
                Err(Rejection::InsufficientScope) => {
                    return Err(challenge(
                        StatusCode::FORBIDDEN,
                        &realm,
                        Some((
                            "insufficient_scope",
                            "the access token lacks a required scope",
                        )),
                        Some(&S::SCOPES.join(" ")),
                    ));
                }
                Err(e) => {
                    log::debug!("bearer token refused: {e}");
                    return Err(challenge(
                        StatusCode::UNAUTHORIZED,
                        &realm,
                        Some(("invalid_token", "the access token is invalid")),
                        None,
                    ));
                }
            };
            Ok(BearerToken {
                claims,
                scope: PhantomData,
            })
        })
    }
}
