//! The named benchmark scenarios the validator's figures come from (`mancard bench`, the
//! criterion bench) run and decide correctly: a refused tap would be a fast path measured.

use mancard_testkit::scenarios::{PcscTap, ValidatorDecision};
use mancard_testkit::validator::{timeless_issuer, vpcd_lock, ISSUER_KEY_ID};
use mancard_testkit::Issuer;
use mancard_validator::pcsc_reader::{pcscd_available, VPCD_READER};

#[test]
fn the_validator_decision_scenario_accepts_and_its_peer_runs() {
    let issuer = Issuer::new(ISSUER_KEY_ID);
    let mut s = ValidatorDecision::new(&issuer, 1_000).unwrap();
    for _ in 0..3 {
        s.run_once().unwrap();
        s.peer_once().unwrap();
        s.check_pass_once().unwrap();
    }
    let r = s.record(1);
    assert_eq!(r.proof.amount(), 20_000);
}

#[test]
fn the_pcsc_scenario_taps_the_real_wallet() {
    if !pcscd_available() {
        if std::env::var("MANCARD_REQUIRE_PCSC").as_deref() == Ok("1") {
            panic!("MANCARD_REQUIRE_PCSC=1 but pcscd is not reachable (run scripts/pcsc-up.sh)");
        }
        eprintln!("NOTICE: pcscd not reachable: PC/SC scenario test skipped");
        return;
    }
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    // Reader 0, shared with the other PC/SC tests through the cross-process lock.
    let _g = vpcd_lock();
    let mut s = PcscTap::start(tmp.path(), &issuer, VPCD_READER, "127.0.0.1:35963")
        .unwrap()
        .expect("pcscd is running");
    for _ in 0..3 {
        s.run_once().unwrap();
        s.peer_once().unwrap();
    }
    s.finish();
}
