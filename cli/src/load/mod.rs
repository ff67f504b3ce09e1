//! `mancard load`: a load generator against a running sandbox backend, built on goose
//! (ADR 0011).
//!
//! ```text
//! MANCARD_OPERATOR_TOKEN=… mancard load --backend URL[,URL…] [--validators N] [--wallets M]
//!     [--duration 60s] [--rate R] [--taps-per-batch K] [--resend-every E] [--users U] [--json]
//! ```
//!
//! Setup (not timed, [`setup`]): N validators registered over the admin API (the token needs
//! the `keys` and `read` scopes), M riders each with a real wallet core, its own phone number,
//! a paid top-up and a certificate. Timed ([`scenarios`]): goose users run `upload` (signed
//! batches of K taps the wallets signed, some sent twice on purpose), `sync` and `topup` for
//! the duration, at most R requests a second overall with `--rate`. With several `--backend`
//! URLs (instances on one database) every request goes to a randomly picked instance, and a
//! batch sent twice goes to two different ones. Then the books
//! ([`books`]): every tap charged exactly once, every paid top-up credited exactly once, the
//! backend's audit clean, no 5xx answer; exit 1 naming what was lost, doubled or failed. The figures per request
//! kind ([`report`]) go to stdout as a table, or one JSON document with `--json`; a progress
//! line goes to stderr (not with `--json`).

mod books;
mod report;
mod scenarios;
mod setup;

use crate::CliResult;
use clap::Args;
use goose::config::GooseConfiguration;
use goose::prelude::{GooseAttack, Scenario, Transaction};
use scenarios::State;
use serde_json::json;
use setup::Api;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Errors of a load run, each with what went wrong in words.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("{0}")]
    Args(String),
    #[error("setup: {0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("goose: {0}")]
    Goose(String),
    #[error("books: {0}")]
    Books(String),
}

type Res<T> = Result<T, LoadError>;

/// The environment variable that holds the operator token (never on the command line).
const TOKEN_ENV: &str = "MANCARD_OPERATOR_TOKEN";
/// What the setup pays in for each rider, and each timed top-up, rials. The certificate's
/// offline allowance is the balance capped by the backend's `--max-offline-amount`: serve
/// with `--max-offline-amount 50000000` or the riders' taps are refused (counted in the
/// report) once 25 rides of 20,000 have used the default 500,000.
const SETUP_TOPUP: i64 = 50_000_000;
const TIMED_TOPUP: i64 = 50_000;

#[derive(Args)]
pub struct LoadArgs {
    /// The sandbox backend's base URL (`mancard backend serve --sandbox --operators FILE`);
    /// repeat it (or separate with commas) for several instances on one database.
    #[arg(long, required = true, value_delimiter = ',')]
    backend: Vec<String>,
    /// Validators registered and uploading.
    #[arg(long, default_value_t = 2)]
    validators: u32,
    /// Riders (wallets) tapping, syncing and topping up.
    #[arg(long, default_value_t = 4)]
    wallets: u32,
    /// How long the timed phase runs: `90`, `60s`, `2m`.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// At most this many requests a second overall (goose's throttle); none: as fast as the
    /// users go.
    #[arg(long)]
    rate: Option<usize>,
    /// Taps in each uploaded batch.
    #[arg(long, default_value_t = 4)]
    taps_per_batch: usize,
    /// Send every E-th batch a second time (exactly-once must hold).
    #[arg(long, default_value_t = 5)]
    resend_every: u64,
    /// Batches each validator seals before the timed phase (its taps signed by the wallets
    /// then), uploaded first in the timed phase: the generator's cores then go to HTTP, not to
    /// signing, so the ingest figure measures the backend.
    #[arg(long, default_value_t = 0)]
    presealed: usize,
    /// Every batch draws its riders from all of them, so batches of different validators
    /// share accounts and take turns on their locks. By default each validator has riders of
    /// its own (every V-th), as a bus route has: batches of different validators then share
    /// no account.
    #[arg(long)]
    shared_riders: bool,
    /// Goose users (default: one per validator uploading, two syncing, one topping up).
    #[arg(long)]
    users: Option<usize>,
    /// One JSON document on stdout instead of the table; no progress line.
    #[arg(long)]
    json: bool,
    /// `NAME=PID`: also report the CPU time process PID and its descendants spent in the
    /// timed phase, per tap ingested (Linux `/proc`); repeat for several (the backend, the
    /// database server). The generator's own is always reported.
    #[arg(long, value_parser = parse_cpu_of)]
    cpu_of: Vec<(String, u32)>,
}

