//! The key set in memory.
//!
//! A key's state follows from its timestamps alone: *pending* before
//! `publishes_at` (stored, and being read by every node, but not served),
//! *published* from then until `activates_at` (in the JWKS, not signing),
//! *active* from then until `retires_at`, *retired* (in the JWKS, not
//! signing) until `removes_at`, then gone. Because states are a function of
//! time, every node that has loaded the same rows publishes and switches keys
//! at the same instant without talking to the others, and a key published
//! for the JWKS cache lifetime is known to every validator before anything
//! is signed with it.
//!
//! [`KeyRing`] holds every loaded key with its private half unsealed;
//! [`KeySet`] is the ring seen at one instant (the active key, the JWKS
//! serialised once, its ETag) and stays valid until the next timestamp of
//! any key; [`KeyStore`] hands out snapshots and rebuilds one when the clock
//! crosses such a boundary.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::KeyError;
use super::jwk::{Jwks, PublicJwk};
use super::kek::{KekSource, KeyEncryptionKey};
use crate::clock::UnixSeconds;
use crate::crypto::jwt_provider::PreparedEncodingKey;
use crate::crypto::signing::SigningAlgorithm;
use crate::crypto::{digest, signing};
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{DbConnection, StoreError};
use crate::token::verify::{VerificationKey, VerificationKeys};

/// The key new tokens are signed with.
#[derive(Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// When it started signing.
    pub activated_at: UnixSeconds,
    signer: Arc<PreparedEncodingKey>,
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
    /// The key for `jsonwebtoken::encode`; the ring provider signs with the
    /// key pair parsed when the key was loaded.
    pub fn encoding_key(&self) -> &jsonwebtoken::EncodingKey {
        self.signer.encoding_key()
    }
}

/// The key set as of one instant.
#[derive(Debug)]
pub struct KeySet {
    pub active: ActiveKey,
    /// The JWKS document, serialised once; reference-counted so a response
    /// shares it instead of copying it.
    pub jwks_json: actix_web::web::Bytes,
    /// Strong ETag of `jwks_json`, quoted.
    pub etag: String,
    /// JWS algorithms of every published key, for the metadata document.
    pub algorithms: Vec<String>,
    /// Every published key, for verifying tokens this server issued.
    pub verification: VerificationKeys,
    /// This snapshot describes `[valid_from, valid_until)`.
    pub valid_from: UnixSeconds,
    pub valid_until: UnixSeconds,
}

/// One key as loaded from the database, its private half unsealed.
pub struct LoadedKey {
    pub jwk: PublicJwk,
    pub alg: SigningAlgorithm,
    verification: VerificationKey,
    signer: Arc<PreparedEncodingKey>,
    pub publishes_at: UnixSeconds,
    pub activates_at: UnixSeconds,
    pub retires_at: Option<UnixSeconds>,
    pub removes_at: Option<UnixSeconds>,
}

impl LoadedKey {
    fn published(&self, now: UnixSeconds) -> bool {
        self.publishes_at <= now && self.removes_at.is_none_or(|t| now < t)
    }

    fn signing(&self, now: UnixSeconds) -> bool {
        self.published(now) && self.activates_at <= now && self.retires_at.is_none_or(|t| now < t)
    }
}

/// Every key not yet removed.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<LoadedKey>,
}

/// Every stored key as operators see it at `now`: `keys list` and
/// `GET /admin/keys`.
pub fn summaries(conn: &mut DbConnection, now: UnixSeconds) -> Result<Vec<KeySummary>, StoreError> {
    Ok(signing_keys::list_keys(conn)?
        .iter()
        .map(|row| KeySummary::of(row, now))
        .collect())
}

/// A stored key as operators see it (CLI `keys list --json`, admin API).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    pub state: &'static str,
    pub created_at: i64,
    /// Enters the JWKS.
    pub publishes_at: i64,
    pub activates_at: i64,
    pub retires_at: Option<i64>,
    pub removes_at: Option<i64>,
    /// `created`, `activates` and `retires` repeat `created_at`,
    /// `activates_at` and `retires_at` under the names the key-lifecycle
    /// specification gives them; scripts written against either keep working.
    pub created: i64,
    pub activates: i64,
    pub retires: Option<i64>,
}

