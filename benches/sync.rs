//! Sync of 10,000 pending taps end to end on loopback, over the `mancard_testkit::scenarios`
//! sync scenario (the one `mancard bench` measures): the real backend in process, a fresh
//! wallet and account per round, taps seeded through `process_apdu` with validator-like
//! challenges (the shared tariff's fares, 20 s apart, three lines). Measures one `sync()`
//! call: upload in pages of 1000, backend verification and settlement, the verdicts and ledger
//! applied to the wallet. Budget: ≤ 1 s.
//!
//! `cargo bench -p mancard --bench sync` (`-- --rounds N`, default 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_testkit::scenarios::SyncBackend;
use std::time::Instant;

const TAPS: usize = 10_000;

fn main() {
    let mut rounds = 3usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        if let Some(n) = args.get(i + 1).and_then(|s| s.parse().ok()) {
            rounds = n;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let backend = SyncBackend::start(dir.path(), TAPS).unwrap();
    let mut times = Vec::new();
    for round in 0..rounds {
        let seeded = Instant::now();
        let r = backend.round(round, TAPS).unwrap();
        let seed_time = seeded.elapsed();
        assert_eq!(r.wallet().ledger().unwrap().pending_taps, TAPS as u64);

        let start = Instant::now();
        let rep = r.run_once().unwrap();
        let took = start.elapsed();
        backend.check_converged(&r).unwrap();
        println!(
            "round {round}: fresh account and {TAPS} taps in {:.0} ms; sync: {:.0} ms \
             (uploaded {}, settled {}, fare corrections {}, ledger entries {})",
            seed_time.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3,
            rep.uploaded,
            rep.settled,
            rep.fare_corrections,
            rep.ledger_entries
        );
        times.push(took.as_secs_f64());
    }
    backend.shutdown().unwrap();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!(
        "sync of {TAPS} pending taps, end to end on loopback: median {:.0} ms over {} rounds \
         (min {:.0} ms, max {:.0} ms); budget 1000 ms",
        median * 1e3,
        times.len(),
        times.first().copied().unwrap_or(0.0) * 1e3,
        times.last().copied().unwrap_or(0.0) * 1e3,
    );
}
