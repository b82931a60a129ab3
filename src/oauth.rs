//! Grant rules: client authentication, scope and audience checks, token
//! issuance and refresh rotation. Plain functions over a store and a clock;
//! nothing here knows HTTP, so every rule can be exercised without a server.

pub mod admin;
pub mod audience;
pub mod client_auth;
pub mod client_cache;
pub mod client_credentials;
pub mod error;
pub mod form;
pub mod introspect;
pub mod limiter;
pub mod network;
pub mod refresh;
pub mod request;
pub mod revoke;
pub mod scope;

use std::sync::Arc;

use serde::Serialize;

pub use error::OAuthError;

use crate::clock::SharedClock;
use crate::keys::KeyStore;
use crate::store::Database;
use crate::store::clients::Client;

/// Server-wide refresh-token policy; clients may override the lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Idle lifetime of one refresh token.
    pub token_ttl: i64,
    /// Absolute lifetime of a family, however often it is rotated.
    pub family_ttl: i64,
    /// Seconds after a rotation during which the used token still works
    /// once more without revoking the family (0: never).
    pub grace: i64,
}

impl RefreshPolicy {
    pub fn token_ttl_for(&self, client: &Client) -> i64 {
        client.refresh_token_ttl.unwrap_or(self.token_ttl)
    }

    pub fn family_ttl_for(&self, client: &Client) -> i64 {
        client.refresh_family_ttl.unwrap_or(self.family_ttl)
    }
}

/// Everything the grant rules need, shared by every request.
#[derive(Clone)]
pub struct OAuthState {
    pub db: Database,
    pub keys: Arc<KeyStore>,
    pub clock: SharedClock,
    /// The issuer identifier, exactly as configured: it is `iss` in every
    /// token and `issuer` in the metadata.
    pub issuer: Arc<str>,
    /// `aud` for clients registered without an audience.
    pub default_audience: Arc<str>,
    pub refresh: RefreshPolicy,
    /// Clock skew tolerated on `nbf` and `iat`.
    pub leeway: i64,
    /// Where client-wide cut-offs made through this server are placed.
    pub cutoff: crate::clients::CutoffTiming,
    /// Brute-force limits on client authentication.
    pub limiter: Arc<limiter::FailureLimiter>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Authenticated clients, with a bounded staleness (see `client_cache`).
    pub clients: Arc<client_cache::ClientCache>,
}

impl OAuthState {
    /// Whether the database answers a trivial query: readiness.
    pub async fn database_reachable(&self) -> Result<(), crate::store::StoreError> {
        self.db.run(crate::store::ping).await
    }

    /// The union of the enabled clients' scopes, sorted: the metadata's
    /// `scopes_supported`.
    pub async fn supported_scopes(&self) -> Result<Vec<String>, crate::store::StoreError> {
        let lists = self
            .db
            .run(crate::store::clients::enabled_scope_lists)
            .await?;
        let mut all = std::collections::BTreeSet::new();
        for list in lists {
            all.extend(
                scope::Scope::parse(&list)
                    .unwrap_or_default()
                    .tokens()
                    .iter()
                    .cloned(),
            );
        }
        Ok(all.into_iter().collect())
    }

    /// Verifies a token this server issued, with the keys it publishes now.
    /// The server is the issuer, so `exp` gets `expiry_leeway` (0, or the
    /// clock leeway where a lenient validator's view matters); a token
    /// minted just after a client cut-off carries the next second (see
    /// `mint_access_token`), which the not-before leeway absorbs.
    pub fn verify_own(
        &self,
        token: &str,
        now: crate::clock::UnixSeconds,
        expiry_leeway: i64,
    ) -> Result<crate::token::access::AccessTokenClaims, crate::token::verify::VerifyError> {
        let keys = self.keys.current(now);
        let expect = crate::token::verify::Expectations {
            issuer: &self.issuer,
            audience: None,
            now,
            expiry_leeway,
            not_before_leeway: self.leeway,
        };
        crate::token::verify::verify(token, &keys.verification, &expect)
    }
}

/// RFC 6749 §5.1.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Always present, so a client never has to guess what it was granted.
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The access token's `jti`, for the request log; not sent.
    #[serde(skip)]
    pub jti: String,
}

/// What a request turned out to concern, once known: the request log line
/// names it.
#[derive(Debug, Default, Clone)]
pub struct Attribution {
    pub client_id: Option<String>,
    pub jti: Option<String>,
}

