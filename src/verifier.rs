//! The resource-server side: verify Tessera access tokens offline.
//!
//! A [`Verifier`] is built for one issuer and one audience (both required:
//! there is no default that skips them), discovers the JWKS through RFC 8414
//! metadata, caches it for its `max-age`, and verifies with the strict rules
//! of [`crate::token::verify`]: the algorithm comes from the key, `typ` must
//! be `at+jwt`, `iss` matches exactly, `aud` must contain the audience, and
//! time claims are checked with an explicit leeway. Keys are never taken
//! from a token (`jku`, `x5u`, `jwk` are refused, never fetched).
//!
//! One JWKS fetch runs at a time and every caller needing it waits for that
//! one; an unknown `kid` triggers a fetch at most once per
//! `min_refetch_interval` after the last one ended, so a flood of forged
//! kids cannot make it hammer the issuer. If the issuer is briefly down, the
//! cached keys keep serving for `max_stale` without any request waiting on
//! the issuer, which is asked again once per `min_refetch_interval`.
//! Optionally it follows the revocation feed and rejects revoked `jti`s and
//! tokens issued before a client cut-off.
//!
//! Signatures are checked by `jsonwebtoken`, through its process-wide
//! `CryptoProvider`. Building a `Verifier` installs Tessera's `ring`
//! provider ([`crate::crypto::jwt_provider::RING_PROVIDER`], no HMAC) unless
//! the application installed one before; an application that uses
//! `jsonwebtoken` itself installs its own first, and verification works
//! with it too (the algorithm is pinned by the key either way).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera::verifier::Verifier;
//! let verifier = Verifier::builder("https://auth.example.com", "https://api.example.com")
//!     .discover()
//!     .await?;
//! let claims = verifier.verify("eyJ0eXAiOiJhdCtqd3Qi...", verifier.expectations()).await?;
//! println!("{} may {}", claims.client_id, claims.scope);
//! # Ok(()) }
//! ```

mod extractor;
mod jwks;
mod revocations;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

pub use extractor::{BearerOptions, BearerToken, FORM_BODY_LIMIT, NoScope, RequiredScope};

use crate::clock::{SharedClock, SystemClock};
use crate::token::access::AccessTokenClaims;
use crate::token::verify::{self, VerifyError};

/// What a token must satisfy besides being a valid token of the issuer.
/// The audience is required by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    audience: String,
    scopes: Vec<String>,
    introspect: bool,
}

impl Expectations {
    /// The token's `aud` must contain `audience`.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            scopes: Vec::new(),
            introspect: false,
        }
    }

    /// Every one of `scopes` must be in the token's `scope`.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Also ask the issuer's introspection endpoint (needs
    /// [`VerifierBuilder::introspection`]): revocations count at once, at
    /// the cost of a call per token.
    pub fn introspect(mut self, yes: bool) -> Self {
        self.introspect = yes;
        self
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn required_scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("invalid token: {0}")]
    Invalid(VerifyError),
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token lacks a required scope")]
    InsufficientScope,
    /// Introspection was asked for and could not be done.
    #[error("the issuer's introspection endpoint is unavailable")]
    IntrospectionUnavailable,
    /// No usable keys: the JWKS could not be fetched and the cache is older
    /// than `max_stale`. Fails closed.
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{0} must be an https URL (http only on a loopback address)")]
    InsecureUrl(String),
    #[error("fetching {url}: {message}")]
    Http { url: String, message: String },
    #[error("the metadata names issuer {found:?}, not {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the metadata lacks {0}")]
    Metadata(&'static str),
}

/// Credentials of a client created with `--can-introspect`, for the feed.
#[derive(Clone)]
struct FeedCredentials {
    client_id: String,
    client_secret: String,
    interval: Duration,
}

pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    introspection: Option<(String, String)>,
    leeway: Duration,
    min_refetch_interval: Duration,
    max_stale: Duration,
    feed: Option<FeedCredentials>,
    http: Option<reqwest::Client>,
    clock: SharedClock,
}

/// Verifies access tokens of one issuer for one audience. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    expectations: Expectations,
    leeway: i64,
    http: reqwest::Client,
    /// Endpoint and Basic credentials, when introspection is configured.
    introspection: Option<(String, String)>,
    clock: SharedClock,
    jwks: jwks::JwksCache,
    revocations: Option<Arc<revocations::RevocationList>>,
}

