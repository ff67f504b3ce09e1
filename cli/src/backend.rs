//! `mancard backend`: the issuer's reference backend.
//!
//! ```text
//! mancard backend serve --db FILE [--listen 127.0.0.1:8080] [--sandbox] [--public-url URL]
//!     [--sandbox-gateway-url URL]                   (sandbox: the gateway-sandbox process)
//!     [--sms-url URL --sms-template NAME] [--sms-api-key-env VAR]      (production: SMS)
//!     [--gateway-url URL --gateway-terminal ID] [--gateway-api-key-env VAR]  (production: IPG)
//!     [--provider-timeout-secs N]
//! (every --db below is also a SQLite FILE or a postgres:// URL with --keys FILE, as for serve)
//! mancard backend keys list --db FILE
//! mancard backend keys rotate --db FILE          (while the server is stopped; or use
//!                                                 POST /v1/admin/issuer-keys/rotate)
//! mancard backend validators add --db FILE --id N --public-key HEX [--operator N] [--line L]...
//! mancard backend validators deny --db FILE --id N
//! mancard backend audit --db FILE
//! mancard backend fraud list --db FILE [--status open|resolved|all]
//! mancard backend fraud show --db FILE ID
//! mancard backend fraud resolve --db FILE ID --dismiss|--confirm --note TEXT --operator NAME
//! mancard backend audit-log --db FILE [--expect-head HEX] [--json]
//! mancard backend operator-token --name NAME --scope SCOPE... [--add-to FILE]
//! ```
//!
//! (The fraud commands are also the admin API: `GET /v1/admin/fraud`, `GET
//! /v1/admin/fraud/{id}`, `POST /v1/admin/fraud/{id}/resolve`.)
//!
//! The operators of `/v1/admin/*` (names, scopes, token digests, the two-person rule's
//! limits) come from the file given with `--operators` (format in
//! `mancard_backend::operators`); tokens never appear on a command line or in the file.

use crate::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use mancard_api::admin::{FraudResolution, FraudStatusFilter, ResolveFraudRequest};
use mancard_api::FraudCase;
use mancard_backend::{Backend, BackendConfig, Engine};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "backend_operators.rs"]
mod operators;

#[derive(Args)]
pub struct BackendArgs {
    #[command(subcommand)]
    command: BackendCommand,
}

