//! Clients and their secrets. A client may have more than one live secret
//! (during a rotation grace period); only SHA-256 hashes are stored.

use diesel::prelude::*;

use super::schema::{client_generation, client_secrets, clients};
use super::{DbConnection, StoreError};
use crate::clock::UnixSeconds;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub audiences: String,
    pub access_token_ttl: i64,
    pub refresh_tokens: bool,
    pub refresh_token_ttl: Option<i64>,
    pub refresh_family_ttl: Option<i64>,
    pub can_introspect: bool,
    pub allowed_networks: Option<String>,
    pub tokens_valid_after: Option<i64>,
    pub disabled_at: Option<i64>,
    pub last_token_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = clients)]
pub struct NewClient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub scopes: &'a str,
    pub audiences: &'a str,
    pub access_token_ttl: i64,
    pub refresh_tokens: bool,
    pub refresh_token_ttl: Option<i64>,
    pub refresh_family_ttl: Option<i64>,
    pub can_introspect: bool,
    pub allowed_networks: Option<&'a str>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = client_secrets)]
struct NewClientSecret<'a> {
    id: &'a str,
    client_id: &'a str,
    secret_hash: &'a [u8],
    created_at: i64,
    expires_at: Option<i64>,
}

/// Inserts a client together with its first secret, atomically.
pub fn insert_client(
    conn: &mut DbConnection,
    client: &NewClient<'_>,
    secret_hash: &[u8],
) -> Result<(), StoreError> {
    let secret_id = uuid::Uuid::new_v4().to_string();
    conn.transaction(|conn| {
        diesel::insert_into(clients::table)
            .values(client)
            .execute(conn)?;
        if let Some(cutoff) = super::revocation::listed_cutoff(conn, client.id)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?
        {
            diesel::update(clients::table.find(client.id))
                .set(clients::tokens_valid_after.eq(cutoff))
                .execute(conn)?;
        }
        diesel::insert_into(client_secrets::table)
            .values(&NewClientSecret {
                id: &secret_id,
                client_id: client.id,
                secret_hash,
                created_at: client.created_at,
                expires_at: None,
            })
            .execute(conn)?;
        super::audit::record(
            conn,
            client.created_at,
            "client_created",
            Some(client.id),
            None,
            &format!(
                "scope {:?}, audiences {:?}",
                client.scopes, client.audiences
            ),
        )?;
        // Its own event, as for a rotation: "when did this client get each
        // of its secrets" is answered by the secret events alone.
        super::audit::record(
            conn,
            client.created_at,
            "secret_created",
            Some(client.id),
            None,
            "first secret issued",
        )?;
        Ok(())
    })
}

pub fn find_client(conn: &mut DbConnection, id: &str) -> Result<Option<Client>, StoreError> {
    Ok(clients::table
        .find(id)
        .select(Client::as_select())
        .first(conn)
        .optional()?)
}

pub fn list_clients(conn: &mut DbConnection) -> Result<Vec<Client>, StoreError> {
    Ok(clients::table
        .select(Client::as_select())
        .order((clients::created_at.asc(), clients::id.asc()))
        .load(conn)?)
}

/// A secret's hash and the instant it stops working (`None`: until rotated).
pub type SecretRecord = (Vec<u8>, Option<UnixSeconds>);

/// The client's secrets that have not expired at `now`, with their expiry,
/// so a cached copy can keep applying it.
pub fn live_secrets(
    conn: &mut DbConnection,
    client_id: &str,
    now: UnixSeconds,
) -> Result<Vec<SecretRecord>, StoreError> {
    Ok(client_secrets::table
        .filter(client_secrets::client_id.eq(client_id))
        .filter(
            client_secrets::expires_at
                .is_null()
                .or(client_secrets::expires_at.gt(now)),
        )
        .select((client_secrets::secret_hash, client_secrets::expires_at))
        .load(conn)?)
}

/// The counter that triggers bump on every change to a client or its
/// secrets (migration `client_generation`).
pub fn generation(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(client_generation::table
        .find(1_i64)
        .select(client_generation::generation)
        .first(conn)?)
}

/// Marks the client disabled (keeping the first disabling time). Returns
/// false when there is no such client.
pub fn disable_client(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        let exists = diesel::update(clients::table.find(id))
            .set(clients::updated_at.eq(now))
            .execute(conn)?
            > 0;
        diesel::update(
            clients::table
                .find(id)
                .filter(clients::disabled_at.is_null()),
        )
        .set(clients::disabled_at.eq(now))
        .execute(conn)?;
        Ok(exists)
    })
}

/// Deletes the client and, by cascade, its secrets and refresh tokens.
/// Returns false when there is no such client.
pub fn delete_client(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(clients::table.find(id)).execute(conn)? > 0)
}

