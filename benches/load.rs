//! The load harness: the real release binary, pinned to one core, driven by
//! `wrk` pinned to the other, scenario by scenario, beside the one-core
//! ceiling of `ring` measured in the same run.
//!
//! Run: `cargo bench --bench load` (needs `wrk` and `taskset`: Debian
//! packages `wrk` and `util-linux`). Settings, from the environment:
//!
//! - `LOAD_DURATION` seconds per scenario (default 10);
//! - `LOAD_CONNECTIONS` keep-alive connections (default 64);
//! - `LOAD_SCENARIOS` a comma-separated subset of the scenario names;
//! - `LOAD_CLIENTS` clients for the many-clients scenario (default
//!   100,000), each request from one picked at random;
//! - `LOAD_REVOCATIONS` entries in the revocation list for the
//!   introspection scenario (default 1,000,000);
//! - `LOAD_DATABASE_URL` (or `TEST_DATABASE_URL`) a PostgreSQL server URL
//!   for the PostgreSQL scenario; a database is created in it and dropped;
//! - `LOAD_RUST_LOG` the server's `RUST_LOG` (default `warn`: no request
//!   lines; with `info` every request is logged);
//! - `LOAD_POOL_SIZE` the server's `TESSERA_DB_POOL_SIZE` (default 8);
//! - `LOAD_SERVER_CPU` and `LOAD_CLIENT_CPU` the cores (default 0 and 1).
//!
//! It prints one line per scenario and a Markdown table at the end.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera::crypto::signing::{self, PreparedKey, SigningAlgorithm};

#[path = "support/server.rs"]
mod support;
use support::{Server, number, setting};

// ---------------------------------------------------------------- ceiling

/// Full JWT encodes and verifies per second on this thread, for `alg`.
fn ceiling(alg: SigningAlgorithm, run: Duration) -> (f64, f64) {
    let pkcs8 = signing::generate_pkcs8(alg).expect("key");
    let key = PreparedKey::from_pkcs8(alg, &pkcs8).expect("key");
    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "svc", "aud": "https://api.example.com",
        "exp": 2_000_000_000i64, "iat": 1_900_000_000i64, "nbf": 1_900_000_000i64,
        "jti": "0a7c1f3e-2b4d-4e8f-9a6b-1c2d3e4f5a6b", "client_id": "svc", "scope": "read",
    });
    let header = serde_json::json!({"alg": alg.jws_name(), "typ": "at+jwt", "kid": "k"});
    let encode = || {
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json")));
        let signature = key.sign(token.as_bytes()).expect("sign");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    };
    let rate = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < run {
            for _ in 0..64 {
                f();
            }
            n += 64;
        }
        n as f64 / started.elapsed().as_secs_f64()
    };
    let encodes = rate(&mut || {
        std::hint::black_box(encode());
    });
    // Verify the way introspection does: parse, check the signature with the
    // published key, check the claims.
    let token = encode();
    let public = signing::public_key(alg, &pkcs8).expect("public key");
    let jwk = tessera::keys::jwk::PublicJwk::new(alg, &public);
    let (_, verification) = jwk.verification_key().expect("verification key");
    let mut keys = tessera::token::verify::VerificationKeys::new();
    keys.insert(
        "k".to_owned(),
        tessera::token::verify::VerificationKey {
            alg,
            key: verification,
        },
    );
    let expect = tessera::token::verify::Expectations {
        issuer: "https://auth.example.com",
        audience: None,
        now: 1_950_000_000,
        expiry_leeway: 0,
        not_before_leeway: 0,
    };
    let verifies = rate(&mut || {
        std::hint::black_box(
            tessera::token::verify::verify(&token, &keys, &expect).expect("valid"),
        );
    });
    (encodes, verifies)
}

/// The server's settings for load runs: one worker, the pool size and log
/// level asked for.
fn load_env() -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_WORKERS", "1".to_owned()),
        ("TESSERA_DB_POOL_SIZE", setting("LOAD_POOL_SIZE", "8")),
        (
            "RUST_LOG",
            format!("{},tessera::cli=info", setting("LOAD_RUST_LOG", "warn")),
        ),
    ]
}

// -------------------------------------------------------------------- wrk

