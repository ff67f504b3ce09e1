//! The real wallet core (`mancard::Wallet`) against the validator: in process, by QR, and
//! through pcscd + vpcd (the `mancard phone` path).

use mancard::{Wallet, WalletConfig};
use mancard_protocol::FareClass;
use mancard_testkit::validator::{timeless_issuer, validator_in_memory, vpcd_lock, ISSUER_KEY_ID};
use mancard_testkit::{wallet, CertSpec, Issuer};
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader};
use mancard_validator::vpcd::{run_card, FnCard};
use mancard_validator::FnChannel;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn wallet_with_credential(dir: &Path, issuer: &Issuer, now: i64) -> Wallet {
    wallet_of_class(dir, issuer, now, FareClass::Adult)
}

/// A wallet with a certificate of `class` and the issuer's config bundle (version 1).
fn wallet_of_class(dir: &Path, issuer: &Issuer, now: i64, class: FareClass) -> Wallet {
    let cfg = WalletConfig {
        background_maintenance: false,
        ..WalletConfig::default()
    };
    let w = wallet::open_with(dir, cfg);
    // the next counter of a fresh wallet is 0: the certificate's range starts there
    let spec = CertSpec {
        valid_from: now - 3600,
        valid_until: now + 7 * 86_400,
        class,
        first: 0,
        last: 99,
        max_amount: 200_000,
    };
    wallet::provision_at(&w, issuer, spec, now);
    w
}

#[test]
fn real_wallet_in_process_nfc_and_qr() {
    let now = chrono::Utc::now().timestamp();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = wallet_with_credential(tmp.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    let mut ch = FnChannel::new(|apdu| w.process_apdu(apdu));
    // First sight: SELECT, AUTHORIZE TAP (the validator's signed challenge and certificate),
    // READ CERTIFICATE.
    let o = v.tap_nfc(&mut ch);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!(o.decision.acceptance().unwrap().fare, 20_000);
    assert_eq!((o.apdus, o.cert_cached), (3, false));
    w.deactivated();
    // Cached on both sides: SELECT, AUTHORIZE TAP.
    let o = v.tap_nfc(&mut ch);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!((o.apdus, o.cert_cached), (2, true));
    w.deactivated();
    // QR pass from the wallet.
    let pass = w.boarding_pass(now).unwrap();
    let o = v.verify_qr(&pass.text);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!(
        v.verify_qr(&pass.text).decision.code(),
        "already_used",
        "a QR screenshot shown twice"
    );
    assert_eq!(v.status().unwrap().journal.accepted_total, 3);
}

#[test]
fn real_student_wallet_signs_its_own_fare_of_the_line() {
    let now = chrono::Utc::now().timestamp();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = wallet_of_class(tmp.path(), &issuer, now, FareClass::Student);
    let mut v = validator_in_memory(&issuer, now);
    let mut ch = FnChannel::new(|apdu| w.process_apdu(apdu));
    // SELECT, AUTHORIZE TAP quoted for an adult (the phone signs the student fare of the line),
    // READ CERTIFICATE the first time only.
    for (cached, pairs) in [(false, 3), (true, 2)] {
        let o = v.tap_nfc(&mut ch);
        w.deactivated();
        let a = o
            .decision
            .acceptance()
            .cloned()
            .unwrap_or_else(|| panic!("{:?}", o.decision));
        assert_eq!(a.fare, 10_000);
        assert_eq!((o.apdus, o.cert_cached), (pairs, cached));
    }
    // The phone signed 10,000 rials twice, never the adult fare.
    let sealed = v.seal().unwrap().unwrap();
    let batch = mancard_protocol::TapBatch::decode(&sealed.bytes).unwrap();
    let amounts: Vec<i64> = batch
        .body
        .records
        .iter()
        .map(|r| r.proof.amount())
        .collect();
    assert_eq!(amounts, vec![10_000, 10_000]);
}

#[test]
fn real_wallet_refuses_an_uncertified_or_blocked_reader() {
    let now = chrono::Utc::now().timestamp();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = wallet_with_credential(tmp.path(), &issuer, now);
    let mut ch = FnChannel::new(|apdu| w.process_apdu(apdu));
    // A validator certified by another issuer (under the same key id): the phone does not
    // trust it (69C1).
    let rogue = timeless_issuer(ISSUER_KEY_ID);
    let mut r = validator_in_memory(&rogue, now);
    let o = r.tap_nfc(&mut ch);
    w.deactivated();
    assert_eq!(o.decision.code(), "reader_unknown", "{:?}", o.decision);
    assert_eq!(o.apdus, 2);
    // A validator the phone's bundle denies: the phone answers 69C3.
    let mut v = validator_in_memory(&issuer, now);
    w.install_config(
        issuer
            .bundle_with(
                2,
                now,
                vec![],
                vec![mancard_testkit::validator::VALIDATOR_ID],
                mancard_protocol::TimeRules::default(),
            )
            .encode(),
    )
    .unwrap();
    let o = v.tap_nfc(&mut ch);
    w.deactivated();
    assert_eq!(o.decision.code(), "reader_denied", "{:?}", o.decision);
    assert_eq!(o.apdus, 2);
    assert_eq!(v.status().unwrap().journal.accepted_total, 0);
}

#[test]
fn real_wallet_through_pcscd_and_vpcd() {
    if !pcscd_available() {
        if std::env::var("MANCARD_REQUIRE_PCSC").as_deref() == Ok("1") {
            panic!("MANCARD_REQUIRE_PCSC=1 but pcscd is not reachable (run scripts/pcsc-up.sh)");
        }
        eprintln!("NOTICE: pcscd not reachable: wallet PC/SC test skipped");
        return;
    }
    let now = chrono::Utc::now().timestamp();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = Arc::new(wallet_with_credential(tmp.path(), &issuer, now));
    let mut v = validator_in_memory(&issuer, now);
    // Reader 0, shared with pcsc_e2e.rs through the cross-process lock; the benchmark uses 1.
    let _g = vpcd_lock();
    let reader = PcscReader::open("Virtual PCD 00 00").unwrap();
    assert!(reader
        .wait_for_removal(Some(Duration::from_secs(5)))
        .unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (w2, w3, s2) = (w.clone(), w.clone(), stop.clone());
    let h = std::thread::spawn(move || {
        let mut card = FnCard {
            on_apdu: move |a: &[u8]| w2.process_apdu(a.to_vec()),
            on_deactivated: move || w3.deactivated(),
        };
        run_card("127.0.0.1:35963", &mut card, &s2, None, |_| {}).unwrap();
    });
    assert!(reader.wait_for_card(Some(Duration::from_secs(10))).unwrap());
    for _ in 0..3 {
        let mut ch = reader.connect(Duration::from_secs(5)).unwrap();
        let o = v.tap_nfc(&mut ch);
        ch.finish();
        assert!(o.decision.is_accepted(), "{:?}", o.decision);
        eprintln!("wallet tap over PC/SC: {:?} ({} APDUs)", o.elapsed, o.apdus);
    }
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_eq!(v.status().unwrap().journal.accepted_total, 3);
    let st = w.status(now).unwrap();
    assert_eq!(st.counters_left, 97, "{}", st.summary);
}
