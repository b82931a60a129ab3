//! Who may use the admin API: a bearer of an access token from this very
//! issuer that carries the `tessera:admin` scope, checked the way any
//! resource server checks a token (strict verification, revocation list,
//! client cut-off), plus the audience: the issuer itself or
//! `<issuer>/admin`, so a token minted for another API cannot be replayed
//! here.

use super::OAuthState;
use crate::store::revocation;
use crate::token::access::{AccessTokenClaims, Audience};

pub const ADMIN_SCOPE: &str = "tessera:admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAuthError {
    /// No bearer token (RFC 6750 §3.1: no error code).
    Missing,
    Malformed,
    /// Invalid, expired, revoked or meant for another audience.
    InvalidToken,
    /// Valid, but without `tessera:admin`.
    InsufficientScope,
    Unavailable(String),
}

/// The audiences an admin token may carry.
pub fn admin_audiences(issuer: &str) -> [String; 2] {
    [issuer.to_owned(), format!("{issuer}/admin")]
}

/// Checks the `Authorization` header of an admin request.
pub async fn authorize(
    state: &OAuthState,
    authorization: Option<&str>,
) -> Result<AccessTokenClaims, AdminAuthError> {
    let value = authorization.ok_or(AdminAuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AdminAuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AdminAuthError::Malformed);
    }
    let now = state.clock.now();
    let claims = state
        .verify_own(token, now, 0)
        .map_err(|_| AdminAuthError::InvalidToken)?;
    let allowed = admin_audiences(&state.issuer);
    let aud_ok = match &claims.aud {
        Audience::One(a) => allowed.contains(a),
        Audience::Many(list) => list.iter().any(|a| allowed.contains(a)),
    };
    if !aud_ok {
        return Err(AdminAuthError::InvalidToken);
    }
    let (jti, client_id) = (claims.jti.clone(), claims.client_id.clone());
    let standing = state
        .db
        .read(move |conn| revocation::access_token_standing(conn, &jti, &client_id))
        .await
        .map_err(|e| AdminAuthError::Unavailable(e.to_string()))?;
    if !standing.in_force(claims.iat) {
        return Err(AdminAuthError::InvalidToken);
    }
    if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
        return Err(AdminAuthError::InsufficientScope);
    }
    Ok(claims)
}
