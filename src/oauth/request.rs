//! The token request (RFC 6749 §4.4.2, §3.2), parsed from form parameters.
//!
//! Structural rules are checked here, before client authentication: a
//! parameter sent twice is refused (RFC 6749 §3.2), except `resource`, which
//! RFC 8707 §2 allows to repeat; an empty value counts as absent; unknown
//! parameters are ignored. Scope and audience are checked after the client is
//! known, since they depend on it.

use super::OAuthError;

#[derive(Debug)]
pub enum Grant {
    ClientCredentials {
        /// Raw `scope`; `None` when absent or empty.
        scope: Option<String>,
        /// `resource` (RFC 8707), or `audience` as Auth0 and Keycloak call it.
        resources: Vec<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: String,
        /// May narrow the family's scope, never widen it.
        scope: Option<String>,
        /// May narrow the family's audiences.
        resources: Vec<String>,
    },
}

#[derive(Debug)]
pub struct TokenRequest {
    pub grant: Grant,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 6749 §3.2: no parameter may be sent twice, except the ones listed.
///
/// Runs before client authentication, so it must stay cheap for any body
/// the size limit lets in: at most [`MAX_PARAMETERS`] parameters, checked
/// with a hash set.
pub fn refuse_repeats(params: &[(String, String)], repeatable: &[&str]) -> Result<(), OAuthError> {
    if params.len() > MAX_PARAMETERS {
        return Err(OAuthError::InvalidRequest("too many request parameters"));
    }
    let mut seen = std::collections::HashSet::with_capacity(params.len());
    for (name, _) in params {
        if !seen.insert(name.as_str()) && !repeatable.contains(&name.as_str()) {
            return Err(OAuthError::InvalidRequest(
                "a request parameter was sent more than once",
            ));
        }
    }
    Ok(())
}

/// No OAuth request needs more; RFC 8707 `resource` may repeat, but not
/// by the thousand.
pub const MAX_PARAMETERS: usize = 64;

/// A request about one token: revocation (RFC 7009 §2.1) and introspection
/// (RFC 7662 §2.1) share this shape.
#[derive(Debug)]
pub struct TokenOperationRequest {
    pub token: String,
    /// Only a hint (RFC 7009 §2.1): every kind of token is searched anyway.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl TokenOperationRequest {
    pub fn from_params(params: Vec<(String, String)>) -> Result<Self, OAuthError> {
        refuse_repeats(&params, &[])?;
        let mut token = None;
        let mut token_type_hint = None;
        let mut client_id = None;
        let mut client_secret = None;
        for (name, value) in params {
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "token" => token = Some(value),
                "token_type_hint" => token_type_hint = Some(value),
                "client_id" => client_id = Some(value),
                "client_secret" => client_secret = Some(value),
                _ => {}
            }
        }
        Ok(Self {
            token: token.ok_or(OAuthError::InvalidRequest("token is missing"))?,
            token_type_hint,
            client_id,
            client_secret,
        })
    }
}

impl TokenRequest {
    pub fn from_params(params: Vec<(String, String)>) -> Result<Self, OAuthError> {
        refuse_repeats(&params, &["resource"])?;
        let mut grant_type = None;
        let mut scope = None;
        let mut resources = Vec::new();
        let mut audience = None;
        let mut client_id = None;
        let mut client_secret = None;
        let mut refresh_token = None;
        for (name, value) in params {
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "grant_type" => grant_type = Some(value),
                "scope" => scope = Some(value),
                "resource" => resources.push(value),
                "audience" => audience = Some(value),
                "client_id" => client_id = Some(value),
                "client_secret" => client_secret = Some(value),
                "refresh_token" => refresh_token = Some(value),
                _ => {}
            }
        }
        if let Some(audience) = audience {
            if !resources.is_empty() {
                return Err(OAuthError::InvalidRequest(
                    "send either resource or audience, not both",
                ));
            }
            resources.push(audience);
        }
        let grant = match grant_type.as_deref() {
            None => return Err(OAuthError::InvalidRequest("grant_type is missing")),
            Some("client_credentials") => Grant::ClientCredentials { scope, resources },
            Some("refresh_token") => Grant::RefreshToken {
                refresh_token: refresh_token
                    .ok_or(OAuthError::InvalidRequest("refresh_token is missing"))?,
                scope,
                resources,
            },
            Some(_) => return Err(OAuthError::UnsupportedGrantType),
        };
        Ok(Self {
            grant,
            client_id,
            client_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        let twice = params(&[
            ("grant_type", "client_credentials"),
            ("scope", "a"),
            ("scope", "b"),
        ]);
        assert!(matches!(
            TokenRequest::from_params(twice),
            Err(OAuthError::InvalidRequest(_))
        ));
        let resources = params(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://a.example"),
            ("resource", "https://b.example"),
        ]);
        assert!(matches!(
            TokenRequest::from_params(resources),
            Ok(TokenRequest { grant: Grant::ClientCredentials { ref resources, .. }, .. }) if resources.len() == 2
        ));
    }

    #[test]
    fn empty_values_count_as_absent_and_unknown_parameters_are_ignored() {
        let p = params(&[
            ("grant_type", "client_credentials"),
            ("scope", ""),
            ("foo", "bar"),
        ]);
        assert!(matches!(
            TokenRequest::from_params(p),
            Ok(TokenRequest {
                grant: Grant::ClientCredentials { scope: None, .. },
                ..
            })
        ));
        assert!(matches!(
            TokenRequest::from_params(params(&[("grant_type", "")])),
            Err(OAuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_flood_of_parameters_is_refused() {
        let many: Vec<(String, String)> =
            (0..65).map(|i| (format!("p{i}"), String::new())).collect();
        assert!(matches!(
            refuse_repeats(&many, &[]),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(refuse_repeats(&many[..64], &[]).is_ok());
    }

    #[test]
    fn refresh_grant_needs_its_token() {
        assert!(matches!(
            TokenRequest::from_params(params(&[("grant_type", "refresh_token")])),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            TokenRequest::from_params(params(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "trt_x")
            ])),
            Ok(TokenRequest {
                grant: Grant::RefreshToken { .. },
                ..
            })
        ));
    }

    #[test]
    fn other_grant_types_are_unsupported() {
        for g in [
            "password",
            "authorization_code",
            "foo",
            "CLIENT_CREDENTIALS",
        ] {
            assert!(matches!(
                TokenRequest::from_params(params(&[("grant_type", g)])),
                Err(OAuthError::UnsupportedGrantType)
            ));
        }
    }
}
