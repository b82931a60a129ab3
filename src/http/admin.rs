//! The admin API under `/admin`: JSON in and out, every action the client
//! and key CLI offers, for a bearer of a `tessera:admin` token
//! (`oauth::admin`). Its own error type maps to RFC 6750 challenges for
//! authorization failures and to JSON errors for the rest.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::HttpState;
use crate::clients::{self, ClientError, ClientSpec, ClientUpdate};
use crate::keys::keyset::{self, KeySummary};
use crate::keys::rotation;
use crate::oauth::admin::{ADMIN_SCOPE, AdminAuthError, authorize};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unauthorized")]
    Auth(AdminAuthError),
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// Error descriptions never repeat what the caller sent: the id in the
/// path, a JSON value or member name, a query parameter. A secret pasted
/// into the wrong place would come back in the answer, and from there into
/// the caller's logs (the caller knows what it sent).
impl From<ClientError> for AdminError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid { .. } => Self::BadRequest(e.to_string()),
            ClientError::NotFound(_) => Self::NotFound("no client with this id".into()),
            ClientError::AlreadyExists(_) => {
                Self::Conflict("a client with this id already exists".into())
            }
            ClientError::Store(e) => e.into(),
            ClientError::Crypto(e) => Self::Internal(e.to_string()),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Auth(AdminAuthError::Malformed) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Auth(AdminAuthError::InsufficientScope) => StatusCode::FORBIDDEN,
            Self::Auth(AdminAuthError::Unavailable(_)) | Self::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, description): (&str, String) = match self {
            Self::Auth(AdminAuthError::Missing) => ("", String::new()),
            Self::Auth(AdminAuthError::Malformed) => {
                ("invalid_request", "malformed bearer token".into())
            }
            Self::Auth(AdminAuthError::InvalidToken) => {
                ("invalid_token", "the access token is invalid".into())
            }
            Self::Auth(AdminAuthError::InsufficientScope) => (
                "insufficient_scope",
                format!("the {ADMIN_SCOPE} scope is required"),
            ),
            Self::Auth(AdminAuthError::Unavailable(d)) | Self::Unavailable(d) => {
                log::warn!("admin: database unavailable: {d}");
                (
                    "temporarily_unavailable",
                    "the service is temporarily unavailable, retry later".into(),
                )
            }
            Self::BadRequest(d) => ("invalid_request", d.clone()),
            Self::NotFound(d) => ("not_found", d.clone()),
            Self::Conflict(d) => ("conflict", d.clone()),
            Self::Internal(d) => {
                log::error!("admin: internal error: {d}");
                ("server_error", "internal server error".into())
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        if let Self::Auth(kind) = self {
            let mut challenge = "Bearer realm=\"tessera-admin\"".to_owned();
            if !code.is_empty() && !matches!(kind, AdminAuthError::Unavailable(_)) {
                challenge.push_str(&format!(", error=\"{code}\""));
            }
            if matches!(kind, AdminAuthError::InsufficientScope) {
                challenge.push_str(&format!(", scope=\"{ADMIN_SCOPE}\""));
            }
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
            if code.is_empty() {
                return response.finish();
            }
        }
        response.json(serde_json::json!({ "error": code, "error_description": description }))
    }
}

async fn admin(req: &HttpRequest, state: &HttpState) -> Result<(), AdminError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| {
            v.to_str()
                .map_err(|_| AdminError::Auth(AdminAuthError::Malformed))
        })
        .transpose()?;
    let claims = authorize(&state.oauth, authorization)
        .await
        .map_err(AdminError::Auth)?;
    log::info!(
        "admin: {} {} by client {:?}",
        req.method(),
        crate::oauth::loggable_path(req.path()),
        claims.client_id
    );
    req.extensions_mut().insert(crate::oauth::Attribution {
        client_id: Some(claims.client_id),
        jti: Some(claims.jti),
    });
    Ok(())
}

/// Bodies and query strings are parsed only after the caller is
/// authorized, so an anonymous request learns nothing from validation.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    if body.len() > 64 * 1024 {
        return Err(AdminError::BadRequest("the body is too large".into()));
    }
    serde_json::from_slice(body).map_err(|e| json_error(&e))
}

/// What is wrong with a JSON body and where, in none of its words: serde's
/// own message quotes the offending value or member name. A missing member
/// is named (the name is the server's).
fn json_error(e: &serde_json::Error) -> AdminError {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Data if e.to_string().starts_with("missing field") => {
            return AdminError::BadRequest(format!("invalid JSON body: {e}"));
        }
        Category::Data => "an unknown member or a value of the wrong type",
        Category::Syntax => "not JSON",
        Category::Eof => "the JSON ends too soon",
        Category::Io => "unreadable",
    };
    AdminError::BadRequest(format!(
        "invalid JSON body: {what} at line {} column {}",
        e.line(),
        e.column()
    ))
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, AdminError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| {
            AdminError::BadRequest(
                "invalid query: an unknown parameter or a value of the wrong type".into(),
            )
        })
}

