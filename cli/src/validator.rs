//! `mancard validator`: the validator on the bus or gate (reference software).
//!
//! ```text
//! mancard validator --data-dir DIR init --trust-anchor FILE --validator-id N --line N [--certificate HEX] [--torn-window-secs S]
//! mancard validator --data-dir DIR install-certificate --certificate HEX
//! mancard validator --data-dir DIR sync-config --backend URL [--ca-pem FILE]
//! mancard validator --data-dir DIR install-config FILE
//! mancard validator --data-dir DIR run --reader pcsc|sim|qr [--once] [--line N] [--torn-window-secs S]
//! mancard validator --data-dir DIR verify-qr TEXT
//! mancard validator --data-dir DIR upload --backend URL [--ca-pem FILE]
//! mancard validator --data-dir DIR status
//! ```

use crate::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use mancard_l10n::Lang;
use mancard_validator::http;
use mancard_validator::pcsc_reader::{PcscReader, VPCD_READER};
use mancard_validator::{
    ConfigInstall, FnChannel, TapOutcome, TrustAnchor, Validator, ValidatorStatus,
};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct ValidatorArgs {
    /// The validator's data directory (key, journal, config bundle).
    #[arg(long, global = true, default_value = "./validator-data")]
    data_dir: PathBuf,
    /// The language of the rider's display: fa (Persian, the default), azb (South
    /// Azerbaijani) or en (English). The reason codes on standard error stay the same.
    #[arg(long, global = true, default_value = "fa", value_parser = Lang::from_tag)]
    lang: Lang,
    #[command(subcommand)]
    command: ValidatorCommand,
}

