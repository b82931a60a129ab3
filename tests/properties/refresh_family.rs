//! Refresh-token families under any interleaving of refreshes with the live
//! token, replays of older ones, revocation of a family, revoke-all of the
//! client and clock advances past token and family expiry, with and without
//! a grace window, against a real database.
//!
//! Rotation with reuse detection (RFC 9700 §4.14.2) is only worth anything
//! if it holds in every order of events, including the ones nobody wrote an
//! example for. The requests go through the real grant functions
//! (`client_credentials::grant`, `refresh::grant`, `revoke::revoke`,
//! `clients::revoke_all`), so the store's transactions run with `decide`
//! exactly as in the server. After every step:
//! - a family never has two unused tokens (so never two live ones), and no
//!   token has two live children: one grant never forks into two chains;
//! - no token of a revoked family yields a new token, and at the end every
//!   token of every revoked family is presented again and refused;
//! - an access token issued from a family is on the revocation list exactly
//!   when its family was revoked before a validator could have stopped
//!   accepting it (its `exp` plus the largest clock leeway), and no token of
//!   a live family is listed;
//! - every access token issued at or before a revoke-all cut-off is out of
//!   force, and one issued after it is in force unless its family was
//!   revoked;
//! - the store agrees with a small model of the rules on every token's use,
//!   expiry and parent, every family's revocation, and every answer.

use std::sync::Arc;

use diesel::prelude::*;
use proptest::prelude::*;
use tessera::clients::{self, ClientSpec, ClientUpdate};
use tessera::clock::{ManualClock, UnixSeconds};
use tessera::crypto::signing::SigningAlgorithm;
use tessera::keys::KeyEncryptionKey;
use tessera::keys::keyset::{KeyRing, KeyStore, ensure_first_key};
use tessera::oauth::limiter::FailureLimiter;
use tessera::oauth::{
    OAuthError, OAuthState, RefreshPolicy, TokenResponse, client_credentials, refresh, revoke,
};
use tessera::store::clients::{Client, find_client};
use tessera::store::refresh::{Family, RefreshTokenRow};
use tessera::store::revocation::{AccessTokenStanding, ClientStanding};
use tessera::store::schema::{
    family_access_tokens, refresh_families, refresh_tokens, revoked_tokens,
};
use tessera::store::signing_keys::list_keys;
use tessera::store::{Database, revocation};
use tessera::token::secret::SecretHash;

use crate::{Coverage, TestDb, check};

/// Cheap cases, and some transitions (reuse detected on a request whose
/// scope is refused) need a few sequences to be reached.
const CASES: u32 = 96;
const T0: UnixSeconds = 1_800_000_000;
/// Validators accept a token up to this long past `exp` (the largest clock
/// leeway the configuration allows): a token of a revoked family that
/// expired less than this before the revocation must still be listed.
const MAX_LEEWAY: i64 = 300;
/// Client-wide cut-offs at the second they are made: the model has one
/// server and no client cache to wait for.
const CUTOFF: tessera::clients::CutoffTiming = tessera::clients::CutoffTiming {
    leeway: LEEWAY,
    propagation: 0,
};

/// The server's configured clock leeway.
const LEEWAY: i64 = 60;
const ALLOWED_SCOPE: &str = "read write";
/// Not in the client's scope: the grant refuses it, but reuse detection
/// still runs.
const BAD_SCOPE: &str = "admin";

#[derive(Debug, Clone, Copy)]
struct Policy {
    grace: i64,
    token_ttl: i64,
    family_ttl: i64,
    access_ttl: i64,
}

fn policy() -> impl Strategy<Value = Policy> {
    // Lifetimes from the configuration's minimum of 60 s: short ones so
    // clock advances cross them often, long ones so chains grow.
    (
        prop_oneof![Just(0_i64), 1..=300_i64],
        prop_oneof![60..=300_i64, 300..=3600_i64],
        prop_oneof![60..=600_i64, 600..=20_000_i64],
        1..=900_i64,
    )
        .prop_map(|(grace, token_ttl, family_ttl, access_ttl)| Policy {
            grace,
            token_ttl,
            family_ttl,
            access_ttl,
        })
}