impl KeySummary {
    pub fn of(row: &SigningKeyRow, now: UnixSeconds) -> Self {
        Self {
            kid: row.kid.clone(),
            alg: row.alg.clone(),
            state: key_state(row, now),
            created_at: row.created_at,
            publishes_at: row.publishes_at,
            activates_at: row.activates_at,
            retires_at: row.retires_at,
            removes_at: row.removes_at,
            created: row.created_at,
            activates: row.activates_at,
            retires: row.retires_at,
        }
    }
}

/// The state of a stored key at `now`, as operators see it.
pub fn key_state(row: &SigningKeyRow, now: UnixSeconds) -> &'static str {
    if row.removes_at.is_some_and(|t| t <= now) {
        "removed"
    } else if row.publishes_at > now {
        // Stored, and known to every node by `publishes_at`.
        "pending"
    } else if row.activates_at > now {
        "published"
    } else if row.retires_at.is_none_or(|t| now < t) {
        "active"
    } else {
        "retired"
    }
}

impl KeyRing {
    /// Unseals every key not removed by `now`. A key sealed under another
    /// KEK, or tampered with, is an error: signing with a subset of the keys
    /// could leave the cluster publishing different JWKS documents.
    pub fn load(
        rows: &[SigningKeyRow],
        kek: &KeyEncryptionKey,
        now: UnixSeconds,
    ) -> Result<Self, KeyError> {
        let keys = rows
            .iter()
            .filter(|r| r.removes_at.is_none_or(|t| now < t))
            .map(|row| open_key(row, kek))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// The key set as of `now`: the most recently activated signing key is
    /// active (a newer key always supersedes an older one at its
    /// activation, even before the older one's `retires_at` is written).
    pub fn snapshot(&self, now: UnixSeconds) -> Result<KeySet, KeyError> {
        let active = self
            .keys
            .iter()
            .filter(|k| k.signing(now))
            .max_by_key(|k| k.activates_at)
            .ok_or(KeyError::NoActiveKey)?;
        let published: Vec<&LoadedKey> = self.keys.iter().filter(|k| k.published(now)).collect();
        let mut algorithms: Vec<String> = Vec::new();
        let mut verification = VerificationKeys::new();
        for k in &published {
            verification.insert(k.jwk.kid.clone(), k.verification.clone());
            if !algorithms.contains(&k.jwk.alg) {
                algorithms.push(k.jwk.alg.clone());
            }
        }
        let jwks = Jwks {
            keys: published.iter().map(|k| k.jwk.clone()).collect(),
        };
        let jwks_json = serde_json::to_vec(&jwks)
            .map(actix_web::web::Bytes::from)
            .map_err(|e| KeyError::SigningKey {
                kid: active.jwk.kid.clone(),
                message: e.to_string(),
            })?;
        let etag = format!(
            "\"{}\"",
            digest::sha256(&jwks_json)[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let valid_until = self
            .keys
            .iter()
            .flat_map(|k| {
                [
                    Some(k.publishes_at),
                    Some(k.activates_at),
                    k.retires_at,
                    k.removes_at,
                ]
            })
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(UnixSeconds::MAX);
        Ok(KeySet {
            active: ActiveKey {
                kid: active.jwk.kid.clone(),
                alg: active.alg,
                activated_at: active.activates_at,
                signer: Arc::clone(&active.signer),
            },
            jwks_json,
            etag,
            algorithms,
            verification,
            valid_from: now,
            valid_until,
        })
    }
}

/// Hands out key-set snapshots; readers take an `Arc`, so a rebuild never
/// blocks signing for longer than a pointer swap.
pub struct KeyStore {
    ring: RwLock<Arc<KeyRing>>,
    snapshot: RwLock<Arc<KeySet>>,
    /// Reloads are numbered when they start reading the database; a reload
    /// that finishes after a later-started one is stale and dropped.
    next_reload: AtomicU64,
    applied_reload: Mutex<u64>,
}

/// A reload in progress; see [`KeyStore::begin_reload`].
#[derive(Debug, Clone, Copy)]
pub struct ReloadTicket(u64);

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    // A poisoned lock only means a writer panicked mid-swap; the value it
    // guards is still whole.
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl KeyStore {
    pub fn new(ring: KeyRing, now: UnixSeconds) -> Result<Self, KeyError> {
        let snapshot = ring.snapshot(now)?;
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
            snapshot: RwLock::new(Arc::new(snapshot)),
            next_reload: AtomicU64::new(1),
            applied_reload: Mutex::new(0),
        })
    }

    /// Call before reading keys from the database; pass the ticket to
    /// [`KeyStore::replace`].
    pub fn begin_reload(&self) -> ReloadTicket {
        ReloadTicket(self.next_reload.fetch_add(1, Ordering::SeqCst))
    }

    /// The key set as of `now`, rebuilt from memory when `now` has crossed
    /// a key's activation, retirement or removal.
    pub fn current(&self, now: UnixSeconds) -> Arc<KeySet> {
        let snapshot = read(&self.snapshot);
        if snapshot.valid_from <= now && now < snapshot.valid_until {
            return snapshot;
        }
        let ring = read(&self.ring);
        match ring.snapshot(now) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                // Hold the reload lock so a `replace` cannot slip in between
                // reading the ring and installing its snapshot.
                let _reload = match self.applied_reload.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if Arc::ptr_eq(&ring, &read(&self.ring)) {
                    write(&self.snapshot, Arc::clone(&fresh));
                }
                fresh
            }
            Err(e) => {
                // Keep signing with what we have rather than failing every
                // request; the maintainer's next run will report it too.
                log::error!("key set: {e}; keeping the previous key set");
                snapshot
            }
        }
    }

    /// Installs keys re-read from the database, unless a reload that began
    /// later has already been installed. A ring without an active key at
    /// `now` is refused and the previous one kept.
    pub fn replace(
        &self,
        ticket: ReloadTicket,
        ring: KeyRing,
        now: UnixSeconds,
    ) -> Result<(), KeyError> {
        let snapshot = ring.snapshot(now)?;
        let mut applied = match self.applied_reload.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ticket.0 < *applied {
            return Ok(());
        }
        write(&self.ring, Arc::new(ring));
        write(&self.snapshot, Arc::new(snapshot));
        *applied = ticket.0;
        Ok(())
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
    let row = sealed_row(kek, alg, &signing::generate_pkcs8(alg)?, now, now, 0)?;
    let kid = row.kid.clone();
    Ok(signing_keys::insert_first_key(conn, &row)?.then_some(kid))
}