struct Outcome {
    rps: f64,
    p50: f64,
    p99: f64,
    max: f64,
    errors: u64,
}

/// Milliseconds from wrk's `1.23ms`, `456.78us`, `1.02s`.
fn millis(v: &str) -> f64 {
    let v = v.trim();
    let (n, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    n.parse::<f64>().unwrap_or(f64::NAN) * scale
}

fn wrk(url: &str, script: &str, dir: &Path) -> Outcome {
    let path = dir.join("script.lua");
    std::fs::write(&path, script).expect("write the wrk script");
    let out = Command::new("taskset")
        .args([
            "-c",
            &setting("LOAD_CLIENT_CPU", "1"),
            "wrk",
            "--latency",
            "-t1",
        ])
        .arg(format!("-c{}", number("LOAD_CONNECTIONS", 64)))
        .arg(format!("-d{}s", number("LOAD_DURATION", 10)))
        .arg("-s")
        .arg(&path)
        .arg(url)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::trim).map(str::to_owned))
            .unwrap_or_default()
    };
    let latency: Vec<String> = find("Latency")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let errors = find("Non-2xx or 3xx responses:").parse().unwrap_or(0)
        + find("Socket errors:")
            .split(',')
            .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    Outcome {
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        p50: millis(&find("50%")),
        p99: millis(&find("99%")),
        max: latency.get(2).map_or(f64::NAN, |v| millis(v)),
        errors,
    }
}

fn post_script(path: &str, auth: &str, body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.path = \"{path}\"\nwrk.body = \"{body}\"\n\
         wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
         wrk.headers[\"Authorization\"] = \"{auth}\"\n"
    )
}

/// Every request spends one refresh token and queues its successor; if the
/// queue runs dry (failures), a client-credentials request refills it.
fn refresh_script(auth: &str, tokens: &[String]) -> String {
    let list = tokens
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "local tokens = {{{list}}}\n\
         local headers = {{[\"Content-Type\"] = \"application/x-www-form-urlencoded\", [\"Authorization\"] = \"{auth}\"}}\n\
         request = function()\n\
           local t = table.remove(tokens, 1)\n\
           if t == nil then return wrk.format(\"POST\", \"/oauth2/token\", headers, \"grant_type=client_credentials\") end\n\
           return wrk.format(\"POST\", \"/oauth2/token\", headers, \"grant_type=refresh_token&refresh_token=\" .. t)\n\
         end\n\
         response = function(status, hdrs, body)\n\
           local t = body:match('\"refresh_token\":\"([^\"]+)\"')\n\
           if t then table.insert(tokens, t) end\n\
         end\n"
    )
}

// -------------------------------------------------------------- scenarios

struct Row {
    name: &'static str,
    outcome: Outcome,
    ceiling: Option<(&'static str, f64)>,
    rss: (f64, f64),
}

fn fill_revocations(server: &Server, entries: u64) {
    let sql = format!(
        "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {entries}) \
         SELECT 'load-' || x, 'load', 4000000000, 1900000000 FROM n"
    );
    let db = tessera::store::Database::open(&server.database_url, 1, Duration::from_secs(30))
        .expect("database");
    let mut conn = db.conn().expect("connection");
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut *conn)
        .expect("fill the revocation list");
}