fn parse_cpu_of(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("--cpu-of {s}: NAME=PID"))?;
    let pid = pid
        .parse()
        .map_err(|_| format!("--cpu-of {s}: the PID is not a number"))?;
    Ok((name.to_string(), pid))
}

/// CPU seconds (user + system) of `pid` and every process descending from it, from Linux's
/// `/proc` (0 elsewhere, or for a process gone).
fn cpu_seconds(pid: u32) -> f64 {
    // (pid, ppid, ticks) of every process
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // after the command's closing parenthesis: state, ppid, …, utime (12th), stime
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let ppid = u32::try_from(num(1)).unwrap_or(0);
        procs.push((p, ppid, num(11).saturating_add(num(12))));
    }
    let mut tree = std::collections::BTreeSet::from([pid]);
    loop {
        let before = tree.len();
        for (p, pp, _) in &procs {
            if tree.contains(pp) {
                tree.insert(*p);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    let ticks: u64 = procs
        .iter()
        .filter(|(p, _, _)| tree.contains(p))
        .map(|(_, _, t)| *t)
        .sum();
    // USER_HZ: 100 on every Linux the project runs on
    ticks as f64 / 100.0
}

/// The CPU seconds of the generator and of every `--cpu-of` process now.
fn cpu_sample(cpu_of: &[(String, u32)]) -> Vec<(String, f64)> {
    let mut v = vec![("generator".to_string(), cpu_seconds(std::process::id()))];
    v.extend(cpu_of.iter().map(|(n, p)| (n.clone(), cpu_seconds(*p))));
    v
}

/// `60`, `60s`, `2m`, `1h` as seconds.
fn parse_duration(text: &str) -> Res<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| LoadError::Args(format!("--duration {text:?}: expected e.g. 60s, 2m")))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(LoadError::Args(format!(
                "--duration {text:?}: unit s, m or h"
            )))
        }
    };
    match n.checked_mul(mult) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(LoadError::Args(format!(
            "--duration {text:?}: must be more than zero"
        ))),
    }
}

pub fn run(args: LoadArgs) -> CliResult {
    let secs = parse_duration(&args.duration)?;
    if args.validators == 0 || args.wallets == 0 || args.taps_per_batch == 0 {
        return Err(LoadError::Args(
            "--validators, --wallets and --taps-per-batch must be more than zero".into(),
        )
        .into());
    }
    let token = std::env::var(TOKEN_ENV).map_err(|_| {
        LoadError::Args(format!(
            "set {TOKEN_ENV} to an operator token with the keys and read scopes (`mancard \
             backend operator-token --name load --scope keys --scope read --add-to FILE`, and \
             serve with --operators FILE)"
        ))
    })?;
    // goose logs through `log`: this subscriber takes it (to stderr), so goose's own logger
    // (stdout) stays off and stdout holds only the figures.
    let filter = if args.json { "error" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::Setup(format!("tokio runtime: {e}")))?;
    let code = rt.block_on(run_async(&args, secs, &token))?;
    Ok(code)
}