impl Verifier {
    /// Starts a verifier for tokens of `issuer` meant for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            min_refetch_interval: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            introspection: None,
            feed: None,
            http: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The expectations given to the builder: its audience, no scope.
    pub fn expectations(&self) -> &Expectations {
        &self.inner.expectations
    }

    /// Verifies `token` against `expect`; returns its claims.
    pub async fn verify(
        &self,
        token: &str,
        expect: &Expectations,
    ) -> Result<AccessTokenClaims, Rejection> {
        let claims = self.verify_offline(token, expect).await?;
        let granted: Vec<&str> = claims.scope.split(' ').collect();
        if !expect.scopes.iter().all(|s| granted.contains(&s.as_str())) {
            return Err(Rejection::InsufficientScope);
        }
        if expect.introspect && !self.introspect(token).await? {
            return Err(Rejection::Revoked);
        }
        Ok(claims)
    }

    /// RFC 7662: asks the issuer whether the token is active.
    async fn introspect(&self, token: &str) -> Result<bool, Rejection> {
        let (url, authorization) = self
            .inner
            .introspection
            .as_ref()
            .ok_or(Rejection::IntrospectionUnavailable)?;
        let encoded: String = token
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let response = self
            .inner
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!("token={encoded}"))
            .send()
            .await
            .map_err(|_| Rejection::IntrospectionUnavailable)?;
        if !response.status().is_success() {
            return Err(Rejection::IntrospectionUnavailable);
        }
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|_| Rejection::IntrospectionUnavailable)?;
        Ok(answer["active"] == serde_json::Value::Bool(true))
    }

    async fn verify_offline(
        &self,
        token: &str,
        wanted: &Expectations,
    ) -> Result<AccessTokenClaims, Rejection> {
        let inner = &self.inner;
        let leeway = inner.leeway;
        let expect = verify::Expectations {
            issuer: &inner.issuer,
            audience: Some(&wanted.audience),
            now: inner.clock.now(),
            expiry_leeway: leeway,
            not_before_leeway: leeway,
        };
        let keys = inner
            .jwks
            .keys(false)
            .await
            .ok_or(Rejection::KeysUnavailable)?;
        let claims = match verify::verify(token, &keys, &expect) {
            // Perhaps a key published after our last fetch: look once more,
            // within the refetch limits.
            Err(VerifyError::UnknownKey) => {
                let keys = inner
                    .jwks
                    .keys(true)
                    .await
                    .ok_or(Rejection::KeysUnavailable)?;
                verify::verify(token, &keys, &expect)
            }
            other => other,
        }
        .map_err(Rejection::Invalid)?;
        if let Some(list) = &inner.revocations {
            if list.is_revoked(&claims) {
                return Err(Rejection::Revoked);
            }
        }
        Ok(claims)
    }

    /// How many times the JWKS has been fetched (for monitoring, and to see
    /// the refetch limits at work).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks.fetches()
    }

    /// Reads the revocation feed once, now (it is also read in the
    /// background at the configured interval).
    pub async fn poll_revocations(&self) -> Result<(), String> {
        match &self.inner.revocations {
            Some(list) => list.poll(self.inner.clock.now(), self.inner.leeway).await,
            None => Ok(()),
        }
    }

    /// When the revocation feed was last read to its end (`None` without
    /// [`VerifierBuilder::follow_revocations`]). Revocations older than
    /// this are known; a health check can report the verifier as stale
    /// when it lies more than a few poll intervals back.
    pub fn last_feed_poll(&self) -> Option<std::time::Instant> {
        self.inner.revocations.as_ref().and_then(|l| l.last_poll())
    }

    pub fn audience(&self) -> &str {
        &self.inner.expectations.audience
    }
}

