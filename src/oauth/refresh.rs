//! The refresh-token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2).
//!
//! Every use returns a new refresh token and uses the presented one up. A
//! used token presented again means two parties hold the family, one of them
//! a thief: the whole family is revoked, together with every access token it
//! issued that has not expired. With a grace window configured, a used token
//! presented again within the window (a client that lost the response and
//! retries) instead gets a fresh successor and the family's other live token
//! is used up, so a family never has two live tokens.

use super::audience::split_list;
use super::client_credentials::{
    client_scope, mint_access_token, narrow_audience, narrow_scope, registered_audiences,
};
use super::scope::Scope;
use super::{OAuthError, OAuthState, TokenResponse};
use crate::clock::UnixSeconds;
use crate::store::clients::Client;
use crate::store::refresh::{self as store, Decision, Family, Issue, Outcome, RefreshTokenRow};
use crate::token::secret::{PlainSecret, REFRESH_TOKEN_PREFIX, SecretHash};

/// One message for every refused refresh token, whatever the reason: the
/// caller learns nothing about other clients' families.
const INVALID: &str = "the refresh token is invalid, expired or revoked";
const AUDIENCE_GONE: &str =
    "none of the refresh token's audiences is registered for this client any more";

/// The rules, applied under the family lock. `head` is the family's live
/// token. Grace covers exactly one case: the client presents the token whose
/// successor is the live head, soon after the rotation, because it never saw
/// the response. Any older token, or a token presented after the window, is
/// reuse.
pub fn decide(
    token: &RefreshTokenRow,
    family: &Family,
    head: Option<&RefreshTokenRow>,
    now: UnixSeconds,
    grace: i64,
) -> Decision {
    if family.revoked_at.is_some() || family.expires_at <= now {
        return Decision::Refuse;
    }
    let succeeded_by_head = head
        .and_then(|h| h.rotated_from.as_deref())
        .is_some_and(|from| from == token.token_hash.as_slice());
    match token.used_at {
        Some(used) if grace > 0 && now - used <= grace && succeeded_by_head => Decision::Reissue,
        Some(_) => Decision::RevokeFamily,
        None if token.expires_at <= now => Decision::Refuse,
        None => Decision::Rotate,
    }
}

/// What the family may still be granted: its scope and audiences, cut down
/// to the client's registration as it is now. A scope or audience taken
/// from the client since the family began is not granted again; the family
/// keeps its own record, so giving the client the scope back restores it.
/// Refresh and introspection both answer from this.
pub fn still_granted(
    state: &OAuthState,
    client: &Client,
    family: &Family,
) -> Result<(Scope, Vec<String>), OAuthError> {
    let family_scope = Scope::parse(&family.scope)
        .map_err(|_| OAuthError::Internal(format!("family {} has an invalid scope", family.id)))?;
    let registered = registered_audiences(state, client);
    let audiences = split_list(&family.audience)
        .into_iter()
        .filter(|a| registered.contains(a))
        .collect();
    Ok((family_scope.within(&client_scope(client)?), audiences))
}

