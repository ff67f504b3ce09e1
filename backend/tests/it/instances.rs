//! Several backend instances on one PostgreSQL database (issue #16): no process lock, every
//! money movement in a SERIALIZABLE transaction retried on conflict.

use mancard_protocol::{FareClass, RideState, TapRecord, Tariff, WalletLogEntry};
use mancard_testkit::backend::*;
use std::sync::Arc;

const WALLETS: usize = 6;
const TAPS: usize = 10;

/// Three instances on loopback sharing one database: validators upload overlapping batches
/// (each twice) to instances picked by a fixed scramble, wallets sync and top up through
/// others. Every tap is charged once, the audit is clean and no request gets a 5xx (the
/// harness's `*_ok` helpers assert success).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_database_charge_every_tap_once() {
    if !on_postgres() {
        eprintln!("skipped: several instances need MANCARD_TEST_DB=postgres");
        return;
    }
    let h0 = Harness::start().await;
    let h1 = h0.start_sibling().await;
    let h2 = h0.start_sibling().await;
    let hs = Arc::new([h0, h1, h2]);
    let pick = |n: usize| (n * 7 + 3) % 3;
    let v1 = Validator::register(&hs[0], 1).await;
    let v2 = Validator::register(&hs[1], 2).await;
    let tariff = Tariff::urmia_default();
    let lines = [1u32, 2, 10, 1, 1, 2];

    let mut wallets = Vec::new();
    let mut records: Vec<TapRecord> = Vec::new();
    let mut expected = Vec::new();
    for i in 0..WALLETS {
        let h = &hs[pick(i)];
        let token = h.login(&format!("+98912777{i:04}")).await;
        // two top-ups through two different instances
        hs[pick(i + 1)].topup(&token, 600_000, "a").await;
        hs[pick(i + 2)].topup(&token, 400_000, "b").await;
        let (mut w, _) = Wallet::provision(&hs[pick(i + 1)], &token).await;
        let base = ride_base(w.server_time) + i as i64 * 7;
        let mut entries: Vec<WalletLogEntry> = Vec::new();
        let mut state = RideState::default();
        let mut total = 0;
        for k in 0..TAPS {
            let line = lines[(k + i) % lines.len()];
            let time = base + k as i64 * 900;
            let q = tariff.fare(FareClass::Adult, line, time, &state).unwrap();
            state = q.next;
            total += q.amount;
            let fare = tariff.line(line).unwrap().fares[0];
            let v = if k % 2 == 0 { &v1 } else { &v2 };
            let (rec, e) = w.nfc_tap(v, line, fare, time);
            if k % 3 != 2 {
                records.push(rec);
            }
            entries.push(e);
        }
        expected.push((token.clone(), 1_000_000 - total));
        wallets.push((i, w, entries));
    }

    let mut tasks = Vec::new();
    for (i, mut w, entries) in wallets {
        let hs = Arc::clone(&hs);
        tasks.push(tokio::spawn(async move {
            let chunks: Vec<&[WalletLogEntry]> = entries.chunks(4).collect();
            for c in 0..chunks.len() {
                let mut send = Vec::new();
                if c > 0 {
                    send.extend_from_slice(chunks[c - 1]);
                }
                send.extend_from_slice(chunks[c]);
                let v = w.sync_ok(&hs[pick(i + c)], &send).await;
                for t in &v.taps {
                    let st = t.status;
                    assert!(st == "settled" || st == "duplicate", "{t:?}");
                }
            }
        }));
    }
    let mut n = 0;
    for (vid, v) in [(1u32, v1), (2u32, v2)] {
        let mine: Vec<TapRecord> = records
            .iter()
            .filter(|r| r.validator_id == vid)
            .cloned()
            .collect();
        let v = Arc::new(v);
        // overlapping batches: each chunk of 5 is sent alone and again with its neighbour
        let chunks: Vec<Vec<TapRecord>> = mine.chunks(5).map(<[_]>::to_vec).collect();
        for (c, chunk) in chunks.iter().enumerate() {
            let mut overlap = chunk.clone();
            if let Some(next) = chunks.get(c + 1) {
                overlap.extend_from_slice(next);
            }
            for batch in [v.batch(chunk.clone()), v.batch(overlap)] {
                for _ in 0..2 {
                    n += 1;
                    let hs = Arc::clone(&hs);
                    let batch = batch.clone();
                    let at = pick(n);
                    tasks.push(tokio::spawn(async move {
                        let b = hs[at].upload_ok(&batch).await;
                        assert_eq!(b.rejected, 0);
                        assert_eq!(b.fraud, 0);
                    }));
                }
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    for h in hs.iter() {
        let audit = h.audit().await;
        assert_eq!(audit.taps, (WALLETS * TAPS) as i64);
        let mut sum = 0;
        for (token, want) in &expected {
            let got = h.balance(token).await;
            assert_eq!(
                got, *want,
                "balance equals top-ups minus the in-order fares"
            );
            sum += got;
        }
        assert_eq!(audit.ledger_total, sum);
        assert_eq!(audit.balances_total, sum);
        assert!(h.fraud_cases().await.is_empty());
    }
}