impl VerifierBuilder {
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s, at
    /// most 5 minutes). When following the revocation feed, keep it at or
    /// below the issuer's `clock_leeway` (60 s by default): the feed drops
    /// an entry once its token's `exp` plus `clock_leeway` has passed, so a
    /// verifier (re)started after that would accept the revoked token for
    /// the rest of a larger leeway.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(Duration::from_secs(300));
        self
    }

    /// Least time from the end of one JWKS fetch to the start of another
    /// caused by an unknown kid, and from a failed fetch to any other
    /// (default 30 s).
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// How long past their `max-age` cached keys keep serving while the
    /// issuer cannot be reached (default 1 hour); after that, `verify`
    /// answers [`Rejection::KeysUnavailable`].
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Follows the revocation feed with the credentials of a client created
    /// with `--can-introspect`, polling every `interval` (at least 100 ms).
    pub fn follow_revocations(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        interval: Duration,
    ) -> Self {
        self.feed = Some(FeedCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            // `tokio::time::interval` panics on zero, and a tighter loop
            // would only load the issuer.
            interval: interval.max(Duration::from_millis(100)),
        });
        self
    }

    /// Credentials for the introspection endpoint (a client created with
    /// `--can-introspect`), for [`Expectations::introspect`].
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some((client_id.into(), client_secret.into()));
        self
    }

    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The clock deciding expiry (tests inject one).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Fetches the issuer's metadata and JWKS (and, when following
    /// revocations, the feed once), and starts following the feed.
    pub async fn discover(self) -> Result<Verifier, DiscoveryError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: Option<String>,
            revocation_feed_endpoint: Option<String>,
            introspection_endpoint: Option<String>,
        }
        require_secure(&self.issuer)?;
        // Before any verification, so which provider serves the process does
        // not depend on which token arrives first.
        crate::crypto::jwt_provider::install();
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| DiscoveryError::Http {
                    url: self.issuer.clone(),
                    message: e.to_string(),
                })?,
        };
        let url = format!(
            "{}/.well-known/oauth-authorization-server",
            self.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = get_json(&http, &url, None).await?;
        // RFC 8414 §3.3: the issuer in the document must be the one asked for.
        if metadata.issuer != self.issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: self.issuer,
                found: metadata.issuer,
            });
        }
        let jwks_uri = metadata
            .jwks_uri
            .ok_or(DiscoveryError::Metadata("jwks_uri"))?;
        require_secure(&jwks_uri)?;
        let jwks = jwks::JwksCache::new(
            http.clone(),
            jwks_uri,
            self.min_refetch_interval,
            self.max_stale,
        );
        if jwks.keys(false).await.is_none() {
            return Err(DiscoveryError::Http {
                url: jwks.uri().to_owned(),
                message: "no usable keys".to_owned(),
            });
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(300);
        let revocations = match &self.feed {
            Some(feed) => {
                let url = metadata
                    .revocation_feed_endpoint
                    .ok_or(DiscoveryError::Metadata("revocation_feed_endpoint"))?;
                require_secure(&url)?;
                let list = Arc::new(revocations::RevocationList::new(
                    http.clone(),
                    url,
                    basic_auth(&feed.client_id, &feed.client_secret),
                ));
                list.poll(self.clock.now(), leeway)
                    .await
                    .map_err(|message| DiscoveryError::Http {
                        url: list.url().to_owned(),
                        message,
                    })?;
                Some(list)
            }
            None => None,
        };
        let introspection = match &self.introspection {
            Some((id, secret)) => {
                let url = metadata
                    .introspection_endpoint
                    .ok_or(DiscoveryError::Metadata("introspection_endpoint"))?;
                require_secure(&url)?;
                Some((url, basic_auth(id, secret)))
            }
            None => None,
        };
        let verifier = Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                expectations: Expectations::new(self.audience),
                leeway,
                http: http.clone(),
                introspection,
                clock: self.clock,
                jwks,
                revocations,
            }),
        };
        if let Some(feed) = self.feed {
            revocations::follow(Arc::downgrade(&verifier.inner), feed.interval);
        }
        Ok(verifier)
    }
}

/// https, or http on a loopback address (development and tests).
fn require_secure(url: &str) -> Result<(), DiscoveryError> {
    let ok = if url.starts_with("https://") {
        true
    } else if let Some(rest) = url.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(DiscoveryError::InsecureUrl(url.to_owned()))
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    authorization: Option<&str>,
) -> Result<T, DiscoveryError> {
    let fail = |message: String| DiscoveryError::Http {
        url: url.to_owned(),
        message,
    };
    let mut request = http.get(url);
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let response = request.send().await.map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    response.json().await.map_err(|e| fail(e.to_string()))
}

/// RFC 6749 §2.3.1: id and secret form-urlencoded, then base64.
fn basic_auth(id: &str, secret: &str) -> String {
    use crate::form_encoding::encode_component as encode;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(id),
            encode(secret)
        ))
    )
}
