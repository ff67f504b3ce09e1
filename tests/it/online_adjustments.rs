//! Backend re-rating (`fare_adjustment`) of a tap the wallet already has a verdict for, end to
//! end against the real backend: a validator's batch with an earlier ride of the same fare day
//! arrives after the wallet's sync, the wallet's ride becomes a transfer, and the wallet's
//! stored fare and history follow the adjustment exactly once.

use mancard::{now_utc, HistoryKind, HistoryStatus, Wallet};
use mancard_protocol::{StatusWord, TapRecord};
// `ride_base`: six hours into the next fare day, so every ride of a test is on one fare day.
use crate::support::tap_at;
use mancard_testkit::backend::ride_base;
use mancard_testkit::online::{
    assert_converged, data_dir, login, online, open_wallet, top_up, Env, Validator, PHONE,
};

/// The old phone: signed in as [`PHONE`], provisioned, topped up with 100,000 rials, one
/// ride on line 1 at `base` (the phone's clock agreeing) through validator `validator_id`,
/// never synced (the phone is lost). The account and the validator, holding its record of
/// that ride.
fn old_phone_rides(env: &Env, validator_id: u32, base: i64) -> (i64, Validator) {
    let old = open_wallet(&data_dir(env.path(), "old"));
    let o_old = online(&old, &env.url);
    let account = login(env, &o_old, PHONE);
    o_old.block_on(o_old.provision()).unwrap().unwrap();
    top_up(env, &o_old, 100_000);
    let mut v = Validator::new(env, validator_id);
    assert_eq!(tap_at(&old, &mut v, 1, base), StatusWord::Ok);
    assert_eq!(v.records.len(), 1);
    (account, v)
}

/// Uploads the validator's records so far as one signed batch.
fn upload_batch(env: &Env, v: &mut Validator) {
    let id = v.id;
    let batch = v.batch([id as u8; 16]);
    let b = env.engine().ingest_batch(&batch).unwrap();
    assert_eq!(b.settled, 1, "{b:?}");
}

/// The fare the validator's last tap signed.
fn last_fare(v: &Validator) -> i64 {
    v.last.as_ref().unwrap().body.fare
}

fn tap_item(w: &Wallet, seq: u64) -> mancard::HistoryItem {
    w.history(None, 50)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.kind == HistoryKind::Tap && i.log_seq == Some(seq))
        .unwrap()
}