#[derive(Subcommand)]
enum BackendCommand {
    /// Serve the HTTP API until SIGTERM or ctrl-c (graceful shutdown).
    Serve {
        /// SQLite database file (created if missing; the issuer key file is then
        /// `<db>.issuer-keys.json`), or a PostgreSQL URL `postgres://…` (several instances may
        /// share it; `--keys` is then required). Also read from MANCARD_DB.
        #[arg(long, env = "MANCARD_DB", hide_env_values = true)]
        db: String,
        /// The issuer key file (required with a PostgreSQL --db; every instance sharing the
        /// database needs the same file).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Connections in the PostgreSQL pool (each instance has its own; the server's
        /// max_connections must cover every instance's).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
        db_pool: u16,
        /// Writes that move money (settlement, sync, top-up credit) at once on PostgreSQL, at
        /// most --db-pool (default: the cores this process may run on; a database with cores
        /// of its own is kept busier by more).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        db_money_writes: Option<u16>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Sandbox mode: one-time codes are logged and readable at /sandbox/otp; top-ups go to
        /// the sandbox payment gateway (started on a loopback port unless
        /// --sandbox-gateway-url names one). Without it, real providers must be configured.
        #[arg(long)]
        sandbox: bool,
        /// Base URL put in payment and callback links (default http://<listen address>).
        #[arg(long)]
        public_url: Option<String>,
        /// Operators file (JSON: names, scopes, token digests, approval limits); the admin
        /// endpoints are off without it. Make entries with `mancard backend operator-token`.
        #[arg(long)]
        operators: Option<PathBuf>,
        /// Certificate lifetime, hours.
        #[arg(long, default_value_t = 72)]
        cert_lifetime_hours: i64,
        /// Cap of a certificate's offline allowance, rials (the balance caps it too).
        #[arg(long, default_value_t = 500_000)]
        max_offline_amount: i64,
        /// Counters per certificate.
        #[arg(long, default_value_t = mancard_backend::DEFAULT_COUNTERS_PER_CERT)]
        counters_per_cert: u32,
        /// The SMS and payment providers (production mode needs real ones).
        #[command(flatten)]
        providers: Box<crate::providers::ProviderArgs>,
        #[command(flatten)]
        edge: Box<EdgeArgs>,
    },
    /// Issuer keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Validators.
    Validators {
        #[command(subcommand)]
        command: ValidatorsCommand,
    },
    /// Check the ledger invariants of a database.
    Audit {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Fraud cases: list, show (with the evidence), resolve.
    Fraud {
        #[command(subcommand)]
        command: FraudCommand,
    },
    /// Print the operator log and check its hash chain (exit 1 if broken).
    AuditLog(operators::AuditLogArgs),
    /// Make a new operator token (printed once) and its operators-file entry.
    OperatorToken(operators::OperatorTokenArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Open,
    Resolved,
    All,
}

#[derive(Subcommand)]
enum FraudCommand {
    /// List fraud cases (open ones by default), oldest first.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, value_enum, default_value = "open")]
        status: StatusArg,
    },
    /// Show a case with its evidence (hex; `mancard inspect HEX` decodes it) decoded.
    Show {
        #[command(flatten)]
        db: DbArgs,
        id: i64,
    },
    /// Resolve a case: --confirm keeps the device revoked (the rider provisions a new
    /// device), --dismiss lifts the revocation; the account is unfrozen once none of its cases
    /// is open. Resolving again the same way changes nothing.
    Resolve {
        #[command(flatten)]
        db: DbArgs,
        id: i64,
        /// A false alarm: lift the device's revocation.
        #[arg(long, conflicts_with = "confirm", required_unless_present = "confirm")]
        dismiss: bool,
        /// The fraud is real: the device stays revoked.
        #[arg(long)]
        confirm: bool,
        /// Why (1 to 500 bytes).
        #[arg(long)]
        note: String,
        /// Who resolves it.
        #[arg(long)]
        operator: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List issuer keys (public halves) and the trust anchor line for validators.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add a new issuer key and retire the current one for new certificates.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ValidatorsCommand {
    /// Register (or re-key) a validator and print its issuer-signed certificate (hex: install
    /// it with `mancard validator install-certificate`).
    Add {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        id: u32,
        /// Uncompressed SEC1 P-256 public key, hex.
        #[arg(long)]
        public_key: String,
        /// The transit operator that runs it (default 1).
        #[arg(long)]
        operator: Option<u32>,
        /// A line it may charge for (repeat, at most 3; none: any line).
        #[arg(long = "line")]
        lines: Vec<u32>,
    },
    /// Put a validator on the validator deny list (phones stop answering it; its challenges
    /// signed from now on are not charged).
    Deny {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        id: u32,
    },
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

/// Says on stderr (once) which database a command acts on when no `--db` was given and
/// `MANCARD_DB` named it: an operator running `keys rotate` or `validators deny` should not act
/// on a database left in the environment (production's, say) without being told.
pub(crate) fn say_where_db_came_from(db: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    let named = std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        a == "--db" || a.starts_with("--db=")
    });
    if named || std::env::var_os("MANCARD_DB").is_none() {
        return;
    }
    SAID.call_once(|| eprintln!("database from MANCARD_DB: {}", shown_db(db)));
}

/// A database target as it may be shown: a file's path; a PostgreSQL URL's user, host, port
/// and database (never its password or parameters); of a conninfo only its host, port,
/// database and user, and nothing when it quotes a value (a quoted password could hold
/// `host=`).
fn shown_db(db: &str) -> String {
    if mancard_backend::store::database_target_problem(db).is_some() {
        return "(not a database target; not shown)".into();
    }
    if !mancard_backend::store::is_postgres_url(db) {
        return db.to_string();
    }
    if db.contains("://") {
        return match reqwest::Url::parse(db) {
            Ok(u) => {
                let user = match u.username() {
                    "" => String::new(),
                    name => format!("{name}@"),
                };
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                let host = u.host_str().unwrap_or_default();
                format!("{}://{user}{host}{port}{}", u.scheme(), u.path())
            }
            Err(_) => "a PostgreSQL URL (not shown)".into(),
        };
    }
    if db.contains(['\'', '"', '\\']) {
        return "a PostgreSQL conninfo (not shown)".into();
    }
    let shown: Vec<&str> = db
        .split_whitespace()
        .filter(|kv| {
            ["host=", "hostaddr=", "port=", "dbname=", "user="]
                .iter()
                .any(|k| kv.starts_with(k))
        })
        .collect();
    format!("PostgreSQL {}", shown.join(" "))
}

/// The configuration of `--db` (a SQLite file, or a PostgreSQL URL, which needs `--keys`).
fn database_config(db: String, keys: Option<PathBuf>) -> Result<BackendConfig, String> {
    say_where_db_came_from(&db);
    if let Some(why) = mancard_backend::store::database_target_problem(&db) {
        return Err(why.into());
    }
    if mancard_backend::store::is_postgres_url(&db) {
        let Some(keys) = keys else {
            return Err("a PostgreSQL --db needs --keys FILE (the issuer key file)".into());
        };
        let mut cfg = BackendConfig::sandbox(keys.clone());
        cfg.database_url = Some(mancard_backend::DatabaseUrl(db));
        cfg.keys_path = Some(keys);
        Ok(cfg)
    } else {
        let mut cfg = BackendConfig::sandbox(PathBuf::from(db));
        cfg.keys_path = keys;
        Ok(cfg)
    }
}

/// The database of an offline subcommand: the same `--db` (and `--keys`) as `serve`.
#[derive(Args)]
pub struct DbArgs {
    /// SQLite database file, or a PostgreSQL URL `postgres://…` (`--keys` is then required).
    /// Also read from MANCARD_DB.
    #[arg(long, env = "MANCARD_DB", hide_env_values = true)]
    db: String,
    /// The issuer key file (required with a PostgreSQL --db; default with a SQLite one:
    /// `<db>.issuer-keys.json`).
    #[arg(long)]
    keys: Option<PathBuf>,
}

impl DbArgs {
    /// "no database at …" for a SQLite file that does not exist (a PostgreSQL URL: `None`).
    fn missing_file(&self) -> Option<String> {
        say_where_db_came_from(&self.db);
        if let Some(why) = mancard_backend::store::database_target_problem(&self.db) {
            return Some(why.to_string());
        }
        let sqlite = !mancard_backend::store::is_postgres_url(&self.db);
        (sqlite && !std::path::Path::new(&self.db).is_file())
            .then(|| format!("no database at {}", self.db))
    }
}

/// The engine of an offline subcommand, on an existing database only: a mistyped path
/// would otherwise become a new, empty database with a new issuer key, whose audit passes.
fn offline_engine(db: DbArgs) -> Result<Engine, Box<dyn std::error::Error>> {
    if let Some(missing) = db.missing_file() {
        return Err(format!("{missing} (`mancard backend serve` creates one)").into());
    }
    let cfg = BackendConfig {
        sandbox: false,
        ..database_config(db.db, db.keys)?
    };
    Ok(Engine::open(cfg, String::new())?)
}

fn print_keys(engine: &Engine) -> Result<(), Box<dyn std::error::Error>> {
    let keys = engine.keys()?;
    for k in &keys.keys {
        let state = if k.current {
            "current"
        } else if k.retired_at.is_some() {
            "retired"
        } else {
            "active"
        };
        println!(
            "key {:>3}  {state:<8} created {}  {}",
            k.key_id, k.created_at, k.public_key
        );
    }
    if let Some(k) = keys.keys.iter().find(|k| k.current) {
        println!(
            "trust anchor (validator init --trust-anchor FILE): {}:{}",
            k.key_id, k.public_key
        );
    }
    Ok(())
}

fn run_validators(command: ValidatorsCommand) -> CliResult {
    match command {
        ValidatorsCommand::Add {
            db,
            id,
            public_key,
            operator,
            lines,
        } => {
            let e = offline_engine(db)?;
            let r = e.register_validator(&mancard_api::RegisterValidatorRequest {
                validator_id: id,
                public_key,
                operator_id: operator,
                lines,
            })?;
            println!("validator {id} registered");
            let lines = if r.lines.is_empty() {
                "any line".to_string()
            } else {
                format!("lines {:?}", r.lines)
            };
            println!(
                "certificate (operator {}, {lines}, valid {}..{}):",
                r.operator_id, r.valid_from, r.valid_until
            );
            println!("{}", r.certificate);
            Ok(ExitCode::SUCCESS)
        }
        ValidatorsCommand::Deny { db, id } => {
            let e = offline_engine(db)?;
            let r = e.deny_validator(&mancard_api::DenyValidatorRequest { validator_id: id })?;
            println!(
                "validator {id} is on the validator deny list (since {})",
                r.denied_at
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn case_line(c: &FraudCase) -> String {
    let counter = c.counter.map_or("-".to_string(), |n| n.to_string());
    let state = match c.resolution {
        Some(r) => r.as_str(),
        None => c.status.as_str(),
    };
    format!(
        "case {:>4}  {state:<9} {:<20} account {} device {} counter {counter}  opened {}  {}",
        c.id,
        c.kind.as_str(),
        c.account_id,
        c.device_id,
        c.opened_at,
        c.detail
    )
}

fn run_fraud(command: FraudCommand) -> CliResult {
    match command {
        FraudCommand::List { db, status } => {
            let filter = match status {
                StatusArg::Open => FraudStatusFilter::Open,
                StatusArg::Resolved => FraudStatusFilter::Resolved,
                StatusArg::All => FraudStatusFilter::All,
            };
            let cases = offline_engine(db)?.list_fraud_cases(filter)?;
            if cases.is_empty() {
                println!("no {} fraud cases", filter.as_str());
            }
            for c in &cases {
                println!("{}", case_line(c));
            }
        }
        FraudCommand::Show { db, id } => {
            let d = offline_engine(db)?.fraud_case(id)?;
            println!("{}", case_line(&d.case));
            if let (Some(by), Some(at)) = (&d.case.resolved_by, d.case.resolved_at) {
                let note = d.case.note.as_deref().unwrap_or("");
                println!("resolved by {by} at {at}: {note}");
            }
            println!(
                "evidence (hex, decode with `mancard inspect`): {}",
                d.evidence
            );
            for line in &d.evidence_summary {
                println!("{line}");
            }
        }
        FraudCommand::Resolve {
            db,
            id,
            dismiss,
            confirm: _,
            note,
            operator,
        } => {
            let resolution = if dismiss {
                FraudResolution::Dismissed
            } else {
                FraudResolution::Confirmed
            };
            let req = ResolveFraudRequest {
                resolution,
                note,
                operator,
            };
            let r = offline_engine(db)?.resolve_fraud(id, &req)?;
            let what = if r.changed { "" } else { " already" };
            println!("case {id} is{what} {}", resolution.as_str());
            let frozen = if r.account_frozen {
                "still frozen (another case is open)"
            } else {
                "not frozen"
            };
            println!("account {}: {frozen}", r.case.account_id);
            let revoked = if r.device_revoked {
                "revoked"
            } else {
                "not revoked"
            };
            println!("device {}: {revoked}", r.case.device_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: BackendArgs) -> CliResult {
    match args.command {
        BackendCommand::Serve {
            db,
            keys,
            db_pool,
            db_money_writes,
            listen,
            sandbox,
            public_url,
            operators,
            cert_lifetime_hours,
            max_offline_amount,
            counters_per_cert,
            providers,
            edge,
        } => {
            init_logs();
            if cert_lifetime_hours < 1 || max_offline_amount < 0 || counters_per_cert == 0 {
                return Err("lifetime, allowance and counters must be positive".into());
            }
            let mut cfg = database_config(db, keys)?;
            cfg.db_pool_max = usize::from(db_pool);
            cfg.db_money_writes = db_money_writes.map(usize::from);
            cfg.listen = listen;
            cfg.sandbox = sandbox;
            cfg.public_url = public_url;
            if let Some(path) = operators {
                cfg.operators = mancard_backend::operators::Operators::load(&path)?;
            }
            cfg.policy.cert_lifetime_secs = cert_lifetime_hours.saturating_mul(3600);
            cfg.policy.max_offline_amount = max_offline_amount;
            cfg.policy.counters_per_cert = counters_per_cert;
            cfg.providers = providers.config()?;
            cfg.edge = edge.limits()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let handle = Backend::start(cfg).await?;
                eprintln!("mancard backend listening on {}", handle.url());
                mancard_backend::shutdown_signal().await;
                tracing::info!("shutdown requested");
                handle.shutdown().await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        BackendCommand::Keys { command } => match command {
            KeysCommand::List { db } => {
                print_keys(&offline_engine(db)?)?;
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Rotate { db } => {
                let e = offline_engine(db)?;
                let r = e.rotate_key()?;
                println!("new current issuer key: {}", r.current_key_id);
                print_keys(&e)?;
                Ok(ExitCode::SUCCESS)
            }
        },
        BackendCommand::Validators { command } => run_validators(command),
        BackendCommand::Fraud { command } => run_fraud(command),
        BackendCommand::AuditLog(a) => operators::audit_log(a),
        BackendCommand::OperatorToken(a) => operators::operator_token(a),
        BackendCommand::Audit { db } => {
            let e = offline_engine(db)?;
            let a = e.audit()?;
            println!("{}", serde_json::to_string_pretty(&a)?);
            Ok(if a.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// The edge's flags of `backend serve` (rate limits, timeouts, load shedding); defaults are
/// `mancard_backend::EdgeLimits::default()`.
#[derive(Args)]
struct EdgeArgs {
    /// A reverse proxy whose X-Forwarded-For is believed (repeat for several); from any other
    /// peer the header is ignored.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// A rate limit, NAME=BURST/SECONDS or NAME=off (repeat): otp_per_address, otp_global,
    /// session_per_address, sync_per_account, credential_per_account.
    #[arg(long = "rate-limit", value_name = "NAME=BURST/SECONDS")]
    rate_limits: Vec<String>,
    /// Seconds a client has to send a request's header (and may idle between requests).
    #[arg(long)]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a request body may pause.
    #[arg(long)]
    body_read_timeout_secs: Option<u64>,
    /// Seconds from a request's header to its answer.
    #[arg(long)]
    request_timeout_secs: Option<u64>,
    /// Requests handled at once (more are answered 503 with Retry-After).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Open connections at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Batch uploads handled at once (one more waits for a lane, then is answered 503 with
    /// Retry-After).
    #[arg(long)]
    max_uploads_in_flight: Option<usize>,
    /// Seconds a batch upload waits for a lane when all are taken.
    #[arg(long)]
    upload_queue_wait_secs: Option<u64>,
    /// Batch uploads running or waiting at once from one client address (more are answered
    /// 429), or `off`.
    #[arg(long, value_name = "N|off")]
    max_uploads_per_address: Option<String>,
    /// Requests handled at once from one client address (more are answered 429), or `off`.
    #[arg(long, value_name = "N|off")]
    max_in_flight_per_address: Option<String>,
    /// Open connections at once from one client address (a trusted proxy is not limited),
    /// or `off`.
    #[arg(long, value_name = "N|off")]
    max_connections_per_address: Option<String>,
}

/// A per-address cap from the command line: a whole number, or `off`.
fn cap_or_off(flag: &str, value: &str) -> Result<Option<usize>, String> {
    if value.trim() == "off" {
        return Ok(None);
    }
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("--{flag}: expected a whole number or `off`, got {value:?}"))
}

impl EdgeArgs {
    /// The production defaults (per-address limits on, also with `--sandbox`) with the flags
    /// applied.
    fn limits(self) -> Result<mancard_backend::EdgeLimits, String> {
        use std::time::Duration;
        let mut limits = mancard_backend::EdgeLimits::default();
        let e = &mut limits;
        e.trusted_proxies.extend(self.trusted_proxies);
        for spec in &self.rate_limits {
            e.set_rate(spec)?;
        }
        let secs = Duration::from_secs;
        e.header_read_timeout = self
            .header_read_timeout_secs
            .map_or(e.header_read_timeout, secs);
        e.body_read_timeout = self
            .body_read_timeout_secs
            .map_or(e.body_read_timeout, secs);
        e.request_timeout = self.request_timeout_secs.map_or(e.request_timeout, secs);
        e.max_in_flight = self.max_in_flight.unwrap_or(e.max_in_flight);
        e.max_connections = self.max_connections.unwrap_or(e.max_connections);
        e.max_uploads_in_flight = self
            .max_uploads_in_flight
            .unwrap_or(e.max_uploads_in_flight);
        e.upload_queue_wait = self
            .upload_queue_wait_secs
            .map_or(e.upload_queue_wait, secs);
        if let Some(v) = &self.max_in_flight_per_address {
            e.max_in_flight_per_address = cap_or_off("max-in-flight-per-address", v)?;
        }
        if let Some(v) = &self.max_uploads_per_address {
            e.max_uploads_per_address = cap_or_off("max-uploads-per-address", v)?;
        }
        if let Some(v) = &self.max_connections_per_address {
            e.max_connections_per_address = cap_or_off("max-connections-per-address", v)?;
        }
        limits.check()?;
        Ok(limits)
    }
}
