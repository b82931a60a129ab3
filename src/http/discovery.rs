//! The RFC 8414 metadata document. Everything in it is known in memory except
//! `scopes_supported`, which is the union of the enabled clients' scopes: it
//! is re-read at most every [`SCOPES_REFRESH`] seconds, and the last known
//! value keeps being served while the database is away.

use std::sync::Mutex;

use serde_json::json;

use super::{INTROSPECT_PATH, JWKS_PATH, REVOCATIONS_PATH, REVOKE_PATH, TOKEN_PATH};
use crate::clock::UnixSeconds;
use crate::oauth::OAuthState;

pub const SCOPES_REFRESH: i64 = 30;

#[derive(Debug, Default)]
pub struct Discovery {
    scopes: Mutex<Option<(UnixSeconds, Vec<String>)>>,
}

impl Discovery {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn metadata_json(&self, oauth: &OAuthState) -> Vec<u8> {
        let scopes = self.scopes(oauth).await;
        let keys = oauth.keys.current(oauth.clock.now());
        let issuer = &*oauth.issuer;
        let doc = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "grant_types_supported": ["client_credentials", "refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            // Tessera's own: the feed offline validators follow.
            "revocation_feed_endpoint": format!("{issuer}{REVOCATIONS_PATH}"),
            "scopes_supported": scopes,
            // Not in RFC 8414's registry: the JWS algorithms of the published
            // keys, which resource servers should allow.
            "access_token_signing_alg_values_supported": keys.algorithms,
        });
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    async fn scopes(&self, oauth: &OAuthState) -> Vec<String> {
        let now = oauth.clock.now();
        let cached = match self.scopes.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some((at, scopes)) = &cached {
            if now - at < SCOPES_REFRESH {
                return scopes.clone();
            }
        }
        let fresh = oauth.supported_scopes().await;
        let scopes = match fresh {
            Ok(scopes) => scopes,
            Err(e) => {
                log::warn!("metadata: cannot refresh scopes_supported: {e}");
                cached.map(|(_, s)| s).unwrap_or_default()
            }
        };
        // A failed refresh is stamped too, so an outage costs one database
        // attempt per refresh period, not one per request.
        match self.scopes.lock() {
            Ok(mut guard) => *guard = Some((now, scopes.clone())),
            Err(poisoned) => *poisoned.into_inner() = Some((now, scopes.clone())),
        }
        scopes
    }
}