/// A key row for `pkcs8`, sealed under the KEK, signing from `activates_at`
/// and published `publish_delay` after `now` (or at activation, if sooner).
pub fn sealed_row(
    kek: &KeyEncryptionKey,
    alg: SigningAlgorithm,
    pkcs8: &[u8],
    now: UnixSeconds,
    activates_at: UnixSeconds,
    publish_delay: i64,
) -> Result<SigningKeyRow, KeyError> {
    let jwk = PublicJwk::new(alg, &signing::public_key(alg, pkcs8)?);
    let sealed = kek.seal(jwk.kid.as_bytes(), pkcs8)?;
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
        publishes_at: (now + publish_delay).min(activates_at),
    })
}

fn open_key(row: &SigningKeyRow, kek: &KeyEncryptionKey) -> Result<LoadedKey, KeyError> {
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
    // The kid is the thumbprint of the public key: recomputing it from the
    // private half proves both halves belong together.
    let jwk = PublicJwk::new(alg, &signing::public_key(alg, &pkcs8)?);
    if jwk.kid != row.kid {
        return Err(fail("private key does not match its kid".into()));
    }
    let (_, key) = jwk
        .verification_key()
        .ok_or_else(|| fail("public key cannot be read back".into()))?;
    Ok(LoadedKey {
        signer: Arc::new(
            PreparedEncodingKey::from_pkcs8(alg, &pkcs8).map_err(|e| fail(e.to_string()))?,
        ),
        verification: VerificationKey { alg, key },
        jwk,
        alg,
        publishes_at: row.publishes_at,
        activates_at: row.activates_at,
        retires_at: row.retires_at,
        removes_at: row.removes_at,
    })
}
