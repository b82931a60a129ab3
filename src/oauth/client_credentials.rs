//! The client-credentials grant (RFC 6749 §4.4), and the access-token
//! minting every grant shares.
//!
//! RFC 6749 §4.4.3 says a refresh token SHOULD NOT be issued here. Tessera
//! issues one to clients with `refresh_tokens` on (the default), because its
//! users asked for them: a family ties every token of one grant together, so
//! one revocation ends all of them and reuse of a stolen token is detected.
//! Refreshing still requires client authentication (RFC 6749 §6).

use super::audience::{is_valid_uri, split_list};
use super::scope::Scope;
use super::{OAuthError, OAuthState, TokenResponse};
use crate::clock::UnixSeconds;
use crate::store::clients::Client;
use crate::store::refresh::{self as refresh_store, Issue, NewFamily};
use crate::token::access::{self, AccessTokenClaims, Audience};
use crate::token::secret::{PlainSecret, REFRESH_TOKEN_PREFIX};

/// A signed access token and the facts about it that storage needs.
pub struct MintedAccessToken {
    pub token: String,
    pub jti: String,
    pub expires_at: UnixSeconds,
    pub ttl: i64,
    pub scope: String,
}

/// Signs an RFC 9068 access token for `client`.
///
/// A client-wide cut-off revokes every token issued at or before its
/// instant, and `iat` has one-second resolution: a token minted in the very
/// second of a cut-off is stamped with the next second, so it is not born
/// revoked (validators' leeway absorbs the fraction of a second).
pub fn mint_access_token(
    state: &OAuthState,
    client: &Client,
    scope: &Scope,
    audience: Audience,
    now: UnixSeconds,
) -> Result<MintedAccessToken, OAuthError> {
    let ttl = client.access_token_ttl;
    let iat = client
        .tokens_valid_after
        .map_or(now, |cutoff| now.max(cutoff + 1));
    let claims = AccessTokenClaims {
        iss: state.issuer.to_string(),
        sub: client.id.clone(),
        aud: audience,
        exp: iat + ttl,
        iat,
        nbf: iat,
        jti: crate::token::ids::time_ordered(now)
            .map_err(|e| OAuthError::Internal(e.to_string()))?,
        client_id: client.id.clone(),
        scope: scope.to_string(),
    };
    let keys = state.keys.current(now);
    let token = access::mint(&keys.active, &claims)
        .map_err(|e| OAuthError::Internal(format!("signing failed: {e}")))?;
    Ok(MintedAccessToken {
        token,
        jti: claims.jti,
        expires_at: claims.exp,
        ttl,
        scope: claims.scope,
    })
}

pub async fn grant(
    state: &OAuthState,
    client: Client,
    requested_scope: Option<&str>,
    resources: &[String],
    now: UnixSeconds,
) -> Result<TokenResponse, OAuthError> {
    let allowed = client_scope(&client)?;
    let scope = narrow_scope(&allowed, requested_scope)?;
    let registered = registered_audiences(state, &client);
    let audience = narrow_audience(&registered, resources)?;
    let family_audiences = match &audience {
        _ if resources.is_empty() => registered.clone(),
        Audience::One(a) => vec![a.clone()],
        Audience::Many(list) => list.clone(),
    };
    let minted = mint_access_token(state, &client, &scope, audience, now)?;
    let refresh_token = if client.refresh_tokens {
        Some(start_family(state, &client, &scope, &family_audiences, &minted, now).await?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: "Bearer",
        expires_in: minted.ttl,
        scope: minted.scope,
        refresh_token,
        jti: minted.jti,
    })
}

/// Records a new family. Its scope is what this grant gave (RFC 6749 §6:
/// refreshes may narrow it, never widen it); its audiences are the resources
/// requested, or, when none were, every audience the client is registered
/// for (RFC 8707 §2.2: a refresh may then pick among them). The token is
/// answered only once the family is committed.
async fn start_family(
    state: &OAuthState,
    client: &Client,
    scope: &Scope,
    audiences: &[String],
    minted: &MintedAccessToken,
    now: UnixSeconds,
) -> Result<String, OAuthError> {
    let plain = PlainSecret::generate(REFRESH_TOKEN_PREFIX)
        .map_err(|e| OAuthError::Internal(e.to_string()))?;
    let family_expires = now + state.refresh.family_ttl_for(client);
    let token_expires = (now + state.refresh.token_ttl_for(client)).min(family_expires);
    let hash = plain.hash();
    let family_id =
        crate::token::ids::time_ordered(now).map_err(|e| OAuthError::Internal(e.to_string()))?;
    let client_id = client.id.clone();
    let scope = scope.to_string();
    let audience = audiences.join(" ");
    let jti = minted.jti.clone();
    let access_expires = minted.expires_at;
    state
        .db
        .write(move |conn| {
            refresh_store::start_family(
                conn,
                &NewFamily {
                    id: &family_id,
                    client_id: &client_id,
                    scope: &scope,
                    audience: &audience,
                    created_at: now,
                    expires_at: family_expires,
                },
                &Issue {
                    token_hash: hash.as_bytes(),
                    token_expires_at: token_expires,
                    access_jti: &jti,
                    access_expires_at: access_expires,
                },
            )
        })
        .await?;
    Ok(plain.expose().to_owned())
}

/// The audiences the client may get tokens for: those registered, or the
/// issuer's default audience for a client registered with none.
pub fn registered_audiences(state: &OAuthState, client: &Client) -> Vec<String> {
    let mut registered = split_list(&client.audiences);
    if registered.is_empty() {
        registered.push(state.default_audience.to_string());
    }
    registered
}

pub fn client_scope(client: &Client) -> Result<Scope, OAuthError> {
    Scope::parse(&client.scopes).map_err(|_| {
        OAuthError::Internal(format!("client {} has an invalid stored scope", client.id))
    })
}

/// RFC 6749 §3.3: absent means everything allowed; a request for anything
/// more is refused rather than silently narrowed.
pub fn narrow_scope(allowed: &Scope, requested: Option<&str>) -> Result<Scope, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.clone());
    };
    let requested = Scope::parse(requested).map_err(|_| {
        OAuthError::InvalidScope(
            "the scope contains characters that RFC 6749 section 3.3 does not allow",
        )
    })?;
    if requested.is_empty() {
        return Ok(allowed.clone());
    }
    if !requested.is_subset_of(allowed) {
        return Err(OAuthError::InvalidScope(
            "the requested scope is not allowed for this client",
        ));
    }
    Ok(requested)
}

/// RFC 8707: each requested resource must be one of `registered`; none
/// requested means the first of them.
pub fn narrow_audience(
    registered: &[String],
    resources: &[String],
) -> Result<Audience, OAuthError> {
    if resources.is_empty() {
        let first = registered
            .first()
            .ok_or_else(|| OAuthError::Internal("no audience to grant".to_owned()))?;
        return Ok(Audience::One(first.clone()));
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