/// Records that the client obtained a token (to find stale credentials).
pub fn touch_last_token(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
) -> Result<(), StoreError> {
    diesel::update(clients::table.find(id))
        .set(clients::last_token_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// The scope lists of every enabled client, for `scopes_supported`.
pub fn enabled_scope_lists(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(clients::table
        .filter(clients::disabled_at.is_null())
        .select(clients::scopes)
        .load(conn)?)
}

pub fn count_clients(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(clients::table.count().get_result(conn)?)
}

/// What a secret rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRotation {
    /// When the secret used until now stops working.
    pub previous_expires_at: i64,
}

/// Adds a new secret; the live one keeps working until `previous_expires_at`
/// (at most: a secret already due to expire sooner keeps its time). Any
/// older secret still inside an earlier grace period stops now, so a client
/// never has more than two live secrets. `None` when there is no such
/// client.
pub fn rotate_secret(
    conn: &mut DbConnection,
    client_id: &str,
    new_hash: &[u8],
    now: UnixSeconds,
    previous_expires_at: i64,
) -> Result<Option<SecretRotation>, StoreError> {
    conn.transaction(|conn| {
        // The client row first: it serialises rotations of one client.
        let exists = diesel::update(clients::table.find(client_id))
            .set(clients::updated_at.eq(now))
            .execute(conn)?
            > 0;
        if !exists {
            return Ok(None);
        }
        let mut live: Vec<(String, i64, Option<i64>)> = client_secrets::table
            .filter(client_secrets::client_id.eq(client_id))
            .filter(
                client_secrets::expires_at
                    .is_null()
                    .or(client_secrets::expires_at.gt(now)),
            )
            .order(client_secrets::created_at.desc())
            .select((
                client_secrets::id,
                client_secrets::created_at,
                client_secrets::expires_at,
            ))
            .load(conn)?;
        // The current secret (no expiry yet) first, then the newest.
        live.sort_by_key(|(_, created_at, expires_at)| {
            (expires_at.is_some(), std::cmp::Reverse(*created_at))
        });
        let mut previous_end = now;
        for (n, (id, _, expires_at)) in live.iter().enumerate() {
            // The newest live secret gets the grace; older ones end now.
            let end = if n == 0 {
                expires_at.map_or(previous_expires_at, |e| e.min(previous_expires_at))
            } else {
                now
            };
            if n == 0 {
                previous_end = end;
            }
            diesel::update(client_secrets::table.find(id))
                .set(client_secrets::expires_at.eq(end))
                .execute(conn)?;
        }
        let secret_id = uuid::Uuid::new_v4().to_string();
        diesel::insert_into(client_secrets::table)
            .values(&NewClientSecret {
                id: &secret_id,
                client_id,
                secret_hash: new_hash,
                created_at: now,
                expires_at: None,
            })
            .execute(conn)?;
        super::revocation::audit(
            conn,
            now,
            "secret_rotated",
            client_id,
            &format!("previous secret valid until {previous_end}"),
        )?;
        Ok(Some(SecretRotation {
            previous_expires_at: previous_end,
        }))
    })
}

/// Changes to a client; `None` fields are left alone.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = clients)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub audiences: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_tokens: Option<bool>,
    pub refresh_token_ttl: Option<i64>,
    pub refresh_family_ttl: Option<i64>,
    pub can_introspect: Option<bool>,
    /// `Some(None)` clears the list.
    pub allowed_networks: Option<Option<String>>,
    pub updated_at: i64,
}

/// Applies `changes` and audits what changed; `None` when there is no such
/// client.
pub fn update_client(
    conn: &mut DbConnection,
    id: &str,
    changes: &ClientChanges,
) -> Result<Option<Client>, StoreError> {
    conn.transaction(|conn| {
        if diesel::update(clients::table.find(id))
            .set(changes)
            .execute(conn)?
            == 0
        {
            return Ok(None);
        }
        let mut changed = Vec::new();
        for (name, present) in [
            ("name", changes.name.is_some()),
            ("scope", changes.scopes.is_some()),
            ("audiences", changes.audiences.is_some()),
            ("access_token_ttl", changes.access_token_ttl.is_some()),
            ("refresh_tokens", changes.refresh_tokens.is_some()),
            ("refresh_token_ttl", changes.refresh_token_ttl.is_some()),
            ("refresh_family_ttl", changes.refresh_family_ttl.is_some()),
            ("can_introspect", changes.can_introspect.is_some()),
            ("allowed_networks", changes.allowed_networks.is_some()),
        ] {
            if present {
                changed.push(name);
            }
        }
        super::audit::record(
            conn,
            changes.updated_at,
            "client_changed",
            Some(id),
            None,
            &format!("changed {}", changed.join(", ")),
        )?;
        find_client(conn, id)
    })
}

/// Clears `disabled_at`; `None` when there is no such client.
pub fn enable_client(
    conn: &mut DbConnection,
    id: &str,
    now: UnixSeconds,
) -> Result<Option<Client>, StoreError> {
    conn.transaction(|conn| {
        let n = diesel::update(clients::table.find(id))
            .set((
                clients::disabled_at.eq(None::<i64>),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?;
        if n == 0 {
            return Ok(None);
        }
        super::audit::record(conn, now, "client_enabled", Some(id), None, "")?;
        find_client(conn, id)
    })
}

/// One page of clients ordered by id, after `after`.
pub fn list_page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Client>, StoreError> {
    let mut query = clients::table
        .select(Client::as_select())
        .order(clients::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(clients::id.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}