/// `entries` clients `load-N` with secret `tsec_load_N`, stored directly
/// (the CLI would take minutes for 100,000), as the CLI stores them.
fn fill_clients(server: &Server, entries: u64) {
    let db = tessera::store::Database::open(&server.database_url, 1, Duration::from_secs(30))
        .expect("database");
    let mut conn = db.conn().expect("connection");
    let postgres = server.database_url.starts_with("postgres");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let ids: Vec<u64> = (0..entries).collect();
    for chunk in ids.chunks(500) {
        let clients = chunk
            .iter()
            .map(|i| {
                format!(
                    "('load-{i}', 'load', 'read', 'https://api.example.com', 3600, FALSE, FALSE, 1900000000, 1900000000)"
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let secrets = chunk
            .iter()
            .map(|i| {
                let hash = hex(
                    tessera::token::secret::SecretHash::of(&format!("tsec_load_{i}")).as_bytes(),
                );
                let literal = if postgres {
                    format!("'\\x{hash}'::bytea")
                } else {
                    format!("X'{hash}'")
                };
                format!("('secret-{i}', 'load-{i}', {literal}, 1900000000)")
            })
            .collect::<Vec<_>>()
            .join(", ");
        for sql in [
            format!(
                "INSERT INTO clients (id, name, scopes, audiences, access_token_ttl, refresh_tokens, \
                 can_introspect, created_at, updated_at) VALUES {clients}"
            ),
            format!(
                "INSERT INTO client_secrets (id, client_id, secret_hash, created_at) VALUES {secrets}"
            ),
        ] {
            diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut *conn)
                .expect("fill the clients");
        }
    }
}

/// Client credentials for a client picked at random among `entries`, sent
/// in the body (`client_secret_post`), so each request can name another.
fn many_clients_script(entries: u64) -> String {
    format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
         request = function()\n\
           local i = math.random(0, {last})\n\
           return wrk.format(nil, \"/oauth2/token\", nil, \"grant_type=client_credentials&client_id=load-\" .. i .. \"&client_secret=tsec_load_\" .. i)\n\
         end\n",
        last = entries.saturating_sub(1)
    )
}

fn main() {
    if std::env::args().any(|a| a == "--ceiling") {
        let run = Duration::from_secs(3);
        let (es_enc, es_ver) = ceiling(SigningAlgorithm::Es256, run);
        let (ed_enc, ed_ver) = ceiling(SigningAlgorithm::EdDsa, run);
        println!(
            "{}",
            serde_json::json!({"es256": [es_enc, es_ver], "eddsa": [ed_enc, ed_ver]})
        );
        return;
    }
    let (server_cpu, client_cpu) = (
        setting("LOAD_SERVER_CPU", "0"),
        setting("LOAD_CLIENT_CPU", "1"),
    );
    println!(
        "server pinned to CPU {server_cpu} (1 worker), wrk pinned to CPU {client_cpu}: {} connections, {} s per scenario, RUST_LOG={}",
        number("LOAD_CONNECTIONS", 64),
        number("LOAD_DURATION", 10),
        setting("LOAD_RUST_LOG", "warn"),
    );
    // The ceiling, measured alone on the server's core.
    let out = Command::new("taskset")
        .args(["-c", &server_cpu])
        .arg(std::env::current_exe().expect("this bench"))
        .arg("--ceiling")
        .output()
        .expect("the ceiling run");
    let c: Value = serde_json::from_slice(&out.stdout).expect("ceiling JSON");
    let (encode, verify) = (
        c["es256"][0].as_f64().unwrap_or(f64::NAN),
        c["es256"][1].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "one-core ceiling (ring): ES256 {encode:.0} JWT encodes/s, {verify:.0} verifies/s; EdDSA {:.0} encodes/s, {:.0} verifies/s",
        c["eddsa"][0].as_f64().unwrap_or(f64::NAN),
        c["eddsa"][1].as_f64().unwrap_or(f64::NAN),
    );

    let only: Option<Vec<String>> = std::env::var("LOAD_SCENARIOS")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == name));
    let scratch = tempfile::tempdir().expect("temp dir");
    let sqlite = |dir: &Path| format!("sqlite://{}", dir.join("load.db").display());
    let mut rows: Vec<Row> = Vec::new();
    let mut record = |name: &'static str,
                      server: &Server,
                      outcome: Outcome,
                      ceiling: Option<(&'static str, f64)>| {
        let rss = server.memory();
        println!(
            "{name:<28} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {}  RSS {:.0} MiB (peak {:.0})",
            outcome.rps, outcome.p50, outcome.p99, outcome.max, outcome.errors, rss.0, rss.1
        );
        rows.push(Row {
            name,
            outcome,
            ceiling,
            rss,
        });
    };

    let db_dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(sqlite(db_dir.path()), &server_cpu, &load_env());
    let token_url = format!("{}/oauth2/token", server.base);
    if wanted("jwks") {
        let o = wrk(
            &format!("{}/.well-known/jwks.json", server.base),
            "",
            scratch.path(),
        );
        record("jwks", &server, o, None);
    }
    if wanted("client_credentials") {
        let auth = server.client(&["--no-refresh-tokens"]);
        let o = wrk(
            &token_url,
            &post_script("/oauth2/token", &auth, "grant_type=client_credentials"),
            scratch.path(),
        );
        record(
            "client_credentials",
            &server,
            o,
            Some(("ES256 encode", encode)),
        );
    }
    if wanted("client_credentials_many_clients") {
        let entries = number("LOAD_CLIENTS", 100_000);
        let t = Instant::now();
        fill_clients(&server, entries);
        println!(
            "  ({entries} clients stored in {:.1} s)",
            t.elapsed().as_secs_f64()
        );
        let o = wrk(&token_url, &many_clients_script(entries), scratch.path());
        record(
            "client_credentials_many_clients",
            &server,
            o,
            Some(("ES256 encode", encode)),
        );
    }
    if wanted("client_credentials_refresh") {
        let auth = server.client(&[]);
        let o = wrk(
            &token_url,
            &post_script("/oauth2/token", &auth, "grant_type=client_credentials"),
            scratch.path(),
        );
        record(
            "client_credentials_refresh",
            &server,
            o,
            Some(("ES256 encode", encode)),
        );
    }
    if wanted("refresh") {
        let auth = server.client(&[]);
        let tokens: Vec<String> = (0..256)
            .map(|_| {
                server.post("/oauth2/token", &auth, "grant_type=client_credentials")["refresh_token"]
                    .as_str().expect("a refresh token").to_owned()
            })
            .collect();
        let o = wrk(&token_url, &refresh_script(&auth, &tokens), scratch.path());
        record("refresh", &server, o, Some(("ES256 encode", encode)));
    }
    if wanted("introspect") {
        let entries = number("LOAD_REVOCATIONS", 1_000_000);
        let t = Instant::now();
        fill_revocations(&server, entries);
        println!(
            "  ({entries} revocation entries stored in {:.1} s)",
            t.elapsed().as_secs_f64()
        );
        let rs = server.client(&["--can-introspect", "--no-refresh-tokens"]);
        let holder = server.client(&["--no-refresh-tokens"]);
        let token =
            server.post("/oauth2/token", &holder, "grant_type=client_credentials")["access_token"]
                .as_str()
                .expect("a token")
                .to_owned();
        let o = wrk(
            &format!("{}/oauth2/introspect", server.base),
            &post_script("/oauth2/introspect", &rs, &format!("token={token}")),
            scratch.path(),
        );
        record(
            "introspect_1m_revocations",
            &server,
            o,
            Some(("ES256 verify", verify)),
        );
    }
    drop(server);

    let pg = std::env::var("LOAD_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok();
    if let Some(admin_url) = pg.filter(|_| wanted("client_credentials_refresh_postgres")) {
        let name = format!("tessera_load_{}", uuid::Uuid::new_v4().simple());
        let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&admin_url)
            .expect("PostgreSQL");
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("CREATE DATABASE \"{name}\"")),
            &mut admin,
        )
        .expect("create");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => admin_url.clone(),
        };
        {
            let server = Server::start(url, &server_cpu, &load_env());
            let auth = server.client(&[]);
            let o = wrk(
                &format!("{}/oauth2/token", server.base),
                &post_script("/oauth2/token", &auth, "grant_type=client_credentials"),
                scratch.path(),
            );
            record(
                "client_credentials_refresh_postgres",
                &server,
                o,
                Some(("ES256 encode", encode)),
            );
        }
        let _ = diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")),
            &mut admin,
        );
    }

    println!(
        "\n| scenario | req/s | vs one-core ceiling | p50 ms | p99 ms | max ms | errors | RSS MiB (peak) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let ratio = row.ceiling.map_or(String::new(), |(what, c)| {
            format!("{:.0} % of {what}", 100.0 * row.outcome.rps / c)
        });
        println!(
            "| {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} ({:.0}) |",
            row.name,
            row.outcome.rps,
            ratio,
            row.outcome.p50,
            row.outcome.p99,
            row.outcome.max,
            row.outcome.errors,
            row.rss.0,
            row.rss.1
        );
    }
}
