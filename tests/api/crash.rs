//! Crash durability under mixed load (issue #11, item 3): the real binary
//! is killed with SIGKILL at a random moment while several tasks issue
//! tokens, follow refresh chains and revoke access and refresh tokens; it is
//! restarted on the same database, checked, and the load goes on, round
//! after round.
//!
//! What a crash may and may not do:
//! - every answer the server gave before it died stands: a revocation
//!   answered 200 is in force after the restart, a refresh token answered
//!   200 exists and (unless its family was revoked) still works;
//! - a request the kill cut off may have been committed or not, but not
//!   half: a refresh family has exactly one live token while it is not
//!   revoked and none once it is (so never two, even when a rotation was
//!   committed and its answer lost), and what the database shows decides
//!   what the chain's last acknowledged token must do after the restart:
//!   rotate if unused, be refused if its family is revoked, and if a lost
//!   rotation used it up, be re-issued within a grace window (every other
//!   incarnation has one) or be refused as reuse without one;
//! - the server starts cleanly on whatever the crash left: it listens, logs
//!   no error, and `/readyz` says ready.
//!
//! `TESSERA_CRASH_ROUNDS` sets the number of kill/restart rounds per backend
//! (3 by default, so an ordinary run stays short; run it deliberately with
//! e.g. 50). `TESSERA_CRASH_SEED` replays a run's choices (operations and
//! kill moments; the interleaving of the tasks is the machine's); the seed
//! is printed, and is part of every failure message.
//!
//! SIGKILL ends the process, not the machine: what the process wrote
//! reaches the file even without an fsync, so this proves that nothing is
//! acknowledged before it is committed, not that commits are synced to disk
//! (`synchronous = FULL` is what covers power loss).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;
use tessera::store::Database;
use tessera::store::schema::{refresh_families, refresh_tokens};
use tessera::token::secret::SecretHash;

use crate::both_backends;
use crate::helpers::{
    Backend, ProcessConfig, TestClient, basic_header, encode_form, spawn_app, spec,
    start_binary_logging,
};

const API: &str = "https://api.example.com";
const WORKERS: usize = 4;
const DEFAULT_ROUNDS: usize = 3;
/// Beyond this many entries in one list, a round checks the newest and a
/// random sample of the rest; the last restart checks everything.
const SAMPLE: usize = 100;

