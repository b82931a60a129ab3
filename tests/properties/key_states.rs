//! Signing-key states under any interleaving of clock advances, scheduled
//! rotations, manual rotations and emergency retirements, against a real
//! database, with a random policy that the configuration accepts.
//!
//! Validators trust a token only if its `kid` is in the JWKS they cached, so
//! the key timeline is what keeps every token verifiable. At every instant
//! where any key changes state (found from the stored timestamps, so no
//! instant is skipped):
//! - exactly one key is active, and `key_state` and `KeyRing::snapshot`
//!   agree on which, and on which keys are published;
//! - the snapshot says it is valid exactly until the next change (the
//!   server keeps serving a snapshot until then);
//! - every key that signed a token a validator may still accept (up to
//!   `exp` plus the clock leeway) is still published, unless `retire_now`
//!   took it out, which is that operation's very purpose;
//! - a key starts signing only after it has been stored for the full
//!   pre-publication lead and served in the JWKS for the lead less the
//!   check interval (which the configuration makes at least the JWKS
//!   `max-age`), so no validator meets an unknown `kid`. The first key and
//!   an emergency successor are exempt by design.

use std::collections::{BTreeSet, HashMap, HashSet};

use proptest::prelude::*;
use tessera::clock::UnixSeconds;
use tessera::config::{MAX_ACCESS_TOKEN_TTL, Settings};
use tessera::keys::KeyEncryptionKey;
use tessera::keys::jwk::Jwks;
use tessera::keys::keyset::{KeyRing, ensure_first_key, key_state};
use tessera::keys::rotation::{self, RotationPolicy};
use tessera::store::signing_keys::{SigningKeyRow, list_keys};
use tessera::store::{Database, DbConnection};

use crate::{Coverage, TestDb, check};

const CASES: u32 = 64;
const T0: UnixSeconds = 1_800_000_000;

/// The knobs of `Settings` that shape the key timeline, chosen so that the
/// configuration's own validation accepts them (and that is checked).
#[derive(Debug, Clone)]
struct Params {
    eddsa: bool,
    check_interval: i64,
    jwks_max_age: u64,
    lead_extra: i64,
    period_extra: i64,
    retention_extra: i64,
    leeway: i64,
    access_ttl: i64,
}

fn params() -> impl Strategy<Value = Params> {
    (
        any::<bool>(),
        prop_oneof![Just(1_i64), 1..=300_i64],
        prop_oneof![Just(0_u64), 0..=900_u64],
        prop_oneof![Just(0_i64), 0..=900_i64],
        prop_oneof![Just(1_i64), 1..=4000_i64],
        prop_oneof![Just(0_i64), 0..=7200_i64],
        0..=300_i64,
        // The longest lifetime is the case that tests retention.
        prop_oneof![Just(MAX_ACCESS_TOKEN_TTL), 1..=MAX_ACCESS_TOKEN_TTL],
    )
        .prop_map(
            |(
                eddsa,
                check_interval,
                jwks_max_age,
                lead_extra,
                period_extra,
                retention_extra,
                leeway,
                access_ttl,
            )| Params {
                eddsa,
                check_interval,
                jwks_max_age,
                lead_extra,
                period_extra,
                retention_extra,
                leeway,
                access_ttl,
            },
        )
}

impl Params {
    fn settings(&self) -> Settings {
        let lead = i64::try_from(self.jwks_max_age).unwrap_or(i64::MAX)
            + self.check_interval
            + self.lead_extra;
        Settings {
            signing_alg: if self.eddsa { "EdDSA" } else { "ES256" }.to_owned(),
            key_check_interval: self.check_interval,
            jwks_max_age: self.jwks_max_age,
            key_prepublish: lead,
            key_rotation_period: lead + self.period_extra,
            key_retention: MAX_ACCESS_TOKEN_TTL + self.leeway + self.retention_extra,
            clock_leeway: self.leeway,
            access_token_ttl: self.access_ttl,
            // No client cache: it plays no part here, and its interval must
            // fit in the leeway, which these settings draw from 0 up.
            client_check_interval: 0,
            ..Settings::default()
        }
    }
}

/// The key an emergency retirement takes out.
#[derive(Debug, Clone, Copy)]
enum Target {
    Active,
    /// The pending or published next key, if there is one.
    Next,
    /// The n-th key still stored (modulo), whatever its state.
    Any(usize),
}