pub async fn grant(
    state: &OAuthState,
    client: Client,
    presented: String,
    requested_scope: Option<&str>,
    resources: &[String],
    now: UnixSeconds,
) -> Result<TokenResponse, OAuthError> {
    if !client.refresh_tokens {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not allowed the refresh_token grant",
        ));
    }
    if !presented.starts_with(REFRESH_TOKEN_PREFIX) {
        return Err(OAuthError::InvalidGrant(INVALID));
    }
    let hash = SecretHash::of(&presented);
    let lookup = hash.clone();
    let found = state
        .db
        .read(move |conn| store::find(conn, lookup.as_bytes()))
        .await?;
    let Some((_, family)) = found else {
        return Err(OAuthError::InvalidGrant(INVALID));
    };
    // RFC 6749 §6: the token must have been issued to this client. Another
    // client's token is refused and its family left alone, so nobody can
    // revoke someone else's family by replaying its token.
    if family.client_id != client.id {
        log::warn!(
            "refresh token of another client presented: client_id={:?}",
            client.id
        );
        return Err(OAuthError::InvalidGrant(INVALID));
    }
    if family.revoked_at.is_some() {
        return Err(OAuthError::InvalidGrant(INVALID));
    }

    let grace = state.refresh.grace;
    let (still_allowed, still_registered) = still_granted(state, &client, &family)?;
    let checked = narrow_scope(&still_allowed, requested_scope).and_then(|scope| {
        if still_registered.is_empty() {
            return Err(OAuthError::InvalidGrant(AUDIENCE_GONE));
        }
        Ok((scope, narrow_audience(&still_registered, resources)?))
    });
    let (scope, audience) = match checked {
        Ok(granted) => granted,
        Err(refusal) => {
            // A bad scope or resource must not let a replayed token slip past
            // reuse detection: run it anyway, issuing nothing.
            let family_id = family.id.clone();
            let outcome = state
                .db
                .write(move |conn| {
                    store::refresh(
                        conn,
                        hash.as_bytes(),
                        &family_id,
                        now,
                        |token, family, head| decide(token, family, head, now, grace),
                        None,
                    )
                })
                .await?;
            return Err(match outcome {
                Outcome::NotIssued => refusal,
                Outcome::FamilyRevoked { .. } => {
                    state.metrics.refresh_reuse();
                    log::warn!(
                        "refresh token reuse detected, family revoked: client_id={:?} family={}",
                        client.id,
                        family.id
                    );
                    OAuthError::InvalidGrant(INVALID)
                }
                _ => OAuthError::InvalidGrant(INVALID),
            });
        }
    };
    let minted = mint_access_token(state, &client, &scope, audience, now)?;

    let successor = PlainSecret::generate(REFRESH_TOKEN_PREFIX)
        .map_err(|e| OAuthError::Internal(e.to_string()))?;
    let successor_hash = successor.hash();
    let token_expires = (now + state.refresh.token_ttl_for(&client)).min(family.expires_at);
    let family_id = family.id.clone();
    let jti = minted.jti.clone();
    let access_expires = minted.expires_at;
    let outcome = state
        .db
        .write(move |conn| {
            store::refresh(
                conn,
                hash.as_bytes(),
                &family_id,
                now,
                |token, family, head| decide(token, family, head, now, grace),
                Some(&Issue {
                    token_hash: successor_hash.as_bytes(),
                    token_expires_at: token_expires,
                    access_jti: &jti,
                    access_expires_at: access_expires,
                }),
            )
        })
        .await?;
    match outcome {
        Outcome::Issued { decision } => {
            if decision == Decision::Reissue {
                log::info!(
                    "refresh token re-presented within the grace window: client_id={:?} family={}",
                    client.id,
                    family.id
                );
            }
            Ok(TokenResponse {
                access_token: minted.token,
                token_type: "Bearer",
                expires_in: minted.ttl,
                scope: minted.scope,
                refresh_token: Some(successor.expose().to_owned()),
                jti: minted.jti,
            })
        }
        Outcome::FamilyRevoked {
            family_id,
            revoked_access_tokens,
        } => {
            state.metrics.refresh_reuse();
            log::warn!(
                "refresh token reuse detected, family revoked: client_id={:?} family={family_id} \
                 access_tokens_revoked={revoked_access_tokens}",
                client.id
            );
            Err(OAuthError::InvalidGrant(INVALID))
        }
        Outcome::Unknown | Outcome::Refused | Outcome::NotIssued => {
            Err(OAuthError::InvalidGrant(INVALID))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(hash: u8, used_at: Option<i64>, expires_at: i64, from: Option<u8>) -> RefreshTokenRow {
        RefreshTokenRow {
            token_hash: vec![hash],
            family_id: "f".into(),
            created_at: 0,
            expires_at,
            used_at,
            rotated_from: from.map(|f| vec![f]),
        }
    }

    fn family(expires_at: i64, revoked_at: Option<i64>) -> Family {
        Family {
            id: "f".into(),
            client_id: "c".into(),
            scope: String::new(),
            audience: String::new(),
            created_at: 0,
            expires_at,
            last_used_at: None,
            revoked_at,
        }
    }

    #[test]
    fn a_live_token_rotates() {
        let live = token(1, None, 200, None);
        assert_eq!(
            decide(&live, &family(1000, None), Some(&live), 100, 0),
            Decision::Rotate
        );
    }

    #[test]
    fn a_used_token_revokes_the_family_without_grace() {
        let head = token(2, None, 200, Some(1));
        assert_eq!(
            decide(
                &token(1, Some(99), 200, None),
                &family(1000, None),
                Some(&head),
                100,
                0
            ),
            Decision::RevokeFamily
        );
    }

    #[test]
    fn grace_covers_only_the_heads_predecessor_within_the_window() {
        let head = token(2, None, 200, Some(1));
        let f = family(1000, None);
        assert_eq!(
            decide(&token(1, Some(90), 200, None), &f, Some(&head), 100, 10),
            Decision::Reissue
        );
        // Too late.
        assert_eq!(
            decide(&token(1, Some(89), 200, None), &f, Some(&head), 100, 10),
            Decision::RevokeFamily
        );
        // Not the head's predecessor (an older generation, or a superseded head).
        assert_eq!(
            decide(&token(7, Some(95), 200, None), &f, Some(&head), 100, 10),
            Decision::RevokeFamily
        );
        assert_eq!(
            decide(&token(1, Some(95), 200, None), &f, None, 100, 10),
            Decision::RevokeFamily
        );
    }

    #[test]
    fn expiry_refuses_without_revoking() {
        let t = token(1, None, 100, None);
        assert_eq!(
            decide(&t, &family(1000, None), Some(&t), 100, 0),
            Decision::Refuse
        );
        let t = token(1, None, 200, None);
        assert_eq!(
            decide(&t, &family(100, None), Some(&t), 100, 0),
            Decision::Refuse
        );
        assert_eq!(
            decide(&t, &family(1000, Some(50)), Some(&t), 100, 0),
            Decision::Refuse
        );
    }
}
