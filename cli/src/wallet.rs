//! `mancard wallet`: the rider's wallet core on the command line, for debugging and demos.
//!
//! Layout of `--data-dir DIR`: the wallet (`wallet.sqlite3`, `counters.bin`) in `DIR/wallet`,
//! the file keystore in `DIR/keystore`. Only `init` (and `register`, on an empty
//! directory) creates anything.
//!
//! Online subcommands (`register`, `verify`, `provision`, `replenish`, `topup`, `sync`,
//! `balance`) talk to the backend given by `--backend URL` through `mancard::OnlineWallet`.

mod dev;
mod session;

use crate::CliResult;
use clap::{Args, Subcommand};
use mancard::{CredentialRequest, FileKeystore, IssuerKeyInfo, Wallet, WalletConfig};
use mancard_l10n::Lang;
use mancard_protocol::{CredentialCertificate, PublicKey, ResponseApdu};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct WalletArgs {
    /// Directory holding the wallet (`DIR/wallet`) and its file keystore (`DIR/keystore`).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Backend base URL for the online subcommands (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
    /// Extra root CA (PEM file) to trust for an https backend.
    #[arg(long, value_name = "FILE")]
    ca_pem: Option<PathBuf>,
    /// The rider's language for the status line, the history's sentences, amounts and dates:
    /// fa (Persian, the default), azb (South Azerbaijani) or en (English). Field labels and
    /// errors stay in English (this is a developer's tool).
    #[arg(long, global = true, default_value = "fa", value_parser = Lang::from_tag)]
    lang: Lang,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Create the wallet and its keystore.
    Init,
    /// Print what the backend needs to issue a certificate (creates a tap key if none is pending).
    Request,
    /// Install a certificate (hex) issued for the pending tap key, and the issuer's config
    /// bundle (without one the phone answers no reader).
    InstallCert {
        /// The certificate, hex.
        cert_hex: String,
        /// Issuer public key file: hex of the 65-byte uncompressed key, optionally `KEYID:HEX`.
        #[arg(long, value_name = "FILE")]
        issuer_key: PathBuf,
        /// The issuer's signed config bundle, hex (or `@FILE` holding the hex).
        #[arg(long, value_name = "HEX")]
        config_bundle: Option<String>,
    },
    /// Install a signed config bundle (hex, or `@FILE` holding the hex): the issuer keys and
    /// validator deny list that decide which readers the phone answers, time rules, tariff.
    InstallConfig { bundle: String },
    /// Debugging without a backend: issue a certificate for the pending tap key with a local
    /// issuer key (created in DIR/dev-issuer.pk8, public half in DIR/dev-issuer.pub) and install
    /// it, with a config bundle signed by the same key.
    DevIssue {
        /// Fare class: adult, student, senior or free.
        #[arg(long, default_value = "adult")]
        class: String,
        /// Offline allowance, rials.
        #[arg(long, default_value_t = 200_000)]
        amount: i64,
        /// Number of counters (rides) in the certificate.
        #[arg(long, default_value_t = 1_000)]
        counters: u32,
        /// Validity, days.
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
    /// Credential state, offline allowance and balances.
    Status,
    /// History, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after this item id / cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a QR boarding pass in the terminal (uses a counter and reserves the pass amount).
    Qr {
        /// Also write the QR as a PNG.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// Also write the QR as an SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Feed one command APDU (hex) to the wallet, print the response and its status word (one
    /// field per process: a whole tap needs `apdu-session`).
    Apdu {
        /// The command APDU, hex (spaces allowed).
        hex: String,
    },
    /// A scripted NFC field: command APDUs in hex on stdin, one a line, each answered on
    /// stdout, the session kept between lines (a whole tap can be scripted).
    #[command(after_long_help = session::PROTOCOL)]
    ApduSession,
    /// Online: ask the backend to send a one-time code to PHONE (creates the wallet if needed).
    Register { phone: String },
    /// Online: log in with the one-time code (the session is stored sealed).
    Verify { phone: String, code: String },
    /// Online: provision this wallet (a new device for the account; revokes the old one).
    Provision,
    /// Online: fetch a new certificate for this device.
    Replenish,
    /// Online: start a top-up of AMOUNT rials and print the payment URL.
    Topup {
        amount: i64,
        /// Scripts: pay through the sandbox gateway (POST the payment URL), then poll until
        /// the top-up is final.
        #[arg(long)]
        approve: bool,
    },
    /// Online: poll a top-up (after paying in a browser).
    TopupStatus { intent_id: String },
    /// Online: sync (upload taps, settle, learn revocation, clock, tariff and config bundle;
    /// replenish if due).
    Sync,
    /// Online: the backend's balance next to the wallet's ledger.
    Balance,
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("wallet"), dir.join("keystore"))
}

fn open(dir: &Path) -> Result<Wallet, Box<dyn std::error::Error>> {
    let (wallet_dir, ks_dir) = paths(dir);
    // Only a directory with nothing of a wallet is "no wallet": a lost database next to the
    // wallet's other files is the library's `DataMissing` error, with what to do.
    if !wallet_dir.exists() && !ks_dir.exists() {
        return Err(format!(
            "no wallet in {} (create one with `mancard wallet --data-dir {} init`)",
            dir.display(),
            dir.display()
        )
        .into());
    }
    let ks = FileKeystore::open(&ks_dir)
        .map_err(|e| format!("cannot open the keystore in {}: {e}", ks_dir.display()))?;
    Ok(Wallet::open(&wallet_dir, Arc::new(ks), config())?)
}

fn config() -> WalletConfig {
    WalletConfig {
        language: crate::lang::get(),
        ..WalletConfig::default()
    }
}

/// An amount in the rider's language: "۲٬۰۰۰ تومان", "2,000 toman (20,000 rials)".
fn amount(rials: i64) -> String {
    mancard_l10n::format_amount(crate::lang::get(), rials)
}

fn print_request(r: &CredentialRequest) {
    println!("tap public key:     {}", hex::encode(&r.tap_public_key));
    println!("binding public key: {}", hex::encode(&r.binding_public_key));
    println!("next counter:       {}", r.next_counter);
}

/// A time in the Solar Hijri calendar, Iran time, in the rider's language.
fn time(t: i64) -> String {
    mancard_l10n::format_date_time(crate::lang::get(), t, mancard_l10n::IRAN_UTC_OFFSET_SECS)
}

fn online(
    dir: &Path,
    backend: Option<&str>,
    ca_pem: Option<&Path>,
    create: bool,
) -> Result<mancard::OnlineWallet, Box<dyn std::error::Error>> {
    let url = backend.ok_or("this subcommand needs --backend URL")?;
    let w = if create && !dir.join("wallet").join(mancard::DB_FILE).exists() {
        let (wallet_dir, ks_dir) = paths(dir);
        let ks = FileKeystore::open_or_create(&ks_dir)
            .map_err(|e| format!("cannot create the keystore in {}: {e}", ks_dir.display()))?;
        let w = Wallet::open(&wallet_dir, Arc::new(ks), config())?;
        println!("created a wallet in {}", dir.display());
        w
    } else {
        open(dir)?
    };
    let extra_root_ca_pem = match ca_pem {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        ),
        None => None,
    };
    Ok(mancard::OnlineWallet::new(
        Arc::new(w),
        url.to_string(),
        mancard::OnlineOptions {
            extra_root_ca_pem,
            ..mancard::OnlineOptions::default()
        },
    )?)
}