#[derive(Debug, Clone, Copy)]
enum Scale {
    Second,
    Interval,
    Lead,
    Period,
    Retention,
}

#[derive(Debug, Clone)]
enum KeyOp {
    /// Time passes and nobody rotates (the maintainer is down or late).
    Advance(Scale, u16),
    /// Time passes with the maintainer running `rotate_if_due` every check
    /// interval (at most 10 runs per step, to keep cases quick; a later run
    /// is a case `plan` handles anyway).
    Maintain(Scale, u16),
    RotateIfDue,
    RotateNow,
    /// Emergency retirement.
    RetireNow(Target),
}

fn scale() -> impl Strategy<Value = Scale> {
    prop_oneof![
        Just(Scale::Second),
        Just(Scale::Interval),
        Just(Scale::Lead),
        Just(Scale::Period),
        Just(Scale::Retention),
    ]
}

fn op() -> impl Strategy<Value = KeyOp> {
    prop_oneof![
        4 => (scale(), 1..=3000_u16).prop_map(|(s, m)| KeyOp::Advance(s, m)),
        4 => (scale(), 1..=3000_u16).prop_map(|(s, m)| KeyOp::Maintain(s, m)),
        1 => Just(KeyOp::RotateIfDue),
        2 => Just(KeyOp::RotateNow),
        2 => prop_oneof![
            Just(Target::Active),
            Just(Target::Next),
            any::<usize>().prop_map(Target::Any),
        ]
        .prop_map(KeyOp::RetireNow),
    ]
}

struct World<'a> {
    conn: &'a mut DbConnection,
    kek: &'a KeyEncryptionKey,
    policy: RotationPolicy,
    leeway: i64,
    access_ttl: i64,
    now: UnixSeconds,
    rows: Vec<SigningKeyRow>,
    ring: KeyRing,
    /// The latest `exp` of a token each key signed.
    signed: HashMap<String, UnixSeconds>,
    first_published: HashMap<String, UnixSeconds>,
    activated: HashSet<String>,
    /// Keys allowed to sign unannounced: the first one, emergency successors.
    unannounced: HashSet<String>,
    /// Keys taken out by `retire_now`: their tokens die with them.
    withdrawn: HashSet<String>,
    ever_published: HashSet<String>,
    coverage: &'a Coverage,
}

