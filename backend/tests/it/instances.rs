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

/// An account's ledger entries become visible in id order, whatever order their transactions
/// run in: a wallet syncs with a cursor (`id > cursor`), so an entry that commits after a
/// larger id was already served would never reach it. Two writers append to one account; the
/// first holds its transaction open after drawing its id. The second must wait for it (the
/// per-account feed bump), not commit a larger id that a sync could read first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_ledger_entries_become_visible_in_id_order() {
    use mancard_api::LedgerKind;
    use mancard_backend::store::NewEntry;
    use std::sync::mpsc;
    use std::time::Duration;
    if !on_postgres() {
        eprintln!("skipped: SQLite's single writer commits in id order by construction");
        return;
    }
    let h = Harness::start().await;
    let engine = Arc::clone(h.handle().engine());
    let account = engine
        .store()
        .write(|tx| tx.create_account("+989121119998", 0))
        .unwrap();
    let entry = move |key: &'static str| NewEntry {
        account_id: account,
        kind: LedgerKind::Adjustment,
        amount: 1_000,
        idempotency_key: key,
        tap: None,
        intent_id: None,
        note: None,
        created_at: 0,
    };
    let (held, held_rx) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let first = {
        let e = Arc::clone(&engine);
        std::thread::spawn(move || {
            let mut signalled = false;
            e.store()
                .write(|tx| {
                    let id = tx.insert_ledger(&entry("feed-order-first"))?;
                    if !signalled {
                        signalled = true;
                        let _ = held.send(());
                        let _ = release_rx.recv();
                    }
                    Ok::<_, mancard_backend::StoreError>(id)
                })
                .unwrap()
        })
    };
    held_rx.recv().unwrap();
    let second = {
        let e = Arc::clone(&engine);
        std::thread::spawn(move || {
            e.store()
                .write(|tx| tx.insert_ledger(&entry("feed-order-second")))
                .unwrap()
        })
    };
    // Give the second writer time to commit if nothing holds it back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let e = Arc::clone(&engine);
    let seen =
        tokio::task::spawn_blocking(move || e.store().read(|tx| tx.ledger_since(account, 0, 100)))
            .await
            .unwrap()
            .unwrap();
    assert!(
        seen.is_empty(),
        "an entry became visible while one drawn before it was not committed: {seen:?}"
    );
    release.send(()).unwrap();
    let (a, b) = (
        first.join().unwrap().unwrap(),
        second.join().unwrap().unwrap(),
    );
    assert!(
        a < b,
        "the waiting writer drew its id after the first committed"
    );
    let e = Arc::clone(&engine);
    let ids: Vec<i64> =
        tokio::task::spawn_blocking(move || e.store().read(|tx| tx.ledger_since(account, 0, 100)))
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect();
    assert_eq!(ids, [a, b]);
}
