//! `mancard demo`: a rider's whole day, told step by step against an in-process backend and
//! validator, with timings, and checked at the end: the wallet, the backend ledger and the
//! validator journal must agree to the rial, or the demo exits 1 saying where.
//!
//! Everything is real: the backend serves HTTP on an ephemeral loopback port with a fresh
//! SQLite file, the wallet talks to it through `mancard::online`, the validator fetches its
//! signed config bundle and uploads signed batches over HTTP, taps go through
//! `Wallet::process_apdu` (in process, or through pcscd + vpcd with `--reader pcsc`), and the
//! QR pass is the wallet's real pass text verified by the validator. Only the validator's clock
//! is driven by the demo (a day of rides in a few seconds).

use crate::CliResult;
use clap::{Args, ValueEnum};
use mancard::online::{OnlineOptions, OnlineWallet};
use mancard::{SoftwareKeystore, Wallet, WalletConfig};
use mancard_backend::model::{AdjustmentRequest, RegisterValidatorRequest};
use mancard_backend::{Backend, BackendConfig, BackendHandle, Engine};
use mancard_protocol::{PublicKey, TapProof, Tariff, WalletLogEntry};
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader, VPCD_READER};
use mancard_validator::vpcd::{FnCard, VpcdCard, DEFAULT_VPCD_ADDR};
use mancard_validator::{http, Decision, FnChannel, TapOutcome, TrustAnchor, Validator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Args)]
pub struct DemoArgs {
    /// Keep every file here (backend database and issuer keys, wallet, keystore, validator,
    /// pass.png) instead of a temporary directory deleted at the end. Must be empty or absent.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How the phone meets the validator: `sim` (in process) or `pcsc` (pcscd + vsmartcard's
    /// vpcd, the real PC/SC path; falls back to `sim` with a notice when pcscd is not running).
    #[arg(long, value_enum, default_value = "sim")]
    reader: ReaderChoice,
    /// PC/SC reader name (prefix) with `--reader pcsc`.
    #[arg(long, default_value = VPCD_READER)]
    reader_name: String,
    /// vpcd address the phone connects to with `--reader pcsc` (`Virtual PCD 00 00` is 35963).
    #[arg(long, default_value = DEFAULT_VPCD_ADDR)]
    vpcd: String,
    /// The rider's phone number.
    #[arg(long, default_value = "09141234567")]
    phone: String,
    /// Machine-readable: one JSON object per line (the same events as the story).
    #[arg(long)]
    json: bool,
    /// The wallet's online side: `online` (the wallet core's `mancard::online`, as the app
    /// uses it) or `http` (the demo calls the backend's HTTP API itself and drives the
    /// wallet's public API).
    #[arg(long, value_enum, default_value = "online")]
    client: ClientChoice,
    /// Break the day on purpose to watch the books catch it (exit 1): `skip-upload` (the
    /// validator never comes back online) or `backend-adjustment` (an unexplained debit).
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    SkipUpload,
    BackendAdjustment,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientChoice {
    Online,
    Http,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReaderChoice {
    Sim,
    Pcsc,
}

const TOP_UP: i64 = 500_000;
const VALIDATOR_ID: u32 = 17;
const LINE_A: u32 = 1;
const LINE_B: u32 = 2;
const LINE_EXPRESS: u32 = 10;
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// Iran Standard Time, for display.
const IRST: i32 = 12_600;

/// Writes the story (text) or the events (JSON lines).
struct Out {
    json: bool,
    step: u32,
    started: Instant,
}

impl Out {
    /// A numbered step: a title, its duration, narrative lines and the event's data.
    fn step(&mut self, name: &str, title: &str, took: Duration, lines: &[String], data: Value) {
        self.step += 1;
        let ms = took.as_secs_f64() * 1000.0;
        if self.json {
            let mut ev = json!({"event": "step", "n": self.step, "step": name, "title": title,
                                "ms": round3(ms)});
            merge(&mut ev, data);
            println!("{ev}");
        } else {
            println!("\n{:>2}. {title}  [{}]", self.step, fmt_ms(ms));
            for l in lines {
                println!("    {l}");
            }
        }
    }

    /// A free-form note (text only; JSON gets it as a `note` event).
    fn note(&self, text: &str) {
        if self.json {
            println!("{}", json!({"event": "note", "text": text}));
        } else {
            println!("    {text}");
        }
    }

    /// Raw text (the QR drawing); JSON mode skips it.
    fn raw(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `20,000 rials (2,000 toman)`.
fn money(rials: i64) -> String {
    mancard_validator::money(rials)
}

fn local(t: i64) -> String {
    mancard::format_local_time(t, IRST)
}

fn hhmm(t: i64) -> String {
    chrono::DateTime::from_timestamp(t + i64::from(IRST), 0)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// One ride as the demo saw it at the gate.
struct Ride {
    time: i64,
    line: u32,
    medium: &'static str,
    counter: u32,
    fare: i64,
    kind: String,
}

/// The in-process parties of the demo.
struct World {
    rt: tokio::runtime::Runtime,
    backend: Option<BackendHandle>,
    wallet: Arc<Wallet>,
    client: Client,
    validator: Option<Validator>,
    clock: Arc<AtomicI64>,
    /// 07:30 of the demo's fare day (validator clock); every ride is an offset from it.
    day: i64,
    reader: ReaderChoice,
    reader_name: String,
    vpcd: String,
    rides: Vec<Ride>,
}

impl World {
    fn engine(&self) -> Res<&Arc<Engine>> {
        Ok(self
            .backend
            .as_ref()
            .ok_or("the backend is not running")?
            .engine())
    }
    fn url(&self) -> Res<String> {
        Ok(self
            .backend
            .as_ref()
            .ok_or("the backend is not running")?
            .url())
    }
    fn validator(&mut self) -> Res<&mut Validator> {
        Ok(self
            .validator
            .as_mut()
            .ok_or("the validator is not set up")?)
    }
}

pub fn run(args: DemoArgs) -> CliResult {
    let (_tmp, dir) = match &args.data_dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .map_err(|e| format!("cannot read {}: {e}", d.display()))?
                    .next()
                    .is_some()
            {
                return Err(format!(
                    "{} is not empty: give `--data-dir` a new or empty directory (the demo \
                     starts a fresh backend, wallet and validator there)",
                    d.display()
                )
                .into());
            }
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("mancard-demo-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    // RUST_LOG=debug shows what the parties log (to standard error).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut out = Out {
        json: args.json,
        step: 0,
        started: Instant::now(),
    };
    let mut reader = args.reader;
    if reader == ReaderChoice::Pcsc && !pcscd_available() {
        out.note("pcscd is not running (scripts/pcsc-up.sh): taps go in process instead");
        reader = ReaderChoice::Sim;
    }
    if !out.json {
        println!("ManCard demo: one rider's day in Urmia, end to end, on this machine");
        println!(
            "data directory: {}{}",
            dir.display(),
            if args.data_dir.is_some() {
                ""
            } else {
                " (temporary: removed at the end; --data-dir DIR keeps it)"
            }
        );
    }

    let mut world = start(&mut out, &dir, &args, reader)?;
    let result = story(&mut out, &mut world, &dir, &args);
    // Always stop the backend cleanly (WAL checkpointed), even after a failure.
    let stopped = match world.backend.take() {
        Some(h) => world.rt.block_on(h.shutdown()).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let verdict = result?;
    stopped.map_err(|e| format!("backend shutdown: {e}"))?;
    let total = out.started.elapsed().as_secs_f64();
    match verdict {
        Ok(()) => {
            if out.json {
                println!(
                    "{}",
                    json!({"event": "done", "ok": true, "seconds": round3(total),
                           "data_dir": dir.display().to_string()})
                );
            } else {
                println!("\nThe books agree. Whole demo: {total:.2} s.");
                if args.data_dir.is_some() {
                    println!(
                        "State kept in {}: try `mancard wallet --data-dir {} status`, \
                         `mancard validator --data-dir {} status`, `mancard backend audit --db {}`.",
                        dir.display(),
                        dir.display(),
                        dir.join("validator").display(),
                        dir.join("backend.sqlite").display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            if out.json {
                println!(
                    "{}",
                    json!({"event": "done", "ok": false, "problems": problems,
                           "seconds": round3(total)})
                );
            } else {
                println!("\nTHE BOOKS DO NOT AGREE:");
                for p in &problems {
                    println!("  - {p}");
                }
            }
            eprintln!(
                "error: the books do not agree ({} problem(s))",
                problems.len()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Step 1: the backend, the wallet and its online client.
fn start(out: &mut Out, dir: &Path, args: &DemoArgs, reader: ReaderChoice) -> Res<World> {
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let db = dir.join("backend.sqlite");
    let handle = rt
        .block_on(Backend::start(BackendConfig::sandbox(&db)))
        .map_err(|e| format!("cannot start the backend: {e}"))?;
    let url = handle.url();
    let keys = handle.engine().key_info();
    out.step(
        "backend",
        "The issuer's backend starts (in process, loopback only)",
        t.elapsed(),
        &[
            format!("listening on {url} (sandbox SMS and payment gateway)"),
            format!("fresh SQLite database {}", db.display()),
            format!(
                "issuer key{} {} (P-256)",
                if keys.len() == 1 { "" } else { "s" },
                keys.iter()
                    .map(|k| k.key_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ],
        json!({"url": url, "db": db.display().to_string()}),
    );

    let t = Instant::now();
    let ks = Arc::new(
        SoftwareKeystore::open_or_create(dir.join("keystore"))
            .map_err(|e| format!("keystore: {e}"))?,
    );
    let wallet = Arc::new(
        Wallet::open(dir.join("wallet"), ks.clone(), WalletConfig::default())
            .map_err(|e| format!("cannot open the wallet: {e}"))?,
    );
    let client = match args.client {
        ClientChoice::Online => {
            let opts = OnlineOptions {
                max_attempts: 2,
                ..OnlineOptions::default()
            };
            Client::Online(
                OnlineWallet::new(Arc::clone(&wallet), url.clone(), opts)
                    .map_err(|e| format!("online client: {e}"))?,
            )
        }
        ClientChoice::Http => Client::Http(HttpRider::new(url.clone(), Arc::clone(&wallet), ks)?),
    };
    out.step(
        "wallet",
        "The rider installs the app: an empty wallet",
        t.elapsed(),
        &[format!(
            "wallet in {} (binding key in the software keystore; a phone uses StrongBox / Secure Enclave)",
            dir.join("wallet").display()
        )],
        json!({"wallet_dir": dir.join("wallet").display().to_string()}),
    );
    Ok(World {
        rt,
        backend: Some(handle),
        wallet,
        client,
        validator: None,
        clock: Arc::new(AtomicI64::new(0)),
        day: 0,
        reader,
        reader_name: args.reader_name.clone(),
        vpcd: args.vpcd.clone(),
        rides: Vec::new(),
    })
}

/// The day. Returns Ok(Err(problems)) when the books do not agree.
fn story(
    out: &mut Out,
    w: &mut World,
    dir: &Path,
    args: &DemoArgs,
) -> Res<Result<(), Vec<String>>> {
    // ---- register and verify the phone number
    let t = Instant::now();
    let phone = w
        .client
        .register(&w.rt, &args.phone)
        .map_err(|e| format!("register {}: {e}", args.phone))?;
    let sms = w
        .engine()?
        .sandbox_otp(&phone)
        .map_err(|e| format!("sandbox SMS: {e}"))?;
    let account_id = w
        .client
        .verify(&w.rt, &phone, &sms.code)
        .map_err(|e| format!("verify: {e}"))?;
    out.step(
        "register",
        "Register and verify the phone number",
        t.elapsed(),
        &[
            format!(
                "SMS code sent to {} (sandbox: read back from the backend)",
                phone
            ),
            format!(
                "code {} verified: account #{}, session opened (the token is never printed)",
                sms.code, account_id
            ),
        ],
        json!({"phone": phone, "account_id": account_id}),
    );

    // ---- provision
    let t = Instant::now();
    let p = w
        .client
        .provision(&w.rt, false)
        .map_err(|e| format!("provision: {e}"))?;
    out.step(
        "provision",
        "Provision the wallet: a certificate for this phone",
        t.elapsed(),
        &[
            format!(
                "card pseudonym {} (random; not the phone number)",
                p.pseudonym
            ),
            format!(
                "certificate valid until {}, counters {}..={}, offline allowance {}",
                local(p.valid_until),
                p.counter_first,
                p.counter_last,
                money(p.max_amount)
            ),
            "the allowance is bounded by the confirmed balance: nothing to spend yet".into(),
        ],
        json!({"pseudonym": p.pseudonym, "valid_until": p.valid_until,
               "counter_first": p.counter_first, "counter_last": p.counter_last,
               "max_amount": p.max_amount}),
    );

    // ---- top-up
    let t = Instant::now();
    let (intent_id, payment_url) = w
        .client
        .start_top_up(&w.rt, TOP_UP)
        .map_err(|e| format!("top-up: {e}"))?;
    // The rider presses "Pay" on the (sandbox) bank page; the redirect back is not followed:
    // the wallet polls, which makes the backend verify the payment server to server.
    let paid = http::post(
        &payment_url,
        "application/x-www-form-urlencoded",
        b"",
        HTTP_TIMEOUT,
    )
    .map_err(|e| format!("sandbox gateway: {e}"))?;
    let (status, gateway_ref) = w
        .client
        .complete_top_up(&w.rt, &intent_id)
        .map_err(|e| format!("top-up: {e}"))?;
    if status != "credited" {
        return Err(format!("the top-up ended {status}, not credited").into());
    }
    let r = w
        .client
        .provision(&w.rt, true)
        .map_err(|e| format!("replenish: {e}"))?;
    out.step(
        "top_up",
        "Top up 500,000 rials through the (sandbox) Shaparak gateway",
        t.elapsed(),
        &[
            format!("payment intent {} for {}", intent_id, money(TOP_UP)),
            format!(
                "gateway answered {} (pay → redirect); the wallet polls, the backend verifies \
                 server to server and credits once (ref {})",
                paid.status, gateway_ref
            ),
            format!(
                "new certificate: offline allowance {} (balance {}), counters {}..={}",
                money(r.max_amount),
                money(r.balance),
                r.counter_first,
                r.counter_last
            ),
        ],
        json!({"intent_id": intent_id, "amount": TOP_UP, "status": status,
               "gateway_http_status": paid.status, "balance": r.balance,
               "max_amount": r.max_amount}),
    );

    // ---- validator
    let t = Instant::now();
    let keys = w.engine()?.key_info();
    let current = keys
        .iter()
        .find(|k| k.current)
        .or_else(|| keys.first())
        .ok_or("the backend has no issuer key")?;
    let anchor = TrustAnchor {
        key_id: Some(current.key_id),
        public_key: PublicKey::from_bytes(
            &hex::decode(&current.public_key).map_err(|e| format!("issuer key: {e}"))?,
            "issuer key",
        )?,
    };
    let vdir = dir.join("validator");
    let mut v = Validator::init(&vdir, &anchor, VALIDATOR_ID, LINE_A)?;
    w.engine()?
        .register_validator(&RegisterValidatorRequest {
            validator_id: VALIDATOR_ID,
            public_key: hex::encode(v.public_key().as_bytes()),
        })
        .map_err(|e| format!("register validator: {e}"))?;
    let url = w.url()?;
    let bundle = http::fetch_config(&url, None, HTTP_TIMEOUT)
        .map_err(|e| format!("fetch config: {e}"))?
        .ok_or("the backend answered 304 to a validator without a bundle")?;
    v.install_config(&bundle)?;
    let st = v.status()?;
    let day = pick_day(w.engine()?.now());
    w.clock.store(day, Ordering::SeqCst);
    w.day = day;
    let c = Arc::clone(&w.clock);
    v.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    w.validator = Some(v);
    out.step(
        "validator_config",
        "A validator fetches its signed config bundle",
        t.elapsed(),
        &[
            format!(
                "validator {VALIDATOR_ID} (Imam Square interchange, lines {LINE_A} and {LINE_B}) \
                 trusts issuer key {}; its own key is registered with the backend",
                current.key_id
            ),
            format!(
                "GET /v1/validator/config: bundle version {} ({} bytes): issuer keys, deny list \
                 ({} card(s)), Urmia tariff",
                st.config_version.unwrap_or(0),
                bundle.len(),
                st.deny_list_len
            ),
            format!(
                "from here on the validator's clock is driven by the demo: the day starts {}{}",
                local(day),
                if day - w.engine()?.now() > 6 * 3600 {
                    " (tomorrow morning: today's has passed; the certificate lives 72 h)"
                } else {
                    ""
                }
            ),
        ],
        json!({"validator_id": VALIDATOR_ID, "bundle_version": st.config_version,
               "bundle_bytes": bundle.len(), "deny_list": st.deny_list_len,
               "day_start": day}),
    );

    // ---- taps
    let via = if w.reader == ReaderChoice::Pcsc {
        "through PC/SC: pcscd + vpcd"
    } else {
        "in process"
    };
    tap(
        out,
        w,
        "tap_line_a",
        &format!("NFC tap on line {LINE_A} ({via})"),
        LINE_A,
        0,
    )?;
    tap(
        out,
        w,
        "transfer_line_b",
        &format!("Transfer onto line {LINE_B} 12 minutes later, within the 45-minute window"),
        LINE_B,
        12 * 60,
    )?;

    // ---- offline
    let t = Instant::now();
    let failed = w
        .validator()?
        .upload(|_b| Err("no network: the bus left coverage".to_string()));
    let st = w.validator()?.status()?;
    out.step(
        "offline",
        "The validator goes offline",
        t.elapsed(),
        &[
            format!(
                "upload attempt: {}",
                match &failed {
                    Ok(_) => "sent (unexpected)".to_string(),
                    Err(e) => e.to_string(),
                }
            ),
            format!(
                "{} tap(s) sealed in {} signed batch(es), kept until acknowledged; decisions go on \
                 with public keys only",
                st.journal.in_pending_batches, st.journal.pending_batches
            ),
        ],
        json!({"upload_failed": failed.is_err(), "pending_batches": st.journal.pending_batches,
               "pending_taps": st.journal.in_pending_batches + st.journal.unsealed}),
    );

    // ---- QR
    qr(out, w, dir, 2 * 3600)?;

    // ---- up to the cap
    tap(
        out,
        w,
        "tap_cap",
        &format!("Evening: NFC tap on line {LINE_A}, the daily cap is reached"),
        LINE_A,
        9 * 3600,
    )?;
    tap(
        out,
        w,
        "tap_capped",
        &format!("Late ride on line {LINE_B}: free, capped"),
        LINE_B,
        13 * 3600,
    )?;

    // ---- back online: upload, then the wallet syncs
    let t = Instant::now();
    let mut answers: Vec<Value> = Vec::new();
    let skip = args.fault == Some(Fault::SkipUpload);
    if skip {
        out.note("fault injected: the validator never comes back online");
    }
    let rep = w.validator()?.upload(|b| {
        if skip {
            return Err("no network (fault injected)".to_string());
        }
        let r = http::post(
            &http::join(&url, http::BATCHES_PATH),
            "application/octet-stream",
            &b.bytes,
            HTTP_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        let body = r.ok().map_err(|e| e.to_string())?;
        answers.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        Ok(())
    });
    let rep = match rep {
        Ok(r) => r,
        Err(e) if skip => {
            out.note(&format!("upload: {e}"));
            mancard_validator::UploadReport::default()
        }
        Err(e) => return Err(e.into()),
    };
    let settled: u64 = answers
        .iter()
        .map(|a| a.get("settled").and_then(Value::as_u64).unwrap_or(0))
        .sum();
    out.step(
        "upload",
        "Back in coverage: the validator uploads its journal",
        t.elapsed(),
        &[format!(
            "{} signed batch(es), {} tap(s) (the batch sealed while offline resent with the same \
             id); backend settled {settled}",
            rep.acked.len(),
            rep.records
        )],
        json!({"batches": rep.acked.len(), "records": rep.records, "settled": settled,
               "answers": answers}),
    );

    if args.fault == Some(Fault::BackendAdjustment) {
        w.engine()?
            .adjust(&AdjustmentRequest {
                account_id,
                amount: -1_000,
                idempotency_key: "demo-fault".into(),
                note: "unexplained debit (fault injected by the demo)".into(),
            })
            .map_err(|e| format!("adjustment: {e}"))?;
        out.note("fault injected: the backend debits 1,000 rials that no ride explains");
    }
    let t = Instant::now();
    let s = w.client.sync(&w.rt).map_err(|e| format!("sync: {e}"))?;
    out.step(
        "sync",
        "The wallet syncs",
        t.elapsed(),
        &[
            format!(
                "{} tap-log entr{} uploaded (already settled from the validator's batches: \
                 duplicates, charged once); {} ledger entr{} learned",
                s.uploaded,
                if s.uploaded == 1 { "y" } else { "ies" },
                s.ledger_entries,
                if s.ledger_entries == 1 { "y" } else { "ies" }
            ),
            format!(
                "confirmed balance {}; fare corrections {}; credential {}",
                money(s.balance),
                s.fare_corrections,
                s.credential_status
            ),
        ],
        json!({"uploaded": s.uploaded, "balance": s.balance,
               "fare_corrections": s.fare_corrections, "ledger_entries": s.ledger_entries,
               "credential_status": s.credential_status}),
    );

    // ---- statement and books
    books(out, w, account_id)
}

/// The validator's day: 07:30 Iran time on the current fare day, or the next one if that is
/// already past (all rides fit in one fare day and inside the certificate's 72 h).
fn pick_day(now: i64) -> i64 {
    let t = Tariff::urmia_default();
    let start = |d: i64| d * 86_400 - i64::from(t.utc_offset_secs) + i64::from(t.day_start_secs);
    let today = start(t.fare_day(now)) + 3 * 3600 + 1800;
    if today > now + 60 {
        today
    } else {
        start(t.fare_day(now) + 1) + 3 * 3600 + 1800
    }
}

fn tap(out: &mut Out, w: &mut World, name: &str, title: &str, line: u32, at: i64) -> Res<()> {
    let day = w.day;
    w.clock.store(day + at, Ordering::SeqCst);
    w.validator()?.set_line(line)?;
    let t = Instant::now();
    let o = match w.reader {
        ReaderChoice::Sim => {
            let wallet = Arc::clone(&w.wallet);
            let mut ch = FnChannel::new(move |apdu| wallet.process_apdu(apdu));
            let o = w.validator()?.tap_nfc(&mut ch);
            w.wallet.deactivated();
            o
        }
        ReaderChoice::Pcsc => tap_pcsc(w)?,
    };
    let took = t.elapsed();
    describe(out, w, name, title, line, "nfc", &o, took)
}

/// One tap through pcscd: the phone (a thread) presents the wallet on vpcd, the validator
/// waits for it on the PC/SC reader, taps, resets the field, and the phone is lifted.
fn tap_pcsc(w: &mut World) -> Res<TapOutcome> {
    let reader = PcscReader::open(&w.reader_name)
        .map_err(|e| format!("PC/SC reader {}: {e}", w.reader_name))?;
    // A phone still in the field from an earlier run would be tapped instead.
    let _ = reader.wait_for_removal(Some(Duration::from_secs(2)));
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2, s) = (
        Arc::clone(&w.wallet),
        Arc::clone(&w.wallet),
        Arc::clone(&stop),
    );
    let addr = w.vpcd.clone();
    let phone = std::thread::spawn(move || -> Result<u64, String> {
        let mut conn = VpcdCard::connect_retry(&addr, Duration::from_secs(5))
            .map_err(|e| format!("cannot reach vpcd at {addr}: {e}"))?;
        let mut card = FnCard {
            on_apdu: move |a: &[u8]| w1.process_apdu(a.to_vec()),
            on_deactivated: move || w2.deactivated(),
        };
        conn.serve(&mut card, &s, Some(Duration::from_millis(30)))
            .map_err(|e| format!("vpcd: {e}"))?;
        Ok(conn.stats.apdus)
    });
    let present = reader.wait_for_card(Some(Duration::from_secs(10)));
    let result = match present {
        Ok(true) => match reader.connect(Duration::from_secs(2)) {
            Ok(mut card) => {
                let o = w.validator()?.tap_nfc(&mut card);
                card.finish();
                Ok(o)
            }
            Err(e) => Err(format!("PC/SC connect: {e}")),
        },
        Ok(false) => Err("no phone appeared on the PC/SC reader within 10 s".to_string()),
        Err(e) => Err(format!("PC/SC: {e}")),
    };
    let _ = reader.wait_for_removal(Some(Duration::from_secs(3)));
    stop.store(true, Ordering::SeqCst);
    let phone_end = phone
        .join()
        .map_err(|_| "the phone thread failed".to_string())?;
    let o = result?;
    phone_end?;
    Ok(o)
}

#[allow(clippy::too_many_arguments)]
fn describe(
    out: &mut Out,
    w: &mut World,
    name: &str,
    title: &str,
    line: u32,
    medium: &'static str,
    o: &TapOutcome,
    took: Duration,
) -> Res<()> {
    let a = match &o.decision {
        Decision::Accepted(a) => a.clone(),
        Decision::Refused(r) => {
            return Err(format!(
                "{title}: the validator refused: {} ({})",
                r.display_text(),
                r.code()
            )
            .into())
        }
    };
    let kind = format!("{:?}", a.fare_kind).to_lowercase();
    w.rides.push(Ride {
        time: o.time,
        line,
        medium,
        counter: a.counter,
        fare: a.fare,
        kind: kind.clone(),
    });
    let spent: i64 = w.rides.iter().map(|r| r.fare).sum();
    let ledger = w.wallet.ledger()?;
    let mut lines = vec![
        format!(
            "{}  line {line}  →  {}",
            hhmm(o.time),
            o.decision.display_text()
        ),
        format!(
            "fare {} ({kind}; line fare {}), counter {}, journal #{}",
            money(a.fare),
            money(a.base_fare),
            a.counter,
            a.journal_seq
        ),
    ];
    if medium == "nfc" {
        lines.push(format!(
            "{} APDU pair(s){}, validator decision + journal {}",
            o.apdus,
            if o.cert_cached {
                " (certificate cached: no READ CERTIFICATE)"
            } else {
                " (first sight: READ CERTIFICATE, issuer signature verified, cached)"
            },
            fmt_ms(o.elapsed.as_secs_f64() * 1000.0)
        ));
        if w.reader == ReaderChoice::Pcsc {
            lines.push(
                "(the step's time is mostly the phone being presented and lifted: pcscd polls \
                 the virtual reader for a card)"
                    .into(),
            );
        }
    }
    lines.push(format!(
        "today so far {}; wallet: {} pending, offline allowance left {}",
        money(spent),
        money(ledger.pending_amount),
        money(ledger.offline_allowance_remaining)
    ));
    out.step(
        name,
        title,
        took,
        &lines,
        json!({"line": line, "medium": medium, "accepted": true, "fare": a.fare,
               "fare_kind": kind, "base_fare": a.base_fare, "counter": a.counter,
               "time": o.time, "apdus": o.apdus, "cert_cached": o.cert_cached,
               "decision_ms": round3(o.elapsed.as_secs_f64() * 1000.0),
               "spent_today": spent}),
    );
    Ok(())
}

fn qr(out: &mut Out, w: &mut World, dir: &Path, at: i64) -> Res<()> {
    let day = w.day;
    let now = day + at;
    w.clock.store(now, Ordering::SeqCst);
    w.validator()?.set_line(LINE_EXPRESS)?;
    let t = Instant::now();
    // The phone's clock reads the same time as the validator's (the wallet corrects it by the
    // offset learned at sync).
    let pass = w.wallet.boarding_pass(now)?;
    let made = t.elapsed();
    let png = dir.join("pass.png");
    std::fs::write(&png, pass.png(6)?).map_err(|e| format!("{}: {e}", png.display()))?;
    out.raw(&pass.terminal());
    let t2 = Instant::now();
    let o = w.validator()?.verify_qr(&pass.text);
    let verified = t2.elapsed();
    out.note(&format!(
        "QR pass: {} characters (Base45), QR version {} ({}×{} modules), valid until {}, \
         reserves up to {}; made in {}, written to {}",
        pass.text.len(),
        pass.matrix.version,
        pass.matrix.width,
        pass.matrix.width,
        hhmm(pass.expires_at),
        money(pass.max_amount),
        fmt_ms(made.as_secs_f64() * 1000.0),
        png.display()
    ));
    describe(
        out,
        w,
        "qr",
        &format!("Offline validator, QR boarding on line {LINE_EXPRESS} (an iPhone rider's way)"),
        LINE_EXPRESS,
        "qr",
        &o,
        made + verified,
    )
}

/// The statement, and the three books side by side.
fn books(out: &mut Out, w: &mut World, account_id: i64) -> Res<Result<(), Vec<String>>> {
    let t = Instant::now();
    let mut problems = Vec::new();
    let engine = Arc::clone(w.engine()?);

    // Validator journal.
    let journal = w.validator()?.journal().rides()?;
    let jmap: BTreeMap<u32, i64> = journal.iter().map(|r| (r.counter, r.fare)).collect();
    let jstatus = w.validator()?.status()?;

    // Backend ledger.
    let ledger = engine
        .repo()
        .read(|tx| tx.ledger_since(account_id, 0, 100_000))
        .map_err(|e| format!("backend ledger: {e}"))?;
    let balance = engine
        .account(account_id)
        .map_err(|e| format!("backend account: {e}"))?
        .balance;
    let audit = engine.audit().map_err(|e| format!("backend audit: {e}"))?;
    let mut bmap: BTreeMap<u32, i64> = BTreeMap::new();
    let mut topups = 0i64;
    for e in &ledger {
        match (e.kind.as_str(), e.counter) {
            ("fare" | "fare_adjustment", Some(c)) => {
                *bmap.entry(c).or_insert(0) -= e.amount;
            }
            ("topup", _) => topups += e.amount,
            _ => {}
        }
    }

    // Wallet tap log and balances.
    let mut wmap: BTreeMap<u32, (i64, &'static str)> = BTreeMap::new();
    for raw in w.wallet.tap_log(0, 10_000)? {
        let e = WalletLogEntry::decode(&raw).map_err(|e| format!("wallet log: {e}"))?;
        let m = match e.proof {
            TapProof::Nfc { .. } => "nfc",
            TapProof::Qr { .. } => "qr",
        };
        wmap.insert(e.counter(), (e.amount, m));
    }
    let chain = w.wallet.verify_tap_log()?;
    let wl = w.wallet.ledger()?;

    // The statement, ride by ride.
    let mut rows = Vec::new();
    let mut lines = vec![format!(
        "{:<6} {:>4}  {:<3}  {:>8}  {:>20}  {:>20}  {:>20}",
        "time", "line", "via", "kind", "validator journal", "wallet (signed)", "backend ledger"
    )];
    for r in &w.rides {
        let j = jmap.get(&r.counter).copied();
        let wv = wmap.get(&r.counter).copied();
        let b = bmap.get(&r.counter).copied();
        lines.push(format!(
            "{:<6} {:>4}  {:<3}  {:>8}  {:>20}  {:>20}  {:>20}",
            hhmm(r.time),
            r.line,
            r.medium,
            r.kind,
            j.map(rials).unwrap_or_else(|| "—".into()),
            wv.map(|(a, _)| rials(a)).unwrap_or_else(|| "—".into()),
            b.map(|a| rials(-a)).unwrap_or_else(|| "—".into()),
        ));
        rows.push(json!({"counter": r.counter, "time": r.time, "line": r.line,
                         "medium": r.medium, "kind": r.kind, "gate_fare": r.fare,
                         "journal_fare": j, "wallet_amount": wv.map(|x| x.0),
                         "backend_charge": b}));
        if j != Some(r.fare) {
            problems.push(format!(
                "validator journal: counter {} should be {} but is {:?}",
                r.counter, r.fare, j
            ));
        }
        if b != Some(r.fare) {
            problems.push(format!(
                "backend ledger: counter {} charged {:?}, the gate charged {}",
                r.counter, b, r.fare
            ));
        }
        match wv {
            None => problems.push(format!("wallet tap log: counter {} is missing", r.counter)),
            Some((a, m)) => {
                if m != r.medium {
                    problems.push(format!(
                        "wallet tap log: counter {} is {m}, the gate saw {}",
                        r.counter, r.medium
                    ));
                }
                // NFC: the wallet signs the exact fare. QR: it signs a maximum.
                if (m == "nfc" && a != r.fare) || (m == "qr" && a < r.fare) {
                    problems.push(format!(
                        "wallet tap log: counter {} signed {a}, the gate charged {}",
                        r.counter, r.fare
                    ));
                }
            }
        }
    }
    let spent: i64 = w.rides.iter().map(|r| r.fare).sum();
    let jsum: i64 = jmap.values().sum();
    let bsum: i64 = bmap.values().sum();
    for (name, set) in [
        (
            "validator journal",
            jmap.keys().copied().collect::<Vec<_>>(),
        ),
        ("backend ledger", bmap.keys().copied().collect()),
        ("wallet tap log", wmap.keys().copied().collect()),
    ] {
        let ours: Vec<u32> = w.rides.iter().map(|r| r.counter).collect();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort_unstable();
        if set != ours_sorted {
            problems.push(format!(
                "{name} holds counters {set:?}, the rides were {ours_sorted:?}"
            ));
        }
    }
    if jsum != spent || bsum != spent {
        problems.push(format!(
            "totals differ: gates {spent}, validator journal {jsum}, backend {bsum}"
        ));
    }
    if topups != TOP_UP {
        problems.push(format!("backend top-ups total {topups}, expected {TOP_UP}"));
    }
    if balance != TOP_UP - spent {
        problems.push(format!(
            "backend ledger: balance {} ≠ top-up − fares = {} (entries no ride explains)",
            money(balance),
            money(TOP_UP - spent)
        ));
    }
    if wl.confirmed_balance != balance {
        problems.push(format!(
            "wallet confirmed balance {} ≠ backend balance {balance}",
            wl.confirmed_balance
        ));
    }
    if wl.pending_taps != 0 {
        problems.push(format!(
            "wallet still has {} pending tap(s) after the sync",
            wl.pending_taps
        ));
    }
    if jstatus.journal.unsealed + jstatus.journal.in_pending_batches != 0 {
        problems.push(format!(
            "validator journal: {} tap(s) never reached the backend (not uploaded)",
            jstatus.journal.unsealed + jstatus.journal.in_pending_batches
        ));
    }
    if !audit.ok {
        problems.push(format!("backend audit failed: {audit:?}"));
    }
    let cap = Tariff::urmia_default().daily_caps[0];
    if spent != cap {
        problems.push(format!(
            "the day should cost exactly the adult daily cap {cap}, it cost {spent}"
        ));
    }
    lines.push(String::new());
    lines.push(format!(
        "top-up {}  −  fares {}  =  {}{}",
        money(TOP_UP),
        money(spent),
        money(TOP_UP - spent),
        if balance == TOP_UP - spent {
            "  = the backend balance".to_string()
        } else {
            format!("  ≠ the backend balance {}", money(balance))
        }
    ));
    let unsent = jstatus.journal.unsealed + jstatus.journal.in_pending_batches;
    lines.push(format!(
        "backend: balance {}, audit {} ({} ledger entries); wallet: confirmed {}, pending {}, \
         tap-log chain of {chain} entries verified; validator: {} ride(s) journaled, {}",
        money(balance),
        if audit.ok { "ok" } else { "FAILED" },
        audit.ledger_entries,
        money(wl.confirmed_balance),
        wl.pending_taps,
        journal.len(),
        if unsent == 0 {
            "all uploaded".to_string()
        } else {
            format!("{unsent} not uploaded")
        }
    ));
    out.step(
        "statement",
        "Reconciled statement: validator journal, wallet, backend ledger",
        t.elapsed(),
        &lines,
        json!({"rides": rows, "top_up": TOP_UP, "fares": spent, "balance": balance,
               "wallet_confirmed_balance": wl.confirmed_balance,
               "wallet_pending_taps": wl.pending_taps, "journal_total": jsum,
               "backend_total": bsum, "audit_ok": audit.ok,
               "books_agree": problems.is_empty(), "problems": problems}),
    );
    Ok(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    })
}

fn rials(a: i64) -> String {
    let m = money(a);
    m.split(" (").next().map(str::to_string).unwrap_or(m)
}

// ---------------------------------------------------------------- the rider's client

/// A certificate the backend issued, as the demo tells it.
struct Issued {
    pseudonym: String,
    valid_until: i64,
    counter_first: u32,
    counter_last: u32,
    max_amount: i64,
    balance: i64,
}

/// What a wallet sync did.
struct Synced {
    uploaded: u64,
    balance: i64,
    fare_corrections: u64,
    ledger_entries: u64,
    credential_status: String,
}

/// The wallet's online side: `mancard::online` (the app's code), or, with `--client http`,
/// the demo's own calls of the backend's HTTP API (reqwest) driving the same wallet API.
enum Client {
    Online(OnlineWallet),
    Http(HttpRider),
}

impl Client {
    fn register(&self, rt: &tokio::runtime::Runtime, phone: &str) -> Res<String> {
        match self {
            Self::Online(o) => Ok(o.block_on(o.register(phone.to_string()))??.phone),
            Self::Http(h) => rt.block_on(h.register(phone)),
        }
    }
    fn verify(&mut self, rt: &tokio::runtime::Runtime, phone: &str, code: &str) -> Res<i64> {
        match self {
            Self::Online(o) => Ok(o
                .block_on(o.verify(phone.to_string(), code.to_string()))??
                .account_id),
            Self::Http(h) => rt.block_on(h.verify(phone, code)),
        }
    }
    fn provision(&mut self, rt: &tokio::runtime::Runtime, replenish: bool) -> Res<Issued> {
        match self {
            Self::Online(o) => {
                let p = if replenish {
                    o.block_on(o.replenish())??
                } else {
                    o.block_on(o.provision())??
                };
                Ok(Issued {
                    pseudonym: p.pseudonym,
                    valid_until: p.valid_until,
                    counter_first: p.counter_first,
                    counter_last: p.counter_last,
                    max_amount: p.max_amount,
                    balance: p.balance,
                })
            }
            Self::Http(h) => rt.block_on(h.provision(replenish)),
        }
    }
    /// Starts a top-up: (intent id, payment URL).
    fn start_top_up(&self, rt: &tokio::runtime::Runtime, amount: i64) -> Res<(String, String)> {
        match self {
            Self::Online(o) => {
                let i = o.block_on(o.start_top_up(amount))??;
                Ok((i.intent_id, i.payment_url))
            }
            Self::Http(h) => rt.block_on(h.start_top_up(amount)),
        }
    }
    /// Polls a top-up: (status, gateway reference).
    fn complete_top_up(&self, rt: &tokio::runtime::Runtime, id: &str) -> Res<(String, String)> {
        match self {
            Self::Online(o) => {
                let i = o.block_on(o.complete_top_up(id.to_string()))??;
                Ok((
                    i.status.name().to_string(),
                    i.gateway_ref.unwrap_or_default(),
                ))
            }
            Self::Http(h) => rt.block_on(h.complete_top_up(id)),
        }
    }
    fn sync(&mut self, rt: &tokio::runtime::Runtime) -> Res<Synced> {
        match self {
            Self::Online(o) => {
                let s = o.block_on(o.sync())??;
                Ok(Synced {
                    uploaded: s.uploaded,
                    balance: s.balance,
                    fare_corrections: s.fare_corrections,
                    ledger_entries: s.ledger_entries,
                    credential_status: s.credential_status,
                })
            }
            Self::Http(h) => rt.block_on(h.sync()),
        }
    }
}

/// The backend's HTTP API called directly (docs/api.md), driving the wallet's public API the
/// way the online layer does: binding-key proof, certificate install, tap-log upload,
/// confirmed balance.
struct HttpRider {
    http: reqwest::Client,
    base: String,
    wallet: Arc<Wallet>,
    keystore: Arc<SoftwareKeystore>,
    token: Option<String>,
    pseudonym: Option<String>,
    cursor: i64,
    uploaded_through: u64,
}

impl HttpRider {
    fn new(base: String, wallet: Arc<Wallet>, keystore: Arc<SoftwareKeystore>) -> Res<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .map_err(|e| format!("HTTP client: {e}"))?,
            base,
            wallet,
            keystore,
            token: None,
            pseudonym: None,
            cursor: 0,
            uploaded_through: 0,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Res<Value> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{path}: unreadable answer ({status}): {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: {status} {} ({})",
                v.get("code").and_then(Value::as_str).unwrap_or("?"),
                v.get("detail").and_then(Value::as_str).unwrap_or("")
            )
            .into());
        }
        Ok(v)
    }

    async fn register(&self, phone: &str) -> Res<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/otp",
                Some(json!({ "phone": phone })),
            )
            .await?;
        str_field(&v, "phone")
    }

    async fn verify(&mut self, phone: &str, code: &str) -> Res<i64> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/session",
                Some(json!({ "phone": phone, "code": code })),
            )
            .await?;
        self.token = Some(str_field(&v, "token")?);
        v.get("account_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| "session: no account_id".into())
    }

    async fn provision(&mut self, replenish: bool) -> Res<Issued> {
        use mancard::PlatformKeystore as _;
        use mancard_protocol::provision::{provision_transcript, ProvisionPurpose};
        let req = self.wallet.prepare_credential_request()?;
        let n = self
            .call(reqwest::Method::POST, "/v1/credential/nonce", None)
            .await?;
        let nonce: [u8; 32] = hex::decode(str_field(&n, "nonce")?)?
            .try_into()
            .map_err(|_| "nonce is not 32 bytes")?;
        let purpose = if replenish {
            ProvisionPurpose::Replenish
        } else {
            ProvisionPurpose::Provision
        };
        let transcript = provision_transcript(
            purpose,
            &nonce,
            &PublicKey::from_bytes(&req.binding_public_key, "binding key")?,
            &PublicKey::from_bytes(&req.tap_public_key, "tap key")?,
        );
        let sig = self
            .keystore
            .sign_with_binding_key(transcript)
            .map_err(|e| format!("binding key: {e}"))?;
        let path = if replenish {
            "/v1/credential/replenish"
        } else {
            "/v1/credential/provision"
        };
        let c = self
            .call(
                reqwest::Method::POST,
                path,
                Some(json!({
                    "nonce": hex::encode(nonce),
                    "binding_public_key": hex::encode(&req.binding_public_key),
                    "tap_public_key": hex::encode(&req.tap_public_key),
                    "signature": hex::encode(sig),
                    "next_counter": req.next_counter,
                })),
            )
            .await?;
        let keys = c
            .get("issuer_keys")
            .and_then(Value::as_array)
            .ok_or("credential: no issuer_keys")?
            .iter()
            .map(|k| {
                Ok(mancard::IssuerKeyInfo {
                    key_id: u32::try_from(k.get("key_id").and_then(Value::as_u64).unwrap_or(0))?,
                    public_key: hex::decode(str_field(k, "public_key")?)?,
                    valid_from: k.get("valid_from").and_then(Value::as_i64).unwrap_or(0),
                    valid_until: k.get("valid_until").and_then(Value::as_i64).unwrap_or(0),
                })
            })
            .collect::<Res<Vec<_>>>()?;
        let server_time = c.get("server_time").and_then(Value::as_i64).unwrap_or(0);
        self.wallet
            .set_server_time_offset(server_time - chrono::Utc::now().timestamp())?;
        self.wallet
            .set_tariff(hex::decode(str_field(&c, "tariff")?)?)?;
        self.wallet.install_certificate(
            hex::decode(str_field(&c, "certificate")?)?,
            keys,
            chrono::Utc::now().timestamp(),
        )?;
        let pseudonym = str_field(&c, "pseudonym")?;
        self.pseudonym = Some(pseudonym.clone());
        let num = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(0);
        Ok(Issued {
            pseudonym,
            valid_until: num("valid_until"),
            counter_first: u32::try_from(num("counter_first"))?,
            counter_last: u32::try_from(num("counter_last"))?,
            max_amount: num("max_amount"),
            balance: num("balance"),
        })
    }

    async fn start_top_up(&self, amount: i64) -> Res<(String, String)> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/topups",
                Some(json!({"amount": amount, "idempotency_key": "demo-topup-1"})),
            )
            .await?;
        Ok((str_field(&v, "intent_id")?, str_field(&v, "payment_url")?))
    }

    async fn complete_top_up(&self, id: &str) -> Res<(String, String)> {
        let v = self
            .call(reqwest::Method::GET, &format!("/v1/topups/{id}"), None)
            .await?;
        let status = str_field(&v, "status")?;
        if status == "credited" {
            let amount = v.get("amount").and_then(Value::as_i64).unwrap_or(0);
            self.wallet.record_top_up(
                amount,
                chrono::Utc::now().timestamp(),
                v.get("gateway_ref")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )?;
        }
        Ok((
            status,
            v.get("gateway_ref")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ))
    }

    async fn sync(&mut self) -> Res<Synced> {
        let pseudonym = self.pseudonym.clone().ok_or("sync before provisioning")?;
        let entries = self.wallet.tap_log(self.uploaded_through, 1000)?;
        let n = u64::try_from(entries.len())?;
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/wallet/sync",
                Some(json!({
                    "pseudonym": pseudonym,
                    "cursor": self.cursor,
                    "entries": entries.iter().map(hex::encode).collect::<Vec<_>>(),
                })),
            )
            .await?;
        let balance = v
            .get("balance")
            .and_then(Value::as_i64)
            .ok_or("sync: no balance")?;
        let server_time = v.get("server_time").and_then(Value::as_i64).unwrap_or(0);
        let taps = v
            .get("taps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut corrections = 0u64;
        for (t, raw) in taps.iter().zip(entries.iter()) {
            let signed = WalletLogEntry::decode(raw).map(|e| e.amount).unwrap_or(0);
            if t.get("fare").and_then(Value::as_i64) != Some(signed) {
                corrections += 1;
            }
        }
        let last = self.uploaded_through + n;
        self.wallet.set_confirmed_balance(
            balance,
            if last == 0 { None } else { Some(last - 1) },
            server_time,
        )?;
        self.uploaded_through = last;
        let ledger = v
            .get("ledger")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        self.cursor = v
            .get("cursor")
            .and_then(Value::as_i64)
            .unwrap_or(self.cursor);
        Ok(Synced {
            uploaded: n,
            balance,
            fare_corrections: corrections,
            ledger_entries: u64::try_from(ledger)?,
            credential_status: v
                .get("credential")
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        })
    }
}

fn str_field(v: &Value, k: &str) -> Res<String> {
    Ok(v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the answer has no `{k}`"))?
        .to_string())
}
