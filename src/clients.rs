//! Client management shared by the CLI and the admin API: validation of what
//! an operator asks for, creation with a server-generated secret shown once,
//! and the JSON view of a client.

use serde::Serialize;

use crate::clock::UnixSeconds;
use crate::config::{MAX_ACCESS_TOKEN_TTL, MAX_REFRESH_TTL};
use crate::oauth::audience::{is_valid_uri, split_list};
use crate::oauth::revoke::cutoff_relevant_until;
use crate::oauth::scope::Scope;
use crate::store::revocation::{self, RevokeAll};
use crate::store::{DbConnection, StoreError, clients};
use crate::token::secret::{CLIENT_SECRET_PREFIX, PlainSecret};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no client with id {0:?}")]
    NotFound(String),
    #[error("a client with id {0:?} already exists")]
    AlreadyExists(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot generate a secret: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::Invalid {
        field,
        message: message.into(),
    }
}

/// What an operator asks for when registering a client.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Chosen id, e.g. to keep ids when migrating from another server;
    /// `None` generates a UUID.
    pub id: Option<String>,
    pub name: String,
    pub scope: String,
    pub audiences: Vec<String>,
    pub access_token_ttl: i64,
    /// Whether the client gets refresh tokens (RFC 6749 §4.4.3 deviation,
    /// see docs/operator-guide.md).
    pub refresh_tokens: bool,
    /// Idle lifetime of its refresh tokens; `None`: the server default.
    pub refresh_token_ttl: Option<i64>,
    /// Absolute lifetime of its refresh-token families; `None`: the server default.
    pub refresh_family_ttl: Option<i64>,
    /// May introspect any token and read the revocation feed (for resource
    /// servers).
    pub can_introspect: bool,
    /// CIDR blocks the client may authenticate from; empty: anywhere.
    pub allowed_networks: Vec<String>,
}

pub struct CreatedClient {
    pub client_id: String,
    pub client_secret: PlainSecret,
}

/// Ids travel in Basic credentials, URLs and logs: keep them to RFC 3986
/// unreserved characters.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn check_name(name: &str) -> Result<String, ClientError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(
            "--name",
            "1 to 200 characters, no control characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_scope(scope: &str) -> Result<String, ClientError> {
    Scope::parse(scope).map(|s| s.to_string()).map_err(|_| {
        invalid(
            "--scope",
            "space-separated tokens of printable ASCII without \" or \\ (RFC 6749 §3.3)",
        )
    })
}

/// Validated, without repeats, space-joined as stored.
fn check_audiences(audiences: &[String]) -> Result<String, ClientError> {
    let mut kept: Vec<&str> = Vec::new();
    // Errors name the value by its place, never repeat it: the admin API
    // answers with them, and a secret pasted into the wrong field must not
    // come back.
    for (i, aud) in audiences.iter().enumerate() {
        if !is_valid_uri(aud) {
            return Err(invalid(
                "--audience",
                format!("value {} is not an absolute URI without a fragment", i + 1),
            ));
        }
        if !kept.contains(&aud.as_str()) {
            kept.push(aud);
        }
    }
    Ok(kept.join(" "))
}

/// Validated CIDR blocks, normalised and space-joined; `None` for an empty
/// list (no restriction).
fn check_networks(networks: &[String]) -> Result<Option<String>, ClientError> {
    let mut kept: Vec<String> = Vec::new();
    for (i, n) in networks.iter().enumerate() {
        let cidr = crate::oauth::network::Cidr::parse(n).ok_or_else(|| {
            invalid(
                "--allow-network",
                format!(
                    "value {} is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)",
                    i + 1
                ),
            )
        })?;
        let text = cidr.to_string();
        if !kept.contains(&text) {
            kept.push(text);
        }
    }
    Ok((!kept.is_empty()).then(|| kept.join(" ")))
}

fn check_access_ttl(ttl: i64) -> Result<i64, ClientError> {
    if !(1..=MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
        return Err(invalid(
            "--access-token-ttl",
            format!("must be between 1 and {MAX_ACCESS_TOKEN_TTL} seconds"),
        ));
    }
    Ok(ttl)
}

fn check_refresh_ttl(field: &'static str, ttl: i64) -> Result<i64, ClientError> {
    if !(60..=MAX_REFRESH_TTL).contains(&ttl) {
        return Err(invalid(
            field,
            format!("must be between 60 and {MAX_REFRESH_TTL} seconds"),
        ));
    }
    Ok(ttl)
}