fn print_intent(i: &mancard::TopUpIntent) {
    println!("top-up:       {}", i.intent_id);
    println!("amount:       {}", amount(i.amount));
    println!("status:       {}", i.status.name());
    println!("payment URL:  {}", i.payment_url);
    if let Some(r) = &i.gateway_ref {
        println!("reference:    {r}");
    }
}

fn run_online(
    dir: &Path,
    backend: Option<&str>,
    ca_pem: Option<&Path>,
    command: WalletCommand,
) -> CliResult {
    let now = mancard::now_utc();
    let create = matches!(command, WalletCommand::Register { .. });
    let o = online(dir, backend, ca_pem, create)?;
    match command {
        WalletCommand::Register { phone } => {
            let r = o.block_on(o.register(phone))??;
            println!(
                "a code was sent to {} (valid until {})",
                r.phone,
                time(r.expires_at)
            );
        }
        WalletCommand::Verify { phone, code } => {
            let s = o.block_on(o.verify(phone, code))??;
            println!(
                "logged in as {} (account {}), session until {}",
                s.phone,
                s.account_id,
                time(s.expires_at)
            );
        }
        WalletCommand::Provision => online_provision(&o, false, now)?,
        WalletCommand::Replenish => online_provision(&o, true, now)?,
        WalletCommand::Topup { amount, approve } => {
            return online_top_up(&o, dir, amount, approve);
        }
        WalletCommand::TopupStatus { intent_id } => {
            let i = o.block_on(o.complete_top_up(intent_id))??;
            print_intent(&i);
        }
        WalletCommand::Sync => online_sync(&o)?,
        WalletCommand::Balance => online_balance(&o, now)?,
        _ => return Err("not an online subcommand".into()),
    }
    Ok(ExitCode::SUCCESS)
}