async fn run_async(args: &LoadArgs, secs: u64, token: &str) -> Res<ExitCode> {
    let apis = args
        .backend
        .iter()
        .map(|b| Api::new(b))
        .collect::<Res<Vec<_>>>()?;
    let Some(api) = apis.first() else {
        return Err(LoadError::Args("--backend: at least one URL".into()));
    };
    let dir = tempfile::Builder::new()
        .prefix("mancard-load-")
        .tempdir()
        .map_err(|e| LoadError::Setup(format!("temporary directory: {e}")))?;
    let started = Instant::now();
    let state = Arc::new(set_up(&apis, args, token, dir.path()).await?);
    let setup_secs = started.elapsed().as_secs_f64();
    if !args.json {
        eprintln!(
            "load: set up {} validator(s) and {} rider(s) on {} instance(s) in {setup_secs:.1} s; \
             running {secs} s",
            args.validators,
            args.wallets,
            apis.len()
        );
    }
    if args.presealed > 0 {
        preseal(&state, args.presealed).await?;
        if !args.json {
            eprintln!(
                "load: sealed {} batch(es) of {} tap(s) per validator in {:.1} s",
                args.presealed,
                args.taps_per_batch,
                started.elapsed().as_secs_f64() - setup_secs
            );
        }
    }
    // the peer: raw P-256 verifies on every core, just before and just after the timed phase
    // (the backend idle both times), averaged
    let before = verify_rate().await?;
    let progress = (!args.json).then(|| tokio::spawn(progress(Arc::clone(&state), secs)));
    let cpu_before = cpu_sample(&args.cpu_of);
    let timed = Instant::now();
    let metrics = attack(args, secs, &state).await;
    let timed_secs = timed.elapsed().as_secs_f64();
    let uploaded = state.taps_uploaded.load(Ordering::Relaxed);
    let cpu = cpu_sample(&args.cpu_of)
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| Cpu::new(name, after - before, timed_secs, uploaded))
        .collect::<Vec<_>>();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let figures = report::figures(&metrics?);
    let after = verify_rate().await?;
    let ingest = Ingest::new(uploaded, timed_secs, (before + after) / 2.0, cpu);
    let figures_5xx = figures.total.status_5xx;
    let (mut problems, mut summary) = keep_books(api, &state, token).await?;
    if figures_5xx > 0 {
        let which = state
            .server_errors
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        problems.push(format!(
            "{figures_5xx} answer(s) were 5xx ({which}): a server error is never an answer to load"
        ));
    }
    summary.ok = problems.is_empty();
    print(args, (&figures, &ingest), &summary, &problems, &state);
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The untimed setup: validators, then riders (each topped up and provisioned), spread over
/// the instances.
async fn set_up(apis: &[Api], args: &LoadArgs, token: &str, dir: &std::path::Path) -> Res<State> {
    let on = |i: u64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| i.checked_rem(apis.len()))
            .and_then(|i| apis.get(i))
            .ok_or_else(|| LoadError::Args("--backend: at least one URL".into()))
    };
    let mut validators = Vec::new();
    for i in 0..args.validators {
        let api = on(u64::from(i))?;
        let id = 9_000u32.saturating_add(i);
        let line = if i % 2 == 0 { 1 } else { 2 };
        validators.push(
            setup::validator(api, token, &dir.join(format!("validator-{id}")), (id, line)).await?,
        );
    }
    // Every rider has a number of its own (one-time codes are paced per number); a run's
    // numbers start somewhere new so a reused backend gives it fresh accounts.
    let now = chrono::Utc::now().timestamp().unsigned_abs();
    let seed = now.wrapping_mul(7_919) % 10_000_000;
    let mut riders = Vec::new();
    for i in 0..u64::from(args.wallets) {
        let phone = format!("0912{:07}", (seed + i) % 10_000_000);
        let r = setup::rider(on(i)?, &dir.join(format!("rider-{i}")), &phone, SETUP_TOPUP).await?;
        riders.push(Arc::new(r));
    }
    Ok(State::new(
        validators,
        riders,
        (args.taps_per_batch, args.resend_every, TIMED_TOPUP),
        args.shared_riders,
        format!("{now}"),
        apis.iter().map(|a| a.base.clone()).collect(),
    ))
}

/// Seals `--presealed` batches at every validator, the validators in parallel on blocking
/// threads (each tap is a wallet's and a validator's signatures).
async fn preseal(state: &Arc<State>, batches: usize) -> Res<()> {
    let mut tasks = Vec::new();
    for vi in 0..state.validators.len() {
        let s = Arc::clone(state);
        tasks.push(tokio::task::spawn_blocking(move || s.preseal(vi, batches)));
    }
    for t in tasks {
        t.await
            .map_err(|e| LoadError::Setup(format!("presealing: {e}")))?
            .map_err(|e| LoadError::Setup(format!("presealing: {e}")))?;
    }
    Ok(())
}

