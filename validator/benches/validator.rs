//! Validator benchmarks (criterion 0.5), over the named scenarios of
//! `mancard_testkit::scenarios` (the same ones `mancard bench` measures), all in one run so
//! the ratios are fair:
//! - one raw ring P-256 sign plus one raw verify (the anchor: a v2 tap signs the challenge and
//!   verifies the phone's answer),
//! - the decision with a cached certificate (challenge signature, lookup, 100,000-card deny
//!   list, validity, fare, tap signature, replay check) — goal ≤ 1.3× (raw verify + raw sign),
//! - the QR pass from text to decision,
//! - the journal write of an accepted tap (`synchronous=FULL`) and of a refusal (`NORMAL`),
//! - then, outside criterion, a whole tap through pcscd + vpcd on loopback (connect, SELECT,
//!   AUTHORIZE TAP, journal, reset) with the real wallet core as the card: median and p99
//!   (goal ≤ 10 ms) beside the same tap in process. Skipped with a notice when pcscd is not
//!   running.
//!
//! `cargo bench -p mancard-validator --bench validator -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, Criterion};
use mancard_testkit::scenarios::{PcscTap, ValidatorDecision};
use mancard_testkit::{Issuer, T0};
use mancard_validator::{Journal, Medium, Refusal};
use std::time::{Duration, Instant};

fn median_ns(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn benches(c: &mut Criterion, s: &mut ValidatorDecision) {
    let mut g = c.benchmark_group("validator");
    g.bench_function("raw_sign_plus_verify", |b| {
        b.iter(|| s.peer_once().unwrap())
    });
    g.bench_function("decision_cached_cert", |b| b.iter(|| s.run_once().unwrap()));
    // QR: pass text → Base45 decode → cached certificate → window, deny list, fare, tap signature.
    g.bench_function("qr_text_to_decision_cached_cert", |b| {
        b.iter(|| s.check_pass_once().unwrap())
    });
    g.finish();

    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
    let rec = s.record(1);
    let mut g = c.benchmark_group("journal");
    g.sample_size(30);
    g.bench_function("accepted_tap_sync_full", |b| {
        b.iter(|| j.record_accepted(Medium::Nfc, black_box(&rec)).unwrap())
    });
    let refusal = Refusal::Expired { valid_until: 0 };
    g.bench_function("refusal_sync_normal", |b| {
        b.iter(|| {
            j.record_refusal(Medium::Nfc, T0, black_box(&refusal))
                .unwrap()
        })
    });
    g.finish();
}

/// Interleaved raw sign + verify vs cached decision, so both see the same machine state.
fn ratio(s: &mut ValidatorDecision) {
    let (mut raw, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..2_000 {
        let t = Instant::now();
        s.peer_once().unwrap();
        raw.push(t.elapsed().as_nanos());
        let t = Instant::now();
        s.run_once().unwrap();
        dec.push(t.elapsed().as_nanos());
    }
    let (r, d) = (median_ns(raw), median_ns(dec));
    println!(
        "RATIO decision_cached / (raw sign + verify) (interleaved medians): {:.1} µs / {:.1} µs = {:.3} (goal ≤ 1.3)",
        d as f64 / 1000.0,
        r as f64 / 1000.0,
        d as f64 / r.max(1) as f64
    );
}

/// A whole tap through pcscd + vpcd with the real wallet core as the card.
fn pcsc_whole_tap(issuer: &Issuer) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut s) =
        PcscTap::start(tmp.path(), issuer, "Virtual PCD 00 01", "127.0.0.1:35964").unwrap()
    else {
        println!("NOTICE: pcscd not running: whole-tap benchmark skipped (scripts/pcsc-up.sh)");
        return;
    };
    let n = 300;
    let (mut whole, mut inner) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 10 {
        let e = s.run_once().unwrap();
        let p = s.peer_once().unwrap();
        if i >= 10 {
            whole.push(e.as_micros());
            inner.push(p.as_micros());
        }
    }
    s.finish();
    let pct = |v: &mut Vec<u128>, p: f64| {
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    println!(
        "WHOLE TAP via pcscd+vpcd (connect, SELECT, AUTHORIZE, journal FULL, reset; {n} taps, cached cert, real wallet): median {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal ≤ 10 ms)",
        pct(&mut whole, 0.5),
        pct(&mut whole, 0.99),
        pct(&mut whole, 1.0)
    );
    println!(
        "  the same tap in process (Validator::tap_nfc over FnChannel): median {:.2} ms, p99 {:.2} ms",
        pct(&mut inner, 0.5),
        pct(&mut inner, 0.99)
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let issuer = Issuer::new(1);
    let mut s = ValidatorDecision::new(&issuer, 100_000).unwrap();
    benches(&mut c, &mut s);
    ratio(&mut s);
    pcsc_whole_tap(&issuer);
    c.final_summary();
}
