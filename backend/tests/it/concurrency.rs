//! Many wallets syncing and validators uploading at once; shutdown under load.

use mancard_api::endpoints::{ACCOUNT, ADMIN_ADJUSTMENTS};
use mancard_api::{AccountResponse, AdjustmentRequest, AdjustmentResponse};
use mancard_protocol::{FareClass, RideState, TapRecord, Tariff, WalletLogEntry};
use mancard_testkit::backend::*;
use reqwest::StatusCode;
use std::sync::Arc;

const WALLETS: usize = 8;
const TAPS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_syncs_and_batches_apply_each_tap_once() {
    let h = Arc::new(Harness::start().await);
    let v1 = Validator::register(&h, 1).await;
    let v2 = Validator::register(&h, 2).await;
    let tariff = Tariff::urmia_default();
    let lines = [1u32, 2, 10, 1, 1, 2];

    let mut wallets = Vec::new();
    let mut records: Vec<TapRecord> = Vec::new();
    let mut expected = Vec::new();
    for i in 0..WALLETS {
        let token = h.login(&format!("+98912555{i:04}")).await;
        h.topup(&token, 1_000_000, "load").await;
        let (mut w, _) = Wallet::provision(&h, &token).await;
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
            // validators see two thirds of the taps, the wallet reports all of them
            if k % 3 != 2 {
                records.push(rec);
            }
            entries.push(e);
        }
        expected.push((token.clone(), 1_000_000 - total));
        wallets.push((w, entries));
    }

    let mut tasks = Vec::new();
    for (mut w, entries) in wallets {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            // three uploads, each re-sending the previous chunk (a lost response)
            let chunks: Vec<&[WalletLogEntry]> = entries.chunks(4).collect();
            for c in 0..chunks.len() {
                let mut send = Vec::new();
                if c > 0 {
                    send.extend_from_slice(chunks[c - 1]);
                }
                send.extend_from_slice(chunks[c]);
                let v = w.sync_ok(&h, &send).await;
                for t in &v.taps {
                    let st = t.status;
                    assert!(st == "settled" || st == "duplicate", "{t:?}");
                }
            }
        }));
    }
    // validators: batches of 5 mixed records, each uploaded twice, from concurrent tasks
    for (vid, v) in [(1u32, v1), (2u32, v2)] {
        let mine: Vec<TapRecord> = records
            .iter()
            .filter(|r| r.validator_id == vid)
            .cloned()
            .collect();
        let v = Arc::new(v);
        for chunk in mine.chunks(5) {
            let batch = v.batch(chunk.to_vec());
            for _ in 0..2 {
                let h = Arc::clone(&h);
                let batch = batch.clone();
                tasks.push(tokio::spawn(async move {
                    let b = h.upload_ok(&batch).await;
                    assert_eq!(b.rejected, 0);
                    assert_eq!(b.fraud, 0);
                }));
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    let audit = h.audit().await;
    assert_eq!(audit.taps, (WALLETS * TAPS) as i64);
    let mut sum = 0;
    for (token, want) in &expected {
        let got = h.balance(token).await;
        assert_eq!(got, *want, "balance equals top-up minus the in-order fares");
        sum += got;
    }
    assert_eq!(audit.ledger_total, sum);
    assert_eq!(audit.balances_total, sum);
    assert!(h.fraud_cases().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_under_load_keeps_every_acknowledged_write() {
    let h = Harness::start().await;
    let token = h.login("+989126660000").await;
    let acct: AccountResponse = h.get_ok(ACCOUNT.path, Some(&token)).await;
    let account_id = acct.account_id;
    let url = h.url.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let url = url.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            for i in 0..200 {
                let key = format!("load-{t}-{i}");
                let r = http
                    .post(format!("{url}{}", ADMIN_ADJUSTMENTS.path))
                    .bearer_auth(ADMIN)
                    .json(&AdjustmentRequest {
                        account_id,
                        amount: 1,
                        idempotency_key: key.clone(),
                        note: "load".into(),
                    })
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let _ = tx.send(key);
                    }
                    _ => break, // the server is going away
                }
            }
        }));
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 30 {
        acked.push(rx.recv().await.unwrap());
    }
    let h = h.restart().await; // graceful shutdown while requests are in flight
    for t in tasks {
        t.await.unwrap();
    }
    while let Ok(k) = rx.try_recv() {
        acked.push(k);
    }
    let balance = h.balance(&token).await;
    assert!(balance >= acked.len() as i64, "{balance} < {}", acked.len());
    for key in &acked {
        let v: AdjustmentResponse = h
            .post_ok(
                ADMIN_ADJUSTMENTS.path,
                Some(ADMIN),
                &AdjustmentRequest {
                    account_id,
                    amount: 1,
                    idempotency_key: key.clone(),
                    note: "load".into(),
                },
            )
            .await;
        assert!(!v.created, "acknowledged write {key} was lost");
    }
    assert_eq!(h.balance(&token).await, balance);
    h.audit().await;
}

