//! The rider's history against the real backend (settlement v2, issue #13): for every tap and
//! pass, what the backend charged and why (its verdict feed), a pass never scanned shown as
//! not used with its reservation released at expiry, corrections shown as corrections, fraud
//! taps with their real charge, refused reports with their reason.

use crate::support::tap_at;
use crate::support::whole_history;
use mancard::{
    now_utc, HistoryItem, HistoryKind, HistoryStatus, OnlineOptions, OnlineWallet, Wallet,
};
use mancard_protocol::{BoardingPass, FareKind, StatusWord, TapProof, TapRecord};
use mancard_testkit::backend::ride_base;
use mancard_testkit::online::{
    data_dir, fast_options, login, open_wallet, top_up, Env, Validator, PHONE,
};
use std::path::Path;
use std::sync::Arc;

/// Online, without replenishing at sync: the test watches one certificate's allowance.
fn online_keeping_the_certificate(w: &Arc<Wallet>, env: &Env) -> OnlineWallet {
    let opts = OnlineOptions {
        replenish_on_sync: false,
        ..fast_options()
    };
    OnlineWallet::new(Arc::clone(w), env.url.clone(), opts).unwrap()
}

/// The history's items of `kind`, oldest first.
fn rows(w: &Wallet, kind: HistoryKind) -> Vec<HistoryItem> {
    let mut items: Vec<HistoryItem> = w
        .history(None, 500)
        .unwrap()
        .items
        .into_iter()
        .filter(|i| i.kind == kind)
        .collect();
    items.reverse();
    items
}

/// The tap or pass at log position `seq`.
fn row(w: &Wallet, seq: u64) -> HistoryItem {
    w.history(None, 500)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.log_seq == Some(seq))
        .unwrap()
}

/// A signed-in phone, topped up with 100,000 rials, then provisioned: one certificate with
/// an allowance of 100,000.
fn rider(env: &Env, dir: &Path) -> (Arc<Wallet>, OnlineWallet, i64) {
    let w = open_wallet(dir);
    let o = online_keeping_the_certificate(&w, env);
    let account = login(env, &o, PHONE);
    top_up(env, &o, 100_000);
    o.block_on(o.provision()).unwrap().unwrap();
    assert_eq!(w.status(now_utc()).unwrap().amount_available, 100_000);
    (w, o, account)
}

#[test]
fn an_unscanned_pass_is_never_charged() {
    let env = Env::start();
    let (w, o, account) = rider(&env, &data_dir(env.path(), "phone"));
    let cert = w.status(now_utc()).unwrap().cert_hash_hex;

    // two passes shown (the second after the first's refresh): 60,000 held out of 100,000
    let now = now_utc();
    let a = w.boarding_pass(now).unwrap();
    let b = w.boarding_pass(now + 46).unwrap();
    assert_ne!(a.counter, b.counter);
    assert_eq!((a.max_amount, b.max_amount), (30_000, 30_000));
    assert_eq!(w.status(now + 46).unwrap().amount_available, 40_000);

    // uploaded at sync: the backend knows them only from the wallet, and charges nothing
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.uploaded, 2);
    assert_eq!(env.balance_of(account), 100_000);
    for p in rows(&w, HistoryKind::Pass) {
        assert_eq!(p.status, HistoryStatus::PassShown, "{p:?}");
        assert_eq!(p.status.code(), "pass_shown");
        assert_eq!(p.status_text, "pass shown");
        assert_eq!(
            (p.amount, p.authorized, p.charged),
            (30_000, Some(30_000), None)
        );
    }

    // they expire unscanned: the backend's clock moves on ten minutes, the wallet learns it
    env.engine().advance_clock(600).unwrap();
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert!(r.clock_offset_applied, "{r:?}");
    assert!(r.clock_offset_secs >= 590, "{r:?}");
    let passes = rows(&w, HistoryKind::Pass);
    assert_eq!(passes.len(), 2);
    for p in &passes {
        assert_eq!(p.status, HistoryStatus::PassNotUsed, "{p:?}");
        assert_eq!(p.status.code(), "pass_not_used");
        assert_eq!(p.status_text, "not used");
        assert_eq!(p.amount, 0);
        assert_eq!(p.authorized, Some(30_000));
        assert_eq!(p.charged.unwrap_or(0), 0, "{p:?}");
    }

    // nothing charged: the balance is unchanged on both sides
    assert_eq!(env.balance_of(account), 100_000);
    let l = w.ledger().unwrap();
    assert_eq!(
        (l.confirmed_balance, l.available_balance, l.pending_taps),
        (100_000, 100_000, 0)
    );
    // the reservations are released: the same certificate spends its whole allowance again
    let s = w.status(now_utc()).unwrap();
    assert_eq!(s.cert_hash_hex, cert, "no new certificate was needed");
    assert_eq!(s.amount_available, 100_000);
    assert_eq!(s.rides_available, 3);
    assert_eq!(l.offline_allowance_remaining, 100_000);
    let c = w.boarding_pass(now_utc()).unwrap();
    assert_eq!(c.max_amount, 30_000);
    assert_eq!(w.status(now_utc()).unwrap().amount_available, 70_000);
}

