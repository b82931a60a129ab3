//! The key set in memory: the active signing key, parsed once, and the JWKS
//! document, serialised once with its ETag.
//!
//! A key's state follows from its timestamps: published before
//! `activates_at`, active from then until `retires_at`, retired (still in the
//! JWKS) until `removes_at`, then gone.

use std::path::Path;
use std::sync::{Arc, RwLock};

use jsonwebtoken::EncodingKey;

use super::KeyError;
use super::jwk::{Jwks, PublicJwk};
use super::kek::{KekSource, KeyEncryptionKey};
use crate::clock::UnixSeconds;
use crate::crypto::{digest, signing, signing::SigningAlgorithm};
use crate::store::DbConnection;
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::token::verify::{VerificationKey, VerificationKeys};

/// The key new tokens are signed with.
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    encoding_key: EncodingKey,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl ActiveKey {
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding_key
    }
}

#[derive(Debug)]
pub struct KeySet {
    pub active: ActiveKey,
    /// The JWKS document, serialised once.
    pub jwks_json: Vec<u8>,
    /// Strong ETag of `jwks_json`, quoted.
    pub etag: String,
    /// JWS algorithms of every published key, for the metadata document.
    pub algorithms: Vec<String>,
    /// Every published key, for verifying tokens this server issued.
    pub verification: VerificationKeys,
}

/// Holds the current key set; readers take an `Arc` snapshot, so a reload
/// never blocks signing for longer than a pointer swap.
#[derive(Debug)]
pub struct KeyStore {
    current: RwLock<Arc<KeySet>>,
}

impl KeyStore {
    pub fn new(set: KeySet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        // A poisoned lock only means a writer panicked mid-swap; the Arc it
        // guards is still whole.
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

/// Finds the KEK, creating one only when the database holds no signing key
/// yet: a missing KEK beside existing keys means a lost or misplaced file,
/// and a new KEK would silently orphan every key.
pub fn resolve_kek(
    conn: &mut DbConnection,
    dir: &Path,
    env_value: Option<&str>,
) -> Result<(KeyEncryptionKey, KekSource), KeyError> {
    if let Some(found) = KeyEncryptionKey::load(dir, env_value)? {
        return Ok(found);
    }
    let existing = signing_keys::count_keys(conn)?;
    if existing > 0 {
        return Err(KeyError::Kek(format!(
            "the database holds {existing} signing key(s) but the key-encryption key {} is missing; \
             restore it from your backup or set TESSERA_KEK (a new one cannot open the existing keys)",
            dir.join(super::kek::KEK_FILE).display()
        )));
    }
    KeyEncryptionKey::create(dir)
}

/// Generates and stores the first signing key if the database has none.
/// Returns the new key's kid, or `None` when keys already existed.
pub fn ensure_first_key(
    conn: &mut DbConnection,
    kek: &KeyEncryptionKey,
    alg: SigningAlgorithm,
    now: UnixSeconds,
) -> Result<Option<String>, KeyError> {
    if signing_keys::count_keys(conn)? > 0 {
        return Ok(None);
    }
    let row = new_key_row(kek, alg, now, now)?;
    let kid = row.kid.clone();
    Ok(signing_keys::insert_first_key(conn, &row)?.then_some(kid))
}

/// A freshly generated key, sealed, that starts signing at `activates_at`.
pub fn new_key_row(
    kek: &KeyEncryptionKey,
    alg: SigningAlgorithm,
    now: UnixSeconds,
    activates_at: UnixSeconds,
) -> Result<SigningKeyRow, KeyError> {
    let pkcs8 = signing::generate_pkcs8(alg)?;
    let jwk = PublicJwk::new(alg, &signing::public_key(alg, &pkcs8)?);
    let sealed = kek.seal(jwk.kid.as_bytes(), &pkcs8)?;
    let public_jwk = serde_json::to_string(&jwk).map_err(|e| KeyError::SigningKey {
        kid: jwk.kid.clone(),
        message: e.to_string(),
    })?;
    Ok(SigningKeyRow {
        kid: jwk.kid,
        alg: alg.jws_name().to_owned(),
        public_jwk,
        private_key_sealed: sealed,
        kek_id: kek.id(),
        created_at: now,
        activates_at,
        retires_at: None,
        removes_at: None,
    })
}

/// Builds the in-memory key set from the database as of `now`.
pub fn load_keyset(
    conn: &mut DbConnection,
    kek: &KeyEncryptionKey,
    now: UnixSeconds,
) -> Result<KeySet, KeyError> {
    let rows = signing_keys::list_keys(conn)?;
    let published: Vec<&SigningKeyRow> = rows
        .iter()
        .filter(|r| r.removes_at.is_none_or(|t| now < t))
        .collect();
    let active_row = published
        .iter()
        .filter(|r| r.activates_at <= now && r.retires_at.is_none_or(|t| now < t))
        .max_by_key(|r| (r.activates_at, r.created_at))
        .ok_or(KeyError::NoActiveKey)?;
    let active = open_active(active_row, kek)?;

    let mut keys = Vec::with_capacity(published.len());
    let mut algorithms: Vec<String> = Vec::new();
    let mut verification = VerificationKeys::new();
    for row in &published {
        let unreadable = |message: String| KeyError::SigningKey {
            kid: row.kid.clone(),
            message: format!("stored JWK is unreadable: {message}"),
        };
        let jwk: PublicJwk =
            serde_json::from_str(&row.public_jwk).map_err(|e| unreadable(e.to_string()))?;
        let (alg, key) = jwk
            .verification_key()
            .ok_or_else(|| unreadable("unsupported key type".to_owned()))?;
        verification.insert(jwk.kid.clone(), VerificationKey { alg, key });
        if !algorithms.contains(&jwk.alg) {
            algorithms.push(jwk.alg.clone());
        }
        keys.push(jwk);
    }
    let jwks_json = serde_json::to_vec(&Jwks { keys }).map_err(|e| KeyError::SigningKey {
        kid: active.kid.clone(),
        message: e.to_string(),
    })?;
    let etag = format!(
        "\"{}\"",
        digest::sha256(&jwks_json)[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok(KeySet {
        active,
        jwks_json,
        etag,
        algorithms,
        verification,
    })
}

fn open_active(row: &SigningKeyRow, kek: &KeyEncryptionKey) -> Result<ActiveKey, KeyError> {
    let fail = |message: String| KeyError::SigningKey {
        kid: row.kid.clone(),
        message,
    };
    if row.kek_id != kek.id() {
        return Err(fail(format!(
            "sealed under key-encryption key {}, but the configured one is {}",
            row.kek_id,
            kek.id()
        )));
    }
    let alg = SigningAlgorithm::from_jws_name(&row.alg)
        .ok_or_else(|| fail(format!("unsupported algorithm {:?}", row.alg)))?;
    let pkcs8 = kek
        .open(row.kid.as_bytes(), &row.private_key_sealed)
        .map_err(|_| {
            fail("cannot be unsealed (tampered with, or the wrong key-encryption key)".into())
        })?;
    // The kid is the thumbprint of the public key: recomputing it proves the
    // private half matches what the JWKS publishes.
    let kid = PublicJwk::new(alg, &signing::public_key(alg, &pkcs8)?).kid;
    if kid != row.kid {
        return Err(fail(
            "private key does not match its published public key".into(),
        ));
    }
    let encoding_key = match alg {
        SigningAlgorithm::Es256 => EncodingKey::from_ec_der(&pkcs8),
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(&pkcs8),
    };
    Ok(ActiveKey {
        kid,
        alg,
        encoding_key,
    })
}