/// Authenticates the calling client (RFC 6749 §2.3.1), for every endpoint
/// that requires it. Failures are logged with the client id and reason; the
/// caller only ever learns `invalid_client`.
pub async fn authenticate_client(
    state: &OAuthState,
    authorization: Option<&str>,
    body_client_id: Option<String>,
    body_client_secret: Option<String>,
    source: Option<std::net::IpAddr>,
) -> Result<Client, OAuthError> {
    let now = state.clock.now();
    let credentials = match client_auth::PresentedCredentials::extract(
        authorization,
        body_client_id,
        body_client_secret,
    ) {
        Ok(c) => c,
        Err(e) => {
            if let Some(retry_after) = state.limiter.blocked(None, source, now) {
                state
                    .metrics
                    .client_auth_failure(crate::metrics::RATE_LIMITED);
                return Err(OAuthError::TooManyFailures { retry_after });
            }
            log_auth_failure(None)(&e);
            note_failure(state, &e, None, source, now).await;
            return Err(e);
        }
    };
    let client_id = credentials.client_id.clone();
    if let Some(retry_after) = state.limiter.blocked(Some(&client_id), source, now) {
        state
            .metrics
            .client_auth_failure(crate::metrics::RATE_LIMITED);
        return Err(OAuthError::TooManyFailures { retry_after });
    }
    if let Some(client) = state.clients.authenticate(&credentials, now, source) {
        state.metrics.client_cache_lookup(true);
        return Ok(client);
    }
    state.metrics.client_cache_lookup(false);
    let epoch = state.clients.epoch();
    let id = client_id.clone();
    let stored = state
        .db
        .read(move |conn| client_auth::load(conn, &id, now))
        .await
        .map_err(OAuthError::from)?;
    match client_auth::check(
        &credentials,
        stored.client.as_ref(),
        &stored.secrets,
        now,
        source,
    ) {
        Ok(()) => {
            let client = stored
                .client
                .ok_or_else(|| OAuthError::Internal("authenticated a missing client".into()))?;
            state.clients.insert(epoch, &client, stored.secrets);
            Ok(client)
        }
        Err(e) => {
            log_auth_failure(Some(&client_id))(&e);
            note_failure(state, &e, Some(&client_id), source, now).await;
            Err(e)
        }
    }
}

/// Counts a failed authentication against the brute-force limits and
/// audits it, and the lockout it may cause.
async fn note_failure(
    state: &OAuthState,
    error: &OAuthError,
    client_id: Option<&str>,
    source: Option<std::net::IpAddr>,
    now: i64,
) {
    let OAuthError::InvalidClient { kind, .. } = error else {
        return;
    };
    state.metrics.client_auth_failure(kind.label());
    let shown = client_id.map(loggable_client_id);
    if state.limiter.record_failure(shown.as_deref(), source, now) {
        log::warn!(
            "client authentication locked out: client_id={shown:?} source={source:?} (too many failures)"
        );
        audit_lockout(state, client_id, source, now).await;
    }
    audit_auth_failure(state, error, client_id, source, now).await;
}

/// Writes an audit event for an unauthenticated caller. Best effort: a
/// failed write is logged, and the caller still gets its answer.
async fn audit_caller(
    state: &OAuthState,
    kind: &'static str,
    client_id: Option<String>,
    source: Option<std::net::IpAddr>,
    detail: String,
    now: i64,
) {
    let source = source.map(|ip| ip.to_string());
    let written = state
        .db
        .write(move |conn| {
            crate::store::audit::record(
                conn,
                now,
                kind,
                client_id.as_deref(),
                source.as_deref(),
                &detail,
            )
            .map_err(crate::store::StoreError::from)
        })
        .await;
    if let Err(e) = written {
        log::warn!("audit: cannot record {kind}: {e}");
    }
}

async fn audit_lockout(
    state: &OAuthState,
    client_id: Option<&str>,
    source: Option<std::net::IpAddr>,
    now: i64,
) {
    let column = client_id
        .filter(|id| loggable_client_id(id) == *id)
        .map(str::to_owned);
    let detail = "too many failed authentications: further attempts refused with 429 for a while";
    audit_caller(
        state,
        "auth_rate_limited",
        column,
        source,
        detail.to_owned(),
        now,
    )
    .await;
}

async fn audit_auth_failure(
    state: &OAuthState,
    error: &OAuthError,
    client_id: Option<&str>,
    source: Option<std::net::IpAddr>,
    now: i64,
) {
    let OAuthError::InvalidClient { reason, .. } = error else {
        return;
    };
    let shown = client_id.map(loggable_client_id);
    // Only a plausible id goes in the client_id column; anything else is
    // described, never stored verbatim.
    let (column, detail) = match (client_id, shown) {
        (Some(id), Some(shown)) if id == shown => (Some(shown), (*reason).to_owned()),
        (_, Some(shown)) => (None, format!("{reason}; presented id {shown}")),
        (_, None) => (None, (*reason).to_owned()),
    };
    audit_caller(state, "client_auth_failed", column, source, detail, now).await;
}

fn log_auth_failure(client_id: Option<&str>) -> impl Fn(&OAuthError) + '_ {
    move |e| {
        if let OAuthError::InvalidClient { reason, .. } = e {
            let shown = client_id.map(loggable_client_id);
            log::warn!("client authentication failed: client_id={shown:?} reason={reason}");
        }
    }
}

