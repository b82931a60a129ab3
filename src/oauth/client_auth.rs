//! Client authentication (RFC 6749 §2.3.1): `client_secret_basic` and
//! `client_secret_post`, exactly one per request.
//!
//! Every failure is the same `invalid_client` to the caller. An unknown
//! client costs the same hash-and-compare as a known one, so response time
//! does not reveal which client ids exist.

use super::OAuthError;
use super::error::AuthFailure;
use super::form::decode_component;
use crate::clock::UnixSeconds;
use crate::store::{DbConnection, StoreError, clients};
use crate::token::secret::SecretHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

pub struct PresentedCredentials {
    pub client_id: String,
    secret: String,
    pub method: AuthMethod,
}

impl std::fmt::Debug for PresentedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedCredentials")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

const fn fail(kind: AuthFailure, reason: &'static str) -> OAuthError {
    OAuthError::InvalidClient { kind, reason }
}

impl PresentedCredentials {
    /// Picks the one authentication method the request used.
    pub fn extract(
        authorization: Option<&str>,
        body_client_id: Option<String>,
        body_client_secret: Option<String>,
    ) -> Result<Self, OAuthError> {
        let Some(header) = authorization else {
            return match (body_client_id, body_client_secret) {
                (Some(client_id), Some(secret)) => Ok(Self {
                    client_id,
                    secret,
                    method: AuthMethod::ClientSecretPost,
                }),
                (Some(_), None) => Err(fail(
                    AuthFailure::Missing,
                    "no client secret (public clients are not supported)",
                )),
                _ => Err(fail(AuthFailure::Missing, "no client authentication")),
            };
        };
        if body_client_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "client credentials must be sent in one way only, not both in the Authorization header and the body",
            ));
        }
        let (client_id, secret) = parse_basic(header)?;
        if body_client_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::InvalidRequest(
                "client_id in the body differs from the Authorization header",
            ));
        }
        Ok(Self {
            client_id,
            secret,
            method: AuthMethod::ClientSecretBasic,
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1.
fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    use base64::Engine;
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(fail(
            AuthFailure::Malformed,
            "unsupported Authorization scheme",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| fail(AuthFailure::Malformed, "Basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| fail(AuthFailure::Malformed, "Basic credentials are not UTF-8"))?;
    let (id, secret) = decoded.split_once(':').ok_or(fail(
        AuthFailure::Malformed,
        "Basic credentials have no colon",
    ))?;
    let id = decode_component(id).ok_or(fail(
        AuthFailure::Malformed,
        "client id is not form-urlencoded",
    ))?;
    let secret = decode_component(secret).ok_or(fail(
        AuthFailure::Malformed,
        "client secret is not form-urlencoded",
    ))?;
    if id.is_empty() {
        return Err(fail(AuthFailure::Malformed, "empty client id"));
    }
    Ok((id, secret))
}

/// A fixed hash to compare against when the client does not exist.
const DUMMY_HASH: [u8; 32] = [0x5a; 32];

/// What the database holds for a presented client id.
pub struct StoredClient {
    pub client: Option<clients::Client>,
    pub secrets: Vec<clients::SecretRecord>,
}

/// Reads the client and its live secrets. The secrets query runs whether or
/// not the client exists, so the number of round trips does not tell which
/// ids exist.
pub fn load(
    conn: &mut DbConnection,
    client_id: &str,
    now: UnixSeconds,
) -> Result<StoredClient, StoreError> {
    let client = clients::find_client(conn, client_id)?;
    let secrets = clients::live_secrets(conn, client_id, now)?;
    Ok(StoredClient { client, secrets })
}

/// Checks the presented secret against the client's secrets that are live
/// at `now`, then the client's own rules. Every failure is `invalid_client`.
pub fn check(
    credentials: &PresentedCredentials,
    client: Option<&clients::Client>,
    secrets: &[clients::SecretRecord],
    now: UnixSeconds,
    source: Option<std::net::IpAddr>,
) -> Result<(), OAuthError> {
    let presented = SecretHash::of(&credentials.secret);
    let Some(client) = client else {
        let _ = presented.matches(&DUMMY_HASH);
        return Err(fail(AuthFailure::UnknownClient, "unknown client"));
    };
    // Compare against every live secret, without stopping at the first match.
    let matched = secrets
        .iter()
        .filter(|(_, expires_at)| expires_at.is_none_or(|t| t > now))
        .fold(false, |acc, (stored, _)| presented.matches(stored) | acc);
    if !matched || credentials.secret.is_empty() {
        return Err(fail(AuthFailure::WrongSecret, "wrong client secret"));
    }
    if client.is_disabled() {
        return Err(fail(AuthFailure::Disabled, "client is disabled"));
    }
    if let Some(list) = &client.allowed_networks {
        let allowed = super::network::parse_list(list).unwrap_or_default();
        if source.is_none_or(|ip| !super::network::any_contains(&allowed, ip)) {
            return Err(fail(
                AuthFailure::Network,
                "request from outside the client's allowed networks",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_credentials_are_form_urldecoded_after_base64() -> Result<(), OAuthError> {
        let c = PresentedCredentials::extract(
            Some(&basic("a%3Ab%25c:p%40ss%3Aw0rd%2B%2F")),
            None,
            None,
        )?;
        assert_eq!(c.client_id, "a:b%c");
        assert_eq!(c.secret, "p@ss:w0rd+/");
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
        // `+` is a space in form encoding.
        let c = PresentedCredentials::extract(Some(&basic("id:a+b")), None, None)?;
        assert_eq!(c.secret, "a b");
        Ok(())
    }

    #[test]
    fn malformed_basic_headers_are_invalid_client() {
        for header in [
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            basic("no-colon"),
            basic(":secret"),
            basic("id%ZZ:secret"),
            "Bearer abc".to_owned(),
        ] {
            assert!(
                matches!(
                    PresentedCredentials::extract(Some(&header), None, None),
                    Err(OAuthError::InvalidClient { .. })
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert!(
            PresentedCredentials::extract(
                Some(&basic("id:s").replace("Basic", "bAsIc")),
                None,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        assert!(matches!(
            PresentedCredentials::extract(Some(&basic("id:s")), None, Some("s".into())),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            PresentedCredentials::extract(Some(&basic("id:s")), Some("other".into()), None),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(
            PresentedCredentials::extract(Some(&basic("id:s")), Some("id".into()), None).is_ok()
        );
    }

    #[test]
    fn no_secret_is_invalid_client() {
        assert!(matches!(
            PresentedCredentials::extract(None, Some("id".into()), None),
            Err(OAuthError::InvalidClient { .. })
        ));
        assert!(matches!(
            PresentedCredentials::extract(None, None, None),
            Err(OAuthError::InvalidClient { .. })
        ));
    }
}
