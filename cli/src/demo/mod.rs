//! `mancard demo`: a rider's whole day, told step by step against an in-process backend and
//! validator, with timings, and checked at the end: the wallet, the backend ledger and the
//! validator journal must agree to the rial, or the demo exits 1 saying where.
//!
//! Everything is real: the backend serves HTTP on an ephemeral loopback port with a fresh
//! SQLite file, the wallet talks to it through `mancard::online`, the validator fetches its
//! signed config bundle and uploads signed batches over HTTP, taps go through
//! `Wallet::process_apdu` (in process, or through pcscd + vpcd with `--reader pcsc`), and the
//! QR pass is the wallet's real pass text verified by the validator. One clock drives the
//! story: the sandbox backend's, moved forward only (a day of rides in a few seconds); the
//! validators and the phone read it, and every report reaches the backend after its ride.
//!
//! Two buses, two validators: the transfer onto the second bus is charged in full at its gate
//! (validator 8 never saw the first ride), then re-rated by the backend over the rider's fare
//! day once the first bus uploads, and the rider's wallet shows the correction.
//!
//! `--attacks` plays the attack reel instead ([`attacks`]): every attack of issue #13 and of
//! protocol v2 tried against the real parties, each checked to be caught.
//!
//! The modules: [`output`] writes the story (text or JSON lines), [`world`] starts the parties
//! and lets the phone meet a validator, [`parties`] is what the day and the reel share (the
//! clock, validators, uploads), [`story`] and [`legs`] tell the day's steps, each sentence made
//! from the answers the parties gave, [`books`] reconciles the three books, and [`client`] /
//! [`http_rider`] are the wallet's online side (`mancard::online`, or the raw HTTP API).

mod attacks;
mod books;
mod client;
mod gateway;
mod http_rider;
mod legs;
mod output;
mod parties;
mod story;
mod world;

use crate::CliResult;
use clap::{Args, ValueEnum};
use mancard_validator::pcsc_reader::{pcscd_available, VPCD_READER};
use mancard_validator::vpcd::DEFAULT_VPCD_ADDR;
use output::{round3, Out};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// What an issued credential installs in a wallet (`mancard load` provisions its riders so).
pub(crate) use http_rider::install as install_credential;

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
    /// Play the attack reel: every attack of issue #13 and of protocol v2 tried against the
    /// real parties, each checked to be caught (exit 1 if one succeeds).
    #[arg(long, conflicts_with_all = ["fault", "reader", "client"])]
    attacks: bool,
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
const LINE_A: u32 = 1;
const LINE_B: u32 = 2;
const LINE_EXPRESS: u32 = 10;
/// The validator of bus 1 and the line it starts on.
const BUS_1: (u32, u32) = (7, LINE_A);
/// The validator of bus 2 and the line it starts on.
const BUS_2: (u32, u32) = (8, LINE_B);
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: DemoArgs) -> CliResult {
    let (_tmp, dir) = data_dir(&args)?;
    // RUST_LOG=debug shows what the parties log (to standard error).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut out = Out::new(args.json);
    if args.attacks {
        return attacks::run(&mut out, &dir);
    }
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

    let mut world = world::start(&mut out, &dir, &args, reader)?;
    let result = story::day(&mut out, &mut world, &dir, &args);
    if result.is_ok() && args.data_dir.is_some() {
        // The kept backend will be served at this machine's time: the phone's clock follows,
        // as its next sync with it would set it (the validators run on the system clock).
        world
            .wallet
            .set_server_time_offset(0)
            .map_err(|e| format!("phone clock: {e}"))?;
        out.note(
            "the story's clock stops: the kept phone's clock is this machine's again (the kept \
             backend and validators run at real time)",
        );
    }
    // Always stop the backend cleanly (WAL checkpointed), even after a failure.
    let stopped = world.stop_backend();
    let verdict = result?;
    stopped.map_err(|e| format!("backend shutdown: {e}"))?;
    Ok(finish(&out, verdict, &dir, &args))
}

/// The kept data directory (`--data-dir`, new or empty) or a temporary one.
fn data_dir(args: &DemoArgs) -> Res<(Option<tempfile::TempDir>, PathBuf)> {
    match &args.data_dir {
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
            Ok((None, d.clone()))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("mancard-demo-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            let p = t.path().to_path_buf();
            Ok((Some(t), p))
        }
    }
}

/// The last words: the books agree (exit 0) or the problems (exit 1).
fn finish(out: &Out, verdict: Result<(), Vec<String>>, dir: &Path, args: &DemoArgs) -> ExitCode {
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
                        dir.join(format!("validator-{}", BUS_1.0)).display(),
                        dir.join("backend.sqlite").display()
                    );
                }
            }
            ExitCode::SUCCESS
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
            ExitCode::from(1)
        }
    }
}
