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
    let cfg = WalletConfig {
        background_maintenance: false,
        ..WalletConfig::default()
    };
    let w = wallet::open_with(dir, cfg);
    // the next counter of a fresh wallet is 0: the certificate's range starts there
    let spec = CertSpec {
        valid_from: now - 3600,
        valid_until: now + 7 * 86_400,
        class: FareClass::Adult,
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
    let o = v.tap_nfc(&mut ch);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!(o.decision.acceptance().unwrap().fare, 20_000);
    w.deactivated();
    let o = v.tap_nfc(&mut ch);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert!(o.cert_cached);
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
