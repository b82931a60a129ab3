//! The one mapping from [`OAuthError`] to an HTTP response (RFC 6749 §5.2):
//! JSON `{"error", "error_description"}`, never cached; 401 with a Basic
//! challenge for `invalid_client`; 503 with `Retry-After` when the database
//! is unreachable; 500 with a generic body when something is broken (the
//! cause goes to the log, not to the client).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::oauth::OAuthError;

pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\"";

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: &'static str,
    pub error_description: &'static str,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AccessDenied(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(detail) => log::error!("internal error: {detail}"),
            Self::Unavailable(detail) => log::warn!("database unavailable: {detail}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        match self {
            Self::InvalidClient { .. } => {
                response.insert_header((header::WWW_AUTHENTICATE, BASIC_CHALLENGE));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::TooManyFailures { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: self.description(),
        })
    }
}