/// One certificate, twelve taps of 20 000 under a 200 000 allowance, reported concurrently by
/// the wallet (with resends) and two validators (each batch twice, then all again): each tap
/// counts once toward the certificate's total, so exactly the 11th and 12th taps to settle are
/// fraud, whatever the arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reports_count_each_tap_once_toward_the_allowance() {
    let h = Arc::new(Harness::start().await);
    let v1 = Validator::register(&h, 1).await;
    let v2 = Validator::register(&h, 2).await;
    let token = h.login("+989125559999").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    assert_eq!(c.max_amount, 200_000);
    let base = ride_base(w.server_time);
    let mut records: Vec<TapRecord> = Vec::new();
    let mut entries: Vec<WalletLogEntry> = Vec::new();
    for k in 0..12u32 {
        let v = if k % 2 == 0 { &v1 } else { &v2 };
        let (r, e) = w.nfc_tap(v, 1, 20_000, base + i64::from(k) * 900);
        records.push(r);
        entries.push(e);
    }
    let pseudonym = w.pseudonym.clone();

    let mut tasks = Vec::new();
    {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            let chunks: Vec<&[WalletLogEntry]> = entries.chunks(4).collect();
            for c in 0..chunks.len() {
                let mut send = Vec::new();
                if c > 0 {
                    send.extend_from_slice(chunks[c - 1]);
                }
                send.extend_from_slice(chunks[c]);
                let (s, v) = w.sync(&h, &send).await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        }));
    }
    for (vid, v) in [(1u32, v1), (2u32, v2)] {
        let mine: Vec<TapRecord> = records
            .iter()
            .filter(|r| r.validator_id == vid)
            .cloned()
            .collect();
        let mut batches: Vec<Vec<u8>> = mine.chunks(2).map(|c| v.batch(c.to_vec())).collect();
        batches.push(v.batch(mine.clone()));
        for batch in batches {
            for _ in 0..2 {
                let h = Arc::clone(&h);
                let batch = batch.clone();
                tasks.push(tokio::spawn(async move {
                    let b = h.upload_ok(&batch).await;
                    assert_eq!(b.rejected, 0);
                }));
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    let cases = h.fraud_cases().await;
    assert_eq!(cases.len(), 2, "{cases:?}");
    let mut details: Vec<&str> = cases
        .iter()
        .map(|c| {
            assert_eq!(c.kind, "over_allowance");
            assert_eq!(c.pseudonym, pseudonym.as_str());
            c.detail.as_str()
        })
        .collect();
    details.sort_unstable();
    assert_eq!(
        details,
        [
            "authorized total 220000 exceeds the certificate's offline allowance 200000",
            "authorized total 240000 exceeds the certificate's offline allowance 200000",
        ]
    );
    assert!(h
        .config()
        .await
        .is_denied(&mancard_protocol::Pseudonym::from_hex(&pseudonym).unwrap()));
    let audit = h.audit().await;
    assert_eq!(audit.taps, 12);
    assert_eq!(audit.cert_totals_mismatched, 0);
}

/// Two backend instances on one database: exactly one runs the background jobs at a time.
/// The holder renews its lease each run; the other skips; a clean shutdown hands the jobs over
/// at once, and a holder that stops without one is replaced once its lease lapses.
#[test]
fn one_instance_at_a_time_runs_the_background_jobs() {
    use mancard_backend::Engine;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let cfg = backend_config(&dir);
        Engine::open(cfg, "http://127.0.0.1:1".into()).unwrap()
    };
    let (a, b) = (open(), open());
    assert_ne!(a.instance_id(), b.instance_id());
    assert!(
        a.run_background_jobs().unwrap().is_some(),
        "the first takes the lease"
    );
    for _ in 0..3 {
        assert!(
            b.run_background_jobs().unwrap().is_none(),
            "the other skips"
        );
        assert!(
            a.run_background_jobs().unwrap().is_some(),
            "the holder renews"
        );
    }
    // a clean shutdown gives the lease up: the other takes over on its next run
    a.release_jobs_lease().unwrap();
    assert!(b.run_background_jobs().unwrap().is_some());
    assert!(a.run_background_jobs().unwrap().is_none());
    // a holder that vanishes: its lease lapses after three intervals (180 s by default)
    a.advance_clock(150).unwrap();
    assert!(a.run_background_jobs().unwrap().is_none(), "not lapsed yet");
    a.advance_clock(60).unwrap();
    assert!(
        a.run_background_jobs().unwrap().is_some(),
        "lapsed: taken over"
    );
    assert!(b.run_background_jobs().unwrap().is_none());
}
