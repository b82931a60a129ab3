//! `tessera token inspect`: the "how do I test a token" answer. Decodes a
//! token and checks it against this issuer as a resource server and the
//! introspection endpoint would — signature, issuer, expiry, audience,
//! revocation, the client — and names in plain words every problem it
//! finds, and every check it could not make.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use crate::clock::UnixSeconds;
use crate::keys::jwk::PublicJwk;
use crate::store::{DbConnection, StoreError, clients, refresh, revocation, signing_keys};
use crate::token::access::Audience;
use crate::token::secret::{REFRESH_TOKEN_PREFIX, SecretHash};
use crate::token::verify::{self, Expectations, VerificationKey, VerificationKeys, VerifyError};

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub valid: bool,
    /// `access_token`, `refresh_token` or `unknown`.
    pub kind: &'static str,
    /// Everything found wrong, in plain words; empty when valid.
    pub problems: Vec<String>,
    /// Checks that were not made, and why, in plain words: the audience
    /// without `--audience`, and everything past a failed verification.
    /// A valid token with an unchecked audience may still be refused by
    /// the API it is sent to.
    pub not_checked: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
}

fn names(aud: &Audience, wanted: &str) -> bool {
    match aud {
        Audience::One(a) => a == wanted,
        Audience::Many(list) => list.iter().any(|a| a == wanted),
    }
}

fn decode_part(part: Option<&str>) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part?).ok()?).ok()
}