/// The cores this process may run on (`taskset` narrows them).
fn verify_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Raw ring P-256 verifies a second on every core this process may run on (2 s): the ceiling
/// of settlement, which verifies every tap's signatures.
async fn verify_rate() -> Res<f64> {
    tokio::task::spawn_blocking(|| {
        let cores = verify_cores();
        let window = Duration::from_secs(2);
        let counts: Vec<Result<u64, String>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..cores)
                .map(|_| {
                    sc.spawn(move || {
                        let v = mancard_testkit::scenarios::peers::RawVerifier::new()
                            .map_err(|e| e.to_string())?;
                        let t = Instant::now();
                        let mut n = 0u64;
                        while t.elapsed() < window {
                            v.run_n(64).map_err(|e| e.to_string())?;
                            n = n.saturating_add(64);
                        }
                        Ok(n)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a verify thread died".into()))
                })
                .collect()
        });
        let mut total = 0u64;
        for c in counts {
            total = total.saturating_add(c?);
        }
        Ok(total as f64 / window.as_secs_f64())
    })
    .await
    .map_err(|e| LoadError::Setup(format!("verify peer: {e}")))?
    .map_err(LoadError::Setup)
}

/// What one process (with its descendants) spent in the timed phase.
#[derive(serde::Serialize)]
struct Cpu {
    name: String,
    seconds: f64,
    /// Of the machine's cores, on average.
    cores: f64,
    /// Microseconds per tap ingested.
    us_per_tap: f64,
}

impl Cpu {
    fn new(name: String, seconds: f64, timed_secs: f64, taps: u64) -> Self {
        let r = |x: f64, d: f64| (x * d).round() / d;
        Self {
            name,
            seconds: r(seconds, 100.0),
            cores: r(seconds / timed_secs.max(0.001), 100.0),
            us_per_tap: r(seconds * 1e6 / (taps.max(1) as f64), 1.0),
        }
    }
}

/// Settlement ingest over HTTP against the all-cores verify rate measured in the same run.
#[derive(serde::Serialize)]
struct Ingest {
    /// Taps in batches accepted on their first upload during the timed phase.
    taps: u64,
    taps_per_second: f64,
    /// Raw P-256 verifies a second on all cores (the peer).
    verifies_per_second_all_cores: f64,
    /// How many cores those ran on: this process's (fewer under `taskset`).
    verify_cores: usize,
    /// `taps_per_second / verifies_per_second_all_cores`: each tap costs the backend two
    /// verifies (the rider's signature and the reader's challenge), so 0.5 is the ceiling.
    ratio_to_verify_rate: f64,
    /// Taps the cores could verify a second and do nothing else (two verifies a tap).
    tap_verifies_per_second_all_cores: f64,
    /// `taps_per_second / tap_verifies_per_second_all_cores`: ingest against verifying alone
    /// (1 is the ceiling; the issue's goal is 0.5).
    ratio_to_tap_verify_rate: f64,
    /// Where the machine's CPU went in the timed phase (the generator, and `--cpu-of`).
    cpu: Vec<Cpu>,
}

impl Ingest {
    fn new(taps: u64, secs: f64, verifies: f64, cpu: Vec<Cpu>) -> Self {
        let per_second = taps as f64 / secs.max(0.001);
        Self {
            taps,
            taps_per_second: (per_second * 10.0).round() / 10.0,
            verifies_per_second_all_cores: verifies.round(),
            verify_cores: verify_cores(),
            ratio_to_verify_rate: (per_second / verifies.max(1.0) * 1000.0).round() / 1000.0,
            tap_verifies_per_second_all_cores: (verifies / 2.0).round(),
            ratio_to_tap_verify_rate: (per_second / (verifies / 2.0).max(1.0) * 1000.0).round()
                / 1000.0,
            cpu,
        }
    }
}