/// Which token of a family to present.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The newest one.
    Live,
    /// The one the newest replaced: what a client that lost a response
    /// retries, and what a thief who copied it presents.
    Predecessor,
    /// Any, by index (modulo).
    Any(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// A client-credentials grant: a new family.
    Grant,
    /// A client-credentials grant with refresh tokens switched off for the
    /// client: an access token that only the client-wide cut-off can
    /// revoke, so no listing hides the cut-off's boundary.
    AccessOnly,
    /// Families are picked by index from the newest, tokens by `Pick`,
    /// both modulo how many exist.
    Refresh {
        family: usize,
        pick: Pick,
        bad_scope: bool,
    },
    /// RFC 7009 revocation of a refresh token: its whole family.
    Revoke {
        family: usize,
        pick: Pick,
    },
    RevokeAll,
    Advance(i64),
    /// Advances to one second before, at or after a boundary of the rules,
    /// counted from now: off-by-one mistakes live there, and random steps
    /// rarely land on them.
    AdvanceToEdge(Edge, i64),
}

#[derive(Debug, Clone, Copy)]
enum Edge {
    /// The end of the grace window after a rotation.
    Grace,
    /// A new refresh token's expiry.
    TokenTtl,
    /// When an access token issued now stops needing a listing.
    Listing,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => Just(Pick::Live),
        2 => Just(Pick::Predecessor),
        1 => any::<usize>().prop_map(Pick::Any),
    ]
}

/// Counted from the newest family, mostly the newest two: older ones are
/// more often revoked or expired already, which is less interesting.
fn family() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..2_usize, 1 => any::<usize>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Grant),
        1 => Just(Op::AccessOnly),
        20 => (family(), pick(), prop::bool::weighted(0.3))
            .prop_map(|(family, pick, bad_scope)| Op::Refresh { family, pick, bad_scope }),
        1 => (family(), pick()).prop_map(|(family, pick)| Op::Revoke { family, pick }),
        1 => Just(Op::RevokeAll),
        // Within a grace window, about one, past a token's lifetime, past a
        // family's.
        5 => prop_oneof![3 => 1..=10_i64, 2 => 1..=400_i64, 1 => 60..=1500_i64, 1 => 600..=5000_i64]
            .prop_map(Op::Advance),
        2 => (
            prop_oneof![Just(Edge::Grace), Just(Edge::TokenTtl), Just(Edge::Listing)],
            -1..=1_i64,
        )
            .prop_map(|(edge, offset)| Op::AdvanceToEdge(edge, offset)),
    ]
}

#[derive(Debug)]
struct ModelToken {
    secret: String,
    hash: Vec<u8>,
    expires_at: UnixSeconds,
    used_at: Option<UnixSeconds>,
    /// Index of the token it replaced.
    parent: Option<usize>,
}

#[derive(Debug, Clone)]
struct AccessToken {
    jti: String,
    iat: UnixSeconds,
    exp: UnixSeconds,
}

#[derive(Debug)]
struct ModelFamily {
    id: String,
    expires_at: UnixSeconds,
    revoked_at: Option<UnixSeconds>,
    tokens: Vec<ModelToken>,
    access: Vec<AccessToken>,
}

impl ModelFamily {
    fn head(&self) -> Option<usize> {
        self.tokens.iter().position(|t| t.used_at.is_none())
    }

    fn pick(&self, pick: Pick) -> usize {
        let last = self.tokens.len() - 1;
        match pick {
            Pick::Live => last,
            Pick::Predecessor => self.tokens[last].parent.unwrap_or(last),
            Pick::Any(i) => i % self.tokens.len(),
        }
    }

    fn revoke(&mut self, now: UnixSeconds) {
        if self.revoked_at.is_none() {
            self.revoked_at = Some(now);
            for t in &mut self.tokens {
                t.used_at.get_or_insert(now);
            }
        }
    }

    /// Whether the access token must be on the revocation list.
    fn must_list(&self, token: &AccessToken) -> bool {
        self.revoked_at.is_some_and(|r| token.exp > r - MAX_LEEWAY)
    }
}

/// What the rules say a presented refresh token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Rotate,
    Reissue,
    /// Good token, refused scope: the scope error, nothing changes.
    NotIssued,
    Refused,
    Reuse,
}