fn fail(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

impl World<'_> {
    fn reload(&mut self) -> Result<(), TestCaseError> {
        self.rows = list_keys(self.conn).map_err(|e| fail("list keys", e))?;
        self.ring =
            KeyRing::load(&self.rows, self.kek, self.now).map_err(|e| fail("load keys", e))?;
        Ok(())
    }

    fn scaled(&self, scale: Scale, permille: u16) -> i64 {
        let base = match scale {
            Scale::Second => 1,
            Scale::Interval => self.policy.publish_delay,
            Scale::Lead => self.policy.lead,
            Scale::Period => self.policy.period,
            Scale::Retention => self.policy.retention,
        };
        (base * i64::from(permille) / 1000).max(1)
    }

    /// Checks every instant from now to `to` where any key changes state
    /// (keys change state only at their own timestamps, and rows change
    /// only through the operations), then moves the clock to `to`. The
    /// instants come from the rows, not from the snapshot, so a snapshot
    /// that claimed to stay valid past a change would be caught.
    fn sweep(&mut self, to: UnixSeconds) -> Result<(), TestCaseError> {
        let mut t = self.now;
        loop {
            let (active, valid_until) = self.observe(t)?;
            let until = self
                .rows
                .iter()
                .flat_map(|r| {
                    [
                        Some(r.publishes_at),
                        Some(r.activates_at),
                        r.retires_at,
                        r.removes_at,
                    ]
                    .into_iter()
                    .flatten()
                    // Nothing changes for a key after it is gone (a key
                    // withdrawn before it was published keeps its times).
                    .filter(|&x| r.removes_at.is_none_or(|gone| x <= gone))
                })
                .filter(|&x| x > t)
                .min()
                .unwrap_or(UnixSeconds::MAX);
            prop_assert_eq!(
                valid_until,
                until,
                "the key set at {} is valid until the next change",
                t
            );
            // The active key signs until the next boundary; the last token
            // it signs there lives longest.
            let last = until.saturating_sub(1).min(to);
            let exp = self.signed.entry(active).or_default();
            *exp = (*exp).max(last + self.access_ttl);
            if until > to {
                break;
            }
            t = until;
        }
        self.now = to;
        Ok(())
    }

    /// The properties at instant `t`; returns the active kid and the end
    /// of the snapshot's validity.
    fn observe(&mut self, t: UnixSeconds) -> Result<(String, UnixSeconds), TestCaseError> {
        let snap = self
            .ring
            .snapshot(t)
            .map_err(|e| fail(&format!("no key set at {t}"), e))?;
        let active_rows: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| key_state(r, t) == "active")
            .map(|r| r.kid.as_str())
            .collect();
        prop_assert_eq!(
            &active_rows,
            &vec![snap.active.kid.as_str()],
            "exactly one active key at {}",
            t
        );
        let jwks: Jwks = serde_json::from_slice(&snap.jwks_json).map_err(|e| fail("JWKS", e))?;
        let published: BTreeSet<String> = jwks.keys.into_iter().map(|k| k.kid).collect();
        let by_state: BTreeSet<String> = self
            .rows
            .iter()
            .filter(|r| matches!(key_state(r, t), "published" | "active" | "retired"))
            .map(|r| r.kid.clone())
            .collect();
        prop_assert_eq!(&published, &by_state, "JWKS vs key_state at {}", t);
        let verifying: BTreeSet<String> = snap.verification.keys().cloned().collect();
        prop_assert_eq!(&published, &verifying, "JWKS vs verification keys at {}", t);
        for kid in &published {
            self.first_published.entry(kid.clone()).or_insert(t);
            self.ever_published.insert(kid.clone());
        }
        if self
            .ever_published
            .iter()
            .any(|k| !published.contains(k) && !self.withdrawn.contains(k))
        {
            self.coverage.hit("retention ended");
        }

        let active = snap.active.kid.clone();
        if self.activated.insert(active.clone()) && !self.unannounced.contains(&active) {
            let row = self
                .rows
                .iter()
                .find(|r| r.kid == active)
                .ok_or_else(|| fail("active key", "not stored"))?;
            let published_at = self.first_published.get(&active).copied();
            prop_assert!(
                t - row.created_at >= self.policy.lead,
                "key {} stored at {} signs at {}: less than the lead {}",
                active,
                row.created_at,
                t,
                self.policy.lead
            );
            prop_assert!(
                published_at.is_some_and(|p| t - p >= self.policy.lead - self.policy.publish_delay),
                "key {} published at {:?} signs at {}: announced for less than {}",
                active,
                published_at,
                t,
                self.policy.lead - self.policy.publish_delay
            );
            self.coverage.hit("announced activation");
        }

        for (kid, exp) in &self.signed {
            if t <= exp + self.leeway && !self.withdrawn.contains(kid) {
                prop_assert!(
                    published.contains(kid),
                    "key {} signed a token valid until {} (+{} leeway) but left the JWKS by {}",
                    kid,
                    exp,
                    self.leeway,
                    t
                );
                if *kid != active {
                    self.coverage.hit("retired key still verifying");
                }
            }
        }
        Ok((active, snap.valid_until))
    }

    fn apply(&mut self, op: &KeyOp) -> Result<(), TestCaseError> {
        let (kek, policy) = (self.kek, self.policy);
        match *op {
            KeyOp::Advance(scale, permille) => {
                let to = self.now + self.scaled(scale, permille);
                self.sweep(to)?;
            }
            KeyOp::Maintain(scale, permille) => {
                let span = self.scaled(scale, permille);
                let runs = (span / policy.publish_delay).clamp(1, 10);
                let step = (span / runs).max(policy.publish_delay);
                for _ in 0..runs {
                    let to = self.now + step;
                    self.sweep(to)?;
                    self.rotate_if_due()?;
                }
            }
            KeyOp::RotateIfDue => self.rotate_if_due()?,
            KeyOp::RotateNow => {
                let now = self.now;
                let pending = self
                    .rows
                    .iter()
                    .any(|r| r.activates_at > now && r.removes_at.is_none_or(|t| now < t));
                let result = rotation::rotate_now(self.conn, kek, &policy, now, None);
                prop_assert_eq!(
                    result.is_err(),
                    pending,
                    "rotate_now refused iff a key is pending: {:?}",
                    result.as_ref().err().map(ToString::to_string)
                );
                self.coverage.hit(if pending {
                    "manual rotation refused"
                } else {
                    "manual rotation"
                });
                self.reload()?;
            }
            KeyOp::RetireNow(target) => {
                let now = self.now;
                let stored: Vec<&SigningKeyRow> = self
                    .rows
                    .iter()
                    .filter(|r| r.removes_at.is_none_or(|t| now < t))
                    .collect();
                let found = match target {
                    Target::Active => stored.iter().find(|r| key_state(r, now) == "active"),
                    Target::Next => stored.iter().find(|r| r.activates_at > now),
                    Target::Any(n) => stored.get(n % stored.len().max(1)),
                };
                let Some(target) = found.copied() else {
                    return Ok(());
                };
                let kid = target.kid.clone();
                let state = key_state(target, now);
                let retired = rotation::retire_now(self.conn, kek, &policy, &kid, now)
                    .map_err(|e| fail("retire_now", e))?;
                prop_assert_eq!(
                    retired.successor.is_some(),
                    state == "active",
                    "a successor exactly when the signing key was retired ({})",
                    state
                );
                self.coverage.hit(match state {
                    "active" => "emergency: active key",
                    "pending" | "published" => "emergency: next key",
                    _ => "emergency: retired key",
                });
                self.withdrawn.insert(kid);
                self.unannounced.extend(retired.successor);
                self.reload()?;
            }
        }
        Ok(())
    }

    fn rotate_if_due(&mut self) -> Result<(), TestCaseError> {
        let made = rotation::rotate_if_due(self.conn, self.kek, &self.policy, self.now)
            .map_err(|e| fail("rotate_if_due", e))?;
        if made.is_some() {
            self.coverage.hit("scheduled rotation");
            self.reload()?;
        }
        Ok(())
    }
}