impl ClientSpec {
    /// Checks every value; returns the id (generated when none was given),
    /// the normalised scope and audiences, and the networks.
    pub fn validate(&self) -> Result<(String, String, String, Option<String>), ClientError> {
        let id = match &self.id {
            Some(id) if !valid_id(id) => {
                return Err(invalid(
                    "--id",
                    "1 to 128 characters from A-Z a-z 0-9 - . _ ~",
                ));
            }
            Some(id) => id.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        check_name(&self.name)?;
        let scope = check_scope(&self.scope)?;
        let audiences = check_audiences(&self.audiences)?;
        check_access_ttl(self.access_token_ttl)?;
        if let Some(t) = self.refresh_token_ttl {
            check_refresh_ttl("--refresh-token-ttl", t)?;
        }
        if let Some(t) = self.refresh_family_ttl {
            check_refresh_ttl("--refresh-family-ttl", t)?;
        }
        let networks = check_networks(&self.allowed_networks)?;
        Ok((id, scope, audiences, networks))
    }
}

/// What an operator changes on a client; `None` leaves a field alone.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub scope: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub access_token_ttl: Option<i64>,
    pub refresh_tokens: Option<bool>,
    pub refresh_token_ttl: Option<i64>,
    pub refresh_family_ttl: Option<i64>,
    pub can_introspect: Option<bool>,
    /// Replaces the allowed networks; an empty list lifts the restriction.
    pub allowed_networks: Option<Vec<String>>,
}

