//! Grant rules: client authentication, scope and audience checks, token
//! issuance. Plain functions over a store and a clock; nothing here knows
//! HTTP, so every rule can be exercised without a server.

pub mod audience;
pub mod client_auth;
pub mod client_credentials;
pub mod error;
pub mod form;
pub mod request;
pub mod scope;

use std::sync::Arc;

pub use error::OAuthError;

use crate::clock::SharedClock;
use crate::keys::KeyStore;
use crate::store::Database;

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
}

/// `POST /oauth2/token`: authenticate the client, then run its grant.
pub async fn token(
    state: &OAuthState,
    params: Vec<(String, String)>,
    authorization: Option<&str>,
) -> Result<client_credentials::TokenResponse, OAuthError> {
    let request = request::TokenRequest::from_params(params)?;
    let credentials = client_auth::PresentedCredentials::extract(
        authorization,
        request.client_id,
        request.client_secret,
    )?;
    let now = state.clock.now();
    let client_id = credentials.client_id.clone();
    let client = state
        .db
        .run(move |conn| client_auth::authenticate(conn, &credentials, now))
        .await
        .map_err(OAuthError::from)?
        .inspect_err(|e| {
            if let OAuthError::InvalidClient { reason } = e {
                // `{:?}` escapes control characters, so a crafted client id
                // cannot forge log lines.
                log::warn!("client authentication failed: client_id={client_id:?} reason={reason}");
            }
        })?;
    match request.grant {
        request::Grant::ClientCredentials { scope, resources } => {
            client_credentials::grant(state, &client, scope.as_deref(), &resources, now)
        }
    }
}
