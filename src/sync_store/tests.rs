//! The verdict feed's persistence: the verdicts and the cursor commit together with the
//! rest of the answer, and a verdict is stored once, newest per tap.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::types::{HistoryItem, HistoryKind, HistoryStatus, IssuerKeyInfo, WalletConfig};
use crate::util::now_utc;
use crate::FileKeystore;
use mancard_protocol::{
    CertificateBody, FareClass, OfflineAllowance, Pseudonym, PublicKey, SigningKey,
};
use std::path::Path;
use std::sync::Arc;

const DAY: i64 = 86_400;

/// A wallet in `dir` with a certificate valid around `t0` and an allowance of
/// `max_amount`; its pseudonym. The wallet's offset stays 0: device time = wallet time,
/// and the history, which reads the clock, sees about `t0` now.
fn wallet(dir: &Path, t0: i64, max_amount: i64) -> (Wallet, [u8; 16]) {
    let ks = Arc::new(FileKeystore::open_or_create(dir.join("keystore")).unwrap());
    let config = WalletConfig {
        background_maintenance: false,
        ..WalletConfig::default()
    };
    let w = Wallet::open(dir.join("wallet"), ks, config).unwrap();
    let req = w.prepare_credential_request().unwrap();
    let (issuer, _) = SigningKey::generate().unwrap();
    let pseudonym = Pseudonym::random().unwrap();
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym,
        tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap").unwrap(),
        valid_from: t0 - DAY,
        valid_until: t0 + 7 * DAY,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: 0,
            counter_last: 1_000,
            max_amount,
        },
    }
    .sign(&issuer)
    .unwrap();
    let info = IssuerKeyInfo {
        key_id: 1,
        public_key: issuer.public_key().as_bytes().to_vec(),
        valid_from: t0 - 365 * DAY,
        valid_until: t0 + 365 * DAY,
    };
    w.install_certificate(cert.encode(), vec![info], t0)
        .unwrap();
    (w, pseudonym.0)
}

fn verdict(t0: i64, id: i64, pseudonym: [u8; 16], counter: u32, status: VerdictStatus) -> Verdict {
    Verdict {
        id,
        pseudonym,
        counter,
        status,
        charged: if status == VerdictStatus::Charged {
            20_000
        } else {
            0
        },
        reason: None,
        time: t0,
        line_id: None,
        created_at: t0,
    }
}

fn page(t0: i64, verdicts: Vec<Verdict>, verdict_cursor: i64) -> SyncPage {
    SyncPage {
        settlements: Vec::new(),
        ledger: Vec::new(),
        verdicts,
        upload_from: 0,
        ledger_cursor: 0,
        verdict_cursor,
        balance: 100_000,
        confirmed_through: None,
        server_time: t0,
    }
}

/// The passes of the history, oldest first.
fn passes(w: &Wallet) -> Vec<HistoryItem> {
    let mut items: Vec<HistoryItem> = w
        .history(None, 50)
        .unwrap()
        .items
        .into_iter()
        .filter(|i| i.kind == HistoryKind::Pass)
        .collect();
    items.reverse();
    items
}