/// A presented client id as it may appear in a log. A client that swapped
/// its id and secret, or pasted both into one field, must not get its secret
/// logged: anything that is not a plausible id is shown as a hash prefix.
/// (`{:?}` on the result also escapes control characters, so a crafted id
/// cannot forge log lines.)
pub fn loggable_client_id(id: &str) -> String {
    use crate::token::secret::{CLIENT_SECRET_PREFIX, REFRESH_TOKEN_PREFIX};
    let plausible = (1..=128).contains(&id.len())
        && !id.starts_with(CLIENT_SECRET_PREFIX)
        && !id.starts_with(REFRESH_TOKEN_PREFIX)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if plausible {
        id.to_owned()
    } else {
        format!("<not an id; sha256 {}>", short_digest(id))
    }
}

/// A request path as it may appear in a log: each segment that
/// [`loggable_client_id`] would not show as it is (a secret or token pasted
/// into a URL: an admin path's client id, an unknown path) is replaced by a
/// hash prefix, without spaces so the line keeps its shape.
pub fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.is_empty() || loggable_client_id(segment) == segment {
                segment.to_owned()
            } else {
                format!("<sha256:{}>", short_digest(segment))
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The first six bytes of the SHA-256 of `text`, in hex: enough to tell
/// two values apart in a log, nothing to recover either from.
fn short_digest(text: &str) -> String {
    crate::crypto::digest::sha256(text.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /oauth2/token`: authenticate the client, then run its grant.
/// `attribution` learns the client and the `jti` as they become known.
pub async fn token(
    state: &OAuthState,
    params: Vec<(String, String)>,
    authorization: Option<&str>,
    source: Option<std::net::IpAddr>,
    attribution: &mut Attribution,
) -> Result<TokenResponse, OAuthError> {
    let grant = crate::metrics::grant_label(
        params
            .iter()
            .find(|(name, _)| name == "grant_type")
            .map(|(_, value)| value.as_str()),
    );
    let result = run_grant(state, params, authorization, source, attribution).await;
    let outcome = match &result {
        Ok(response) => {
            attribution.jti = Some(response.jti.clone());
            "issued"
        }
        // A 429 and a 503 share an OAuth code; the metric tells them apart.
        Err(OAuthError::TooManyFailures { .. }) => crate::metrics::RATE_LIMITED,
        Err(e) => e.code(),
    };
    state.metrics.token_request(grant, outcome);
    result
}

async fn run_grant(
    state: &OAuthState,
    params: Vec<(String, String)>,
    authorization: Option<&str>,
    source: Option<std::net::IpAddr>,
    attribution: &mut Attribution,
) -> Result<TokenResponse, OAuthError> {
    let request = request::TokenRequest::from_params(params)?;
    let client = authenticate_client(
        state,
        authorization,
        request.client_id,
        request.client_secret,
        source,
    )
    .await?;
    attribution.client_id = Some(client.id.clone());
    let now = state.clock.now();
    let (id, last_token_at) = (client.id.clone(), client.last_token_at);
    let issued = match request.grant {
        request::Grant::ClientCredentials { scope, resources } => {
            client_credentials::grant(state, client, scope.as_deref(), &resources, now).await
        }
        request::Grant::RefreshToken {
            refresh_token,
            scope,
            resources,
        } => {
            refresh::grant(
                state,
                client,
                refresh_token,
                scope.as_deref(),
                &resources,
                now,
            )
            .await
        }
    }?;
    // Only a token actually issued counts: a refused grant (a stolen
    // refresh token replayed, a scope out of bounds) must not make stale
    // credentials look in use. At most one write a minute per client.
    if last_token_at.is_none_or(|t| now - t >= 60) {
        let written = id.clone();
        if let Err(e) = state
            .db
            .write(move |conn| crate::store::clients::touch_last_token(conn, &written, now))
            .await
        {
            log::warn!("cannot record last_token_at: {e}");
        } else {
            state.clients.note_last_token(&id, now);
        }
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn a_path_is_logged_as_it_is_unless_a_segment_looks_like_a_secret() {
        for path in [
            "/oauth2/token",
            "/.well-known/oauth-authorization-server",
            "/admin/clients/billing-2/rotate-secret",
            "/",
        ] {
            assert_eq!(loggable_path(path), path);
        }
        let logged = loggable_path("/admin/clients/tsec_c2VjcmV0/disable");
        assert!(logged.starts_with("/admin/clients/<sha256:"), "{logged}");
        assert!(logged.ends_with(">/disable"), "{logged}");
        assert!(
            !logged.contains("tsec_") && !logged.contains(' '),
            "{logged}"
        );
        let jwt = format!("/{}", "eyJhbGciOiJFUzI1NiJ9".repeat(8));
        assert!(loggable_path(&jwt).starts_with("/<sha256:"));
        assert!(loggable_path("/trt_abc").starts_with("/<sha256:"));
    }
}