/// The rules of `oauth::refresh`, restated over the model.
fn expect(family: &ModelFamily, i: usize, now: UnixSeconds, grace: i64, bad_scope: bool) -> Expect {
    let issue = |e| if bad_scope { Expect::NotIssued } else { e };
    if family.revoked_at.is_some() || now >= family.expires_at {
        return Expect::Refused;
    }
    let token = &family.tokens[i];
    match token.used_at {
        None if now >= token.expires_at => Expect::Refused,
        None => issue(Expect::Rotate),
        Some(used) => {
            let replaced_by_head = family
                .head()
                .is_some_and(|h| family.tokens[h].parent == Some(i));
            if grace > 0 && now - used <= grace && replaced_by_head {
                issue(Expect::Reissue)
            } else {
                Expect::Reuse
            }
        }
    }
}

struct World<'a> {
    state: OAuthState,
    clock: Arc<ManualClock>,
    policy: Policy,
    client_id: String,
    now: UnixSeconds,
    families: Vec<ModelFamily>,
    /// Access tokens issued without a family.
    loose: Vec<AccessToken>,
    cutoff: Option<UnixSeconds>,
    coverage: &'a Coverage,
}

fn fail(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

impl World<'_> {
    fn db(&self) -> &Database {
        &self.state.db
    }

    /// The client as the token endpoint would load it for this request.
    fn client(&self) -> Result<Client, TestCaseError> {
        let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
        find_client(&mut conn, &self.client_id)
            .map_err(|e| fail("find client", e))?
            .ok_or_else(|| fail("client", "gone"))
    }

    fn db_family(&self, id: &str) -> Result<Family, TestCaseError> {
        let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
        refresh_families::table
            .find(id)
            .select(Family::as_select())
            .first(&mut *conn)
            .map_err(|e| fail("read family", e))
    }

    /// Records an access token just issued, after checking it is genuine
    /// and in force: a cut-off must never kill tokens issued after it.
    fn issued_access(&self, response: &TokenResponse) -> Result<AccessToken, TestCaseError> {
        let claims = self
            .state
            .verify_own(&response.access_token, self.now, 0)
            .map_err(|e| fail("verify the issued access token", e))?;
        prop_assert_eq!(&claims.jti, &response.jti);
        prop_assert_eq!(claims.exp - claims.iat, self.policy.access_ttl);
        let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
        let standing = revocation::access_token_standing(&mut conn, &claims.jti, &self.client_id)
            .map_err(|e| fail("standing", e))?;
        prop_assert!(
            standing.in_force(claims.iat),
            "a new access token is born revoked: iat {} cut-off {:?}",
            claims.iat,
            self.cutoff
        );
        Ok(AccessToken {
            jti: claims.jti,
            iat: claims.iat,
            exp: claims.exp,
        })
    }

    fn new_token(
        &self,
        response: &TokenResponse,
        family_expires: UnixSeconds,
    ) -> Result<ModelToken, TestCaseError> {
        let secret = response
            .refresh_token
            .clone()
            .ok_or_else(|| fail("grant", "no refresh token"))?;
        Ok(ModelToken {
            hash: SecretHash::of(&secret).as_bytes().to_vec(),
            secret,
            expires_at: (self.now + self.policy.token_ttl).min(family_expires),
            used_at: None,
            parent: None,
        })
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.clock.set(self.now);
        let now = self.now;
        match *op {
            Op::Advance(seconds) => self.now += seconds,
            Op::AdvanceToEdge(edge, offset) => {
                let base = match edge {
                    Edge::Grace => self.policy.grace,
                    Edge::TokenTtl => self.policy.token_ttl,
                    Edge::Listing => self.policy.access_ttl + MAX_LEEWAY,
                };
                self.now += (base + offset).max(0);
            }
            Op::Grant => {
                let response =
                    client_credentials::grant(&self.state, self.client()?, None, &[], now)
                        .await
                        .map_err(|e| fail("client-credentials grant", e))?;
                let access = self.issued_access(&response)?;
                let expires_at = now + self.policy.family_ttl;
                let token = self.new_token(&response, expires_at)?;
                let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
                let (_, family) = tessera::store::refresh::find(&mut conn, &token.hash)
                    .map_err(|e| fail("find", e))?
                    .ok_or_else(|| fail("new family", "not stored"))?;
                self.families.push(ModelFamily {
                    id: family.id,
                    expires_at,
                    revoked_at: None,
                    tokens: vec![token],
                    access: vec![access],
                });
            }
            Op::AccessOnly => {
                let set_refresh = |world: &Self, on: bool| -> Result<(), TestCaseError> {
                    let mut conn = world.db().conn().map_err(|e| fail("connection", e))?;
                    let update = ClientUpdate {
                        refresh_tokens: Some(on),
                        ..ClientUpdate::default()
                    };
                    clients::update(&mut conn, &world.client_id, &update, now)
                        .map_err(|e| fail("update client", e))?;
                    Ok(())
                };
                set_refresh(self, false)?;
                let result =
                    client_credentials::grant(&self.state, self.client()?, None, &[], now).await;
                set_refresh(self, true)?;
                let response = result.map_err(|e| fail("client-credentials grant", e))?;
                prop_assert!(response.refresh_token.is_none());
                let access = self.issued_access(&response)?;
                self.loose.push(access);
            }
            Op::Refresh {
                family,
                pick,
                bad_scope,
            } => {
                if self.families.is_empty() {
                    return Ok(());
                }
                let f = self.families.len() - 1 - family % self.families.len();
                let i = self.families[f].pick(pick);
                self.refresh(f, i, bad_scope).await?;
            }
            Op::Revoke { family, pick } => {
                if self.families.is_empty() {
                    return Ok(());
                }
                let f = self.families.len() - 1 - family % self.families.len();
                let i = self.families[f].pick(pick);
                let secret = self.families[f].tokens[i].secret.clone();
                let answer = revoke::revoke(&self.state, &self.client()?, secret)
                    .await
                    .map_err(|e| fail("revoke", e))?;
                prop_assert_eq!(answer, None);
                // An expired token (idle or absolute) revokes nothing: it is
                // as good as swept already.
                let expired = self.families[f].tokens[i].expires_at <= now
                    || self.families[f].expires_at <= now;
                if expired {
                    self.coverage.hit("revocation of an expired token");
                } else {
                    self.families[f].revoke(now);
                    self.coverage.hit("revoked by RFC 7009");
                }
            }
            Op::RevokeAll => {
                let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
                let done = clients::revoke_all(&mut conn, &self.client_id, now, CUTOFF)
                    .map_err(|e| fail("revoke-all", e))?;
                let live = self
                    .families
                    .iter()
                    .filter(|f| f.revoked_at.is_none())
                    .count();
                for family in &mut self.families {
                    family.revoke(now);
                }
                self.cutoff = Some(self.cutoff.map_or(now, |c| c.max(now)));
                prop_assert_eq!(done.families_revoked, live);
                prop_assert_eq!(Some(done.tokens_valid_after), self.cutoff);
                self.coverage.hit("revoke-all");
            }
        }
        Ok(())
    }

    async fn refresh(&mut self, f: usize, i: usize, bad_scope: bool) -> Result<(), TestCaseError> {
        let now = self.now;
        let family = &self.families[f];
        let expected = expect(family, i, now, self.policy.grace, bad_scope);
        let revoked_before = self.db_family(&family.id)?.revoked_at;
        let result = refresh::grant(
            &self.state,
            self.client()?,
            family.tokens[i].secret.clone(),
            bad_scope.then_some(BAD_SCOPE),
            &[],
            now,
        )
        .await;
        let revoked_after = self.db_family(&family.id)?.revoked_at;
        if let Ok(response) = &result {
            prop_assert!(
                revoked_before.is_none() && revoked_after.is_none(),
                "a token of a revoked family was refreshed: {:?}",
                response.refresh_token
            );
        }
        match (expected, result) {
            (Expect::Rotate | Expect::Reissue, Ok(response)) => {
                let mut token = self.new_token(&response, self.families[f].expires_at)?;
                token.parent = Some(i);
                let access = self.issued_access(&response)?;
                let family = &mut self.families[f];
                if expected == Expect::Rotate {
                    family.tokens[i].used_at = Some(now);
                    self.coverage.hit("rotate");
                } else {
                    if let Some(h) = family.head() {
                        family.tokens[h].used_at = Some(now);
                    }
                    self.coverage.hit("reissue within grace");
                }
                family.tokens.push(token);
                family.access.push(access);
            }
            (Expect::NotIssued, Err(OAuthError::InvalidScope(_))) => {
                self.coverage.hit("scope refused, token kept");
            }
            (Expect::Refused, Err(OAuthError::InvalidGrant(_))) => {
                prop_assert_eq!(
                    revoked_after,
                    revoked_before,
                    "a refusal changed the family"
                );
                self.coverage.hit(if self.families[f].revoked_at.is_some() {
                    "refused: revoked family"
                } else {
                    "refused: expired"
                });
            }
            (Expect::Reuse, Err(OAuthError::InvalidGrant(_))) => {
                prop_assert!(
                    revoked_before.is_none() && revoked_after == Some(now),
                    "reuse must revoke the family: before {:?} after {:?}",
                    revoked_before,
                    revoked_after
                );
                self.families[f].revoke(now);
                self.coverage.hit(if bad_scope {
                    "reuse detected despite a refused scope"
                } else {
                    "reuse detected"
                });
            }
            (expected, result) => {
                prop_assert!(
                    false,
                    "expected {:?}, got {:?}",
                    expected,
                    result.map(|r| r.refresh_token)
                );
            }
        }
        Ok(())
    }

    /// The invariants, read from the database and compared with the model.
    /// `per_token` reads each access token's standing the way introspection
    /// does; otherwise the list and the client are read once (cases stay
    /// quick) and `in_force` still decides.
    fn check_store(&self, per_token: bool) -> Result<(), TestCaseError> {
        let mut conn = self.db().conn().map_err(|e| fail("connection", e))?;
        let conn = &mut *conn;
        let batched = if per_token {
            None
        } else {
            let jtis: Vec<&str> = self
                .families
                .iter()
                .flat_map(|f| &f.access)
                .chain(&self.loose)
                .map(|a| a.jti.as_str())
                .collect();
            let listed: Vec<Option<String>> = revoked_tokens::table
                .filter(revoked_tokens::jti.eq_any(&jtis))
                .select(revoked_tokens::jti)
                .load(conn)
                .map_err(|e| fail("listed", e))?;
            // The client's half of any token's standing.
            let client = revocation::access_token_standing(conn, "", &self.client_id)
                .map_err(|e| fail("standing", e))?
                .client;
            Some(Batched {
                listed: listed.into_iter().flatten().collect(),
                client,
            })
        };
        let families: Vec<Family> = refresh_families::table
            .filter(refresh_families::client_id.eq(&self.client_id))
            .select(Family::as_select())
            .load(conn)
            .map_err(|e| fail("families", e))?;
        let ids: Vec<&str> = families.iter().map(|f| f.id.as_str()).collect();
        let tokens: Vec<RefreshTokenRow> = refresh_tokens::table
            .filter(refresh_tokens::family_id.eq_any(&ids))
            .select(RefreshTokenRow::as_select())
            .load(conn)
            .map_err(|e| fail("tokens", e))?;
        let recorded: Vec<(String, String, i64)> = family_access_tokens::table
            .filter(family_access_tokens::family_id.eq_any(&ids))
            .select((
                family_access_tokens::jti,
                family_access_tokens::family_id,
                family_access_tokens::expires_at,
            ))
            .load(conn)
            .map_err(|e| fail("family access tokens", e))?;

        // One chain per grant, whatever happened.
        for family in &families {
            let unused = tokens
                .iter()
                .filter(|t| t.family_id == family.id && t.used_at.is_none())
                .count();
            prop_assert!(
                unused <= 1,
                "family {} has {} unused tokens",
                family.id,
                unused
            );
        }
        for parent in &tokens {
            let live_children = tokens
                .iter()
                .filter(|t| {
                    t.rotated_from.as_deref() == Some(parent.token_hash.as_slice())
                        && t.used_at.is_none()
                        && t.expires_at > self.now
                })
                .count();
            prop_assert!(
                live_children <= 1,
                "a token has {} live children",
                live_children
            );
        }

        prop_assert_eq!(families.len(), self.families.len());
        prop_assert_eq!(
            tokens.len(),
            self.families.iter().map(|f| f.tokens.len()).sum::<usize>()
        );
        for model in &self.families {
            let stored = families
                .iter()
                .find(|f| f.id == model.id)
                .ok_or_else(|| fail("family", "missing"))?;
            prop_assert_eq!(stored.revoked_at, model.revoked_at, "family revocation");
            prop_assert_eq!(stored.expires_at, model.expires_at, "family expiry");
            for t in &model.tokens {
                let row = tokens
                    .iter()
                    .find(|r| r.token_hash == t.hash)
                    .ok_or_else(|| fail("token", "missing"))?;
                prop_assert_eq!(&row.family_id, &model.id);
                prop_assert_eq!(row.used_at, t.used_at, "token use");
                prop_assert_eq!(row.expires_at, t.expires_at, "token expiry");
                let parent = t.parent.map(|p| model.tokens[p].hash.clone());
                prop_assert_eq!(&row.rotated_from, &parent, "token parent");
            }
            if model.revoked_at.is_some() {
                // The revocation marks every token used, so none is a head.
                prop_assert!(model.tokens.iter().all(|t| t.used_at.is_some()));
            }
            for access in &model.access {
                prop_assert!(
                    recorded.iter().any(|(jti, fam, exp)| *jti == access.jti
                        && *fam == model.id
                        && *exp == access.exp),
                    "access token {} of family {} not recorded",
                    access.jti,
                    model.id
                );
                let listed =
                    self.check_standing(conn, batched.as_ref(), access, model.must_list(access))?;
                if listed {
                    self.coverage.hit("access token listed");
                }
            }
        }
        for access in &self.loose {
            self.check_standing(conn, batched.as_ref(), access, false)?;
            if self.cutoff == Some(access.iat) {
                self.coverage.hit("access-only token cut off in its second");
            }
        }
        prop_assert_eq!(
            recorded.len(),
            self.families.iter().map(|f| f.access.len()).sum::<usize>()
        );
        Ok(())
    }

    /// Checks that the access token is listed exactly when `must_list`, and
    /// in force exactly when neither listed nor issued at or before the
    /// client's cut-off. Returns whether it is listed.
    fn check_standing(
        &self,
        conn: &mut tessera::store::DbConnection,
        batched: Option<&Batched>,
        access: &AccessToken,
        must_list: bool,
    ) -> Result<bool, TestCaseError> {
        let standing = match batched {
            Some(b) => AccessTokenStanding {
                revoked: b.listed.contains(&access.jti),
                client: b.client,
            },
            None => {
                let standing =
                    revocation::access_token_standing(conn, &access.jti, &self.client_id)
                        .map_err(|e| fail("standing", e))?;
                let listed =
                    revocation::is_revoked(conn, &access.jti).map_err(|e| fail("listed", e))?;
                prop_assert_eq!(standing.revoked, listed);
                standing
            }
        };
        let listed = standing.revoked;
        prop_assert_eq!(
            listed,
            must_list,
            "access token {} (iat {}, exp {}): listed",
            &access.jti,
            access.iat,
            access.exp
        );
        let cut = self.cutoff.is_some_and(|c| access.iat <= c);
        prop_assert_eq!(
            standing.in_force(access.iat),
            !(listed || cut),
            "access token {} iat {} cut-off {:?}: in force",
            &access.jti,
            access.iat,
            self.cutoff
        );
        if cut && !listed {
            self.coverage.hit("access token cut off, not listed");
        }
        Ok(listed)
    }

    /// Every token of every revoked family, presented once more, with and
    /// without a refused scope: nothing is issued and nothing changes.
    async fn replay_revoked(&mut self) -> Result<(), TestCaseError> {
        self.now += 1;
        let count = |world: &Self| -> Result<i64, TestCaseError> {
            let mut conn = world.db().conn().map_err(|e| fail("connection", e))?;
            refresh_tokens::table
                .count()
                .get_result(&mut *conn)
                .map_err(|e| fail("count", e))
        };
        let before = count(self)?;
        for f in 0..self.families.len() {
            if self.families[f].revoked_at.is_none() {
                continue;
            }
            for i in 0..self.families[f].tokens.len() {
                for bad_scope in [false, true] {
                    let secret = self.families[f].tokens[i].secret.clone();
                    let result = refresh::grant(
                        &self.state,
                        self.client()?,
                        secret,
                        bad_scope.then_some(BAD_SCOPE),
                        &[],
                        self.now,
                    )
                    .await;
                    prop_assert!(
                        matches!(result, Err(OAuthError::InvalidGrant(_))),
                        "a token of a revoked family got {:?}",
                        result.map(|r| r.refresh_token)
                    );
                    self.coverage.hit("replayed a revoked family's token");
                }
            }
        }
        prop_assert_eq!(count(self)?, before, "a replay stored a token");
        self.check_store(true)
    }
}

