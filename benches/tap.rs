//! Wallet tap-path benchmark (criterion), over the named scenarios of
//! `mancard_testkit::scenarios` (the same ones `mancard bench` measures):
//!
//! - `tap/raw_p256_sign`: one ring ECDSA P-256 signature (the yardstick, same run);
//! - `tap/select_authorize`: SELECT + AUTHORIZE TAP APDUs in, responses out, with persistence;
//! - `tap/select_authorize_100k`: the same with 100,000 real taps already in the history;
//! - `pass/boarding_pass`: what the app gets (sign + log + QR matrix + SVG + PNG);
//!   `pass/qr_matrix_only|svg|png_8px|terminal`: the pieces of it.
//!
//! After criterion, a manual loop of 5,000 taps per wallet prints median, p99 and fsyncs/tap.
//! Quick run: `cargo bench -p mancard --bench tap -- --warm-up-time 0.5 --measurement-time 2`.
//!
//! Profiling modes instead of criterion (`tap/breakdown.rs`, docs/perf.md §7):
//! `TAP_BENCH=breakdown` times the tap's parts interleaved with the whole tap and the raw sign
//! and verify; `TAP_BENCH=loop` taps for `TAP_SECS` seconds (for `perf record`);
//! `TAP_BENCH=sql` times the tap's SQLite commit in variants; `TAP_BENCH=refusals` times a
//! recorded refusal before and after the refusal log is full.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{criterion_group, Criterion};
use mancard_testkit::scenarios::peers::RawSigner;
use mancard_testkit::scenarios::{PassScenario, WalletTap, PASS_PNG_MODULE_PX};
use mancard_testkit::{Issuer, T0};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `n` timed runs of `f`, sorted.
fn times(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort_unstable();
    v
}

fn manual_loop(name: &str, tap: &WalletTap, n: usize, raw_median: Duration) {
    let f0 = tap.wallet().stats().counter_fsyncs;
    let t = times(n, || tap.run_once().unwrap());
    let st = tap.wallet().stats();
    let fsyncs = st.counter_fsyncs - f0;
    let med = percentile(&t, 0.5);
    println!(
        "manual {name:<28} n={n} median={:>8.1?} p99={:>8.1?} max={:>8.1?} median/raw_sign={:.2} fsyncs/tap={:.4} (1/{:.1}) stalls={} block={}",
        med,
        percentile(&t, 0.99),
        t[t.len() - 1],
        med.as_secs_f64() / raw_median.as_secs_f64(),
        fsyncs as f64 / n as f64,
        n as f64 / fsyncs.max(1) as f64,
        st.reservation_stalls,
        st.reservation_block,
    );
}

fn bench(c: &mut Criterion) {
    let issuer = Issuer::new(1);
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let t = Instant::now();
    let full = WalletTap::with_history(d2.path(), &issuer, 100_000).unwrap();
    eprintln!("made 100,000 taps of history in {:?}", t.elapsed());
    let empty = WalletTap::new(d1.path(), &issuer).unwrap();
    let raw = RawSigner::new().unwrap();

    let mut g = c.benchmark_group("tap");
    g.bench_function("raw_p256_sign", |b| b.iter(|| raw.run_once().unwrap()));
    g.bench_function("select_authorize", |b| b.iter(|| empty.run_once().unwrap()));
    g.bench_function("select_authorize_100k", |b| {
        b.iter(|| full.run_once().unwrap())
    });
    g.finish();

    let pass = PassScenario::new(d3.path(), &issuer).unwrap();
    let mut g = c.benchmark_group("pass");
    g.bench_function("boarding_pass", |b| b.iter(|| pass.run_once().unwrap()));
    let p = pass.wallet().boarding_pass(T0 - 3600).unwrap();
    println!(
        "pass text {} chars, QR version {} ({}x{} modules)",
        p.text.len(),
        p.matrix.version,
        p.matrix.width,
        p.matrix.width
    );
    g.bench_function("qr_matrix_only", |b| {
        b.iter(|| black_box(mancard::QrMatrix::encode(&p.text).unwrap()))
    });
    g.bench_function("svg", |b| b.iter(|| black_box(p.svg())));
    g.bench_function("png_8px", |b| {
        b.iter(|| black_box(p.png(PASS_PNG_MODULE_PX).unwrap()))
    });
    g.bench_function("terminal", |b| b.iter(|| black_box(p.terminal())));
    g.finish();

    // manual loops: p99 and fsyncs per tap
    let r = times(5_000, || raw.run_once().unwrap());
    let raw_med = percentile(&r, 0.5);
    println!(
        "manual {:<28} n=5000 median={:>8.1?} p99={:>8.1?}",
        "raw_p256_sign",
        raw_med,
        percentile(&r, 0.99)
    );
    manual_loop("select_authorize (empty)", &empty, 5_000, raw_med);
    manual_loop("select_authorize (100k)", &full, 5_000, raw_med);
    let pt = times(1_000, || {
        black_box(pass.run_once().unwrap());
    });
    println!(
        "manual {:<28} n=1000 median={:>8.1?} p99={:>8.1?}",
        "boarding_pass",
        percentile(&pt, 0.5),
        percentile(&pt, 0.99)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}

#[path = "tap/breakdown.rs"]
mod breakdown;

/// `TAP_BENCH=breakdown | loop | sql` picks one of the profiling modes of [`breakdown`];
/// otherwise criterion, then the manual loops.
fn main() {
    match std::env::var("TAP_BENCH").as_deref() {
        Ok("breakdown") => breakdown::parts(),
        Ok("loop") => breakdown::profile_loop(),
        Ok("sql") => breakdown::sql_variants(),
        Ok("refusals") => breakdown::refusals(),
        _ => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