async fn db<T, F>(state: &HttpState, f: F) -> Result<T, AdminError>
where
    F: FnOnce(&mut crate::store::DbConnection) -> Result<T, AdminError> + Send + 'static,
    T: Send + 'static,
{
    state
        .oauth
        .db
        .run(move |conn| Ok(f(conn)))
        .await
        .map_err(AdminError::from)?
}

/// [`db`] for a change to a client: this node's client cache is dropped as
/// soon as the change is committed, so the change takes effect here at once
/// (other nodes see it within their check interval).
async fn db_change<T, F>(state: &HttpState, f: F) -> Result<T, AdminError>
where
    F: FnOnce(&mut crate::store::DbConnection) -> Result<T, AdminError> + Send + 'static,
    T: Send + 'static,
{
    let result = db(state, f).await;
    state.oauth.clients.invalidate();
    result
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    after: Option<String>,
    limit: Option<i64>,
}

pub async fn list_clients(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let Page { after, limit } = query(&req)?;
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let mut clients = db(&state, move |conn| {
        Ok(clients::list_page(conn, after.as_deref(), limit + 1)?)
    })
    .await?;
    let more = clients.len() as i64 > limit;
    clients.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        clients.last().map(|c| c.client_id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "clients": clients, "next": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    audiences: Vec<String>,
    access_token_ttl: Option<i64>,
    refresh_tokens: Option<bool>,
    refresh_token_ttl: Option<i64>,
    refresh_family_ttl: Option<i64>,
    #[serde(default)]
    can_introspect: bool,
    #[serde(default)]
    allowed_networks: Vec<String>,
    client_id: Option<String>,
}

/// The body of `POST /admin/clients` as a client specification (its values
/// are checked when the client is created).
pub fn new_client_spec(body: &[u8], default_ttl: i64) -> Result<ClientSpec, AdminError> {
    let b: NewClientBody = json_body(body)?;
    Ok(ClientSpec {
        id: b.client_id,
        name: b.name,
        scope: b.scope,
        audiences: b.audiences,
        access_token_ttl: b.access_token_ttl.unwrap_or(default_ttl),
        refresh_tokens: b.refresh_tokens.unwrap_or(true),
        refresh_token_ttl: b.refresh_token_ttl,
        refresh_family_ttl: b.refresh_family_ttl,
        can_introspect: b.can_introspect,
        allowed_networks: b.allowed_networks,
    })
}

/// The body of `PATCH /admin/clients/{id}`.
pub fn client_update(body: &[u8]) -> Result<ClientUpdate, AdminError> {
    json_body(body)
}

/// The grace of `POST /admin/clients/{id}/rotate-secret`: an empty body
/// means the default; anything else must parse, so a typo can never turn
/// "no grace" into a day of grace.
pub fn rotation_grace(body: &[u8]) -> Result<i64, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(clients::DEFAULT_SECRET_GRACE);
    }
    Ok(serde_json::from_slice::<RotateBody>(body)
        .map_err(|e| json_error(&e))?
        .grace_seconds
        .unwrap_or(clients::DEFAULT_SECRET_GRACE))
}

pub async fn create_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let spec = new_client_spec(&body, state.default_access_token_ttl)?;
    let now = state.oauth.clock.now();
    let created = db_change(&state, move |conn| Ok(clients::create(conn, &spec, now)?)).await?;
    // A credential in the body: no cache may keep it, an HTTP/1.0 one
    // included (RFC 6749 §5.1 asks the same of token responses).
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(serde_json::json!({
            "client_id": created.client_id,
            "client_secret": created.client_secret.expose(),
        })))
}