/// The timed phase: goose's users on the three scenarios.
async fn attack(
    args: &LoadArgs,
    secs: u64,
    state: &Arc<State>,
) -> Res<goose::metrics::GooseMetrics> {
    let n = usize::try_from(args.validators).unwrap_or(1);
    let users = args.users.unwrap_or(n.saturating_add(3)).max(3);
    let mut cfg = GooseConfiguration::default();
    cfg.host = args.backend.first().cloned().unwrap_or_default();
    cfg.users = Some(users);
    cfg.hatch_rate = Some(users.to_string());
    cfg.run_time = secs.to_string();
    cfg.no_print_metrics = true;
    // goose's figures start once every user runs (as Locust's do); it prints nothing then
    cfg.no_reset_metrics = false;
    cfg.no_error_summary = true;
    cfg.no_telnet = true;
    cfg.no_websocket = true;
    cfg.no_autostart = false;
    cfg.quiet = 1;
    cfg.throttle_requests = args.rate.unwrap_or(0);
    let goose = |e: goose::GooseError| LoadError::Goose(e.to_string());
    let scenario = |name: &str, weight: usize, f: Transaction| -> Res<Scenario> {
        Ok(Scenario::new(name)
            .set_weight(weight)
            .map_err(goose)?
            .register_transaction(f.set_name(name)))
    };
    let (s1, s2, s3) = (Arc::clone(state), Arc::clone(state), Arc::clone(state));
    let upload = Transaction::new(Arc::new(move |u| {
        Box::pin(scenarios::upload(Arc::clone(&s1), u))
    }));
    let sync = Transaction::new(Arc::new(move |u| {
        Box::pin(scenarios::sync(Arc::clone(&s2), u))
    }));
    let topup = Transaction::new(Arc::new(move |u| {
        Box::pin(scenarios::topup(Arc::clone(&s3), u))
    }));
    GooseAttack::initialize_with_config(cfg)
        .map_err(goose)?
        .register_scenario(scenario("upload", n.max(1), upload)?)
        .register_scenario(scenario("sync", 2, sync)?)
        .register_scenario(scenario("topup", 1, topup)?)
        .execute()
        .await
        .map_err(goose)
}

/// The progress line on stderr, every two seconds.
async fn progress(state: Arc<State>, secs: u64) {
    let t = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprint!(
            "\rload: {:>4} s / {secs} s  {} requests, {} failed, {} taps",
            t.elapsed().as_secs(),
            state.requests.load(Ordering::Relaxed),
            state.failed.load(Ordering::Relaxed),
            state.tally.lock().map(|t| t.taps.len()).unwrap_or(0),
        );
    }
}

/// What the books counted.
#[derive(serde::Serialize)]
struct Summary {
    taps: usize,
    taps_refused_at_gate: u64,
    batches_resent: u64,
    batches_flushed_after: u64,
    topups_paid: usize,
    topups_credited: usize,
    local_failures: u64,
    audit: Option<mancard_api::AuditReport>,
    ok: bool,
}

/// The books' outcome: the problems, and the counts that were checked.
async fn keep_books(api: &Api, state: &State, token: &str) -> Res<(Vec<String>, Summary)> {
    let flushed = books::flush_validators(api, state).await?;
    let (taps, refused, resends, reprocessed, mut paid) = {
        let t = state
            .tally
            .lock()
            .map_err(|_| LoadError::Books("the tally was poisoned".into()))?;
        (
            t.taps.clone(),
            t.refused_taps,
            t.resends,
            t.resends_reprocessed,
            t.topups.clone(),
        )
    };
    let timed_topups = paid.len();
    for (i, r) in state.riders.iter().enumerate() {
        paid.push((i, r.setup_topup.clone()));
    }
    let topups = books::topups_now(api, state, &paid).await?;
    let mut riders = Vec::new();
    for i in 0..state.riders.len() {
        riders.push(books::rider_books(api, state, i).await?);
    }
    let audit = books::audit(api, token).await;
    let expected = books::Expected {
        taps,
        topups,
        resends_reprocessed: reprocessed,
    };
    let problems = books::check(&expected, &riders, audit.as_ref());
    let summary = Summary {
        taps: expected.taps.len(),
        taps_refused_at_gate: refused,
        batches_resent: resends,
        batches_flushed_after: flushed,
        topups_paid: timed_topups,
        topups_credited: expected.topups.iter().filter(|t| t.2).count(),
        local_failures: state.local_failures.load(Ordering::Relaxed),
        audit,
        ok: problems.is_empty(),
    };
    Ok((problems, summary))
}

