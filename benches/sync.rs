//! Sync of 10,000 pending taps end to end on loopback: the real backend in-process, a real
//! wallet (SQLite files in a temp dir), taps seeded through `process_apdu` with validator-like
//! challenges (the shared tariff's fares, 20 s apart, three lines). Measures one `sync()` call:
//! upload in pages of 1000, backend verification and settlement, the verdicts and ledger
//! applied to the wallet. Budget: ≤ 1 s.
//!
//! `cargo bench -p mancard --bench sync` (`-- --rounds N`, default 3; each round uses a fresh
//! account and wallet).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/online_common/mod.rs"]
mod online_common;

use mancard::now_utc;
use online_common::*;
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
    let env = Env::start_with(|p| {
        p.counters_per_cert = 50_000;
        p.max_offline_amount = 100_000_000;
    });
    let mut times = Vec::new();
    for round in 0..rounds {
        let phone = format!("+98912000{:04}", round);
        let root = data_dir(env.path(), &format!("phone-{round}"));
        let w = open_wallet(&root);
        let o = online(&w, &env.url);
        let account = login(&env, &o, &phone);
        o.block_on(o.provision()).unwrap().unwrap();
        top_up(&env, &o, 5_000_000);
        let mut v = Validator::new(100 + round as u32);
        let seeded = Instant::now();
        taps(&w, &mut v, TAPS, now_utc(), 20);
        let seed_time = seeded.elapsed();
        assert_eq!(w.ledger().unwrap().pending_taps, TAPS as u64);

        let start = Instant::now();
        let r = o.block_on(o.sync()).unwrap().unwrap();
        let took = start.elapsed();
        assert_eq!(r.uploaded, TAPS as u64);
        assert_eq!(r.settled, TAPS as u64);
        assert_eq!(r.pending_taps, 0);
        assert_converged(&env, &w, account);
        println!(
            "round {round}: seeded {TAPS} taps in {:.0} ms; sync: {:.0} ms \
             (uploaded {}, settled {}, fare corrections {}, ledger entries {})",
            seed_time.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3,
            r.uploaded,
            r.settled,
            r.fare_corrections,
            r.ledger_entries
        );
        times.push(took.as_secs_f64());
    }
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
