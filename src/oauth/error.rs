//! The error policy of the OAuth endpoints.
//!
//! Variants are exactly the RFC 6749 §5.2 codes plus the server-side ones.
//! Descriptions are fixed strings chosen here: no error ever echoes request
//! input back (RFC 6749 §5.2 restricts the characters, and echoing invites
//! injection). `invalid_client` says the same thing whatever the cause, so
//! nobody can probe which client ids exist; the cause is only logged.
//! `src/http/error.rs` turns these into responses, in one place.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// `kind` and `reason` go to the log and the metrics only.
    #[error("invalid_client ({reason})")]
    InvalidClient {
        kind: AuthFailure,
        reason: &'static str,
    },
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(&'static str),
    /// RFC 8707 §2.
    #[error("invalid_target: {0}")]
    InvalidTarget(&'static str),
    /// The client is authenticated but may not do this (HTTP 403).
    #[error("access_denied: {0}")]
    AccessDenied(&'static str),
    #[error("request body too large")]
    PayloadTooLarge,
    /// Too many failed client authentications from here (HTTP 429).
    #[error("too many failed authentications; retry in {retry_after} s")]
    TooManyFailures { retry_after: i64 },
    /// The database cannot be reached: retry later, and never conclude that
    /// the credentials were wrong.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or a broken database; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a client authentication failed, in a few classes: the label of the
/// `tessera_client_auth_failures_total` metric (the `reason` of
/// [`OAuthError::InvalidClient`] has the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials, or only half of them.
    Missing,
    /// Credentials that cannot be read: bad scheme, base64 or encoding.
    Malformed,
    UnknownClient,
    WrongSecret,
    Disabled,
    /// From outside the client's allowed networks.
    Network,
}

impl AuthFailure {
    pub const ALL: [Self; 6] = [
        Self::Missing,
        Self::Malformed,
        Self::UnknownClient,
        Self::WrongSecret,
        Self::Disabled,
        Self::Network,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::Disabled => "disabled",
            Self::Network => "network",
        }
    }
}

pub const CLIENT_AUTH_FAILED: &str = "client authentication failed";

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::AccessDenied(_) => "access_denied",
            Self::Unavailable(_) | Self::TooManyFailures { .. } => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidScope(d)
            | Self::InvalidTarget(d)
            | Self::AccessDenied(d) => d,
            Self::InvalidClient { .. } => CLIENT_AUTH_FAILED,
            Self::UnsupportedGrantType => "the grant type is not supported",
            Self::PayloadTooLarge => "the request body is too large",
            Self::TooManyFailures { .. } => {
                "too many failed client authentications from this address; retry later"
            }
            Self::Unavailable(_) => "the service is temporarily unavailable, retry later",
            Self::Internal(_) => "internal server error",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_use_only_the_characters_rfc_6749_allows() {
        let all = [
            OAuthError::InvalidClient {
                kind: AuthFailure::Missing,
                reason: "x",
            },
            OAuthError::UnsupportedGrantType,
            OAuthError::PayloadTooLarge,
            OAuthError::Unavailable("x".into()),
            OAuthError::Internal("x".into()),
        ];
        for e in all {
            // %x20-21 / %x23-5B / %x5D-7E
            assert!(
                e.description()
                    .bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{e:?}"
            );
        }
    }
}