/// What `check_store` reads once for all access tokens.
struct Batched {
    listed: std::collections::HashSet<String>,
    client: Option<ClientStanding>,
}

/// Shared by every case on one database: its keys and metrics.
struct Server {
    db: Database,
    keys: Arc<KeyStore>,
    metrics: Arc<tessera::metrics::Metrics>,
}

impl Server {
    fn new(db: Database, dir: &std::path::Path) -> Self {
        let kek = KeyEncryptionKey::create(dir).expect("create a KEK").0;
        let mut conn = db.conn().expect("a connection");
        // Signs from before the first case, forever: keys are not what is
        // tested here.
        ensure_first_key(&mut conn, &kek, SigningAlgorithm::Es256, T0 - 1).expect("first key");
        let rows = list_keys(&mut conn).expect("list keys");
        let ring = KeyRing::load(&rows, &kek, T0).expect("load keys");
        Self {
            keys: Arc::new(KeyStore::new(ring, T0).expect("key store")),
            metrics: Arc::new(tessera::metrics::Metrics::new().expect("metrics")),
            db,
        }
    }

    fn state(&self, policy: &Policy, clock: Arc<ManualClock>) -> OAuthState {
        OAuthState {
            db: self.db.clone(),
            keys: Arc::clone(&self.keys),
            clock,
            issuer: Arc::from("https://tessera.example"),
            default_audience: Arc::from("https://api.example"),
            refresh: RefreshPolicy {
                token_ttl: policy.token_ttl,
                family_ttl: policy.family_ttl,
                grace: policy.grace,
            },
            leeway: LEEWAY,
            cutoff: CUTOFF,
            limiter: Arc::new(FailureLimiter::new(10, 60)),
            metrics: Arc::clone(&self.metrics),
            // Grants are called with the client in hand: no authentication.
            clients: Arc::new(tessera::oauth::client_cache::ClientCache::new(None)),
        }
    }
}