#[test]
fn a_late_validator_batch_rerates_a_synced_tap_once() {
    let env = Env::start();
    let base = ride_base(now_utc());

    // the old phone rides at `base` on validator 11, then is lost before it ever syncs
    let (account, mut v11) = old_phone_rides(&env, 11, base);
    let late: &TapRecord = &v11.records[0];
    assert_eq!(late.fare, 20_000);

    // the new phone rides 10 minutes later on another line and validator (which charges the
    // full fare: it never saw the first ride) and syncs: the backend knows only this ride
    let new_dir = data_dir(env.path(), "new");
    let new = open_wallet(&new_dir);
    let o_new = online(&new, &env.url);
    assert_eq!(login(&env, &o_new, PHONE), account);
    o_new.block_on(o_new.provision()).unwrap().unwrap();
    let mut v12 = Validator::new(&env, 12);
    assert_eq!(tap_at(&new, &mut v12, 2, base + 600), StatusWord::Ok);
    let authorized = last_fare(&v12);
    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.settled, 1);
    assert_eq!(r.fare_adjustments, 0);
    assert_eq!(new.tap_settlements().unwrap()[0].fare, Some(authorized));
    assert_eq!(tap_item(&new, 0).status, HistoryStatus::Charged);
    assert_eq!(tap_item(&new, 0).amount, authorized);
    assert_eq!(env.balance_of(account), 100_000 - authorized);

    // validator 11's batch arrives now: the earlier ride is charged and the new phone's ride
    // becomes a transfer (a fare_adjustment crediting the difference)
    upload_batch(&env, &mut v11);
    let backend = env.balance_of(account);
    // a transfer: line 2 ten minutes after line 1 (Tariff::urmia_default: 5,000 rials)
    let rerated_fare = 100_000 - 20_000 - backend;
    assert_eq!(rerated_fare, 5_000, "the later ride was re-rated");
    assert!(rerated_fare < authorized);

    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.fare_adjustments, 1, "{r:?}");
    assert_eq!(r.balance, backend);
    let s = new.tap_settlements().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].status, "settled");
    assert_eq!(s[0].fare, Some(rerated_fare));
    let item = tap_item(&new, 0);
    assert_eq!(item.amount, rerated_fare);
    assert_eq!(item.status, HistoryStatus::Corrected, "{item:?}");
    assert_eq!(
        (item.authorized, item.charged),
        (Some(authorized), Some(rerated_fare))
    );
    assert_eq!(item.reason.as_deref(), Some("transfer"));
    let l = new.ledger().unwrap();
    assert_eq!(
        l.confirmed_balance, backend,
        "wallet balance == backend balance"
    );
    assert_eq!(l.available_balance, backend);
    assert_eq!(l.pending_taps, 0);

    // idempotent: another sync, and then the whole ledger delivered again (the cursor
    // rewound), change nothing
    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.fare_adjustments, 0);
    {
        let c = rusqlite::Connection::open(new_dir.join("wallet").join(mancard::DB_FILE)).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute(
            "UPDATE settings SET value = 0 WHERE key = 'sync_ledger_cursor'",
            [],
        )
        .unwrap();
    }
    assert_eq!(o_new.state().unwrap().ledger_cursor, 0);
    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.fare_adjustments, 0);
    assert_eq!(r.ledger_entries, 0, "every entry was already known");
    assert_eq!(new.tap_settlements().unwrap()[0].fare, Some(rerated_fare));
    assert_eq!(tap_item(&new, 0), item);
    assert_eq!(new.ledger().unwrap().confirmed_balance, backend);
    assert_converged(&env, &new, account);
}

/// The adjustment is already in the tap's first verdict: the wallet's tap reached the backend
/// through its validator, was re-rated by a late batch, and only then does the wallet sync.
/// The verdict (the current charge) and the adjustment come in one answer: the fare is taken
/// once, not lowered twice.
#[test]
fn an_adjustment_already_in_the_first_verdict_is_not_applied_twice() {
    let env = Env::start();
    let base = ride_base(now_utc());

    let (account, mut v21) = old_phone_rides(&env, 21, base);

    let new_dir = data_dir(env.path(), "new");
    let new = open_wallet(&new_dir);
    let o_new = online(&new, &env.url);
    assert_eq!(login(&env, &o_new, PHONE), account);
    o_new.block_on(o_new.provision()).unwrap().unwrap();
    let mut v22 = Validator::new(&env, 22);
    assert_eq!(tap_at(&new, &mut v22, 2, base + 600), StatusWord::Ok);
    let authorized = last_fare(&v22);

    // the new phone's validator reports first, then the old phone's (late) batch re-rates it
    upload_batch(&env, &mut v22);
    assert_eq!(env.balance_of(account), 100_000 - authorized);
    upload_batch(&env, &mut v21);
    let backend = env.balance_of(account);
    let fare = 100_000 - 20_000 - backend;
    assert_eq!(fare, 5_000);

    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.settled, 1);
    assert_eq!(
        r.fare_adjustments, 0,
        "the verdict already is the re-rated fare"
    );
    assert_eq!(r.balance, backend);
    let s = new.tap_settlements().unwrap();
    assert_eq!(s[0].fare, Some(fare), "{s:?}");
    let item = tap_item(&new, 0);
    assert_eq!(item.amount, fare);
    assert_eq!(item.status, HistoryStatus::Corrected, "{item:?}");
    assert_eq!(
        (item.authorized, item.charged),
        (Some(authorized), Some(fare))
    );
    assert_eq!(item.reason.as_deref(), Some("transfer"));
    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.fare_adjustments, 0);
    assert_eq!(new.tap_settlements().unwrap()[0].fare, Some(fare));
    assert_converged(&env, &new, account);
}
