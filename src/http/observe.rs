//! One log line and one metrics sample per request, and `GET /metrics`.
//!
//! Handlers say whom a request concerned ([`attribute`]); the line is
//! written when the response is ready, so it carries the status and the
//! latency too. It never carries the query string, a header or a body: those
//! are where credentials travel. A path segment that is no plausible id (a
//! secret pasted into a URL) is shown as a hash prefix.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use super::HttpState;
use crate::oauth::{Attribution, loggable_client_id, loggable_path};

/// Records the client (and token) a request concerned, for its log line.
pub fn attribute(req: &HttpRequest, client_id: &str, jti: Option<String>) {
    let mut extensions = req.extensions_mut();
    let previous = extensions.remove::<Attribution>().unwrap_or_default();
    extensions.insert(Attribution {
        client_id: Some(client_id.to_owned()),
        jti: jti.or(previous.jti),
    });
}

pub async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // The line's parts are gathered only when it will be written.
    let logging = log::log_enabled!(log::Level::Info);
    let path = logging.then(|| loggable_path(req.path()));
    // The route pattern, never the path: a bounded label, even for a
    // request that ends in a panic.
    let endpoint = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let state = req.app_data::<web::Data<HttpState>>().cloned();
    let in_flight = state.as_ref().map(|s| s.oauth.metrics.in_flight());
    let result = next.call(req).await;
    drop(in_flight);
    let elapsed = started.elapsed();

    let (status, attribution) = match &result {
        Ok(res) => (
            res.status(),
            logging
                .then(|| res.request().extensions().get::<Attribution>().cloned())
                .flatten(),
        ),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let attribution = attribution.unwrap_or_default();
    log::info!(
        "{method} {} {} {:.3}ms client_id={} jti={}",
        path.as_deref().unwrap_or_default(),
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0,
        attribution
            .client_id
            .as_deref()
            .map_or_else(|| "-".to_owned(), loggable_client_id),
        attribution.jti.as_deref().unwrap_or("-"),
    );
    if let Some(state) = state {
        state
            .oauth
            .metrics
            .request(&endpoint, &method, status.as_u16(), elapsed.as_secs_f64());
    }
    result
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    let now = state.oauth.clock.now();
    let keys = state.oauth.keys.current(now);
    let body = state.oauth.metrics.render(&state.oauth.db, &keys, now);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(body)
}
