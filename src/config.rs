//! Settings: defaults that run on a laptop with no setup, overridden by
//! `tessera.toml` and then by `TESSERA_*` environment variables. Every error
//! names the setting at fault. Settings are passed in, never read from a
//! global.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::signing::SigningAlgorithm;
use crate::keys::rotation::RotationPolicy;

pub const DEFAULT_CONFIG_FILE: &str = "tessera.toml";

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`TESSERA_BIND`).
    pub bind: String,
    /// The issuer identifier (`TESSERA_ISSUER`); default `http://` + bind address.
    pub issuer: Option<String>,
    /// `sqlite://PATH` or `postgres://…` (`TESSERA_DATABASE_URL`).
    pub database_url: String,
    /// Folder holding the key-encryption key (`TESSERA_KEYS_DIR`).
    pub keys_dir: PathBuf,
    /// The key-encryption key itself, base64url (`TESSERA_KEK`), instead of a file.
    pub kek: Option<String>,
    /// Audience for clients registered without one (`TESSERA_DEFAULT_AUDIENCE`);
    /// default: the issuer.
    pub default_audience: Option<String>,
    /// Access-token lifetime in seconds for new clients (`TESSERA_ACCESS_TOKEN_TTL`).
    pub access_token_ttl: i64,
    /// `max-age` of the JWKS and metadata documents (`TESSERA_JWKS_MAX_AGE`).
    pub jwks_max_age: u64,
    /// Database connections in the pool (`TESSERA_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// Seconds to wait for a database connection before answering 503
    /// (`TESSERA_DB_TIMEOUT`).
    pub db_timeout: u64,
    /// Largest accepted request body in bytes (`TESSERA_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// HTTP worker threads (`TESSERA_WORKERS`); default: one per core.
    pub workers: Option<usize>,
    /// Idle lifetime of a refresh token in seconds, for clients that set none
    /// (`TESSERA_REFRESH_TOKEN_TTL`).
    pub refresh_token_ttl: i64,
    /// Absolute lifetime of a refresh-token family in seconds, for clients
    /// that set none (`TESSERA_REFRESH_FAMILY_TTL`).
    pub refresh_family_ttl: i64,
    /// Seconds after a rotation during which the used token may be presented
    /// again without revoking its family (`TESSERA_REFRESH_GRACE`).
    pub refresh_grace: i64,
    /// Seconds between janitor runs (`TESSERA_JANITOR_INTERVAL`).
    pub janitor_interval: u64,
    /// Clock skew tolerated between Tessera and validators, in seconds
    /// (`TESSERA_CLOCK_LEEWAY`).
    pub clock_leeway: i64,
    /// Algorithm of generated signing keys, `ES256` or `EdDSA`
    /// (`TESSERA_SIGNING_ALG`).
    pub signing_alg: String,
    /// Seconds a signing key signs before the next takes over
    /// (`TESSERA_KEY_ROTATION_PERIOD`).
    pub key_rotation_period: i64,
    /// Seconds a new key is published before it signs
    /// (`TESSERA_KEY_PREPUBLISH`); at least `jwks_max_age` plus
    /// `key_check_interval`.
    pub key_prepublish: i64,
    /// Seconds a retired key stays published (`TESSERA_KEY_RETENTION`); at
    /// least the longest access-token lifetime plus the clock leeway.
    pub key_retention: i64,
    /// Seconds between key checks: rotation when due, and re-reading keys
    /// made elsewhere (`TESSERA_KEY_CHECK_INTERVAL`).
    pub key_check_interval: i64,
    /// Seconds between checks for client changes made elsewhere
    /// (`TESSERA_CLIENT_CHECK_INTERVAL`): authenticated clients are cached,
    /// and a change made by another node or the CLI takes effect within two
    /// intervals. 0 turns the cache off: every authentication reads the
    /// database.
    pub client_check_interval: u64,
    /// Seconds audit events are kept (`TESSERA_AUDIT_RETENTION`).
    pub audit_retention: i64,
    /// Reverse proxies whose `X-Forwarded-For` is believed: CIDR blocks,
    /// space- or comma-separated (`TESSERA_TRUSTED_PROXIES`); empty: none.
    pub trusted_proxies: String,
    /// Failed client authentications allowed in a burst per client id and
    /// address (five times as many per address) (`TESSERA_AUTH_FAILURE_BURST`).
    pub auth_failure_burst: u32,
    /// Seconds to regain one failed attempt (`TESSERA_AUTH_FAILURE_REFILL`).
    pub auth_failure_refill: u32,
    /// A separate address for `GET /metrics` (`TESSERA_METRICS_BIND`); when
    /// set, the main address no longer serves it.
    pub metrics_bind: Option<String>,
    /// PEM certificate chain for direct HTTPS (`TESSERA_TLS_CERT`); with
    /// `tls_key`, the server speaks only HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert` (`TESSERA_TLS_KEY`).
    pub tls_key: Option<PathBuf>,
    /// Seconds in-flight requests get to finish after SIGTERM
    /// (`TESSERA_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            issuer: None,
            database_url: "sqlite://data/tessera.db".to_owned(),
            keys_dir: PathBuf::from("keys"),
            kek: None,
            default_audience: None,
            access_token_ttl: 300,
            jwks_max_age: 300,
            db_pool_size: 8,
            db_timeout: 5,
            max_body_bytes: 64 * 1024,
            workers: None,
            refresh_token_ttl: 7 * 86_400,
            refresh_family_ttl: 30 * 86_400,
            refresh_grace: 0,
            janitor_interval: 300,
            clock_leeway: 60,
            signing_alg: "ES256".to_owned(),
            key_rotation_period: 30 * 86_400,
            key_prepublish: 86_400,
            key_retention: 2 * 86_400,
            key_check_interval: 60,
            client_check_interval: 1,
            audit_retention: 90 * 86_400,
            trusted_proxies: String::new(),
            auth_failure_burst: 10,
            auth_failure_refill: 6,
            metrics_bind: None,
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: 10,
        }
    }
}