#[test]
fn a_pass_scanned_offline_shows_its_charge_once_uploaded() {
    let env = Env::start();
    let (w, o, account) = rider(&env, &data_dir(env.path(), "phone"));
    let shown = w.boarding_pass(now_utc()).unwrap();
    let pass = BoardingPass::from_text(&shown.text).unwrap();
    o.block_on(o.sync()).unwrap().unwrap();

    // an offline validator scanned it on line 1 while it was valid, and uploads only after
    // it expired (and after the wallet released its reservation)
    let mut v = Validator::new(&env, 41);
    let fare = v
        .tariff
        .fare(pass.body.fare_class, 1, shown.issued_at + 5, &v.state)
        .unwrap()
        .amount;
    assert!(fare > 0 && fare <= shown.max_amount);
    v.records.push(TapRecord {
        validator_id: v.id,
        line_id: 1,
        time: shown.issued_at + 5,
        pseudonym: pass.body.certificate.body.pseudonym,
        counter: pass.body.counter,
        fare,
        fare_kind: FareKind::Full,
        proof: TapProof::Qr { pass },
    });
    env.engine().advance_clock(600).unwrap();
    o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(row(&w, 0).status, HistoryStatus::PassNotUsed);
    assert_eq!(w.status(now_utc()).unwrap().amount_available, 100_000);

    let batch = v.batch([41; 16]);
    env.engine().ingest_batch(&batch).unwrap();
    assert_eq!(env.balance_of(account), 100_000 - fare);
    o.block_on(o.sync()).unwrap().unwrap();
    let p = row(&w, 0);
    assert_eq!(p.status, HistoryStatus::Charged, "{p:?}");
    assert_eq!((p.amount, p.charged), (fare, Some(fare)));
    assert_eq!(
        p.status_text,
        format!("charged {}", mancard::money::format_amount(fare))
    );
    // the allowance counts what the pass was charged
    assert_eq!(
        w.status(now_utc()).unwrap().amount_available,
        100_000 - fare
    );
    assert_eq!(w.ledger().unwrap().confirmed_balance, 100_000 - fare);
}