fn run(db: &Database, kek: &KeyEncryptionKey, name: &str) {
    let coverage = Coverage::default();
    let input = (params(), prop::collection::vec(op(), 1..16));
    check(name, CASES, input, |(params, ops)| {
        let settings = params.settings();
        prop_assert!(
            settings.validate().is_ok(),
            "generated an invalid configuration: {:?}",
            settings.validate().err()
        );
        let policy = settings
            .rotation_policy()
            .map_err(|e| fail("rotation policy", e))?;
        let mut conn = db.conn().map_err(|e| fail("connection", e))?;
        // Each case starts from an empty key table: the database is the
        // test's own.
        {
            use diesel::RunQueryDsl;
            diesel::delete(tessera::store::schema::signing_keys::table)
                .execute(&mut *conn)
                .map_err(|e| fail("clear keys", e))?;
        }
        let first = ensure_first_key(&mut conn, kek, policy.alg, T0)
            .map_err(|e| fail("first key", e))?
            .ok_or_else(|| fail("first key", "not created"))?;
        let mut world = World {
            conn: &mut conn,
            kek,
            policy,
            leeway: settings.clock_leeway,
            access_ttl: settings.access_token_ttl,
            now: T0,
            rows: Vec::new(),
            ring: KeyRing::default(),
            signed: HashMap::new(),
            first_published: HashMap::new(),
            activated: HashSet::new(),
            unannounced: HashSet::from([first]),
            withdrawn: HashSet::new(),
            ever_published: HashSet::new(),
            coverage: &coverage,
        };
        world.reload()?;
        for op in &ops {
            world.apply(op)?;
        }
        let now = world.now;
        world.sweep(now)
    });
    coverage.require(
        name,
        &[
            "scheduled rotation",
            "manual rotation",
            "manual rotation refused",
            "announced activation",
            "retired key still verifying",
            "retention ended",
            "emergency: active key",
            "emergency: next key",
        ],
    );
}

fn kek(dir: &std::path::Path) -> KeyEncryptionKey {
    KeyEncryptionKey::create(dir).expect("create a KEK").0
}

#[test]
fn key_states_on_sqlite() {
    let db = TestDb::sqlite();
    run(&db.db, &kek(db.dir()), "key states (SQLite)");
}

#[test]
fn key_states_on_postgres() {
    let Some(db) = TestDb::postgres("key_states_on_postgres") else {
        return;
    };
    run(&db.db, &kek(db.dir()), "key states (PostgreSQL)");
}