fn run(server: &Server, name: &str) {
    let coverage = Coverage::default();
    let input = (
        policy(),
        prop::collection::vec(op(), 1..48).prop_map(|mut ops| {
            // Something to refresh from the start.
            ops.insert(0, Op::Grant);
            ops
        }),
    );
    check(name, CASES, input, |(policy, ops)| {
        let clock = Arc::new(ManualClock::new(T0));
        // A fresh client per case: cases share the database, not state.
        let created = {
            let mut conn = server.db.conn().map_err(|e| fail("connection", e))?;
            clients::create(
                &mut conn,
                &ClientSpec {
                    id: None,
                    name: "property test".to_owned(),
                    scope: ALLOWED_SCOPE.to_owned(),
                    audiences: Vec::new(),
                    access_token_ttl: policy.access_ttl,
                    refresh_tokens: true,
                    refresh_token_ttl: None,
                    refresh_family_ttl: None,
                    can_introspect: false,
                    allowed_networks: Vec::new(),
                },
                T0,
            )
            .map_err(|e| fail("create client", e))?
        };
        let mut world = World {
            state: server.state(&policy, Arc::clone(&clock)),
            clock,
            policy,
            client_id: created.client_id,
            now: T0,
            families: Vec::new(),
            loose: Vec::new(),
            cutoff: None,
            coverage: &coverage,
        };
        actix_web::rt::System::new().block_on(async {
            for op in &ops {
                world.apply(op).await?;
                world.check_store(false)?;
            }
            world.replay_revoked().await
        })
    });
    coverage.require(
        name,
        &[
            "rotate",
            "reissue within grace",
            "reuse detected",
            "reuse detected despite a refused scope",
            "scope refused, token kept",
            "refused: expired",
            "refused: revoked family",
            "revoked by RFC 7009",
            "revocation of an expired token",
            "revoke-all",
            "access token listed",
            "access token cut off, not listed",
            "access-only token cut off in its second",
            "replayed a revoked family's token",
        ],
    );
}

#[test]
fn refresh_families_on_sqlite() {
    let db = TestDb::sqlite();
    let server = Server::new(db.db.clone(), db.dir());
    run(&server, "refresh families (SQLite)");
}

#[test]
fn refresh_families_on_postgres() {
    let Some(db) = TestDb::postgres("refresh_families_on_postgres") else {
        return;
    };
    let server = Server::new(db.db.clone(), db.dir());
    run(&server, "refresh families (PostgreSQL)");
}