pub async fn show_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let id = id.into_inner();
    let view = db(&state, move |conn| Ok(clients::show(conn, &id)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn update_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let change = client_update(&body)?;
    let (id, now) = (id.into_inner(), state.oauth.clock.now());
    let view = db_change(&state, move |conn| {
        Ok(clients::update(conn, &id, &change, now)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn delete_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let (id, now, cutoff) = (id.into_inner(), state.oauth.clock.now(), state.oauth.cutoff);
    db_change(&state, move |conn| {
        Ok(clients::delete(conn, &id, now, cutoff)?)
    })
    .await?;
    state.oauth.metrics.revocation("client_cutoff");
    Ok(HttpResponse::NoContent().finish())
}

pub async fn disable_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let (id, now, cutoff) = (id.into_inner(), state.oauth.clock.now(), state.oauth.cutoff);
    let view = db_change(&state, move |conn| {
        let done = clients::disable(conn, &id, now, cutoff)?;
        Ok(clients::DisabledClient {
            client: clients::show(conn, &id)?,
            refresh_families_revoked: done.families_revoked,
        })
    })
    .await?;
    state.oauth.metrics.revocation("client_cutoff");
    Ok(HttpResponse::Ok().json(view))
}

pub async fn enable_client(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let (id, now) = (id.into_inner(), state.oauth.clock.now());
    let view = db_change(&state, move |conn| Ok(clients::enable(conn, &id, now)?)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Seconds the old secret keeps working (default one day).
    grace_seconds: Option<i64>,
}

pub async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let grace = rotation_grace(&body)?;
    let (id, now) = (id.into_inner(), state.oauth.clock.now());
    let client_id = id.clone();
    let (secret, rotation) = db_change(&state, move |conn| {
        Ok(clients::rotate_secret(conn, &id, grace, now)?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(serde_json::json!({
            "client_id": client_id,
            "client_secret": secret.expose(),
            "previous_secret_expires_at": rotation.previous_expires_at,
        })))
}

pub async fn revoke_all(
    req: HttpRequest,
    state: web::Data<HttpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let (id, now, cutoff) = (id.into_inner(), state.oauth.clock.now(), state.oauth.cutoff);
    let client_id = id.clone();
    let done = db_change(&state, move |conn| {
        Ok(clients::revoke_all(conn, &id, now, cutoff)?)
    })
    .await?;
    state.oauth.metrics.revocation("client_cutoff");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "client_id": client_id,
        "tokens_valid_after": done.tokens_valid_after,
        "refresh_families_revoked": done.families_revoked,
    })))
}

pub async fn list_keys(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let now = state.oauth.clock.now();
    let keys = db(&state, move |conn| Ok(keyset::summaries(conn, now)?)).await?;
    Ok(HttpResponse::Ok().json(keys))
}

pub async fn rotate_keys(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let now = state.oauth.clock.now();
    let (kek, policy) = (state.keys.kek.clone(), state.keys.policy);
    let row = db(&state, move |conn| {
        rotation::rotate_now(conn, &kek, &policy, now, None).map_err(|e| match e {
            crate::keys::KeyError::Rotation(m) => AdminError::Conflict(m),
            crate::keys::KeyError::Store(e) => e.into(),
            other => AdminError::Internal(other.to_string()),
        })
    })
    .await?;
    // Publish it on this node now; the others follow within a check interval.
    if let Err(e) = state.keys.run_once().await {
        log::warn!("admin: reloading keys after a rotation: {e}");
    }
    Ok(HttpResponse::Ok().json(KeySummary::of(&row, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireBody {
    now: Option<bool>,
}

/// The body of `POST /admin/keys/{kid}/retire`: none, `{}` or
/// `{"now": true}`. `"now": false` is refused rather than ignored, since a
/// caller who wrote it expected something other than an emergency.
pub fn retire_body(body: &[u8]) -> Result<(), AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match json_body::<RetireBody>(body)?.now {
        Some(false) => Err(AdminError::BadRequest(
            "retirement here is always immediate; scheduled retirement happens through \
             POST /admin/keys/rotate"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Emergency retirement, as `tessera keys retire KID --now`. Unlike the CLI,
/// it takes effect on the answering node before the response: a leaked key
/// should not wait for the next key check here.
pub async fn retire_key(
    req: HttpRequest,
    state: web::Data<HttpState>,
    kid: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    retire_body(&body)?;
    let now = state.oauth.clock.now();
    let (kek, policy, kid) = (state.keys.kek.clone(), state.keys.policy, kid.into_inner());
    let done = db(&state, move |conn| {
        rotation::retire_now(conn, &kek, &policy, &kid, now).map_err(|e| match e {
            // Its message names the kid the caller sent.
            crate::keys::KeyError::Rotation(_) => {
                AdminError::NotFound("no published key with this kid".into())
            }
            crate::keys::KeyError::Store(e) => e.into(),
            other => AdminError::Internal(other.to_string()),
        })
    })
    .await?;
    // The retirement is committed whatever happens next, so a failed reload
    // is reported in the answer rather than as an error: a retry would only
    // find the key gone. The node then applies it at its next key check.
    let reloaded = match state.keys.run_once().await {
        Ok(_) => true,
        Err(e) => {
            log::error!("admin: reloading keys after a retirement: {e}");
            false
        }
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "kid": done.kid,
        "retired_at": now,
        "successor": done.successor,
        "reloaded": reloaded,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    client: Option<String>,
    since: Option<i64>,
    limit: Option<i64>,
}

pub async fn read_audit(
    req: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, AdminError> {
    admin(&req, &state).await?;
    let AuditQuery {
        client,
        since,
        limit,
    } = query(&req)?;
    let limit = limit.unwrap_or(100).clamp(1, 10_000);
    let events = db(&state, move |conn| {
        Ok(crate::audit::list(conn, client.as_deref(), since, limit)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(events))
}
