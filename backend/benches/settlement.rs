//! Settlement ingest of validator batches (1,000 NFC taps each, every tap signature verified),
//! over the `mancard_testkit::scenarios` settlement scenario (the one `mancard bench`
//! measures), beside the raw ring verify rate on all cores and one, and a raw SQLite insert of
//! the same rows, in the same run. `cargo bench -p mancard-backend --bench settlement`
//! (BATCHES=n to change the count).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::TapRecord;
use mancard_testkit::scenarios::peers::RawInsert;
use mancard_testkit::scenarios::SettlementIngest;
use rayon::prelude::*;
use std::time::Instant;

const RIDERS: usize = 100;
const TAPS_PER_BATCH: usize = 1_000;

/// Raw ring P-256 verify of every tap signature, on all cores (rayon) or one; taps/s.
fn raw_verify(s: &SettlementIngest, records: &[TapRecord], parallel: bool) -> f64 {
    let start = Instant::now();
    if parallel {
        records.par_iter().for_each(|r| s.verify_record(r).unwrap());
    } else {
        records.iter().for_each(|r| s.verify_record(r).unwrap());
    }
    records.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("settlement: bench");
        return;
    }
    let batches: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let mut s = SettlementIngest::new(dir.path(), RIDERS, TAPS_PER_BATCH).unwrap();
    let prepared: Vec<_> = (0..batches).map(|_| s.next_batch().unwrap()).collect();
    let mut raw = RawInsert::open(dir.path()).unwrap();
    println!(
        "threads: {} (rayon), batches: {batches} x {TAPS_PER_BATCH} NFC taps, {RIDERS} riders",
        rayon::current_num_threads()
    );

    let (mut ingest, mut verify_all, mut verify_one, mut insert) = (vec![], vec![], vec![], vec![]);
    for (b, batch) in prepared.iter().enumerate() {
        let n = batch.records.len() as f64;
        verify_all.push(raw_verify(&s, &batch.records, true));
        verify_one.push(raw_verify(&s, &batch.records, false));
        insert.push(n / raw.run_once(&batch.records, b).unwrap().as_secs_f64());
        let start = Instant::now();
        let settled = s.run_once(batch).unwrap();
        ingest.push(n / start.elapsed().as_secs_f64());
        assert_eq!(settled, TAPS_PER_BATCH);
    }
    s.audit().unwrap();
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (i, va, v1, ins) = (
        med(&mut ingest),
        med(&mut verify_all),
        med(&mut verify_one),
        med(&mut insert),
    );
    println!("raw ring P-256 verify, 1 core        {v1:>10.0} /s");
    println!("raw ring P-256 verify, all cores     {va:>10.0} /s");
    println!("raw SQLite insert of the same rows   {ins:>10.0} rows/s (1 transaction, WAL, synchronous=FULL)");
    println!(
        "settlement ingest (verify + settle)  {i:>10.0} taps/s  = {:.0}% of all-core raw verify",
        100.0 * i / va
    );
}
