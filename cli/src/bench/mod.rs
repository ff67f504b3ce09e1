//! `mancard bench`: every headline figure in one run, each beside a peer measured in the same
//! run, interleaved with it (subject and peer alternate, so both see the same machine state):
//!
//! | figure | peer (measured) | goal |
//! |---|---|---|
//! | wallet tap: SELECT + AUTHORIZE through `process_apdu` | one raw ring P-256 verify + sign | ≤ 2×, p99 ≤ 1 ms |
//! | what that tap costs beyond its raw verify and sign (difference of medians) | one raw ring P-256 sign | ≤ 1× |
//! | validator decision, cached certificate, 100,000-card deny list | one raw ring P-256 verify | ≤ 1.3× |
//! | boarding pass as the app gets it (sign + log + QR + SVG + PNG) | raw sign + QR + the same renders | ≤ 3 ms |
//! | whole tap through pcscd + vpcd | the same tap in process | p99 ≤ 10 ms |
//! | wallet sync of 10,000 taps (`mancard::online`), ≥ 3 rounds | 10,000 raw verifies, 1 core | ≤ 1 s |
//! | backend settlement ingest | raw SQLite insert of the same rows | verify-bound |
//! | wallet tap with 100,000 taps of history | the same tap on a really empty wallet | ≤ 1.2× |
//! | p99 of that tap | p99 of the same tap on a really empty wallet | ≤ 1 ms, ≤ 1.5× |
//!
//! Each scenario is defined once in `mancard_testkit::scenarios` (the criterion benches call
//! the same ones); this module only measures and prints. A row whose scenario or peer fails
//! fails the run (exit 1), and so does, in a release build, a row that misses its goal (a
//! debug build's figures are meaningless: its goals are shown, not judged). The PC/SC row is
//! skipped only when asked (`--no-pcsc`); a missing pcscd otherwise fails it.
//! `--quick` runs fewer iterations (a CI smoke test); `--json` prints one object per row.
//! Measure with `cargo run --release -p mancard-cli -- bench`.

mod report;
mod rows;

use crate::CliResult;
use clap::Args;
use report::{print_rows, Row, Status};
use std::process::ExitCode;
use std::time::Instant;

/// The scenarios' result type (any error, `Send + Sync`).
type Res<T> = mancard_testkit::scenarios::Res<T>;

#[derive(Args)]
pub struct BenchArgs {
    /// A short run (fewer iterations, smaller fixtures): a smoke test for CI, not for figures.
    #[arg(long)]
    quick: bool,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    json: bool,
    /// PC/SC reader for the whole-tap row (its card side is vpcd at `--vpcd`).
    #[arg(long, default_value = "Virtual PCD 00 01")]
    reader_name: String,
    /// vpcd address the benchmark's phone connects to (`Virtual PCD 00 01` is 35964).
    #[arg(long, default_value = "127.0.0.1:35964")]
    vpcd: String,
    /// Leave out the whole-tap row on purpose (a machine without pcscd). Without this flag a
    /// missing pcscd fails the row, and the run.
    #[arg(long)]
    no_pcsc: bool,
}

/// Sizes of a run.
struct Plan {
    quick: bool,
    taps: usize,
    verifies: usize,
    passes: usize,
    pcsc_taps: usize,
    history: u64,
    sync_taps: usize,
    sync_rounds: usize,
    batches: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                taps: 300,
                verifies: 300,
                passes: 50,
                pcsc_taps: 20,
                history: 10_000,
                sync_taps: 1_000,
                sync_rounds: 3,
                batches: 2,
            }
        } else {
            Self {
                quick,
                taps: 20_000,
                verifies: 20_000,
                passes: 1_000,
                pcsc_taps: 1_000,
                history: 100_000,
                sync_taps: 10_000,
                sync_rounds: 3,
                batches: 5,
            }
        }
    }
}

pub fn run(args: BenchArgs) -> CliResult {
    let plan = Plan::new(args.quick);
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("mancard-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    if !args.json {
        println!(
            "mancard bench{}: {} CPU(s), {} build, {}",
            if args.quick { " --quick" } else { "" },
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            if cfg!(debug_assertions) {
                "DEBUG (figures meaningless: use --release)"
            } else {
                "release"
            },
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
    }
    let progress = |name: &str| {
        if !args.json {
            eprintln!(
                "  measuring {name} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let rows = rows::all(tmp.path(), &plan, &args, progress);
    print_rows(&rows, args.json);
    // A row fails the run when its scenario failed, or, in a release build, when it misses
    // its goal; a debug build's figures are meaningless, so its goals are not judged.
    let judge_goals = !cfg!(debug_assertions);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == Status::Failed || (judge_goals && r.ok == Some(false)))
        .map(|r| r.figure)
        .collect();
    if !args.json {
        println!(
            "whole run {:.1} s; medians of interleaved loops (each figure and its peer alternate)",
            started.elapsed().as_secs_f64()
        );
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} row(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
        Ok(ExitCode::from(1))
    }
}

/// A row's result: measured, or failed with the scenario's message.
fn row_or_failed(figure: &'static str, peer: &str, goal: &'static str, r: Res<Row>) -> Row {
    r.unwrap_or_else(|e| Row::failed(figure, peer, goal, e.to_string()))
}
