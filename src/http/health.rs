//! `GET /healthz`: the process is up and serving HTTP. It does not touch the
//! database, so an orchestrator does not restart a server whose database is
//! briefly away.
//!
//! `GET /readyz`: the server can do its job now: the database answers and a
//! signing key is active. An orchestrator takes the node out of rotation
//! while it answers 503.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::HttpState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<HttpState>) -> HttpResponse {
    let database = state.oauth.database_reachable().await;
    let now = state.oauth.clock.now();
    let keys = state.oauth.keys.current(now);
    let signing_key = keys.valid_from <= now && now < keys.valid_until;
    let ready = database.is_ok() && signing_key;
    if let Err(e) = &database {
        log::warn!("readiness: database: {e}");
    }
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {
            "database": if database.is_ok() { "ok" } else { "unavailable" },
            "signing_key": if signing_key { "ok" } else { "none active" },
        },
    });
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