#[test]
fn history_shows_what_was_charged() {
    let env = Env::start();
    let dir = data_dir(env.path(), "a");
    let (w, o, account) = rider(&env, &dir);
    // the validators are registered now (their certificates are valid from now on); every
    // ride is on one fare day, which the backend's clock has reached
    let mut va = Validator::new(&env, 31);
    let mut vb = Validator::new(&env, 32);
    let mut vc = Validator::new(&env, 33);
    let mut vd = Validator::new(&env, 34);
    let base = ride_base(env.engine().now());
    env.engine()
        .advance_clock(base + 7_200 - env.engine().now())
        .unwrap();
    // seq 0: line 1, charged at its fare
    assert_eq!(tap_at(&w, &mut va, 1, base), StatusWord::Ok);
    // seq 1: line 2 ten minutes later at another validator, which charges the full fare (it
    // never saw the first ride): the backend re-rates it as a transfer
    assert_eq!(tap_at(&w, &mut vb, 2, base + 600), StatusWord::Ok);
    let authorized = vb.last.as_ref().unwrap().body.fare;
    assert_eq!(authorized, 20_000);
    // seq 2: a pass shown by the phone while its clock ran an hour ahead of the backend's:
    // its report is dated in the backend's future, and refused
    let ahead = env.engine().now() + 3_600;
    let fast = w.boarding_pass(ahead - w.server_time_offset()).unwrap();
    assert_eq!(fast.issued_at, ahead);

    // before the sync: nothing judged, each shows what the phone authorized
    for i in rows(&w, HistoryKind::Tap) {
        assert_eq!(i.status, HistoryStatus::NotSettled, "{i:?}");
        assert_eq!(i.status.code(), "not_settled");
        assert_eq!(i.status_text, "not settled yet");
        assert_eq!((i.amount, i.charged), (i.authorized.unwrap(), None));
    }
    let shown = row(&w, 2);
    assert_eq!(shown.status, HistoryStatus::PassShown, "{shown:?}");
    assert_eq!((shown.amount, shown.charged), (30_000, None));

    o.block_on(o.sync()).unwrap().unwrap();
    let charged = row(&w, 0);
    assert_eq!(charged.status, HistoryStatus::Charged, "{charged:?}");
    assert_eq!(charged.status.code(), "charged");
    assert_eq!((charged.amount, charged.charged), (20_000, Some(20_000)));
    assert_eq!(charged.status_text, "charged 2,000 toman (20,000 rials)");

    let transfer = row(&w, 1);
    assert_eq!(transfer.status, HistoryStatus::Corrected, "{transfer:?}");
    assert_eq!(transfer.status.code(), "corrected");
    assert_eq!(
        (transfer.amount, transfer.authorized, transfer.charged),
        (5_000, Some(20_000), Some(5_000))
    );
    assert_eq!(transfer.reason.as_deref(), Some("transfer"));
    assert_eq!(
        transfer.status_text,
        "charged 500 toman (5,000 rials) instead of 2,000 toman (20,000 rials): a transfer"
    );

    let future = row(&w, 2);
    assert_eq!(future.kind, HistoryKind::Pass);
    assert_eq!(future.status, HistoryStatus::Rejected, "{future:?}");
    assert_eq!(future.status.code(), "rejected");
    assert_eq!((future.amount, future.charged), (0, Some(0)));
    assert_eq!(future.reason.as_deref(), Some("from_the_future"));
    assert_eq!(
        future.status_text,
        "not charged, the report was refused: dated in the future"
    );
    assert_eq!(env.balance_of(account), 100_000 - 25_000);

    // A clone: the data directory copied while the app is closed; each copy taps once under
    // the same counter at its own validator. Both rides are validator-attested: the backend
    // opens a fraud case on the signed fork and charges the ride.
    drop(o);
    drop(w);
    let clone_dir = env.path().join("clone");
    copy_dir(&dir, &clone_dir);
    let w = open_wallet(&dir);
    let c = open_wallet(&clone_dir);
    let o = online_keeping_the_certificate(&w, &env);
    let oc = online_keeping_the_certificate(&c, &env);
    assert_eq!(tap_at(&w, &mut vc, 10, base + 1_200), StatusWord::Ok);
    assert_eq!(tap_at(&c, &mut vd, 1, base + 1_260), StatusWord::Ok);
    assert_eq!(row(&w, 3).counter, row(&c, 3).counter);
    o.block_on(o.sync()).unwrap().unwrap();
    let rc = oc.block_on(oc.sync()).unwrap().unwrap();
    assert!(rc.revoked, "{rc:?}");
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert!(r.revoked, "{r:?}");
    let balance = env.balance_of(account);
    for phone in [&w, &c] {
        let fraud = row(phone, 3);
        assert_eq!(fraud.status, HistoryStatus::Fraud, "{fraud:?}");
        assert_eq!(fraud.status.code(), "fraud");
        assert!(
            fraud.amount > 0,
            "a charged fraud tap never shows 0: {fraud:?}"
        );
        assert_eq!(fraud.charged, Some(fraud.amount));
        assert!(fraud.reason.is_some(), "{fraud:?}");
        assert!(
            fraud.status_text.starts_with(&format!(
                "charged {}, fraud case opened: ",
                mancard::money::format_amount(fraud.amount)
            )),
            "{}",
            fraud.status_text
        );
    }
    // the history adds up to what the account was charged
    let total: i64 = rows(&w, HistoryKind::Tap).iter().map(|i| i.amount).sum();
    assert_eq!(total, 100_000 - balance);
    assert_eq!(w.ledger().unwrap().confirmed_balance, balance);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// Passes that expired with no sync since no longer hold their reservation on the tap path
/// either: an NFC fare that fits only once they are released is signed, not refused.
#[test]
fn an_nfc_tap_after_passes_expired_uses_the_released_allowance() {
    let env = Env::start();
    let (w, _o, _account) = rider(&env, &data_dir(env.path(), "phone"));
    // (a validator per tap: each quotes the full 20,000 fare, knowing no other ride)
    let bus = |id: u32| Validator::new(&env, id);
    let now = now_utc();
    for i in 0..2 {
        let p = w.boarding_pass(now + i * 46).unwrap();
        assert_eq!(p.max_amount, 30_000);
    }
    // 60,000 held by the live passes: two 20,000 fares fit, a third does not
    assert_eq!(tap_at(&w, &mut bus(1), 1, now + 47), StatusWord::Ok);
    assert_eq!(tap_at(&w, &mut bus(2), 1, now + 48), StatusWord::Ok);
    assert_eq!(
        tap_at(&w, &mut bus(3), 1, now + 49),
        StatusWord::AllowanceExhausted
    );
    // both passes are over (their minute and the skew): the fare is signed, no sync between
    assert_eq!(tap_at(&w, &mut bus(4), 1, now + 400), StatusWord::Ok);
    assert_eq!(w.status(now + 400).unwrap().amount_available, 40_000);
}

/// One refusal: SELECT, then a challenge of validator `validator_id` (unknown to the phone)
/// by id only; the phone asks for its certificate (6986) and records the refusal.
fn refused_once(w: &Wallet, rogue: &mancard_protocol::SigningKey, validator_id: u32) {
    use mancard_protocol::{ChallengeBody, CommandApdu, FareClass};
    use mancard_testkit::wallet::{select, send};
    let session = select(w);
    let ch = ChallengeBody {
        validator_id,
        nonce: [7; 16],
        session,
        validator_time: mancard_testkit::T0,
        line_id: 1,
        fare: 0,
        fare_class: FareClass::Adult,
    }
    .sign(rogue)
    .unwrap();
    let r = send(w, &CommandApdu::authorize_tap(&ch, None));
    w.deactivated();
    assert_eq!(r.sw, StatusWord::ReaderCertificateRequired);
}

/// The refusal log is bounded by `WalletConfig::refusal_log_limit`: a rogue reader refused
/// 1,500 times with a limit of 1,000 leaves the newest 1,000 refusals, and every ride and
/// top-up recorded among them; reopened with a limit of 10, the next refusal leaves 10.
#[test]
fn the_refusal_log_keeps_the_newest_refusals_and_every_ride_and_top_up() {
    use mancard_testkit::wallet::{open_with, provision, set_clock, test_config, Reader};
    use mancard_testkit::{CertSpec, Issuer, T0};
    let d = tempfile::tempdir().unwrap();
    let config = mancard::WalletConfig {
        refusal_log_limit: 1_000,
        ..test_config()
    };
    let w = open_with(d.path(), config.clone());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, 7);
    let rogue = mancard_protocol::SigningKey::generate().unwrap().0;
    let mut rides = 0;
    for i in 0..1_500u32 {
        if i % 250 == 0 {
            reader.tap(&w).unwrap();
            rides += 1;
            w.record_top_up(1_000 + i64::from(i), T0, format!("top-up {i}"))
                .unwrap();
        }
        refused_once(&w, &rogue, 100_000 + i);
    }
    let h = whole_history(&w);
    let count = |k: HistoryKind| h.iter().filter(|i| i.kind == k).count();
    assert_eq!(count(HistoryKind::Refusal), 1_000);
    assert_eq!(count(HistoryKind::Tap), rides);
    assert_eq!(count(HistoryKind::TopUp), 6);
    let refused: Vec<&str> = h
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .map(|i| i.detail.as_str())
        .collect();
    // newest first: validators 101499 down to 100500; 100499 and older were dropped
    assert!(refused[0].contains("reader 101499 "), "{}", refused[0]);
    assert!(refused[999].contains("reader 100500 "), "{}", refused[999]);
    assert!(!refused.iter().any(|r| r.contains("reader 100499 ")));
    assert_eq!(w.verify_tap_log().unwrap(), rides as u64);
    drop(w);

    let w = open_with(
        d.path(),
        mancard::WalletConfig {
            refusal_log_limit: 10,
            ..config
        },
    );
    refused_once(&w, &rogue, 200_000);
    let h = whole_history(&w);
    let refused: Vec<&HistoryItem> = h
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .collect();
    assert_eq!(refused.len(), 10);
    assert!(refused[0].detail.contains("reader 200000 "));
    assert!(refused[9].detail.contains("reader 101491 "));
    assert_eq!(
        h.iter().filter(|i| i.kind != HistoryKind::Refusal).count(),
        2 * rides
    );
}
