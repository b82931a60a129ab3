//! `GET /healthz`: the process is up and serving HTTP. It does not touch the
//! database, so an orchestrator does not restart a server whose database is
//! briefly away.

use actix_web::HttpResponse;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