fn explain(
    e: VerifyError,
    header: Option<&Value>,
    claims: Option<&Value>,
    issuer: &str,
    audience: Option<&str>,
    now: UnixSeconds,
) -> String {
    let claim = |name: &str| {
        claims
            .and_then(|c| c.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match e {
        VerifyError::Malformed => "it is not a well-formed compact JWT (three base64url parts)".to_owned(),
        VerifyError::Header => format!(
            "its header is not a Tessera access token's (it must hold exactly alg, typ \"at+jwt\" and kid, with alg matching the key): {}",
            header.map_or("unreadable".to_owned(), Value::to_string)
        ),
        VerifyError::UnknownKey => format!(
            "it was not signed by any key this issuer publishes (kid {})",
            header.and_then(|h| h.get("kid")).cloned().unwrap_or(Value::Null)
        ),
        VerifyError::Signature => "its signature does not match the key it names: it was modified or forged".to_owned(),
        VerifyError::Claims => "its claims are not Tessera's (a claim is missing, extra, repeated or of the wrong type)".to_owned(),
        VerifyError::Issuer => format!("it was issued by {}, not by this issuer ({issuer})", claim("iss")),
        VerifyError::Audience => format!(
            "its audience {} does not include {}",
            claim("aud"),
            audience.unwrap_or("the expected audience")
        ),
        VerifyError::Expired => {
            let exp = claim("exp").as_i64().unwrap_or_default();
            format!("it expired at {exp} ({} s ago)", now - exp)
        }
        VerifyError::NotYetValid => format!("it is not valid before {}", claim("nbf")),
    }
}

/// Inspects `token` as of `now` against `issuer` (and `audience`, if
/// given), with the keys and the revocation list in the database.
///
/// The checks that do not depend on one another are all made, so the
/// answer names every problem at once (expired *and* revoked *and* of a
/// disabled client), not just the first a validator would stop at. Only a
/// token that fails the strict verification (format, header, key,
/// signature, claims) stops there: nothing it claims can be trusted.
pub fn inspect(
    conn: &mut DbConnection,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
    leeway: i64,
    now: UnixSeconds,
) -> Result<Inspection, StoreError> {
    let token = token.trim();
    if token.starts_with(REFRESH_TOKEN_PREFIX) {
        return inspect_refresh(conn, token, now);
    }
    let mut parts = token.split('.');
    let header = decode_part(parts.next());
    let claims = decode_part(parts.next());
    let mut keys = VerificationKeys::new();
    for row in signing_keys::list_keys(conn)? {
        if row.removes_at.is_some_and(|t| t <= now) {
            continue;
        }
        if let Some((alg, key)) = serde_json::from_str::<PublicJwk>(&row.public_jwk)
            .ok()
            .and_then(|jwk| jwk.verification_key())
        {
            keys.insert(row.kid, VerificationKey { alg, key });
        }
    }
    // The strict verification with the issuer and the time checks set
    // aside (the token's own `iss`, an instant inside its validity
    // window): they are checked below, each on its own, once the signature
    // has shown the claims to be genuine.
    let claim = |name: &str| claims.as_ref().and_then(|c| c.get(name));
    let claimed_issuer = claim("iss").and_then(Value::as_str).unwrap_or(issuer);
    let window_start = match (
        claim("nbf").and_then(Value::as_i64),
        claim("iat").and_then(Value::as_i64),
    ) {
        (Some(nbf), Some(iat)) => Some(nbf.max(iat)),
        _ => None,
    };
    let inside = match (window_start, claim("exp").and_then(Value::as_i64)) {
        (Some(start), Some(exp)) if start < exp => now.clamp(start, exp - 1),
        _ => now,
    };
    let expect = Expectations {
        issuer: claimed_issuer,
        audience: None,
        now: inside,
        expiry_leeway: 0,
        not_before_leeway: leeway,
    };
    let mut problems = Vec::new();
    let mut not_checked = Vec::new();
    match verify::verify(token, &keys, &expect) {
        Err(e) => {
            problems.push(explain(
                e,
                header.as_ref(),
                claims.as_ref(),
                issuer,
                audience,
                now,
            ));
            not_checked.push(
                "issuer, expiry, audience, revocation and client: a token that fails verification \
                 is not this issuer's, whatever its claims say"
                    .to_owned(),
            );
        }
        Ok(c) => {
            if c.iss != issuer {
                problems.push(format!(
                    "it was issued by {:?}, not by this issuer ({issuer})",
                    c.iss
                ));
            }
            if c.exp <= now {
                problems.push(format!("it expired at {} ({} s ago)", c.exp, now - c.exp));
            }
            let horizon = now.saturating_add(leeway);
            if c.nbf > horizon || c.iat > horizon {
                problems.push(format!("it is not valid before {}", c.nbf.max(c.iat)));
            }
            match audience {
                Some(wanted) if !names(&c.aud, wanted) => problems.push(format!(
                    "its audience {} does not include {wanted}",
                    claim("aud").cloned().unwrap_or(Value::Null)
                )),
                Some(_) => {}
                None => not_checked.push(format!(
                    "audience: pass --audience URI to require the API it is meant for (it names {})",
                    claim("aud").cloned().unwrap_or(Value::Null)
                )),
            }
            let standing = revocation::access_token_standing(conn, &c.jti, &c.client_id)?;
            if standing.revoked {
                problems.push(format!(
                    "it has been revoked (jti {} is on the revocation list)",
                    c.jti
                ));
            }
            match standing.client {
                None => problems.push(format!("its client {} no longer exists", c.client_id)),
                Some(client) => {
                    if client.disabled {
                        problems.push(format!("its client {} is disabled", c.client_id));
                    }
                    if let Some(t) = client.tokens_valid_after.filter(|t| c.iat <= *t) {
                        problems.push(format!(
                            "every token of client {} issued until {t} was revoked, and this one was issued at {}",
                            c.client_id, c.iat
                        ));
                    }
                }
            }
        }
    }
    Ok(Inspection {
        valid: problems.is_empty(),
        kind: if header.is_some() {
            "access_token"
        } else {
            "unknown"
        },
        problems,
        not_checked,
        header,
        claims,
    })
}

fn inspect_refresh(
    conn: &mut DbConnection,
    token: &str,
    now: UnixSeconds,
) -> Result<Inspection, StoreError> {
    let hash = SecretHash::of(token);
    let mut problems = Vec::new();
    let mut claims = None;
    match refresh::find(conn, hash.as_bytes())? {
        None => problems.push(
            "no such refresh token (never issued, mistyped, or already cleaned up)".to_owned(),
        ),
        Some((row, family)) => {
            claims = Some(serde_json::json!({
                "client_id": family.client_id,
                "scope": family.scope,
                "aud": family.audience,
                "iat": row.created_at,
                "exp": row.expires_at.min(family.expires_at),
            }));
            if family.revoked_at.is_some() {
                problems.push(
                    "its family has been revoked (revocation, revoke-all, or reuse detected)"
                        .to_owned(),
                );
            }
            if let Some(used) = row.used_at {
                problems.push(format!(
                    "it was already used at {used}: only its successor works"
                ));
            }
            if row.expires_at.min(family.expires_at) <= now {
                problems.push("it has expired".to_owned());
            }
            match clients::find_client(conn, &family.client_id)? {
                None => problems.push("its client no longer exists".to_owned()),
                Some(c) if c.is_disabled() => problems.push("its client is disabled".to_owned()),
                Some(_) => {}
            }
        }
    }
    Ok(Inspection {
        valid: problems.is_empty(),
        kind: "refresh_token",
        problems,
        not_checked: Vec::new(),
        header: None,
        claims,
    })
}
