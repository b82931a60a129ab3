//! Revocation (RFC 7009) and the revocation feed for offline validators.
//!
//! Policy choices, documented in docs/endpoints.md:
//! - a token that is unknown, malformed, expired (a refresh token the
//!   janitor has not swept yet included), already revoked, or issued to
//!   *another* client gets the same `200` and changes nothing
//!   (RFC 7009 §2.1 allows refusing the last case; answering alike gives an
//!   attacker no oracle for which tokens exist);
//! - `token_type_hint` is ignored: the token's own shape says what it is;
//! - `200` is answered only after the revocation is committed.

use serde::Serialize;

use super::{OAuthError, OAuthState};
use crate::clock::UnixSeconds;
use crate::config::MAX_ACCESS_TOKEN_TTL;
use crate::store::clients::Client;
use crate::store::{refresh as refresh_store, revocation};
use crate::token::secret::{REFRESH_TOKEN_PREFIX, SecretHash};

/// Returns the `jti` of the access token it revoked, if it was one.
pub async fn revoke(
    state: &OAuthState,
    caller: &Client,
    token: String,
) -> Result<Option<String>, OAuthError> {
    let now = state.clock.now();
    if token.starts_with(REFRESH_TOKEN_PREFIX) {
        let hash = SecretHash::of(&token);
        let Some((row, family)) = state
            .db
            .read(move |conn| refresh_store::find(conn, hash.as_bytes()))
            .await?
        else {
            return Ok(None);
        };
        if family.client_id != caller.id {
            log::warn!(
                "revocation of another client's refresh token ignored: client_id={:?}",
                caller.id
            );
            return Ok(None);
        }
        // An expired refresh token (idle or absolute) is already useless;
        // its row merely waits for the janitor. Revoking it must do what
        // revoking a swept one does: nothing. Both expiries are fixed at
        // insert, so this unlocked read decides exactly.
        if row.expires_at <= now || family.expires_at <= now {
            return Ok(None);
        }
        let revoked = state
            .db
            .write(move |conn| {
                refresh_store::revoke_family(conn, &family.id, now, "refresh_token_revoked")
            })
            .await?;
        if revoked {
            state.metrics.revocation("refresh_family");
            log::info!("refresh family revoked: client_id={:?}", caller.id);
        }
        return Ok(None);
    }
    // Validators may accept a token for their leeway past `exp`, so it can
    // still be revoked until then.
    // Expired or invalid: nothing to revoke.
    let Ok(claims) = state.verify_own(&token, now, state.leeway) else {
        return Ok(None);
    };
    if claims.client_id != caller.id {
        log::warn!(
            "revocation of another client's access token ignored: client_id={:?}",
            caller.id
        );
        return Ok(None);
    }
    let jti = claims.jti.clone();
    let newly = state
        .db
        .write(move |conn| {
            revocation::revoke_jti(conn, &claims.jti, &claims.client_id, claims.exp, now)
        })
        .await?;
    if newly {
        state.metrics.revocation("access_token");
        log::info!("access token revoked: client_id={:?} jti={jti}", caller.id);
    }
    Ok(Some(jti))
}

/// How long a client-wide cut-off stays in the feed: until every token it
/// revoked has expired, whatever the client's lifetime is changed to.
pub fn cutoff_relevant_until(now: UnixSeconds, leeway: i64) -> UnixSeconds {
    now + MAX_ACCESS_TOKEN_TTL + leeway
}

/// `?after=CURSOR&limit=N` of the revocation feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedQuery {
    pub after: i64,
    /// 1 to [`FEED_PAGE_MAX`].
    pub limit: i64,
}

impl FeedQuery {
    /// Parses the query string: form encoding, no repeated parameter,
    /// non-negative integers (empty means the default), and never client
    /// credentials, which do not belong in a URL.
    pub fn parse(query: &[u8]) -> Result<Self, OAuthError> {
        let params = super::form::parse_pairs(query).ok_or(OAuthError::InvalidRequest(
            "the query string is not valid form encoding",
        ))?;
        super::request::refuse_repeats(&params, &[])?;
        if params
            .iter()
            .any(|(k, _)| k == "client_secret" || k == "client_id")
        {
            return Err(OAuthError::InvalidRequest(
                "client credentials must be sent in the Authorization header",
            ));
        }
        let number = |name: &str, default: i64| -> Result<i64, OAuthError> {
            match params.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) if v.is_empty() => Ok(default),
                Some((_, v)) => {
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or(OAuthError::InvalidRequest(
                            "after and limit must be non-negative integers",
                        ))
                }
            }
        };
        Ok(Self {
            after: number("after", 0)?,
            limit: number("limit", FEED_PAGE_MAX)?.clamp(1, FEED_PAGE_MAX),
        })
    }
}

/// One page of the revocation feed.
#[derive(Debug, Serialize)]
pub struct FeedPage {
    pub entries: Vec<FeedEntry>,
    /// Pass as `after` to continue; equal to the request's `after` when
    /// there was nothing new.
    pub next: i64,
    /// More entries are waiting: ask again at once.
    pub more: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEntry {
    /// The access token `jti` is revoked; forget the entry once `exp` plus
    /// your clock leeway has passed.
    Token {
        seq: i64,
        jti: String,
        client_id: String,
        exp: i64,
    },
    /// Every access token of `client_id` with `iat <= tokens_valid_after`
    /// is revoked; forget the entry once `exp` plus your clock leeway has
    /// passed.
    Client {
        seq: i64,
        client_id: String,
        tokens_valid_after: i64,
        exp: i64,
    },
}

pub const FEED_PAGE_MAX: i64 = 1000;

/// The feed is for resource servers: clients with the introspection
/// permission. `jti`s are random, but the feed still shows which clients
/// are active and revoked.
pub async fn feed(
    state: &OAuthState,
    caller: &Client,
    after: i64,
    limit: i64,
) -> Result<FeedPage, OAuthError> {
    if !caller.can_introspect {
        return Err(OAuthError::AccessDenied(
            "only clients with the introspection permission may read the revocation feed",
        ));
    }
    let now = state.clock.now();
    let leeway = state.leeway;
    let mut rows = state
        .db
        .read(move |conn| revocation::feed(conn, after, limit + 1, now, leeway))
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = rows.last().map_or(after, |r| r.seq);
    let entries = rows
        .into_iter()
        .map(|r| match r.jti {
            Some(jti) => FeedEntry::Token {
                seq: r.seq,
                jti,
                client_id: r.client_id,
                exp: r.expires_at,
            },
            None => FeedEntry::Client {
                seq: r.seq,
                client_id: r.client_id,
                tokens_valid_after: r.revoked_at,
                exp: r.expires_at,
            },
        })
        .collect();
    Ok(FeedPage {
        entries,
        next,
        more,
    })
}