fn print(
    args: &LoadArgs,
    (f, ingest): (&report::Figures, &Ingest),
    books: &Summary,
    problems: &[String],
    state: &State,
) {
    if args.json {
        let doc = json!({
            "backend": args.backend, "validators": args.validators, "wallets": args.wallets,
            "seconds": f.seconds, "rate": args.rate, "taps_per_batch": args.taps_per_batch,
            "presealed": args.presealed, "shared_riders": args.shared_riders, "kinds": f.kinds, "total": f.total, "ingest": ingest,
            "books": books, "problems": problems,
        });
        println!("{doc}");
    } else {
        println!(
            "mancard load: {} validator(s), {} wallet(s), {} s{}",
            args.validators,
            args.wallets,
            f.seconds,
            args.rate
                .map(|r| format!(", at most {r} req/s"))
                .unwrap_or_default()
        );
        print!("{}", report::table(f));
        println!(
            "ingest: {} taps/s over HTTP ({} taps accepted on first upload); raw P-256 verify on all cores {}/s, so {} taps/s verified and nothing else (two verifies a tap); ratio {} to the taps verified (1 is the ceiling), {} to the verifies",
            ingest.taps_per_second, ingest.taps, ingest.verifies_per_second_all_cores,
            ingest.tap_verifies_per_second_all_cores, ingest.ratio_to_tap_verify_rate,
            ingest.ratio_to_verify_rate
        );
        let cpu: Vec<String> = ingest
            .cpu
            .iter()
            .map(|c| format!("{} {:.2} cores, {} µs a tap", c.name, c.cores, c.us_per_tap))
            .collect();
        println!("cpu in the timed phase: {}", cpu.join("; "));
        println!(
            "books: {} taps charged once each ({} refused at the gate), {} top-ups credited once, {} batches resent on purpose, audit {}; {} local failure(s)",
            books.taps, books.taps_refused_at_gate, books.topups_credited, books.batches_resent,
            if books.audit.as_ref().is_some_and(|a| a.ok) { "clean" } else { "NOT clean" },
            state.local_failures.load(Ordering::Relaxed)
        );
        if !problems.is_empty() {
            println!("THE BOOKS DO NOT AGREE:");
            for p in problems.iter().take(50) {
                println!("  - {p}");
            }
        }
    }
    if !problems.is_empty() {
        eprintln!(
            "error: the books do not agree ({} problem(s))",
            problems.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_seconds, parse_cpu_of, setup::Api};

    /// A `--backend` that is not an http(s) URL with a host is named in a typed error.
    #[test]
    fn a_backend_url_is_checked_before_use() {
        for bad in ["notaurl", "ftp://h/", "http://", "127.0.0.1:8080"] {
            let e = Api::new(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("--backend"), "{bad}: {e}");
        }
        assert!(Api::new("http://127.0.0.1:8080/").is_ok());
        assert!(Api::new("https://backend.example").is_ok());
    }

    #[test]
    fn cpu_of_names_a_process() {
        assert_eq!(parse_cpu_of("backend-1=42"), Ok(("backend-1".into(), 42)));
        assert!(parse_cpu_of("backend").is_err());
        assert!(parse_cpu_of("backend=x").is_err());
    }

    /// A process's CPU time is read from /proc and grows while it works (Linux).
    #[test]
    fn cpu_time_is_read_and_grows() {
        let me = std::process::id();
        let before = cpu_seconds(me);
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        assert!(cpu_seconds(me) > before, "{before}");
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
