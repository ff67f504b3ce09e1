//! End to end through the real PC/SC stack: a card emulator on vsmartcard's vpcd (TCP) ↔
//! pcscd ↔ the validator's PC/SC reader → accepted tap in the journal.
//!
//! Needs pcscd with vpcd (`scripts/pcsc-up.sh`). Without it these tests print a notice and
//! pass, unless `MANCARD_REQUIRE_PCSC=1`, where they fail loudly.

use mancard_testkit::validator::{
    card, certify, timeless_issuer, validator_in_memory, vpcd_lock, TestCard, ISSUER_KEY_ID, LINE,
    VALIDATOR_ID,
};
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader, VPCD_READER};
use mancard_validator::vpcd::{run_card, FnCard};
use mancard_validator::Validator;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn require_pcsc() -> bool {
    if pcscd_available() {
        return true;
    }
    if std::env::var("MANCARD_REQUIRE_PCSC").as_deref() == Ok("1") {
        panic!("MANCARD_REQUIRE_PCSC=1 but pcscd is not reachable (run scripts/pcsc-up.sh)");
    }
    eprintln!(
        "NOTICE: pcscd not reachable: PC/SC end-to-end test skipped (scripts/pcsc-up.sh starts it)"
    );
    false
}

/// Waits until pcscd has noticed that the previous card left (it polls vpcd).
fn wait_empty() {
    let reader = PcscReader::open(VPCD_READER).unwrap();
    assert!(
        reader
            .wait_for_removal(Some(Duration::from_secs(5)))
            .unwrap(),
        "a card is still present on {VPCD_READER}"
    );
}

/// Presents `card` on vpcd in a thread until the returned flag is set.
fn present(
    card: Arc<Mutex<TestCard>>,
    deactivations: Arc<Mutex<u32>>,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let c2 = card.clone();
        let mut fc = FnCard {
            on_apdu: move |a: &[u8]| c2.lock().unwrap().process_apdu(a),
            on_deactivated: move || *deactivations.lock().unwrap() += 1,
        };
        run_card("127.0.0.1:35963", &mut fc, &s, None, |_| {}).unwrap();
    });
    (stop, h)
}

#[test]
fn tap_through_pcscd_and_vpcd_is_accepted_and_journaled() {
    if !require_pcsc() {
        return;
    }
    let _g = vpcd_lock();
    wait_empty();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut v = Validator::init(tmp.path(), &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    v.install_config(&issuer.bundle(1, now - 60, vec![]).encode())
        .unwrap();
    certify(&issuer, &mut v, now);
    let card = Arc::new(Mutex::new(card(&issuer, now)));
    let deact = Arc::new(Mutex::new(0u32));
    let (stop, h) = present(card.clone(), deact.clone());

    let reader = PcscReader::open(VPCD_READER).unwrap();
    assert!(
        reader.wait_for_card(Some(Duration::from_secs(10))).unwrap(),
        "card never appeared on {VPCD_READER}"
    );
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let mut ch = reader.connect(Duration::from_secs(5)).unwrap();
        let o = v.tap_nfc(&mut ch);
        ch.finish();
        times.push(t.elapsed());
        assert!(o.decision.is_accepted(), "tap {i}: {:?}", o.decision);
        assert_eq!(o.apdus, if i == 0 { 3 } else { 2 });
    }
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    let st = v.status().unwrap();
    assert_eq!(st.journal.accepted_total, 5);
    assert_eq!(card.lock().unwrap().taps, 5);
    assert!(*deact.lock().unwrap() >= 1, "the card saw the field drop");
    eprintln!("PC/SC taps (connect + APDUs + reset): {times:?}");
    drop(v);
    // The journal on disk has them after reopening.
    let v = Validator::open(tmp.path()).unwrap();
    assert_eq!(v.status().unwrap().journal.accepted_total, 5);
}

#[test]
fn phone_without_credential_over_pcsc_is_refused_with_reason() {
    if !require_pcsc() {
        return;
    }
    let _g = vpcd_lock();
    wait_empty();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, chrono::Utc::now().timestamp());
    let card = Arc::new(Mutex::new(TestCard::empty()));
    let (stop, h) = present(card, Arc::default());
    let reader = PcscReader::open(VPCD_READER).unwrap();
    assert!(reader.wait_for_card(Some(Duration::from_secs(10))).unwrap());
    let mut ch = reader.connect(Duration::from_secs(5)).unwrap();
    let o = v.tap_nfc(&mut ch);
    ch.finish();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_eq!(o.decision.code(), "no_credential");
    assert!(o.decision.display_text().contains("No ManCard"));
}