/// Applies `update`; returns the client as it now is. A narrower scope or
/// fewer audiences apply to new tokens; tokens already issued keep theirs
/// until they expire (revoke-all ends them at once).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    update: &ClientUpdate,
    now: UnixSeconds,
) -> Result<ClientView, ClientError> {
    let nothing = update.name.is_none()
        && update.scope.is_none()
        && update.audiences.is_none()
        && update.access_token_ttl.is_none()
        && update.refresh_tokens.is_none()
        && update.refresh_token_ttl.is_none()
        && update.refresh_family_ttl.is_none()
        && update.can_introspect.is_none()
        && update.allowed_networks.is_none();
    if nothing {
        return Err(invalid("update", "nothing to change"));
    }
    let changes = clients::ClientChanges {
        name: update.name.as_deref().map(check_name).transpose()?,
        scopes: update.scope.as_deref().map(check_scope).transpose()?,
        audiences: update
            .audiences
            .as_deref()
            .map(check_audiences)
            .transpose()?,
        access_token_ttl: update.access_token_ttl.map(check_access_ttl).transpose()?,
        refresh_tokens: update.refresh_tokens,
        refresh_token_ttl: update
            .refresh_token_ttl
            .map(|t| check_refresh_ttl("--refresh-token-ttl", t))
            .transpose()?,
        refresh_family_ttl: update
            .refresh_family_ttl
            .map(|t| check_refresh_ttl("--refresh-family-ttl", t))
            .transpose()?,
        can_introspect: update.can_introspect,
        allowed_networks: update
            .allowed_networks
            .as_deref()
            .map(check_networks)
            .transpose()?,
        updated_at: now,
    };
    clients::update_client(conn, id, &changes)?
        .map(ClientView::from)
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

/// Lets a disabled client obtain tokens again. Tokens it held when it was
/// disabled stay revoked (its cut-off stands).
pub fn enable(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
) -> Result<ClientView, ClientError> {
    clients::enable_client(conn, id, now)?
        .map(ClientView::from)
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

pub fn create(
    conn: &mut DbConnection,
    spec: &ClientSpec,
    now: UnixSeconds,
) -> Result<CreatedClient, ClientError> {
    let (id, scopes, audiences, networks) = spec.validate()?;
    let secret = PlainSecret::generate(CLIENT_SECRET_PREFIX)?;
    let new = clients::NewClient {
        id: &id,
        name: spec.name.trim(),
        scopes: &scopes,
        audiences: &audiences,
        access_token_ttl: spec.access_token_ttl,
        refresh_tokens: spec.refresh_tokens,
        refresh_token_ttl: spec.refresh_token_ttl,
        refresh_family_ttl: spec.refresh_family_ttl,
        can_introspect: spec.can_introspect,
        allowed_networks: networks.as_deref(),
        created_at: now,
        updated_at: now,
    };
    match clients::insert_client(conn, &new, secret.hash().as_bytes()) {
        Ok(()) => {}
        Err(e) if e.is_unique_violation() => return Err(ClientError::AlreadyExists(id)),
        Err(e) => return Err(e.into()),
    }
    Ok(CreatedClient {
        client_id: id,
        client_secret: secret,
    })
}

/// A client as operators see it: never a secret or its hash.
#[derive(Debug, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub audiences: Vec<String>,
    pub access_token_ttl: i64,
    pub refresh_tokens: bool,
    /// `null`: the server default (`TESSERA_REFRESH_TOKEN_TTL`).
    pub refresh_token_ttl: Option<i64>,
    /// `null`: the server default (`TESSERA_REFRESH_FAMILY_TTL`).
    pub refresh_family_ttl: Option<i64>,
    pub can_introspect: bool,
    /// CIDR blocks the client may authenticate from; empty: anywhere.
    pub allowed_networks: Vec<String>,
    /// Access tokens issued at or before this instant are revoked.
    pub tokens_valid_after: Option<i64>,
    /// When the client last obtained a token (updated at most once a
    /// minute): finds stale credentials.
    pub last_token_at: Option<i64>,
    pub disabled: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<clients::Client> for ClientView {
    fn from(c: clients::Client) -> Self {
        Self {
            audiences: split_list(&c.audiences),
            disabled: c.is_disabled(),
            client_id: c.id,
            name: c.name,
            scope: c.scopes,
            access_token_ttl: c.access_token_ttl,
            refresh_tokens: c.refresh_tokens,
            refresh_token_ttl: c.refresh_token_ttl,
            refresh_family_ttl: c.refresh_family_ttl,
            can_introspect: c.can_introspect,
            allowed_networks: c
                .allowed_networks
                .as_deref()
                .map(split_list)
                .unwrap_or_default(),
            tokens_valid_after: c.tokens_valid_after,
            last_token_at: c.last_token_at,
            disabled_at: c.disabled_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The answer to a disable, the same from the CLI and the admin API: the
/// client as it now is, and what the disable revoked.
#[derive(Debug, Serialize)]
pub struct DisabledClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub refresh_families_revoked: usize,
}

pub fn show(conn: &mut DbConnection, id: &str) -> Result<ClientView, ClientError> {
    clients::find_client(conn, id)?
        .map(ClientView::from)
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

/// Up to `limit` clients in id order, after the id `after` (a page of the
/// admin API's list).
pub fn list_page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ClientView>, ClientError> {
    Ok(clients::list_page(conn, after, limit)?
        .into_iter()
        .map(ClientView::from)
        .collect())
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<ClientView>, ClientError> {
    Ok(clients::list_clients(conn)?
        .into_iter()
        .map(ClientView::from)
        .collect())
}

/// Where a client-wide cut-off is placed, and for how long the feed lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoffTiming {
    /// Clock skew validators tolerate: the feed lists a cut-off until the last
    /// token it covers has expired, plus this.
    pub leeway: i64,
    /// How long a server may go on authenticating the client from its cache
    /// after a change (twice `client_check_interval`, see `client_cache`). The
    /// cut-off is placed this far ahead, so that a token a stale node mints
    /// with a secret just replaced, or for a client just disabled, is covered
    /// too.
    pub propagation: i64,
}

impl CutoffTiming {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let interval = i64::try_from(settings.client_check_interval).unwrap_or(i64::MAX / 4);
        CutoffTiming {
            leeway: settings.clock_leeway,
            // One more second: a token minted in the last second of the bound
            // carries that second as `iat`.
            propagation: if interval > 0 { 2 * interval + 1 } else { 0 },
        }
    }

    fn cutoff(&self, now: UnixSeconds) -> UnixSeconds {
        now + self.propagation
    }

    fn relevant_until(&self, now: UnixSeconds) -> UnixSeconds {
        cutoff_relevant_until(self.cutoff(now), self.leeway)
    }
}

/// Revokes everything the client holds: its refresh families, and, through
/// a cut-off that introspection and the revocation feed both apply, every
/// access token issued to it until now, or until every server has seen the
/// change (`timing.propagation`).
pub fn revoke_all(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
    timing: CutoffTiming,
) -> Result<RevokeAll, ClientError> {
    revocation::revoke_all(
        conn,
        id,
        now,
        timing.cutoff(now),
        timing.relevant_until(now),
        "revoke_all",
    )?
    .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

/// Disables the client: it can no longer authenticate, and everything it
/// holds is revoked as by [`revoke_all`].
pub fn disable(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
    timing: CutoffTiming,
) -> Result<RevokeAll, ClientError> {
    revocation::disable_client(
        conn,
        id,
        now,
        timing.cutoff(now),
        timing.relevant_until(now),
    )?
    .ok_or_else(|| ClientError::NotFound(id.to_owned()))
}

/// Deletes the client, its secrets and refresh families. Its access tokens
/// are cut off first, so offline validators following the feed learn of it.
pub fn delete(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
    timing: CutoffTiming,
) -> Result<(), ClientError> {
    if revocation::delete_client(
        conn,
        id,
        now,
        timing.cutoff(now),
        timing.relevant_until(now),
    )? {
        Ok(())
    } else {
        Err(ClientError::NotFound(id.to_owned()))
    }
}

/// A new secret for the client, shown once; the previous one keeps working
/// for `grace` seconds (0: it stops now, for a compromise).
pub fn rotate_secret(
    conn: &mut DbConnection,
    id: &str,
    grace: i64,
    now: UnixSeconds,
) -> Result<(PlainSecret, clients::SecretRotation), ClientError> {
    if !(0..=MAX_SECRET_GRACE).contains(&grace) {
        return Err(invalid(
            "--grace",
            format!("must be between 0 and {MAX_SECRET_GRACE} seconds (30 days)"),
        ));
    }
    let secret = PlainSecret::generate(CLIENT_SECRET_PREFIX)?;
    let rotation = clients::rotate_secret(conn, id, secret.hash().as_bytes(), now, now + grace)?
        .ok_or_else(|| ClientError::NotFound(id.to_owned()))?;
    Ok((secret, rotation))
}

/// The longest a replaced secret may keep working.
pub const MAX_SECRET_GRACE: i64 = 30 * 86_400;

/// Default grace for a routine rotation: a day to roll the new secret out.
pub const DEFAULT_SECRET_GRACE: i64 = 86_400;

/// `90`, `90s`, `15m`, `24h`, `7d` → seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        for bad in ["", "h", "1w", "-1", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