type Done = Result<(), Box<dyn std::error::Error>>;

/// `provision` / `replenish`: a new certificate from the backend.
fn online_provision(o: &mancard::OnlineWallet, replenish: bool, now: i64) -> Done {
    let r = if replenish {
        o.block_on(o.replenish())??
    } else {
        o.block_on(o.provision())??
    };
    println!("certificate installed: pseudonym {}", r.pseudonym);
    println!(
        "counters {}..={}, offline allowance {}, valid {} → {}",
        r.counter_first,
        r.counter_last,
        amount(r.max_amount),
        time(r.valid_from),
        time(r.valid_until)
    );
    for p in &r.revoked_pseudonyms {
        println!("revoked the previous device {p}");
    }
    print_status(&o.wallet(), now)
}

/// `topup`: start a top-up; with `--approve`, pay on the sandbox gateway and poll until final.
fn online_top_up(o: &mancard::OnlineWallet, dir: &Path, amount: i64, approve: bool) -> CliResult {
    let i = o.block_on(o.start_top_up(amount))??;
    print_intent(&i);
    if !approve {
        println!(
            "pay in a browser, then: mancard wallet --data-dir {} --backend {} topup-status {}",
            dir.display(),
            o.backend_url(),
            i.intent_id
        );
        return Ok(ExitCode::SUCCESS);
    }
    let url = i.payment_url.clone();
    o.block_on(async move {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        c.post(&url).send().await?.error_for_status()?;
        Ok::<(), reqwest::Error>(())
    })?
    .map_err(|e| format!("paying on the sandbox gateway failed: {e}"))?;
    let mut last = i;
    for _ in 0..60 {
        last = o.block_on(o.complete_top_up(last.intent_id.clone()))??;
        if last.status.is_final() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    println!("final status: {}", last.status.name());
    if last.status != mancard::TopUpStatus::Credited {
        return Ok(ExitCode::FAILURE);
    }
    print_status(&o.wallet(), mancard::now_utc())?;
    Ok(ExitCode::SUCCESS)
}

/// `sync`: upload the tap log, learn the ledger and the credential's state.
fn online_sync(o: &mancard::OnlineWallet) -> Done {
    let r = o.block_on(o.sync())??;
    println!(
        "uploaded {} · settled {} ({} fare corrections) · rejected {} · recovered {} · \
         {} new ledger entries · {} pending",
        r.uploaded,
        r.settled,
        r.fare_corrections,
        r.rejected,
        r.recovered,
        r.ledger_entries,
        r.pending_taps
    );
    println!(
        "balance {} · credential {}{} · clock offset {} s{}",
        amount(r.balance),
        r.credential_status,
        r.credential_reason
            .as_deref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default(),
        r.clock_offset_secs,
        if r.clock_offset_applied {
            ""
        } else {
            " (not applied)"
        }
    );
    if r.revoked {
        if r.credential_reason.as_deref() == Some("replaced_by_new_device") {
            println!("this card was moved to another phone: ride with that phone");
        } else {
            println!("this phone's ticket was revoked: see `status` for why");
        }
    }
    if r.replenished {
        println!("a new certificate was installed");
    }
    if let Some(e) = &r.replenish_error {
        println!("replenishment failed: {e}");
    }
    print_status(&o.wallet(), mancard::now_utc())
}

/// `balance`: the backend's word, then the wallet's view.
fn online_balance(o: &mancard::OnlineWallet, now: i64) -> Done {
    match o.block_on(o.account())? {
        Ok(a) => println!(
            "backend balance:    {} (account {}, {}, {})",
            amount(a.balance),
            a.account_id,
            a.phone,
            a.fare_class
        ),
        Err(e) if e.is_retryable() => println!("backend unreachable: {e}"),
        Err(e) => return Err(e.into()),
    }
    print_status(&o.wallet(), now)
}

pub fn run(args: WalletArgs) -> CliResult {
    crate::lang::set(args.lang);
    let dir = &args.data_dir;
    let now = mancard::now_utc();
    if matches!(
        args.command,
        WalletCommand::Register { .. }
            | WalletCommand::Verify { .. }
            | WalletCommand::Provision
            | WalletCommand::Replenish
            | WalletCommand::Topup { .. }
            | WalletCommand::TopupStatus { .. }
            | WalletCommand::Sync
            | WalletCommand::Balance
    ) {
        return run_online(
            dir,
            args.backend.as_deref(),
            args.ca_pem.as_deref(),
            args.command,
        );
    }
    match args.command {
        WalletCommand::Init => init(dir)?,
        WalletCommand::Request => print_request(&open(dir)?.prepare_credential_request()?),
        WalletCommand::InstallCert {
            cert_hex,
            issuer_key,
            config_bundle,
        } => install_cert(dir, &cert_hex, &issuer_key, config_bundle.as_deref(), now)?,
        WalletCommand::InstallConfig { bundle } => {
            let w = open(dir)?;
            install_config(&w, &bundle)?;
            print_status(&w, now)?;
        }
        WalletCommand::DevIssue {
            class,
            amount,
            counters,
            days,
        } => dev::dev_issue(dir, &class, amount, counters, days, now)?,
        WalletCommand::Status => print_status(&open(dir)?, now)?,
        WalletCommand::History { limit, cursor } => history(dir, limit, cursor)?,
        WalletCommand::Qr { png, svg } => qr(dir, png, svg, now)?,
        WalletCommand::Apdu { hex: h } => apdu(dir, &h)?,
        WalletCommand::ApduSession => return session::run(dir),
        _ => return Err("an online subcommand needs --backend URL".into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `init`: a new wallet and keystore, and the credential request to hand to an issuer.
fn init(dir: &Path) -> Done {
    let (wallet_dir, ks_dir) = paths(dir);
    if wallet_dir.join(mancard::DB_FILE).exists() {
        return Err(format!("a wallet already exists in {}", dir.display()).into());
    }
    let ks = FileKeystore::open_or_create(&ks_dir)
        .map_err(|e| format!("cannot create the keystore in {}: {e}", ks_dir.display()))?;
    let w = Wallet::open(&wallet_dir, Arc::new(ks), config())?;
    println!("created a wallet in {}", dir.display());
    print_request(&w.prepare_credential_request()?);
    Ok(())
}

/// Hex, or `@FILE` holding hex (whitespace ignored).
fn hex_arg(arg: &str, what: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let text = match arg.strip_prefix('@') {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?,
        None => arg.to_string(),
    };
    Ok(hex::decode(text.split_whitespace().collect::<String>())
        .map_err(|e| format!("the {what} is not hex: {e}"))?)
}

/// `install-config`: a signed config bundle (hex or `@FILE`).
fn install_config(w: &Wallet, bundle: &str) -> Done {
    w.install_config(hex_arg(bundle, "config bundle")?)?;
    println!(
        "config bundle version {} installed",
        w.config_version().unwrap_or(0)
    );
    Ok(())
}

/// `install-cert`: a certificate (hex), the issuer key (file) that signed it and, when given,
/// the issuer's config bundle.
fn install_cert(
    dir: &Path,
    cert_hex: &str,
    issuer_key: &Path,
    config_bundle: Option<&str>,
    now: i64,
) -> Done {
    let w = open(dir)?;
    let cert = hex::decode(cert_hex.split_whitespace().collect::<String>())
        .map_err(|e| format!("the certificate is not hex: {e}"))?;
    let claimed = CredentialCertificate::decode(&cert)
        .map(|c| c.body.issuer_key_id)
        .ok();
    let text = std::fs::read_to_string(issuer_key)
        .map_err(|e| format!("cannot read {}: {e}", issuer_key.display()))?;
    let key = parse_issuer_key(text.trim(), claimed)?;
    w.install_certificate(cert, vec![key], now)?;
    println!("certificate installed");
    match config_bundle {
        Some(b) => install_config(&w, b)?,
        None if w.config_version().is_none() => println!(
            "warning: no config bundle installed: the phone answers no reader until one is \
             (install-config, or --config-bundle)"
        ),
        None => {}
    }
    print_status(&w, now)
}

/// `history`: a page of taps, passes, refusals and top-ups.
fn history(dir: &Path, limit: u32, cursor: Option<String>) -> Done {
    let w = open(dir)?;
    let page = w.history(cursor, limit)?;
    if page.items.is_empty() {
        println!("no history");
    }
    for i in &page.items {
        let what = match i.kind {
            mancard::HistoryKind::Tap => format!(
                "NFC tap   line {} validator {} counter {}",
                i.line_id.unwrap_or(0),
                i.validator_id.unwrap_or(0),
                i.counter.unwrap_or(0)
            ),
            mancard::HistoryKind::Pass => {
                format!("QR pass   counter {}", i.counter.unwrap_or(0))
            }
            mancard::HistoryKind::Refusal => {
                format!("REFUSED   {:04X} {}", i.status_word.unwrap_or(0), i.detail)
            }
            mancard::HistoryKind::TopUp => format!("top-up    {}", i.detail),
        };
        let why = i
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        println!(
            "{:<14} {}  {:<60} {}  {}{}",
            i.id,
            time(i.time),
            what,
            amount(i.amount),
            i.status_text,
            why
        );
    }
    if let Some(c) = page.next_cursor {
        println!("more: --cursor {c}");
    }
    Ok(())
}

/// `qr`: a boarding pass in the terminal, optionally as PNG and SVG files.
fn qr(dir: &Path, png: Option<PathBuf>, svg: Option<PathBuf>, now: i64) -> Done {
    let w = open(dir)?;
    let p = w.boarding_pass(now)?;
    print!("{}", p.terminal());
    println!(
        "pass counter {} · up to {} · valid until {} · refresh at {} · QR version {}",
        p.counter,
        amount(p.max_amount),
        time(p.expires_at),
        time(p.refresh_at),
        p.matrix.version
    );
    println!("{}", p.text);
    if let Some(f) = png {
        std::fs::write(&f, p.png(8)?)?;
        println!("wrote {}", f.display());
    }
    if let Some(f) = svg {
        std::fs::write(&f, p.svg())?;
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `apdu`: one command APDU (hex) through `process_apdu`, answered in hex.
fn apdu(dir: &Path, h: &str) -> Done {
    let w = open(dir)?;
    let cmd = hex::decode(h.split_whitespace().collect::<String>())
        .map_err(|e| format!("the APDU is not hex: {e}"))?;
    // One field session: a command after SELECT needs the SELECT in the same process.
    let resp = w.process_apdu(cmd);
    let r = ResponseApdu::parse(&resp)?;
    println!("{}", hex::encode_upper(&resp));
    println!(
        "SW {:04X}: {} ({} data byte(s))",
        r.sw.code(),
        r.sw.describe(),
        r.data.len()
    );
    w.deactivated();
    Ok(())
}

fn print_status(w: &Wallet, now: i64) -> Result<(), Box<dyn std::error::Error>> {
    let s = w.status(now)?;
    let l = w.ledger()?;
    println!("{}", s.summary);
    println!("state:              {:?}", s.state);
    if let Some(c) = &s.fare_class {
        println!("fare class:         {c}");
    }
    if let (Some(a), Some(b)) = (s.valid_from, s.valid_until) {
        println!("valid:              {} → {}", time(a), time(b));
    }
    println!("counters left:      {}", s.counters_left);
    println!(
        "replenish due:      {}",
        if s.replenish_due { "yes" } else { "no" }
    );
    println!(
        "pending request:    {}",
        if s.pending_request { "yes" } else { "no" }
    );
    println!(
        "locked:             {}",
        if s.locked { "yes" } else { "no" }
    );
    if let Some(p) = &s.problem {
        println!("problem:            {p}");
    }
    if let Some(h) = &s.cert_hash_hex {
        println!("certificate id:     {h}");
    }
    match w.config_version() {
        Some(v) => println!("config bundle:      version {v}"),
        None => println!("config bundle:      none (the phone answers no reader until it syncs)"),
    }
    println!("confirmed balance:  {}", amount(l.confirmed_balance));
    println!(
        "pending:            {} tap(s), {}",
        l.pending_taps,
        amount(l.pending_amount)
    );
    println!("available:          {}", amount(l.available_balance));
    println!(
        "offline allowance:  {}",
        amount(l.offline_allowance_remaining)
    );
    Ok(())
}

/// `HEX` or `KEYID:HEX`; without an id, the certificate's claimed id is used (the signature is
/// still checked).
fn parse_issuer_key(
    text: &str,
    claimed: Option<u32>,
) -> Result<IssuerKeyInfo, Box<dyn std::error::Error>> {
    let (id, hexkey) = match text.split_once(':') {
        Some((id, k)) => (Some(id.trim().parse::<u32>()?), k.trim()),
        None => (None, text),
    };
    let bytes = hex::decode(hexkey).map_err(|e| format!("issuer key is not hex: {e}"))?;
    PublicKey::from_bytes(&bytes, "issuer key")?;
    Ok(IssuerKeyInfo {
        key_id: id.or(claimed).unwrap_or(0),
        public_key: bytes,
        valid_from: i64::MIN,
        valid_until: i64::MAX,
    })
}
