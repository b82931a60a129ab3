//! The `tessera` command line. Every command reads the same settings
//! (defaults, `tessera.toml`, `TESSERA_*`) and works directly on the
//! database, so client management works with the server stopped.
//!
//! Output contract: with `--json`, stdout carries exactly one JSON document
//! and nothing else; messages go to stderr. Exit codes: 0 success, 1 the
//! operation failed (no such client, database error), 2 bad usage or
//! configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::clients::{self, ClientError, ClientSpec};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::startup::{self, Application};
use crate::store::Database;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "OAuth 2.0 token server for machine-to-machine JWTs"
)]
pub struct Cli {
    /// Configuration file (default: ./tessera.toml if present; or TESSERA_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log, newest first.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events of this client.
    #[arg(long = "client", value_name = "ID")]
    pub client: Option<String>,
    /// Only events since T: Unix seconds, or a duration ago (24h, 30m, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Check a token against this issuer (signature, issuer, expiry,
    /// audience, revocation, its client) and name every problem found.
    /// Exits 0 when it is valid, 1 when it is not.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The access token (a JWT) or refresh token.
    pub token: String,
    /// Require this audience: the API the token is for. Without it the
    /// audience is not checked, and the answer says so.
    #[arg(long, value_name = "URI")]
    pub audience: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state and schedule.
    List(JsonFlag),
    /// Start a rotation now: a new key is published, and signs once the
    /// pre-publication lead has passed.
    Rotate(JsonFlag),
    /// Emergency: take a key out of the JWKS and out of signing at once.
    Retire(RetireArgs),
    /// Import a PEM PKCS#8 private key (ES256, EdDSA, or RS256 >= 2048 bits)
    /// as the next signing key, pre-published like a rotation.
    Import(ImportArgs),
    /// Print the public JWKS document.
    ExportJwks,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The key's kid. A kid is base64url, so it may begin with `-`: it is
    /// taken as the kid, never as an option.
    #[arg(allow_hyphen_values = true)]
    pub kid: String,
    /// Required: retirement takes effect immediately, breaking every token
    /// the key signed (scheduled retirement happens through rotation).
    #[arg(long)]
    pub now: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The PEM file (`-----BEGIN PRIVATE KEY-----`).
    pub file: PathBuf,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret once.
    Create(CreateArgs),
    /// List clients.
    List(JsonFlag),
    /// Show one client.
    Show(IdArgs),
    /// Change a client's name, scopes, audiences, lifetimes or permissions.
    Update(UpdateArgs),
    /// Let a disabled client obtain tokens again (tokens it held stay revoked).
    Enable(IdArgs),
    /// Disable a client: it can no longer obtain tokens, and everything it
    /// holds is revoked.
    Disable(IdArgs),
    /// Revoke every refresh token of a client and every access token issued
    /// to it until now (the client keeps working with new tokens).
    RevokeAll(IdArgs),
    /// Give a client a new secret (shown once); the old one keeps working
    /// for the grace period.
    RotateSecret(RotateSecretArgs),
    /// Delete a client and its secrets.
    Delete(IdArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name for people to recognise the client by.
    #[arg(long)]
    pub name: String,
    /// Space-separated scopes the client may request.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// An audience (resource URI) the client may request; repeat for more.
    /// The first is the default.
    #[arg(long = "audience", value_name = "URI")]
    pub audiences: Vec<String>,
    /// Access-token lifetime (default: TESSERA_ACCESS_TOKEN_TTL, 300).
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<i64>,
    /// Issue refresh tokens with client-credentials tokens (the default).
    #[arg(long, overrides_with = "no_refresh_tokens")]
    pub refresh_tokens: bool,
    /// Issue no refresh tokens: the client re-authenticates for each token,
    /// as RFC 6749 §4.4.3 recommends.
    #[arg(long, overrides_with = "refresh_tokens")]
    pub no_refresh_tokens: bool,
    /// Idle lifetime of the client's refresh tokens (default: TESSERA_REFRESH_TOKEN_TTL).
    #[arg(long, value_name = "SECONDS")]
    pub refresh_token_ttl: Option<i64>,
    /// Absolute lifetime of a refresh-token family (default: TESSERA_REFRESH_FAMILY_TTL).
    #[arg(long, value_name = "SECONDS")]
    pub refresh_family_ttl: Option<i64>,
    /// Let the client introspect any token and read the revocation feed
    /// (for resource servers).
    #[arg(long)]
    pub can_introspect: bool,
    /// Only accept the client's requests from this IP address or CIDR block
    /// (IPv4 or IPv6); repeat for more.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allowed_networks: Vec<String>,
    /// Use this client id instead of a generated UUID (it may begin with
    /// `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub id: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The client id (taken as the id even when it begins with `-`, which
    /// `--id` allows).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Replaces the scopes.
    #[arg(long)]
    pub scope: Option<String>,
    /// Replaces the audiences (repeat for several).
    #[arg(long = "audience", value_name = "URI")]
    pub audiences: Vec<String>,
    /// Removes every audience (the server's default audience applies).
    #[arg(long, conflicts_with = "audiences")]
    pub clear_audiences: bool,
    #[arg(long, value_name = "SECONDS")]
    pub access_token_ttl: Option<i64>,
    #[arg(long, conflicts_with = "no_refresh_tokens")]
    pub refresh_tokens: bool,
    #[arg(long)]
    pub no_refresh_tokens: bool,
    #[arg(long, value_name = "SECONDS")]
    pub refresh_token_ttl: Option<i64>,
    #[arg(long, value_name = "SECONDS")]
    pub refresh_family_ttl: Option<i64>,
    /// Grant the introspection permission.
    #[arg(long, conflicts_with = "no_introspect")]
    pub can_introspect: bool,
    /// Withdraw the introspection permission.
    #[arg(long)]
    pub no_introspect: bool,
    /// Replaces the allowed networks (repeat for several).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allowed_networks: Vec<String>,
    /// Lifts the network restriction.
    #[arg(long, conflicts_with = "allowed_networks")]
    pub clear_networks: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RotateSecretArgs {
    /// The client id (taken as the id even when it begins with `-`, which
    /// `--id` allows).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// How long the old secret keeps working: `24h` (default), `30m`,
    /// `3600`; `0` stops it at once (for a compromised secret).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub grace: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The client id (taken as the id even when it begins with `-`, which
    /// `--id` allows).
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON on stdout and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tessera: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::Client(cmd) => client(&settings, cmd),
        Command::Keys(KeysCommand::Retire(RetireArgs { now: false, .. })) => {
            eprintln!(
                "tessera: pass --now: retirement takes the key out of the JWKS at once and breaks every \
                 token it signed; for a graceful change use `tessera keys rotate`"
            );
            ExitCode::from(2)
        }
        Command::Keys(cmd) => keys(&settings, cmd),
        Command::Token(TokenCommand::Inspect(args)) => inspect_token(&settings, args),
        Command::Audit(args) => audit(&settings, args),
    }
}

fn serve(settings: Settings) -> ExitCode {
    let settings_alg = settings.signing_alg.clone();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, Arc::new(SystemClock)).await?;
        let r = app.report();
        for version in &r.migrations.applied {
            log::info!("applied migration {version}");
        }
        match &r.kek_source {
            crate::keys::kek::KekSource::Created(path) => log::warn!(
                "created a new key-encryption key at {}: back it up; without it the signing keys cannot be opened",
                path.display()
            ),
            crate::keys::kek::KekSource::File(path) => {
                log::info!("key-encryption key: {}", path.display())
            }
            crate::keys::kek::KekSource::Environment => {
                log::info!("key-encryption key: from TESSERA_KEK")
            }
        }
        if let Some(kid) = &r.new_key {
            log::info!(
                "generated the first signing key ({}, kid {kid})",
                settings_alg
            );
        }
        if app.tls() {
            log::info!("serving HTTPS (TLS 1.2 and 1.3)");
        }
        if let Some(port) = app.metrics_port() {
            log::info!("metrics on port {port}, at /metrics only");
        }
        log::info!(
            "Tessera listening on port {}, issuer {} (signing key {})",
            app.port(),
            app.issuer(),
            r.active_kid
        );
        if r.clients == 0 {
            log::info!(
                "no clients yet; create one with: tessera client create --name my-service --scope \"read write\""
            );
        }
        app.run_until_stopped()
            .await
            .map_err(|e| startup::StartupError::Io(e.to_string()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(settings: &Settings) -> ExitCode {
    let db = match Database::open_single(
        &settings.database_url,
        std::time::Duration::from_secs(settings.db_timeout),
    ) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::FAILURE;
        }
    };
    match db.migrate() {
        Ok(report) if report.applied.is_empty() => {
            println!("{} database is up to date", db.backend().name());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for version in &report.applied {
                println!("applied {version}");
            }
            println!(
                "{} database migrated ({} migration(s))",
                db.backend().name(),
                report.applied.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client(settings: &Settings, cmd: ClientCommand) -> ExitCode {
    let result = (|| -> Result<(), ClientError> {
        let (db, _) = startup::open_database_for_command(settings)?;
        let mut conn = db.conn()?;
        let now = SystemClock.now();
        match cmd {
            ClientCommand::Create(args) => {
                let spec = ClientSpec {
                    id: args.id,
                    name: args.name,
                    scope: args.scope,
                    audiences: args.audiences,
                    access_token_ttl: args.access_token_ttl.unwrap_or(settings.access_token_ttl),
                    refresh_tokens: !args.no_refresh_tokens,
                    refresh_token_ttl: args.refresh_token_ttl,
                    refresh_family_ttl: args.refresh_family_ttl,
                    can_introspect: args.can_introspect,
                    allowed_networks: args.allowed_networks,
                };
                let created = clients::create(&mut conn, &spec, now)?;
                if args.output.json {
                    print_json(&serde_json::json!({
                        "client_id": created.client_id,
                        "client_secret": created.client_secret.expose(),
                    }));
                } else {
                    println!("client_id:     {}", created.client_id);
                    println!("client_secret: {}", created.client_secret.expose());
                    eprintln!(
                        "Store the secret now: Tessera keeps only its hash and cannot show it again."
                    );
                }
            }
            ClientCommand::List(out) => {
                let all = clients::list(&mut conn)?;
                if out.json {
                    print_json(&all);
                } else if all.is_empty() {
                    eprintln!("no clients");
                } else {
                    for c in all {
                        println!(
                            "{}\t{}\t{}\t{}",
                            c.client_id,
                            if c.disabled { "disabled" } else { "enabled" },
                            c.name,
                            c.scope
                        );
                    }
                }
            }
            ClientCommand::Show(args) => {
                let view = clients::show(&mut conn, &args.id)?;
                if args.output.json {
                    print_json(&view);
                } else {
                    println!("client_id:        {}", view.client_id);
                    println!("name:             {}", view.name);
                    println!("scope:            {}", view.scope);
                    println!("audiences:        {}", view.audiences.join(" "));
                    println!("access_token_ttl: {}s", view.access_token_ttl);
                    println!("refresh_tokens:   {}", view.refresh_tokens);
                    let ttl =
                        |t: Option<i64>| t.map_or("server default".to_owned(), |t| format!("{t}s"));
                    println!("refresh_token_ttl:  {}", ttl(view.refresh_token_ttl));
                    println!("refresh_family_ttl: {}", ttl(view.refresh_family_ttl));
                    println!("can_introspect:   {}", view.can_introspect);
                    println!(
                        "allowed_networks: {}",
                        if view.allowed_networks.is_empty() {
                            "anywhere".to_owned()
                        } else {
                            view.allowed_networks.join(" ")
                        }
                    );
                    let at =
                        |t: Option<i64>, none: &str| t.map_or(none.to_owned(), |t| t.to_string());
                    println!(
                        "tokens_valid_after: {}",
                        at(view.tokens_valid_after, "none")
                    );
                    println!("last_token_at:    {}", at(view.last_token_at, "never"));
                    println!("disabled:         {}", view.disabled);
                }
            }
            ClientCommand::Update(args) => {
                let change = clients::ClientUpdate {
                    name: args.name,
                    scope: args.scope,
                    audiences: if args.clear_audiences {
                        Some(Vec::new())
                    } else if args.audiences.is_empty() {
                        None
                    } else {
                        Some(args.audiences)
                    },
                    access_token_ttl: args.access_token_ttl,
                    refresh_tokens: match (args.refresh_tokens, args.no_refresh_tokens) {
                        (true, _) => Some(true),
                        (_, true) => Some(false),
                        _ => None,
                    },
                    refresh_token_ttl: args.refresh_token_ttl,
                    refresh_family_ttl: args.refresh_family_ttl,
                    can_introspect: match (args.can_introspect, args.no_introspect) {
                        (true, _) => Some(true),
                        (_, true) => Some(false),
                        _ => None,
                    },
                    allowed_networks: if args.clear_networks {
                        Some(Vec::new())
                    } else if args.allowed_networks.is_empty() {
                        None
                    } else {
                        Some(args.allowed_networks)
                    },
                };
                let view = clients::update(&mut conn, &args.id, &change, now)?;
                if args.output.json {
                    print_json(&view);
                } else {
                    println!("updated client {}", view.client_id);
                }
            }
            ClientCommand::Enable(args) => {
                let view = clients::enable(&mut conn, &args.id, now)?;
                if args.output.json {
                    print_json(&view);
                } else {
                    println!("enabled client {}", view.client_id);
                }
            }
            ClientCommand::Disable(args) => {
                let done = clients::disable(
                    &mut conn,
                    &args.id,
                    now,
                    clients::CutoffTiming::from_settings(settings),
                )?;
                if args.output.json {
                    print_json(&clients::DisabledClient {
                        client: clients::show(&mut conn, &args.id)?,
                        refresh_families_revoked: done.families_revoked,
                    });
                } else {
                    println!("disabled client {}", args.id);
                }
            }
            ClientCommand::RevokeAll(args) => {
                let done = clients::revoke_all(
                    &mut conn,
                    &args.id,
                    now,
                    clients::CutoffTiming::from_settings(settings),
                )?;
                if args.output.json {
                    print_json(&serde_json::json!({
                        "client_id": args.id,
                        "tokens_valid_after": done.tokens_valid_after,
                        "refresh_families_revoked": done.families_revoked,
                    }));
                } else {
                    println!(
                        "revoked {} refresh famil{} and every access token issued to {} until now",
                        done.families_revoked,
                        if done.families_revoked == 1 {
                            "y"
                        } else {
                            "ies"
                        },
                        args.id
                    );
                }
            }
            ClientCommand::RotateSecret(args) => {
                let grace =
                    clients::parse_duration(&args.grace).ok_or_else(|| ClientError::Invalid {
                        field: "--grace",
                        message: format!("{:?} is not a duration like 24h, 30m or 0", args.grace),
                    })?;
                let (secret, rotation) = clients::rotate_secret(&mut conn, &args.id, grace, now)?;
                if args.output.json {
                    print_json(&serde_json::json!({
                        "client_id": args.id,
                        "client_secret": secret.expose(),
                        "previous_secret_expires_at": rotation.previous_expires_at,
                    }));
                } else {
                    println!("client_id:     {}", args.id);
                    println!("client_secret: {}", secret.expose());
                    eprintln!(
                        "Store the secret now: it is shown only once. The previous secret works until {} ({} s from now).",
                        rotation.previous_expires_at,
                        rotation.previous_expires_at - now
                    );
                }
            }
            ClientCommand::Delete(args) => {
                clients::delete(
                    &mut conn,
                    &args.id,
                    now,
                    clients::CutoffTiming::from_settings(settings),
                )?;
                if args.output.json {
                    print_json(&serde_json::json!({ "client_id": args.id, "deleted": true }));
                } else {
                    println!("deleted client {}", args.id);
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ ClientError::Invalid { .. }) => {
            eprintln!("tessera: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keys(settings: &Settings, cmd: KeysCommand) -> ExitCode {
    use crate::keys::{KeyEncryptionKey, KeyError, import, keyset, rotation};
    use crate::store::signing_keys;

    let result = (|| -> Result<(), KeyError> {
        let policy = settings
            .rotation_policy()
            .map_err(|e| KeyError::Rotation(e.to_string()))?;
        let (db, _) = startup::open_database_for_command(settings)?;
        let mut conn = db.conn()?;
        let now = SystemClock.now();
        let kek = || -> Result<KeyEncryptionKey, KeyError> {
            KeyEncryptionKey::load(&settings.keys_dir, settings.kek.as_deref())?
                .map(|(kek, _)| kek)
                .ok_or_else(|| {
                    KeyError::Kek(format!(
                        "no key-encryption key at {} and no TESSERA_KEK: start the server once, or point TESSERA_KEYS_DIR at the right folder",
                        settings.keys_dir.join(crate::keys::kek::KEK_FILE).display()
                    ))
                })
        };
        let describe = |row: &signing_keys::SigningKeyRow| keyset::KeySummary::of(row, now);
        match cmd {
            KeysCommand::List(out) => {
                let rows = signing_keys::list_keys(&mut conn)?;
                if out.json {
                    print_json(&rows.iter().map(describe).collect::<Vec<_>>());
                } else {
                    for row in &rows {
                        let t = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
                        // `created` comes last so that scripts cutting the
                        // earlier fields by position keep working.
                        println!(
                            "{}\t{}\t{}\tactivates {}\tretires {}\tremoved {}\tcreated {}",
                            row.kid,
                            row.alg,
                            keyset::key_state(row, now),
                            row.activates_at,
                            t(row.retires_at),
                            t(row.removes_at),
                            row.created_at
                        );
                    }
                }
            }
            KeysCommand::Rotate(out) => {
                let row = rotation::rotate_now(&mut conn, &kek()?, &policy, now, None)?;
                if out.json {
                    print_json(&describe(&row));
                } else {
                    println!(
                        "made key {}; it enters the JWKS at {} and signs from {} (in {} s), when the current key retires",
                        row.kid, row.publishes_at, row.activates_at, policy.lead
                    );
                }
            }
            KeysCommand::Retire(args) => {
                let done = rotation::retire_now(&mut conn, &kek()?, &policy, &args.kid, now)?;
                if args.output.json {
                    print_json(
                        &serde_json::json!({"kid": done.kid, "retired_at": now, "successor": done.successor}),
                    );
                } else {
                    println!("retired key {} now", done.kid);
                    if let Some(s) = done.successor {
                        println!(
                            "key {s} signs from now on (not pre-published: validators must re-fetch the JWKS)"
                        );
                    }
                    eprintln!(
                        "Running servers pick this up within TESSERA_KEY_CHECK_INTERVAL ({} s); restart them to apply it at once.",
                        settings.key_check_interval
                    );
                }
            }
            KeysCommand::Import(args) => {
                let text = std::fs::read_to_string(&args.file).map_err(|e| {
                    KeyError::Rotation(format!("cannot read {}: {e}", args.file.display()))
                })?;
                let (alg, der) = import::pkcs8_from_pem(&text)?;
                let row =
                    rotation::rotate_now(&mut conn, &kek()?, &policy, now, Some((alg, &der)))?;
                if args.output.json {
                    print_json(&describe(&row));
                } else {
                    println!(
                        "imported {} key {}; it signs from {} (in {} s)",
                        row.alg, row.kid, row.activates_at, policy.lead
                    );
                }
            }
            KeysCommand::ExportJwks => {
                let keys: Vec<serde_json::Value> = signing_keys::list_keys(&mut conn)?
                    .iter()
                    .filter(|r| r.publishes_at <= now && r.removes_at.is_none_or(|t| now < t))
                    .map(|r| serde_json::from_str(&r.public_jwk))
                    .collect::<Result<_, _>>()
                    .map_err(|e| KeyError::Rotation(format!("a stored JWK is unreadable: {e}")))?;
                print_json(&serde_json::json!({ "keys": keys }));
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

fn audit(settings: &Settings, args: AuditArgs) -> ExitCode {
    let now = SystemClock.now();
    let since = match args.since.as_deref() {
        None => None,
        // A number past 2001 is an instant; anything else a duration ago.
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n > 1_000_000_000 => Some(n),
            _ => match clients::parse_duration(t) {
                Some(ago) => Some(now - ago),
                None => {
                    eprintln!(
                        "tessera: --since: {t:?} is neither Unix seconds nor a duration like 24h"
                    );
                    return ExitCode::from(2);
                }
            },
        },
    };
    if !(1..=10_000).contains(&args.limit) {
        eprintln!("tessera: --limit: must be between 1 and 10000");
        return ExitCode::from(2);
    }
    let result = startup::open_database_for_command(settings).and_then(|(db, _)| {
        crate::audit::list(&mut *db.conn()?, args.client.as_deref(), since, args.limit)
    });
    match result {
        Ok(events) => {
            if args.output.json {
                print_json(&events);
            } else {
                for e in events {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        e.at,
                        e.kind,
                        e.client_id.as_deref().unwrap_or("-"),
                        e.source.as_deref().unwrap_or("-"),
                        e.detail.as_deref().unwrap_or("")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect_token(settings: &Settings, args: InspectArgs) -> ExitCode {
    let issuer = match (&settings.issuer, settings.bind_addr()) {
        (Some(issuer), _) => issuer.clone(),
        (None, Ok(addr)) => startup::default_issuer(addr, settings.tls()),
        (None, Err(e)) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    let result = startup::open_database_for_command(settings).and_then(|(db, _)| {
        crate::inspect::inspect(
            &mut *db.conn()?,
            &args.token,
            &issuer,
            args.audience.as_deref(),
            settings.clock_leeway,
            SystemClock.now(),
        )
    });
    let inspection = match result {
        Ok(i) => i,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.output.json {
        print_json(&inspection);
    } else {
        println!("kind:    {}", inspection.kind.replace('_', " "));
        if let Some(claims) = &inspection.claims {
            for name in ["client_id", "scope", "aud", "iat", "exp", "jti"] {
                if let Some(v) = claims.get(name) {
                    println!("{:<8} {v}", format!("{name}:"));
                }
            }
        }
        if inspection.valid {
            println!("verdict: valid for issuer {issuer}");
        } else {
            println!("verdict: NOT valid");
            for p in &inspection.problems {
                println!("  - {p}");
            }
        }
        for n in &inspection.not_checked {
            println!("not checked: {n}");
        }
    }
    if inspection.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints `value` as the one JSON document on stdout. The command's work is
/// done by now; if its answer cannot be written (a closed pipe, say), exit 1
/// rather than panic, so a script sees the failure.
fn print_json<T: serde::Serialize>(value: &T) {
    use std::io::Write;
    let written = serde_json::to_string_pretty(value)
        .map_err(|e| format!("cannot encode JSON: {e}"))
        .and_then(|text| {
            writeln!(std::io::stdout().lock(), "{text}")
                .map_err(|e| format!("cannot write to stdout: {e}"))
        });
    if let Err(e) = written {
        eprintln!("tessera: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, ClientCommand, Command, KeysCommand};

    /// A kid is base64url and a client id may begin with `-` too: such a
    /// value is the argument, in any position, not an unknown option.
    #[test]
    fn ids_and_kids_beginning_with_a_hyphen_are_arguments() {
        for argv in [
            ["tessera", "keys", "retire", "-Lq3", "--now"],
            ["tessera", "keys", "retire", "--now", "-Lq3"],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let Some(Command::Keys(KeysCommand::Retire(args))) = cli.command else {
                panic!("not keys retire");
            };
            assert_eq!((args.kid.as_str(), args.now), ("-Lq3", true));
        }
        let cli = Cli::try_parse_from(["tessera", "client", "disable", "-svc", "--json"])
            .expect("parses");
        let Some(Command::Client(ClientCommand::Disable(args))) = cli.command else {
            panic!("not client disable");
        };
        assert_eq!(args.id, "-svc");
        let cli =
            Cli::try_parse_from(["tessera", "client", "create", "--name", "n", "--id", "-svc"])
                .expect("parses");
        let Some(Command::Client(ClientCommand::Create(args))) = cli.command else {
            panic!("not client create");
        };
        assert_eq!(args.id.as_deref(), Some("-svc"));
    }
}
