//! The client-credentials grant (RFC 6749 §4.4) and the token response
//! (RFC 6749 §5.1).

use serde::Serialize;

use super::audience::{is_valid_uri, split_list};
use super::scope::Scope;
use super::{OAuthError, OAuthState};
use crate::clock::UnixSeconds;
use crate::store::clients::Client;
use crate::token::access::{self, AccessTokenClaims, Audience};

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Always present, so a client never has to guess what it was granted.
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Decides scope and audience for an authenticated client and mints its
/// access token.
pub fn grant(
    state: &OAuthState,
    client: &Client,
    requested_scope: Option<&str>,
    resources: &[String],
    now: UnixSeconds,
) -> Result<TokenResponse, OAuthError> {
    let scope = decide_scope(client, requested_scope)?;
    let audience = decide_audience(client, resources, &state.default_audience)?;
    let ttl = client.access_token_ttl;
    let claims = AccessTokenClaims {
        iss: state.issuer.to_string(),
        sub: client.id.clone(),
        aud: audience,
        exp: now + ttl,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
    };
    let keys = state.keys.current();
    let access_token = access::mint(&keys.active, &claims)
        .map_err(|e| OAuthError::Internal(format!("signing failed: {e}")))?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: claims.scope,
        refresh_token: None,
    })
}

/// RFC 6749 §3.3: absent means everything the client is registered for; a
/// request for anything more is refused rather than silently narrowed.
pub fn decide_scope(client: &Client, requested: Option<&str>) -> Result<Scope, OAuthError> {
    let allowed = Scope::parse(&client.scopes).map_err(|_| {
        OAuthError::Internal(format!("client {} has an invalid stored scope", client.id))
    })?;
    let Some(requested) = requested else {
        return Ok(allowed);
    };
    let requested = Scope::parse(requested).map_err(|_| {
        OAuthError::InvalidScope(
            "the scope contains characters that RFC 6749 section 3.3 does not allow",
        )
    })?;
    if requested.is_empty() {
        return Ok(allowed);
    }
    if !requested.is_subset_of(&allowed) {
        return Err(OAuthError::InvalidScope(
            "the requested scope is not allowed for this client",
        ));
    }
    Ok(requested)
}

/// RFC 8707: each requested resource must be one the client is registered
/// for; none requested means the client's first audience.
pub fn decide_audience(
    client: &Client,
    resources: &[String],
    default_audience: &str,
) -> Result<Audience, OAuthError> {
    let mut registered = split_list(&client.audiences);
    if registered.is_empty() {
        registered.push(default_audience.to_owned());
    }
    if resources.is_empty() {
        return Ok(Audience::One(registered.swap_remove(0)));
    }
    let mut granted: Vec<String> = Vec::with_capacity(resources.len());
    for resource in resources {
        if !is_valid_uri(resource) {
            return Err(OAuthError::InvalidTarget(
                "a resource must be an absolute URI without a fragment",
            ));
        }
        if !registered.contains(resource) {
            return Err(OAuthError::InvalidTarget(
                "the requested resource is not allowed for this client",
            ));
        }
        if !granted.contains(resource) {
            granted.push(resource.clone());
        }
    }
    Ok(Audience::from_list(granted))
}