#[test]
fn verdicts_and_their_cursor_commit_together_and_apply_once() {
    let d = tempfile::tempdir().unwrap();
    let t0 = now_utc();
    let (w, p) = wallet(d.path(), t0, 100_000);
    let a = w.boarding_pass(t0).unwrap();
    let b = w.boarding_pass(t0 + 46).unwrap();
    assert_ne!(a.counter, b.counter);
    let good = vec![
        verdict(t0, 5, p, a.counter, VerdictStatus::Charged),
        verdict(t0, 7, p, b.counter, VerdictStatus::Pending),
    ];

    // The answer arrives but its application fails half-way (a crash before the commit):
    // neither the verdicts nor the cursor are stored, so the next sync asks for them again.
    let mut broken = good.clone();
    broken.push(Verdict {
        charged: -1, // refused by the table: the transaction rolls back
        ..verdict(t0, 8, p, 999, VerdictStatus::Charged)
    });
    assert!(w.apply_sync_page(&page(t0, broken, 8), t0).is_err());
    assert_eq!(w.verdict_cursor().unwrap(), 0);
    let before: Vec<HistoryStatus> = passes(&w).iter().map(|i| i.status).collect();
    assert_eq!(before, [HistoryStatus::PassShown, HistoryStatus::PassShown]);

    // Asked again from the old cursor: stored with the cursor, in one transaction.
    let out = w
        .apply_sync_page(&page(t0, good.clone(), 7), t0 + 50)
        .unwrap();
    assert_eq!(out.verdicts, 2);
    assert_eq!(w.verdict_cursor().unwrap(), 7);
    let after = passes(&w);
    assert_eq!(after[0].status, HistoryStatus::Charged);
    assert_eq!(after[0].charged, Some(20_000));
    assert_eq!(after[0].amount, 20_000);
    assert_eq!(after[1].status, HistoryStatus::PassShown);

    // Delivered again (the answer was stored but the phone died before the next request
    // went out with the new cursor): nothing changes.
    let again = w.apply_sync_page(&page(t0, good, 7), t0 + 50).unwrap();
    assert_eq!(again.verdicts, 0);
    assert_eq!(passes(&w), after);

    // An older verdict of the same tap never replaces a newer one; a newer one does.
    let old = verdict(t0, 4, p, a.counter, VerdictStatus::NotCharged);
    assert_eq!(
        w.apply_sync_page(&page(t0, vec![old], 7), t0 + 50)
            .unwrap()
            .verdicts,
        0
    );
    assert_eq!(passes(&w), after);
    let newer = Verdict {
        charged: 5_000,
        reason: Some("transfer".into()),
        ..verdict(t0, 9, p, a.counter, VerdictStatus::Charged)
    };
    assert_eq!(
        w.apply_sync_page(&page(t0, vec![newer], 9), t0 + 50)
            .unwrap()
            .verdicts,
        1
    );
    assert_eq!(passes(&w)[0].charged, Some(5_000));

    // Durable: a reopened wallet asks from the stored cursor.
    drop(w);
    let (w, _) = (
        Wallet::open(
            d.path().join("wallet"),
            Arc::new(FileKeystore::open_or_create(d.path().join("keystore")).unwrap()),
            WalletConfig::default(),
        )
        .unwrap(),
        (),
    );
    assert_eq!(w.verdict_cursor().unwrap(), 9);
    assert_eq!(passes(&w)[0].charged, Some(5_000));
}

#[test]
fn an_expired_pass_releases_its_reservation_unless_it_was_charged() {
    let d = tempfile::tempdir().unwrap();
    let t0 = now_utc();
    let (w, p) = wallet(d.path(), t0, 100_000);
    let a = w.boarding_pass(t0).unwrap();
    let b = w.boarding_pass(t0 + 46).unwrap();
    assert_eq!(a.max_amount, 30_000);
    // both reserved while they can be scanned (b until t0 + 106 + 30 s of skew)
    assert_eq!(w.status(t0 + 50).unwrap().amount_available, 40_000);
    // a is over at t0 + 91 (60 s + 30 s of skew) and was never charged: released
    assert_eq!(w.status(t0 + 90).unwrap().amount_available, 40_000);
    assert_eq!(w.status(t0 + 91).unwrap().amount_available, 70_000);
    // a validator scanned b after all: it counts what it was charged, even once over
    let charged = verdict(t0, 3, p, b.counter, VerdictStatus::Charged);
    w.apply_sync_page(&page(t0, vec![charged], 3), t0 + 200)
        .unwrap();
    assert_eq!(w.status(t0 + 200).unwrap().amount_available, 80_000);
    let h = passes(&w);
    assert_eq!(h[1].status, HistoryStatus::Charged);
    // a new pass: 100,000 − 20,000 − 30,000
    w.boarding_pass(t0 + 300).unwrap();
    assert_eq!(w.status(t0 + 300).unwrap().amount_available, 50_000);
}

#[test]
fn the_pass_path_recounts_passes_that_are_over() {
    let d = tempfile::tempdir().unwrap();
    let t0 = now_utc();
    let (w, _) = wallet(d.path(), t0, 50_000);
    w.boarding_pass(t0).unwrap();
    // the first pass holds 30,000 while it can be scanned (until t0 + 60 + 30 s of skew)
    for at in [t0 + 46, t0 + 90] {
        assert!(matches!(
            w.boarding_pass(at),
            Err(WalletError::AllowanceExhausted {
                needed: 30_000,
                remaining: 20_000
            })
        ));
    }
    // then it is over: the pass path recounts (nothing else did) and the new pass fits
    let second = w.boarding_pass(t0 + 91).unwrap();
    assert_eq!(second.max_amount, 30_000);
    assert!(w.boarding_pass(t0 + 91 + 45).is_err());
}