/// Redacts the key-encryption key and any password in the database URL, so
/// settings can be logged.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("keys_dir", &self.keys_dir)
            .field("kek", &self.kek.as_ref().map(|_| "[redacted]"))
            .field("default_audience", &self.default_audience)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("refresh_family_ttl", &self.refresh_family_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .field("metrics_bind", &self.metrics_bind)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:password@host` becomes `scheme://user:[redacted]@host`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}:[redacted]@{host}{}",
                &rest[authority_end..]
            )
        }
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    File { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Longest refresh-token lifetime (idle or absolute) accepted: one year.
pub const MAX_REFRESH_TTL: i64 = 365 * 86_400;

/// Longest refresh grace window: a lost response is retried in seconds, and
/// every second of grace is a second in which a stolen token is not caught.
pub const MAX_REFRESH_GRACE: i64 = 300;

/// Largest access-token lifetime accepted anywhere: one day. Tokens that
/// live longer defeat the point of short-lived JWTs with offline validation.
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;

impl Settings {
    /// Loads defaults, then the config file (`explicit`, else `TESSERA_CONFIG`,
    /// else `./tessera.toml` if present), then the environment.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(explicit, |k| std::env::var(k).ok())
    }

    /// As [`Settings::load`], reading variables through `env` (testable).
    pub fn load_from(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let path = explicit
            .map(Path::to_path_buf)
            .or_else(|| env("TESSERA_CONFIG").map(PathBuf::from));
        let mut settings = match path {
            Some(path) => Self::from_file(&path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Self::default(),
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            // The message alone ("invalid type: string, expected u64") does
            // not say which setting; the span does, and the key is the text
            // before `=` on its line. Not `e.to_string()`: it quotes the
            // line, value included, and the file may hold the KEK.
            let setting = e
                .span()
                .and_then(|span| text.get(..span.start))
                .and_then(|before| before.rsplit('\n').next())
                .and_then(|line| line.split_once('='))
                .map(|(key, _)| key.trim())
                .filter(|key| !key.is_empty());
            ConfigError::File {
                path: path.to_path_buf(),
                message: match setting {
                    Some(key) => format!("setting `{key}`: {}", e.message()),
                    None => e.message().to_owned(),
                },
            }
        })
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(
            setting: &'static str,
            value: &str,
        ) -> Result<T, ConfigError> {
            value
                .trim()
                .parse()
                .map_err(|_| invalid(setting, format!("cannot parse {value:?}")))
        }
        if let Some(v) = env("TESSERA_BIND") {
            self.bind = v;
        }
        if let Some(v) = env("TESSERA_ISSUER") {
            self.issuer = Some(v);
        }
        if let Some(v) = env("TESSERA_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = env("TESSERA_KEYS_DIR") {
            self.keys_dir = PathBuf::from(v);
        }
        if let Some(v) = env("TESSERA_KEK") {
            self.kek = Some(v);
        }
        if let Some(v) = env("TESSERA_DEFAULT_AUDIENCE") {
            self.default_audience = Some(v);
        }
        if let Some(v) = env("TESSERA_ACCESS_TOKEN_TTL") {
            self.access_token_ttl = parsed("TESSERA_ACCESS_TOKEN_TTL", &v)?;
        }
        if let Some(v) = env("TESSERA_JWKS_MAX_AGE") {
            self.jwks_max_age = parsed("TESSERA_JWKS_MAX_AGE", &v)?;
        }
        if let Some(v) = env("TESSERA_DB_POOL_SIZE") {
            self.db_pool_size = parsed("TESSERA_DB_POOL_SIZE", &v)?;
        }
        if let Some(v) = env("TESSERA_DB_TIMEOUT") {
            self.db_timeout = parsed("TESSERA_DB_TIMEOUT", &v)?;
        }
        if let Some(v) = env("TESSERA_MAX_BODY_BYTES") {
            self.max_body_bytes = parsed("TESSERA_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = env("TESSERA_WORKERS") {
            self.workers = Some(parsed("TESSERA_WORKERS", &v)?);
        }
        if let Some(v) = env("TESSERA_REFRESH_TOKEN_TTL") {
            self.refresh_token_ttl = parsed("TESSERA_REFRESH_TOKEN_TTL", &v)?;
        }
        if let Some(v) = env("TESSERA_REFRESH_FAMILY_TTL") {
            self.refresh_family_ttl = parsed("TESSERA_REFRESH_FAMILY_TTL", &v)?;
        }
        if let Some(v) = env("TESSERA_REFRESH_GRACE") {
            self.refresh_grace = parsed("TESSERA_REFRESH_GRACE", &v)?;
        }
        if let Some(v) = env("TESSERA_JANITOR_INTERVAL") {
            self.janitor_interval = parsed("TESSERA_JANITOR_INTERVAL", &v)?;
        }
        if let Some(v) = env("TESSERA_CLOCK_LEEWAY") {
            self.clock_leeway = parsed("TESSERA_CLOCK_LEEWAY", &v)?;
        }
        if let Some(v) = env("TESSERA_SIGNING_ALG") {
            self.signing_alg = v;
        }
        if let Some(v) = env("TESSERA_KEY_ROTATION_PERIOD") {
            self.key_rotation_period = parsed("TESSERA_KEY_ROTATION_PERIOD", &v)?;
        }
        if let Some(v) = env("TESSERA_KEY_PREPUBLISH") {
            self.key_prepublish = parsed("TESSERA_KEY_PREPUBLISH", &v)?;
        }
        if let Some(v) = env("TESSERA_KEY_RETENTION") {
            self.key_retention = parsed("TESSERA_KEY_RETENTION", &v)?;
        }
        if let Some(v) = env("TESSERA_KEY_CHECK_INTERVAL") {
            self.key_check_interval = parsed("TESSERA_KEY_CHECK_INTERVAL", &v)?;
        }
        if let Some(v) = env("TESSERA_CLIENT_CHECK_INTERVAL") {
            self.client_check_interval = parsed("TESSERA_CLIENT_CHECK_INTERVAL", &v)?;
        }
        if let Some(v) = env("TESSERA_AUTH_FAILURE_BURST") {
            self.auth_failure_burst = parsed("TESSERA_AUTH_FAILURE_BURST", &v)?;
        }
        if let Some(v) = env("TESSERA_AUTH_FAILURE_REFILL") {
            self.auth_failure_refill = parsed("TESSERA_AUTH_FAILURE_REFILL", &v)?;
        }
        if let Some(v) = env("TESSERA_TRUSTED_PROXIES") {
            self.trusted_proxies = v;
        }
        if let Some(v) = env("TESSERA_AUDIT_RETENTION") {
            self.audit_retention = parsed("TESSERA_AUDIT_RETENTION", &v)?;
        }
        if let Some(v) = env("TESSERA_METRICS_BIND") {
            self.metrics_bind = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = env("TESSERA_TLS_CERT") {
            self.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = env("TESSERA_TLS_KEY") {
            self.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = env("TESSERA_SHUTDOWN_TIMEOUT") {
            self.shutdown_timeout = parsed("TESSERA_SHUTDOWN_TIMEOUT", &v)?;
        }
        Ok(())
    }

    /// Checks everything that can be checked before binding a socket.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        self.metrics_addr()?;
        if let Some(issuer) = &self.issuer {
            validate_issuer(issuer)?;
            if self.tls() && !issuer.starts_with("https://") {
                return Err(invalid(
                    "TESSERA_ISSUER",
                    "must be an https URL when TESSERA_TLS_CERT and TESSERA_TLS_KEY are set",
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "TESSERA_TLS_KEY",
                    "is required with TESSERA_TLS_CERT",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "TESSERA_TLS_CERT",
                    "is required with TESSERA_TLS_KEY",
                ));
            }
            _ => {}
        }
        if !(1..=300).contains(&self.shutdown_timeout) {
            return Err(invalid(
                "TESSERA_SHUTDOWN_TIMEOUT",
                "must be between 1 and 300 seconds",
            ));
        }
        if let Some(aud) = &self.default_audience {
            if !crate::oauth::audience::is_valid_uri(aud) {
                return Err(invalid(
                    "TESSERA_DEFAULT_AUDIENCE",
                    "must be an absolute URI without spaces or a fragment",
                ));
            }
        }
        crate::store::Backend::from_url(&self.database_url)
            .map_err(|e| invalid("TESSERA_DATABASE_URL", e.to_string()))?;
        if !(1..=MAX_ACCESS_TOKEN_TTL).contains(&self.access_token_ttl) {
            return Err(invalid(
                "TESSERA_ACCESS_TOKEN_TTL",
                format!("must be between 1 and {MAX_ACCESS_TOKEN_TTL} seconds"),
            ));
        }
        if self.db_pool_size == 0 {
            return Err(invalid("TESSERA_DB_POOL_SIZE", "must be at least 1"));
        }
        if self.db_timeout == 0 {
            return Err(invalid("TESSERA_DB_TIMEOUT", "must be at least 1 second"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("TESSERA_MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.workers == Some(0) {
            return Err(invalid("TESSERA_WORKERS", "must be at least 1"));
        }
        for (setting, value) in [
            ("TESSERA_REFRESH_TOKEN_TTL", self.refresh_token_ttl),
            ("TESSERA_REFRESH_FAMILY_TTL", self.refresh_family_ttl),
        ] {
            if !(60..=MAX_REFRESH_TTL).contains(&value) {
                return Err(invalid(
                    setting,
                    format!("must be between 60 and {MAX_REFRESH_TTL} seconds"),
                ));
            }
        }
        if !(0..=MAX_REFRESH_GRACE).contains(&self.refresh_grace) {
            return Err(invalid(
                "TESSERA_REFRESH_GRACE",
                format!("must be between 0 and {MAX_REFRESH_GRACE} seconds"),
            ));
        }
        if self.janitor_interval == 0 {
            return Err(invalid(
                "TESSERA_JANITOR_INTERVAL",
                "must be at least 1 second",
            ));
        }
        if !(0..=300).contains(&self.clock_leeway) {
            return Err(invalid(
                "TESSERA_CLOCK_LEEWAY",
                "must be between 0 and 300 seconds",
            ));
        }
        self.signing_algorithm()?;
        if !(1..=1000).contains(&self.auth_failure_burst) {
            return Err(invalid(
                "TESSERA_AUTH_FAILURE_BURST",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=3600).contains(&self.auth_failure_refill) {
            return Err(invalid(
                "TESSERA_AUTH_FAILURE_REFILL",
                "must be between 1 and 3600 seconds",
            ));
        }
        if crate::oauth::network::parse_list(&self.trusted_proxies).is_none() {
            return Err(invalid(
                "TESSERA_TRUSTED_PROXIES",
                "must be IP addresses or CIDR blocks (e.g. 10.0.0.0/8), separated by spaces or commas",
            ));
        }
        if self.audit_retention < 86_400 {
            return Err(invalid(
                "TESSERA_AUDIT_RETENTION",
                "must be at least 86400 seconds (one day)",
            ));
        }
        if self.client_check_interval > 3600 {
            return Err(invalid(
                "TESSERA_CLIENT_CHECK_INTERVAL",
                "must be between 0 (no client cache) and 3600 seconds",
            ));
        }
        // A client-wide cut-off lies two intervals plus a second ahead, and
        // tokens a server mints for the client meanwhile carry the second
        // after it as `iat` and `nbf`: validators must absorb that with their
        // leeway, Tessera's own included.
        let ahead = self
            .client_check_interval
            .saturating_mul(2)
            .saturating_add(1);
        if self.client_check_interval > 0 && ahead > self.clock_leeway.unsigned_abs() {
            return Err(invalid(
                "TESSERA_CLIENT_CHECK_INTERVAL",
                format!(
                    "two intervals plus one second ({ahead} s) must not exceed TESSERA_CLOCK_LEEWAY ({} s): client-wide cut-offs are placed that far ahead; lower the interval, raise the leeway, or use 0 (no client cache)",
                    self.clock_leeway
                ),
            ));
        }
        if !(1..=3600).contains(&self.key_check_interval) {
            return Err(invalid(
                "TESSERA_KEY_CHECK_INTERVAL",
                "must be between 1 and 3600 seconds",
            ));
        }
        // Every node must know a new key, and every validator's cached JWKS
        // must have expired, before anything is signed with it.
        let min_lead = i64::try_from(self.jwks_max_age)
            .unwrap_or(i64::MAX)
            .saturating_add(self.key_check_interval);
        if self.key_prepublish < min_lead {
            return Err(invalid(
                "TESSERA_KEY_PREPUBLISH",
                format!(
                    "must be at least TESSERA_JWKS_MAX_AGE + TESSERA_KEY_CHECK_INTERVAL \
                     ({min_lead} s), or validators could meet a key they have not fetched"
                ),
            ));
        }
        if self.key_rotation_period <= self.key_prepublish {
            return Err(invalid(
                "TESSERA_KEY_ROTATION_PERIOD",
                "must be longer than TESSERA_KEY_PREPUBLISH",
            ));
        }
        let min_retention = MAX_ACCESS_TOKEN_TTL + self.clock_leeway;
        if self.key_retention < min_retention {
            return Err(invalid(
                "TESSERA_KEY_RETENTION",
                format!(
                    "must be at least the longest access-token lifetime plus the clock leeway \
                     ({min_retention} s), or tokens would outlive their key"
                ),
            ));
        }
        Ok(())
    }

    pub fn signing_algorithm(&self) -> Result<SigningAlgorithm, ConfigError> {
        match SigningAlgorithm::from_jws_name(&self.signing_alg) {
            Some(alg @ (SigningAlgorithm::Es256 | SigningAlgorithm::EdDsa)) => Ok(alg),
            _ => Err(invalid(
                "TESSERA_SIGNING_ALG",
                "must be ES256 or EdDSA (RS256 keys can only be imported)",
            )),
        }
    }

    pub fn rotation_policy(&self) -> Result<RotationPolicy, ConfigError> {
        Ok(RotationPolicy {
            alg: self.signing_algorithm()?,
            period: self.key_rotation_period,
            lead: self.key_prepublish,
            retention: self.key_retention,
            publish_delay: self.key_check_interval,
        })
    }

    /// Whether the server speaks HTTPS itself.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.metrics_bind
            .as_deref()
            .map(|bind| {
                bind.parse().map_err(|_| {
                    invalid(
                        "TESSERA_METRICS_BIND",
                        format!("not a socket address: {bind:?}"),
                    )
                })
            })
            .transpose()
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind.parse().map_err(|_| {
            invalid(
                "TESSERA_BIND",
                format!("not a socket address: {:?}", self.bind),
            )
        })
    }
}

/// RFC 8414 §2: the issuer is an https URL with no query or fragment. Plain
/// http is allowed only on loopback, for development. A trailing slash is
/// refused because every endpoint URL and every `iss` is built from it, and
/// validators compare `iss` byte for byte.
pub fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        if !is_loopback_authority(rest.split('/').next().unwrap_or_default()) {
            return Err(invalid(
                "TESSERA_ISSUER",
                "must be an https URL (http is allowed only for a loopback address)",
            ));
        }
        rest
    } else {
        return Err(invalid("TESSERA_ISSUER", "must be an https URL"));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("TESSERA_ISSUER", "has no host"));
    }
    if issuer.contains(['?', '#']) || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "TESSERA_ISSUER",
            "must not contain a query, a fragment or whitespace",
        ));
    }
    if issuer.ends_with('/') {
        return Err(invalid("TESSERA_ISSUER", "must not end with '/'"));
    }
    Ok(())
}

fn is_loopback_authority(authority: &str) -> bool {
    // Strip an optional port, minding IPv6 brackets.
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_overrides_defaults() -> Result<(), ConfigError> {
        let s = Settings::load_from(
            None,
            env_of(&[
                ("TESSERA_BIND", "127.0.0.1:9999"),
                ("TESSERA_DATABASE_URL", "postgres://x@localhost/db"),
                ("TESSERA_ACCESS_TOKEN_TTL", "60"),
            ]),
        )?;
        assert_eq!(s.bind, "127.0.0.1:9999");
        assert_eq!(s.database_url, "postgres://x@localhost/db");
        assert_eq!(s.access_token_ttl, 60);
        Ok(())
    }

    #[test]
    fn a_wrongly_typed_setting_in_the_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tessera.toml");
        for (text, name) in [
            (
                "bind = \"127.0.0.1:9\"\naccess_token_ttl = \"five\"\n",
                "access_token_ttl",
            ),
            ("jwks_max_age = -3\n", "jwks_max_age"),
            ("no_such_setting = 1\n", "no_such_setting"),
        ] {
            std::fs::write(&path, text).expect("write");
            let e = Settings::from_file(&path).expect_err(text).to_string();
            assert!(e.contains(name), "{e:?} does not name {name}");
        }
    }

    #[test]
    fn a_bad_setting_is_named_in_the_error() {
        for (pairs, name) in [
            (&[("TESSERA_BIND", "nonsense")][..], "TESSERA_BIND"),
            (
                &[("TESSERA_ACCESS_TOKEN_TTL", "five")][..],
                "TESSERA_ACCESS_TOKEN_TTL",
            ),
            (
                &[("TESSERA_ACCESS_TOKEN_TTL", "0")][..],
                "TESSERA_ACCESS_TOKEN_TTL",
            ),
            (
                &[("TESSERA_ISSUER", "http://auth.example.com")][..],
                "TESSERA_ISSUER",
            ),
            (
                &[("TESSERA_DATABASE_URL", "mysql://x")][..],
                "TESSERA_DATABASE_URL",
            ),
            (
                &[("TESSERA_KEY_PREPUBLISH", "299")][..],
                "TESSERA_KEY_PREPUBLISH",
            ),
            (
                &[("TESSERA_JWKS_MAX_AGE", "86400")][..],
                "TESSERA_KEY_PREPUBLISH",
            ),
            (
                &[("TESSERA_KEY_RETENTION", "3600")][..],
                "TESSERA_KEY_RETENTION",
            ),
            (
                &[("TESSERA_CLIENT_CHECK_INTERVAL", "30")][..],
                "TESSERA_CLIENT_CHECK_INTERVAL",
            ),
            (
                &[("TESSERA_CLOCK_LEEWAY", "2")][..],
                "TESSERA_CLIENT_CHECK_INTERVAL",
            ),
            (
                &[("TESSERA_SIGNING_ALG", "RS256")][..],
                "TESSERA_SIGNING_ALG",
            ),
            (
                &[("TESSERA_METRICS_BIND", "localhost")][..],
                "TESSERA_METRICS_BIND",
            ),
            (&[("TESSERA_TLS_CERT", "c.pem")][..], "TESSERA_TLS_KEY"),
            (&[("TESSERA_TLS_KEY", "k.pem")][..], "TESSERA_TLS_CERT"),
            (
                &[
                    ("TESSERA_TLS_CERT", "c.pem"),
                    ("TESSERA_TLS_KEY", "k.pem"),
                    ("TESSERA_ISSUER", "http://127.0.0.1:8080"),
                ][..],
                "TESSERA_ISSUER",
            ),
            (
                &[("TESSERA_SHUTDOWN_TIMEOUT", "0")][..],
                "TESSERA_SHUTDOWN_TIMEOUT",
            ),
        ] {
            let pairs: &'static [(&str, &str)] = pairs;
            let err = Settings::load_from(None, env_of(pairs))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(name), "{err:?} should name {name}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let s = Settings {
            database_url: "postgres://app:hunter2@db/tessera".into(),
            kek: Some("c2VjcmV0".into()),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:[redacted]@db/tessera"),
            "{shown}"
        );
    }

    #[test]
    fn issuer_rules_follow_rfc_8414() {
        assert!(validate_issuer("https://auth.example.com").is_ok());
        assert!(validate_issuer("https://auth.example.com/tenant").is_ok());
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://localhost:8080").is_ok());
        assert!(validate_issuer("http://[::1]:8080").is_ok());
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("http://127.0.0.1.evil.com").is_err());
        assert!(validate_issuer("https://auth.example.com/").is_err());
        assert!(validate_issuer("https://auth.example.com?x=1").is_err());
        assert!(validate_issuer("https://").is_err());
        assert!(validate_issuer("ftp://auth.example.com").is_err());
    }
}