/// SplitMix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// The real server process; killed (SIGKILL) when dropped, so a failing
/// test leaves nothing running.
struct Server {
    child: std::process::Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    async fn start(config: &ProcessConfig, grace: &'static str) -> Self {
        let config = config.clone();
        let (child, base, log) = actix_web::rt::task::spawn_blocking(move || {
            start_binary_logging(
                &config,
                &[("RUST_LOG", "info"), ("TESSERA_REFRESH_GRACE", grace)],
            )
        })
        .await
        .expect("the server starts and listens");
        Self { child, base, log }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `kill -9`: no shutdown, no flush, no drain.
    fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server incarnation as the workers see it. A fresh HTTP client each
/// time: no connection (and no retried request) outlives the process.
struct Ctx {
    http: reqwest::Client,
    base: String,
    /// A client without refresh tokens, shared by every worker.
    plain: TestClient,
    /// Allowed to introspect anything.
    rs: TestClient,
    seed: u64,
}

impl Ctx {
    /// A form POST. `None` when no complete answer came (the server died
    /// under it) or a 5xx did: the outcome is unknown either way.
    async fn post(
        &self,
        path: &str,
        auth: &TestClient,
        form: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", basic_header(&auth.id, &auth.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.ok()?;
        if status >= 500 {
            return None;
        }
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Introspects as the resource server: for access tokens.
    async fn introspect(&self, token: &str) -> Value {
        self.introspect_as(&self.rs, token).await
    }

    /// Introspects as `caller`: a refresh token is described to its own
    /// client only (to anyone else it is inactive, whatever its state).
    async fn introspect_as(&self, caller: &TestClient, token: &str) -> Value {
        let (status, body) = self
            .post("/oauth2/introspect", caller, &[("token", token)])
            .await
            .unwrap_or_else(|| panic!("seed {}: introspection went unanswered", self.seed));
        assert_eq!(status, 200, "seed {}: introspection: {body}", self.seed);
        body
    }
}

/// One refresh family as a worker followed it.
#[derive(Debug, Clone)]
struct Chain {
    /// Every refresh token the server answered with, oldest first: the last
    /// is the one to present next.
    tokens: Vec<String>,
    /// Every access token issued beside them.
    access: Vec<String>,
    /// The token whose revocation was answered 200.
    revoked_with: Option<String>,
}

impl Chain {
    fn current(&self) -> &str {
        self.tokens.last().expect("a chain has a token")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Client credentials for the worker's refresh client: a new chain.
    Start,
    Refresh,
    /// Client credentials for the shared client without refresh tokens.
    Issue,
    RevokeAccess,
    RevokeRefresh,
}

/// A task of the load: follows one chain at a time, and keeps every answer
/// it got across rounds.
struct Worker {
    index: usize,
    rng: Rng,
    client: TestClient,
    chain: Option<Chain>,
    /// The request the kill cut off.
    pending: Option<Op>,
    /// Access tokens of the shared client never sent for revocation: they
    /// must stay active (the control that makes `active: false` mean
    /// something).
    untouched: Vec<String>,
    /// Access tokens whose revocation was answered 200.
    revoked_access: Vec<String>,
    /// Chains whose revocation was answered 200.
    revoked_chains: Vec<Chain>,
    /// Chains that ended otherwise (a revocation cut off by the kill, or
    /// a rotation whose answer was lost and which, with no grace window,
    /// counts as reuse): no claim about them but the database invariant.
    abandoned: Vec<Chain>,
    /// Every refresh token answered 200.
    issued_refresh: Vec<String>,
    acknowledged: usize,
}

impl Worker {
    fn choose(&mut self) -> Op {
        if self.chain.is_none() {
            return Op::Start;
        }
        match self.rng.below(100) {
            0..45 => Op::Refresh,
            45..65 => Op::Issue,
            65..92 => Op::RevokeAccess,
            _ => Op::RevokeRefresh,
        }
    }

    fn unexpected(&self, ctx: &Ctx, op: Op, answer: &(u16, Value)) -> ! {
        panic!(
            "seed {}: worker {} {op:?} answered {} {} while the server was up",
            ctx.seed, self.index, answer.0, answer.1
        )
    }

    /// Runs operations until one gets no answer: the server died under it.
    async fn run(mut self, ctx: Rc<Ctx>) -> Self {
        loop {
            let op = self.choose();
            if self.step(&ctx, op).await.is_none() {
                self.pending = Some(op);
                return self;
            }
            self.acknowledged += 1;
        }
    }

    async fn step(&mut self, ctx: &Ctx, op: Op) -> Option<()> {
        match op {
            Op::Start => {
                let answer = ctx
                    .post(
                        "/oauth2/token",
                        &self.client,
                        &[("grant_type", "client_credentials")],
                    )
                    .await?;
                let (Some(rt), Some(at)) = (
                    answer.1["refresh_token"].as_str(),
                    answer.1["access_token"].as_str(),
                ) else {
                    self.unexpected(ctx, op, &answer)
                };
                self.issued_refresh.push(rt.to_owned());
                self.chain = Some(Chain {
                    tokens: vec![rt.to_owned()],
                    access: vec![at.to_owned()],
                    revoked_with: None,
                });
            }
            Op::Refresh => {
                let current = self.chain.as_ref().expect("a chain").current().to_owned();
                let answer = ctx
                    .post(
                        "/oauth2/token",
                        &self.client,
                        &[("grant_type", "refresh_token"), ("refresh_token", &current)],
                    )
                    .await?;
                self.take_refresh(ctx, &answer);
            }
            Op::Issue => {
                let answer = ctx
                    .post(
                        "/oauth2/token",
                        &ctx.plain,
                        &[("grant_type", "client_credentials")],
                    )
                    .await?;
                let Some(at) = answer.1["access_token"]
                    .as_str()
                    .filter(|_| answer.0 == 200)
                else {
                    self.unexpected(ctx, op, &answer)
                };
                self.untouched.push(at.to_owned());
            }
            Op::RevokeAccess => {
                let chain = self.chain.as_ref().expect("a chain");
                // Half the time one of the shared client's, else one of the chain's.
                let (token, owner) = if !self.untouched.is_empty() && self.rng.below(2) == 0 {
                    let i = self.rng.below(self.untouched.len());
                    (self.untouched.swap_remove(i), ctx.plain.clone())
                } else {
                    let i = self.rng.below(chain.access.len());
                    (chain.access[i].clone(), self.client.clone())
                };
                let answer = ctx
                    .post("/oauth2/revoke", &owner, &[("token", &token)])
                    .await?;
                if answer.0 != 200 {
                    self.unexpected(ctx, op, &answer)
                }
                self.revoked_access.push(token);
            }
            Op::RevokeRefresh => {
                let chain = self.chain.as_ref().expect("a chain");
                // The live token, or any older one: either revokes the family.
                let token = if self.rng.below(2) == 0 {
                    chain.current().to_owned()
                } else {
                    chain.tokens[self.rng.below(chain.tokens.len())].clone()
                };
                let answer = ctx
                    .post("/oauth2/revoke", &self.client, &[("token", &token)])
                    .await?;
                if answer.0 != 200 {
                    self.unexpected(ctx, op, &answer)
                }
                let mut chain = self.chain.take().expect("a chain");
                chain.revoked_with = Some(token);
                self.revoked_chains.push(chain);
            }
        }
        Some(())
    }

    /// Records a refresh answered 200, or fails the test.
    fn take_refresh(&mut self, ctx: &Ctx, answer: &(u16, Value)) {
        let (Some(rt), Some(at)) = (
            answer.1["refresh_token"]
                .as_str()
                .filter(|_| answer.0 == 200),
            answer.1["access_token"].as_str(),
        ) else {
            self.unexpected(ctx, Op::Refresh, answer)
        };
        self.issued_refresh.push(rt.to_owned());
        let chain = self.chain.as_mut().expect("a chain");
        chain.tokens.push(rt.to_owned());
        chain.access.push(at.to_owned());
    }

    /// After a restart: settles what the kill cut off, by presenting the
    /// chain's last acknowledged token. What must happen follows from what
    /// the crash left in the database (`standing`): a revoked family
    /// refuses it; an unused token rotates; a token used by a rotation that
    /// was committed but whose answer was lost is re-issued within a grace
    /// window, and is otherwise reuse, which revokes the family.
    async fn recover(&mut self, ctx: &Ctx, grace: bool, standing: Option<Standing>) -> Recovery {
        let pending = self.pending.take();
        let Some(current) = self.chain.as_ref().map(|c| c.current().to_owned()) else {
            return Recovery::default();
        };
        let standing = standing.expect("the chain's token is in the database");
        let must_work = !standing.revoked && (!standing.used || grace);
        let answer = ctx
            .post(
                "/oauth2/token",
                &self.client,
                &[("grant_type", "refresh_token"), ("refresh_token", &current)],
            )
            .await
            .unwrap_or_else(|| {
                panic!(
                    "seed {}: a refresh went unanswered after the restart",
                    ctx.seed
                )
            });
        let context = format!(
            "seed {}: worker {}: cut off: {pending:?}, as the crash left it: {standing:?}, grace: {grace}",
            ctx.seed, self.index
        );
        if must_work {
            assert_eq!(
                answer.0, 200,
                "{context}: the chain's last acknowledged refresh token stopped working: {}",
                answer.1
            );
            self.take_refresh(ctx, &answer);
        } else {
            assert_eq!(
                (answer.0, answer.1["error"].as_str()),
                (400, Some("invalid_grant")),
                "{context}: a revoked or reused refresh token was accepted: {}",
                answer.1
            );
            self.abandoned.push(self.chain.take().expect("a chain"));
        }
        Recovery {
            lost_rotations: usize::from(pending == Some(Op::Refresh) && standing.used),
            lost_revocations: usize::from(pending == Some(Op::RevokeRefresh) && standing.revoked),
        }
    }
}

/// What the crash left of a chain's last acknowledged token.
#[derive(Debug, Clone, Copy)]
struct Standing {
    /// A rotation used it up: one was committed whose answer was lost.
    used: bool,
    /// Its family is revoked: a revocation was committed whose answer was lost.
    revoked: bool,
}

/// Requests the kill cut off after their commit, found on recovery.
#[derive(Debug, Default, Clone, Copy)]
struct Recovery {
    lost_rotations: usize,
    lost_revocations: usize,
}

/// All of `items` when `full` or few, else the newest [`SAMPLE`] and a random
/// [`SAMPLE`] of the rest.
fn pick<'a, T>(items: &'a [T], full: bool, rng: &mut Rng) -> Vec<&'a T> {
    if full || items.len() <= 2 * SAMPLE {
        return items.iter().collect();
    }
    let (old, new) = items.split_at(items.len() - SAMPLE);
    let mut picked: Vec<&T> = new.iter().collect();
    picked.extend((0..SAMPLE).map(|_| &old[rng.below(old.len())]));
    picked
}

/// What the server must say after a restart about everything acknowledged.
async fn check_answers(ctx: &Ctx, workers: &[Worker], full: bool, rng: &mut Rng) {
    let seed = ctx.seed;
    let revoked: Vec<String> = workers
        .iter()
        .flat_map(|w| w.revoked_access.clone())
        .collect();
    for token in pick(&revoked, full, rng) {
        assert_eq!(
            ctx.introspect(token).await,
            serde_json::json!({"active": false}),
            "seed {seed}: an access token revocation answered 200 was lost in a crash"
        );
    }
    let chains: Vec<(&Worker, &Chain)> = workers
        .iter()
        .flat_map(|w| w.revoked_chains.iter().map(move |c| (w, c)))
        .collect();
    for (worker, chain) in pick(&chains, full, rng) {
        let used = chain.revoked_with.as_deref().expect("revoked with");
        for token in [used, chain.current()] {
            assert_eq!(
                ctx.introspect_as(&worker.client, token).await,
                serde_json::json!({"active": false}),
                "seed {seed}: a refresh token revocation answered 200 was lost in a crash"
            );
        }
        let answer = ctx
            .post(
                "/oauth2/token",
                &worker.client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", chain.current()),
                ],
            )
            .await
            .unwrap_or_else(|| panic!("seed {seed}: a refresh went unanswered"));
        assert_eq!(
            (answer.0, answer.1["error"].as_str()),
            (400, Some("invalid_grant")),
            "seed {seed}: a revoked refresh family still refreshes after a crash: {}",
            answer.1
        );
        // RFC 7009 §2.1: the family's access tokens went with it.
        for token in chain
            .access
            .iter()
            .rev()
            .take(if full { usize::MAX } else { 3 })
        {
            assert_eq!(
                ctx.introspect(token).await["active"],
                false,
                "seed {seed}: an access token of a revoked family is active after a crash"
            );
        }
    }
    // The controls: what nobody revoked is active, so `active: false`
    // above means revoked. Each live chain's token (just rotated by
    // `recover`) to its own client, and access tokens nobody touched.
    for worker in workers {
        if let Some(chain) = &worker.chain {
            assert_eq!(
                ctx.introspect_as(&worker.client, chain.current()).await["active"],
                true,
                "seed {seed}: worker {}: a live refresh token is inactive",
                worker.index
            );
        }
    }
    let untouched: Vec<String> = workers.iter().flat_map(|w| w.untouched.clone()).collect();
    for token in pick(&untouched, full, rng) {
        assert_eq!(
            ctx.introspect(token).await["active"],
            true,
            "seed {seed}: an access token nobody revoked is inactive"
        );
    }
}

/// The database as the crash left it: refresh families against the
/// tokens the workers were given. Returns, per worker, the standing of its
/// chain's last acknowledged token.
async fn check_store(url: &str, workers: &[Worker], seed: u64) -> Vec<Option<Standing>> {
    let issued: Vec<String> = workers
        .iter()
        .flat_map(|w| w.issued_refresh.clone())
        .collect();
    let revoked_chains: Vec<String> = workers
        .iter()
        .flat_map(|w| w.revoked_chains.iter().map(|c| c.tokens[0].clone()))
        .collect();
    let current: Vec<Option<String>> = workers
        .iter()
        .map(|w| w.chain.as_ref().map(|c| c.current().to_owned()))
        .collect();
    let url = url.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        let db = Database::open_single(&url, Duration::from_secs(10)).expect("open the database");
        let mut conn = db.conn().expect("connection");
        let families: HashMap<String, Option<i64>> = refresh_families::table
            .select((refresh_families::id, refresh_families::revoked_at))
            .load::<(String, Option<i64>)>(&mut *conn)
            .expect("families")
            .into_iter()
            .collect();
        let tokens: Vec<(Vec<u8>, String, Option<i64>)> = refresh_tokens::table
            .select((
                refresh_tokens::token_hash,
                refresh_tokens::family_id,
                refresh_tokens::used_at,
            ))
            .load(&mut *conn)
            .expect("refresh tokens");
        let mut live: HashMap<&str, usize> = families.keys().map(|f| (f.as_str(), 0)).collect();
        for (_, family, used_at) in &tokens {
            if used_at.is_none() {
                *live.entry(family.as_str()).or_default() += 1;
            }
        }
        for (family, count) in &live {
            let revoked = families.get(*family).copied().flatten().is_some();
            assert!(
                *count <= 1,
                "seed {seed}: family {family} has {count} live refresh tokens"
            );
            if revoked {
                assert_eq!(
                    *count, 0,
                    "seed {seed}: revoked family {family} has a live token"
                );
            } else {
                assert_eq!(
                    *count, 1,
                    "seed {seed}: family {family} has no live token but is not revoked"
                );
            }
        }
        let family_of: HashMap<&[u8], (&str, bool)> = tokens
            .iter()
            .map(|(hash, family, used_at)| (hash.as_slice(), (family.as_str(), used_at.is_some())))
            .collect();
        let stored: HashSet<&[u8]> = family_of.keys().copied().collect();
        for token in &issued {
            assert!(
                stored.contains(SecretHash::of(token).as_bytes()),
                "seed {seed}: a refresh token answered 200 is not in the database after a crash"
            );
        }
        for first in &revoked_chains {
            let (family, _) = family_of[SecretHash::of(first).as_bytes()];
            assert!(
                families[family].is_some(),
                "seed {seed}: a family whose revocation was answered 200 is not revoked"
            );
        }
        current
            .iter()
            .map(|token| {
                let (family, used) = *family_of.get(SecretHash::of(token.as_ref()?).as_bytes())?;
                Some(Standing {
                    used,
                    revoked: families.get(family).copied().flatten().is_some(),
                })
            })
            .collect()
    })
    .await
    .expect("the store check")
}

