//! Token introspection (RFC 7662).
//!
//! A client may introspect tokens issued to it; a client with the
//! introspection permission (a resource server, or an operator's auditing
//! tool) may introspect any token, refresh tokens of other clients
//! included, as the permission says. Anything not active *for this caller*
//! is exactly `{"active": false}` (RFC 7662 §2.2), never an error: garbage,
//! forged, expired, revoked, cut off, or another client's token all look
//! the same.

use serde::Serialize;

use super::{OAuthError, OAuthState};
use crate::store::clients::{self, Client};
use crate::store::{refresh as refresh_store, revocation};
use crate::token::access::Audience;
use crate::token::secret::{REFRESH_TOKEN_PREFIX, SecretHash};

#[derive(Debug, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self::default()
    }
}

fn may_see(caller: &Client, owner: &str) -> bool {
    caller.can_introspect || caller.id == owner
}

pub async fn introspect(
    state: &OAuthState,
    caller: &Client,
    token: String,
) -> Result<Introspection, OAuthError> {
    let now = state.clock.now();
    if token.starts_with(REFRESH_TOKEN_PREFIX) {
        let hash = SecretHash::of(&token);
        let found = state
            .db
            .read(move |conn| {
                let Some((row, family)) = refresh_store::find(conn, hash.as_bytes())? else {
                    return Ok(None);
                };
                let owner = clients::find_client(conn, &family.client_id)?;
                Ok(Some((row, family, owner)))
            })
            .await?;
        let Some((row, family, Some(owner))) = found else {
            return Ok(Introspection::inactive());
        };
        let live = family.revoked_at.is_none()
            && row.used_at.is_none()
            && row.expires_at > now
            && family.expires_at > now
            && !owner.is_disabled()
            // Refresh switched off for the client: the token cannot be used,
            // so it is not active, though switching back on revives it.
            && owner.refresh_tokens;
        if !live || !may_see(caller, &owner.id) {
            return Ok(Introspection::inactive());
        }
        // What a refresh with this token would grant now.
        let (scope, audiences) = super::refresh::still_granted(state, &owner, &family)?;
        if audiences.is_empty() {
            return Ok(Introspection::inactive());
        }
        return Ok(Introspection {
            active: true,
            scope: Some(scope.to_string()),
            sub: Some(owner.id.clone()),
            client_id: Some(owner.id),
            aud: Some(Audience::from_list(audiences)),
            iss: Some(state.issuer.to_string()),
            exp: Some(row.expires_at.min(family.expires_at)),
            iat: Some(row.created_at),
            token_type: Some("refresh_token"),
            ..Introspection::default()
        });
    }

    let claims = match state.verify_own(&token, now, 0) {
        Ok(claims) => claims,
        Err(e) => {
            log::debug!("introspection: token refused: {e}");
            return Ok(Introspection::inactive());
        }
    };
    if !may_see(caller, &claims.client_id) {
        return Ok(Introspection::inactive());
    }
    let (jti, client_id) = (claims.jti.clone(), claims.client_id.clone());
    let standing = state
        .db
        .read(move |conn| revocation::access_token_standing(conn, &jti, &client_id))
        .await?;
    if !standing.in_force(claims.iat) {
        return Ok(Introspection::inactive());
    }
    Ok(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: Some(claims.nbf),
        jti: Some(claims.jti),
        token_type: Some("Bearer"),
    })
}