#[derive(Subcommand)]
enum ValidatorCommand {
    /// Create the data directory: validator key (printed), id, line and issuer trust anchor.
    Init {
        /// Issuer public key: hex of the 65-byte uncompressed point, optionally `KEYID:HEX`.
        #[arg(long)]
        trust_anchor: PathBuf,
        #[arg(long)]
        validator_id: u32,
        #[arg(long)]
        line: u32,
        /// The validator certificate (hex), if the backend already issued it for this key.
        #[arg(long, value_name = "HEX")]
        certificate: Option<String>,
        /// How long a torn tap (an answer lost after the phone may have signed) waits for its
        /// card to come back before it is uploaded as torn (default 120; persisted).
        #[arg(long, value_name = "SECONDS")]
        torn_window_secs: Option<u32>,
    },
    /// Install the validator certificate the backend issued for this validator's key
    /// (`mancard backend validators add` prints it). Without one every NFC tap is refused.
    InstallCertificate {
        /// The certificate, hex.
        #[arg(long, value_name = "HEX")]
        certificate: String,
    },
    /// Fetch the signed config bundle (issuer keys, deny list, tariff) from the backend.
    SyncConfig {
        /// Backend base URL (https://host[:port], or http://host:port).
        #[arg(long)]
        backend: String,
        /// Also trust this root CA (PEM) for https://, besides the built-in Mozilla roots.
        #[arg(long, value_name = "FILE")]
        ca_pem: Option<PathBuf>,
    },
    /// Install a config bundle from a file (offline provisioning).
    InstallConfig { file: PathBuf },
    /// Serve taps until stopped (or one with --once).
    Run {
        #[arg(long, value_enum, default_value = "pcsc")]
        reader: ReaderKind,
        /// PC/SC reader name (prefix).
        #[arg(long, default_value = VPCD_READER)]
        reader_name: String,
        /// With `--reader sim`: the wallet data directory tapped in process.
        #[arg(long)]
        wallet: Option<PathBuf>,
        /// Decide one tap and exit (status 0 if accepted, 1 if refused).
        #[arg(long)]
        once: bool,
        /// Change the line first (persisted).
        #[arg(long)]
        line: Option<u32>,
        /// Change the torn window first (seconds; persisted).
        #[arg(long, value_name = "SECONDS")]
        torn_window_secs: Option<u32>,
    },
    /// Verify a QR pass text (`-` reads it from standard input).
    VerifyQr { text: String },
    /// Upload accepted taps in signed batches (exactly once; resumes after a crash).
    Upload {
        /// Backend base URL (https://host[:port], or http://host:port).
        #[arg(long)]
        backend: String,
        /// Also trust this root CA (PEM) for https://, besides the built-in Mozilla roots.
        #[arg(long, value_name = "FILE")]
        ca_pem: Option<PathBuf>,
    },
    /// Config version, deny-list age, journal counts, pending uploads.
    Status {
        /// Also list the last N decisions.
        #[arg(long, default_value_t = 0)]
        recent: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReaderKind {
    /// A PC/SC reader through pcscd (`Virtual PCD 00 00` with vsmartcard).
    Pcsc,
    /// A wallet in process (`--wallet DIR`): one tap per line on standard input.
    Sim,
    /// A QR scanner delivering pass texts, one per line on standard input.
    Qr,
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: ValidatorArgs) -> CliResult {
    crate::lang::set(args.lang);
    let dir = args.data_dir;
    match args.command {
        ValidatorCommand::Init {
            trust_anchor,
            validator_id,
            line,
            certificate,
            torn_window_secs,
        } => {
            let mut v = init(&dir, &trust_anchor, validator_id, line)?;
            if let Some(secs) = torn_window_secs {
                v.set_torn_window_secs(i64::from(secs))?;
            }
            match certificate {
                Some(c) => install_certificate(&mut v, &c),
                None => {
                    println!(
                        "no validator certificate yet: NFC taps are refused until `mancard validator install-certificate`"
                    );
                    print_status(&v.status()?);
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        ValidatorCommand::InstallCertificate { certificate } => {
            let mut v = Validator::open(&dir)?;
            install_certificate(&mut v, &certificate)
        }
        ValidatorCommand::SyncConfig { backend, ca_pem } => {
            sync_config(&dir, &backend, ca_pem.as_deref())
        }
        ValidatorCommand::InstallConfig { file } => {
            let mut v = Validator::open(&dir)?;
            let bytes = read_bundle(&file)?;
            install(&mut v, &bytes)
        }
        ValidatorCommand::Run {
            reader,
            reader_name,
            wallet,
            once,
            line,
            torn_window_secs,
        } => {
            let mut v = Validator::open(&dir)?;
            if let Some(l) = line {
                v.set_line(l)?;
            }
            if let Some(secs) = torn_window_secs {
                v.set_torn_window_secs(i64::from(secs))?;
            }
            warn_if_unconfigured(&v);
            match reader {
                ReaderKind::Pcsc => run_pcsc(&mut v, &reader_name, once),
                ReaderKind::Sim => run_sim(&mut v, wallet, once),
                ReaderKind::Qr => run_qr(&mut v, once),
            }
        }
        ValidatorCommand::VerifyQr { text } => verify_qr(&dir, text),
        ValidatorCommand::Upload { backend, ca_pem } => upload(&dir, &backend, ca_pem.as_deref()),
        ValidatorCommand::Status { recent } => status(&dir, recent),
    }
}

/// `sync-config`: fetch the signed bundle if it changed, and install it.
fn sync_config(dir: &Path, backend: &str, ca_pem: Option<&Path>) -> CliResult {
    let client = http_client(ca_pem)?;
    let mut v = Validator::open(dir)?;
    let installed = v.config().map(|c| c.body.bundle_version);
    match client
        .fetch_config(backend, installed)
        .map_err(|e| format!("cannot fetch the config bundle: {e}"))?
    {
        Some(bytes) => install(&mut v, &bytes),
        None => {
            println!("config bundle unchanged (304)");
            print_status(&v.status()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `verify-qr`: one pass text (or `-` for standard input).
fn verify_qr(dir: &Path, text: String) -> CliResult {
    let mut v = Validator::open(dir)?;
    let text = if text == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        text
    };
    let o = v.verify_qr(text.trim());
    print_outcome(&o);
    Ok(exit_for(&o))
}

/// `upload`: send every sealed batch; a failed one stays sealed and keeps its id.
fn upload(dir: &Path, backend: &str, ca_pem: Option<&Path>) -> CliResult {
    let client = http_client(ca_pem)?;
    let mut v = Validator::open(dir)?;
    let r = v.upload(|b| {
        println!(
            "sending batch {} ({} taps, {} torn, {} bytes)",
            hex::encode(b.batch_id),
            b.records,
            b.torn,
            b.bytes.len()
        );
        client.send_batch(backend, b).map_err(|e| e.to_string())
    });
    match r {
        Ok(rep) => {
            println!(
                "uploaded {} batch(es), {} tap(s), {} torn tap(s); {}",
                rep.acked.len(),
                rep.records,
                rep.torn,
                if rep.complete {
                    "nothing pending"
                } else {
                    "more pending (run upload again)"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}; the batch stays sealed and is resent with the same id");
            Ok(ExitCode::from(1))
        }
    }
}

/// `status`: the installed config, the journal's counts and the last decisions.
fn status(dir: &Path, recent: usize) -> CliResult {
    let mut v = Validator::open(dir)?;
    print_status(&v.status()?);
    if recent > 0 {
        println!("last {recent} decisions:");
        for d in v.journal().recent(recent)? {
            println!(
                "  {}  {:<3}  {:<22} {}",
                fmt_time(d.time),
                d.medium,
                d.code,
                d.text
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The HTTP client: Mozilla roots, plus the root CA in `ca_pem` if given.
fn http_client(ca_pem: Option<&Path>) -> Result<http::Client, http::HttpError> {
    match ca_pem {
        Some(file) => http::Client::with_extra_ca_pem_file(HTTP_TIMEOUT, file),
        None => http::Client::new(HTTP_TIMEOUT),
    }
}

/// `init`: creates the data directory and prints the validator's public key; the validator.
fn init(
    dir: &Path,
    anchor_file: &Path,
    validator_id: u32,
    line: u32,
) -> Result<Validator, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(anchor_file)
        .map_err(|e| format!("cannot read {}: {e}", anchor_file.display()))?;
    let anchor =
        TrustAnchor::parse(&text).map_err(|e| format!("{}: {e}", anchor_file.display()))?;
    let v = Validator::init(dir, &anchor, validator_id, line)?;
    println!(
        "validator {validator_id} on line {line} initialised in {}",
        dir.display()
    );
    println!(
        "validator public key (register it with the backend; also in {}):",
        dir.join(mancard_validator::device::PUBLIC_KEY_FILE)
            .display()
    );
    println!("{}", hex::encode(v.public_key().as_bytes()));
    Ok(v)
}

/// `install-certificate`: checks and installs the validator certificate (hex).
fn install_certificate(v: &mut Validator, hex_text: &str) -> CliResult {
    let compact: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(&compact).map_err(|e| format!("the certificate is not hex: {e}"))?;
    if let Err(e) = v.install_certificate(&bytes) {
        eprintln!("{e}; nothing installed");
        return Ok(ExitCode::from(1));
    }
    println!("validator certificate installed");
    print_status(&v.status()?);
    Ok(ExitCode::SUCCESS)
}

/// A bundle file: raw bytes, or hex text.
fn read_bundle(path: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if raw.first() == Some(&b'V') {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).or(Ok(raw))
}

fn install(v: &mut Validator, bytes: &[u8]) -> CliResult {
    match v.install_config(bytes) {
        Ok(ConfigInstall::Installed { version }) => {
            println!("config bundle version {version} installed");
        }
        Ok(ConfigInstall::Unchanged { version }) => {
            println!("config bundle version {version} already installed");
        }
        Err(e) => {
            eprintln!("{e}; the installed bundle is kept");
            print_status(&v.status()?);
            return Ok(ExitCode::from(1));
        }
    }
    print_status(&v.status()?);
    Ok(ExitCode::SUCCESS)
}

fn warn_if_unconfigured(v: &Validator) {
    if v.config().is_none() {
        eprintln!(
            "warning: no config bundle installed: every tap will be refused (run sync-config)"
        );
    }
    if v.certificate().is_none() {
        eprintln!(
            "warning: no validator certificate installed: every NFC tap will be refused (run install-certificate)"
        );
    }
}

fn run_pcsc(v: &mut Validator, reader_name: &str, once: bool) -> CliResult {
    let mut reader = PcscReader::open(reader_name)?;
    eprintln!(
        "validator {} line {}: waiting for phones on {}",
        v.validator_id(),
        v.line_id(),
        reader.name()
    );
    loop {
        match serve_one(v, &reader, !once) {
            Ok(Some(o)) if once => return Ok(exit_for(&o)),
            Ok(_) => {}
            Err(e) => {
                // pcscd restarted or the reader was unplugged: reopen it and carry on.
                eprintln!("reader: {e}; reopening in 1 s");
                std::thread::sleep(Duration::from_secs(1));
                match PcscReader::open(reader_name) {
                    Ok(r) => reader = r,
                    Err(e) => eprintln!("reader: {e}"),
                }
            }
        }
    }
}

/// Waits for one phone, decides, and (with `wait_removal`) waits until it leaves.
/// None if nothing was decided.
fn serve_one(
    v: &mut Validator,
    reader: &PcscReader,
    wait_removal: bool,
) -> Result<Option<TapOutcome>, Box<dyn std::error::Error>> {
    if !reader.wait_for_card(Some(Duration::from_secs(3600)))? {
        return Ok(None);
    }
    let mut card = match reader.connect(Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect: {e}");
            return Ok(None);
        }
    };
    let o = v.tap_nfc(&mut card);
    card.finish();
    print_outcome(&o);
    // One decision per presentation: wait until the phone leaves the field.
    while wait_removal && !reader.wait_for_removal(Some(Duration::from_secs(60)))? {}
    Ok(Some(o))
}

fn run_sim(v: &mut Validator, wallet: Option<PathBuf>, once: bool) -> CliResult {
    let dir = wallet.ok_or("--reader sim needs --wallet DIR (a wallet data directory)")?;
    let w = crate::phone::open_wallet(&dir)?;
    let tap = |v: &mut Validator| {
        let mut ch = FnChannel::new(|apdu| w.process_apdu(apdu));
        let o = v.tap_nfc(&mut ch);
        w.deactivated();
        print_outcome(&o);
        o
    };
    if once {
        let o = tap(v);
        return Ok(exit_for(&o));
    }
    eprintln!(
        "press Enter to tap the wallet in {} (Ctrl-D ends)",
        dir.display()
    );
    for line in std::io::stdin().lock().lines() {
        line?;
        tap(v);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_qr(v: &mut Validator, once: bool) -> CliResult {
    eprintln!("reading QR pass texts from standard input, one per line");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let o = v.verify_qr(line.trim());
        print_outcome(&o);
        if once {
            return Ok(exit_for(&o));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_for(o: &TapOutcome) -> ExitCode {
    if o.decision.is_accepted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_outcome(o: &TapOutcome) {
    println!("{}", o.decision.text(crate::lang::get()));
    let detail = match &o.decision {
        mancard_validator::Decision::Accepted(a) => format!(
            "card {} counter {} journal #{}",
            a.pseudonym, a.counter, a.journal_seq
        ),
        mancard_validator::Decision::Refused(r) => format!("reason {}: {r:?}", r.code()),
    };
    eprintln!(
        "  [{} {} in {:.2} ms, {} APDU(s){}] {detail}",
        o.medium.name(),
        fmt_time(o.time),
        o.elapsed.as_secs_f64() * 1000.0,
        o.apdus,
        if o.cert_cached {
            ", certificate cached"
        } else {
            ""
        }
    );
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn fmt_age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 2 * 86_400 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} days {} h", s / 86_400, (s % 86_400) / 3600)
    }
}

fn print_status(s: &ValidatorStatus) {
    println!("validator id:        {}", s.validator_id);
    println!("line:                {}", s.line_id);
    println!(
        "public key:          {}",
        hex::encode(s.public_key.as_bytes())
    );
    match (s.config_version, s.config_issued_at, s.deny_list_age_secs) {
        (Some(v), Some(at), Some(age)) => {
            println!("config bundle:       version {v}, issued {}", fmt_time(at));
            println!(
                "deny list:           {} card(s), {} old{}",
                s.deny_list_len,
                fmt_age(age),
                if age > 86_400 {
                    " (STALE: sync-config)"
                } else {
                    ""
                }
            );
        }
        _ => println!("config bundle:       none installed"),
    }
    print_certificate(s);
    if s.clock_behind_bundle {
        println!("WARNING:             this validator's clock is behind the bundle's issue time: fix the clock");
    }
    let j = &s.journal;
    println!(
        "journal:             {} accepted, {} refused",
        j.accepted_total, j.refusals_total
    );
    println!(
        "pending upload:      {} tap(s) ({} not yet sealed, {} in {} sealed batch(es))",
        j.unsealed + j.in_pending_batches,
        j.unsealed,
        j.in_pending_batches,
        j.pending_batches
    );
    println!("uploaded:            {} tap(s)", j.uploaded);
    println!(
        "torn taps:           {} waiting, {} uploaded (torn window {} s)",
        j.torn_waiting, j.torn_uploaded, s.torn_window_secs
    );
}

/// The validator certificate, the validator deny list and the time rules of `status`.
fn print_certificate(s: &ValidatorStatus) {
    match &s.certificate {
        Some(c) => {
            let b = &c.body;
            let lines = if b.lines.is_empty() {
                "any line".to_string()
            } else {
                let l: Vec<String> = b.lines.iter().map(u32::to_string).collect();
                format!("lines {}", l.join(", "))
            };
            println!(
                "certificate:         operator {}, {lines}, valid {} to {}, issuer key {}",
                b.operator_id,
                fmt_time(i64::from(b.valid_from)),
                fmt_time(i64::from(b.valid_until)),
                b.issuer_key_id
            );
        }
        None => println!("certificate:         none installed (NFC taps are refused)"),
    }
    if s.blocked {
        println!("BLOCKED:             this validator is blocked: the config bundle lists it on the validator deny list; every tap is refused");
    }
    if s.config_version.is_some() {
        let t = &s.time_rules;
        println!(
            "time rules:          QR passes at most {} s, clock skew {} s",
            t.max_pass_lifetime_secs, t.clock_skew_secs
        );
    }
}