/// Started right after it logged that it listens: it must be ready, and
/// must not have logged an error about what the crash left.
async fn check_started(ctx: &Ctx, server: &Server, round: usize) {
    let resp = ctx
        .http
        .get(format!("{}/readyz", ctx.base))
        .send()
        .await
        .expect("readyz answers");
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(
        status, 200,
        "seed {}: round {round}: not ready after a restart: {body}",
        ctx.seed
    );
    assert_eq!(body["status"], "ready");
    check_log(server, ctx.seed);
}

fn check_log(server: &Server, seed: u64) {
    let log = server.log();
    assert!(
        !log.contains("ERROR") && !log.contains("panicked"),
        "seed {seed}: the server logged an error:\n{log}"
    );
}

async fn run(backend: Backend) {
    let seed = env_number("TESSERA_CRASH_SEED").unwrap_or_else(|| {
        u64::from_le_bytes(tessera::crypto::random::bytes::<8>().expect("random"))
    });
    let rounds = env_number("TESSERA_CRASH_ROUNDS")
        .map_or(DEFAULT_ROUNDS, |n| usize::try_from(n).expect("rounds"));
    eprintln!("crash test: seed {seed} (TESSERA_CRASH_SEED={seed}), {rounds} rounds");
    let mut rng = Rng(seed);

    let app = spawn_app(&backend).await;
    app.stop().await;
    let long_lived = |refresh: bool| {
        let mut s = spec("read", &[API]);
        s.access_token_ttl = 3600;
        s.refresh_tokens = refresh;
        s
    };
    let refreshing = [
        app.create_client(long_lived(true)).await,
        app.create_client(long_lived(true)).await,
    ];
    let plain = app.create_client(long_lived(false)).await;
    let rs = {
        let mut s = spec("", &[]);
        s.can_introspect = true;
        app.create_client(s).await
    };
    let config = ProcessConfig::of(&app);
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|index| Worker {
            index,
            rng: Rng(rng.next()),
            client: refreshing[index % refreshing.len()].clone(),
            chain: None,
            pending: None,
            untouched: Vec::new(),
            revoked_access: Vec::new(),
            revoked_chains: Vec::new(),
            abandoned: Vec::new(),
            issued_refresh: Vec::new(),
            acknowledged: 0,
        })
        .collect();

    let mut standings: Vec<Option<Standing>> = vec![None; WORKERS];
    let mut recovered = Recovery::default();
    for round in 0..=rounds {
        // Every other incarnation has a grace window: a chain whose
        // rotation was committed and its answer lost carries on with its
        // last acknowledged token; without one, that token counts as
        // reused and the family is revoked (allowed, not required).
        let grace = round % 2 == 0;
        let mut server = Server::start(&config, if grace { "300" } else { "0" }).await;
        let ctx = Rc::new(Ctx {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            base: server.base.clone(),
            plain: plain.clone(),
            rs: rs.clone(),
            seed,
        });
        check_started(&ctx, &server, round).await;
        for (worker, standing) in workers.iter_mut().zip(std::mem::take(&mut standings)) {
            let found = worker.recover(&ctx, grace, standing).await;
            recovered.lost_rotations += found.lost_rotations;
            recovered.lost_revocations += found.lost_revocations;
        }
        let last = round == rounds;
        check_answers(&ctx, &workers, last, &mut rng).await;
        if last {
            check_log(&server, seed);
            break;
        }

        let before: usize = workers.iter().map(|w| w.acknowledged).sum();
        let tasks: Vec<_> = workers
            .drain(..)
            .map(|w| actix_web::rt::spawn(w.run(Rc::clone(&ctx))))
            .collect();
        let delay = 20 + rng.below(1200);
        actix_web::rt::time::sleep(Duration::from_millis(delay as u64)).await;
        check_log(&server, seed);
        server.kill();
        for task in tasks {
            workers.push(task.await.expect("a worker failed"));
        }
        let after: usize = workers.iter().map(|w| w.acknowledged).sum();
        let pending: Vec<Option<Op>> = workers.iter().map(|w| w.pending).collect();
        eprintln!(
            "round {round}: killed after {delay} ms, {} acknowledged requests, cut off: {pending:?}",
            after - before
        );
        standings = check_store(&app.db.url, &workers, seed).await;
    }
    let total = |f: fn(&Worker) -> usize| workers.iter().map(f).sum::<usize>();
    eprintln!(
        "crash test: {} requests acknowledged, {} access token and {} refresh family \
         revocations checked, {} refresh tokens, {} chains abandoned; cut off after \
         their commit: {} rotations, {} revocations",
        total(|w| w.acknowledged),
        total(|w| w.revoked_access.len()),
        total(|w| w.revoked_chains.len()),
        total(|w| w.issued_refresh.len()),
        total(|w| w.abandoned.len()),
        recovered.lost_rotations,
        recovered.lost_revocations,
    );
}

both_backends! {
    /// Proves that a `kill -9` at any moment of a mixed load loses no
    /// acknowledged revocation or refresh, never leaves a refresh family
    /// with two live tokens (or a live one after its revocation), and
    /// leaves a database the server restarts on cleanly; see the module
    /// comment for what is and is not claimed about the requests in flight.
    async fn kill_9_under_mixed_load_loses_nothing_acknowledged(backend) {
        run(backend).await
    }
}
