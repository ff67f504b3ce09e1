//! Full NFC exchanges against the protocol crate's verifier, valid and refused.

use mancard::{CredentialState, HistoryKind, WalletError};
use mancard_protocol::{
    CommandApdu, FareClass, ResponseApdu, SelectResponse, StatusWord, TapAuthorization, TapProof,
    VerifiedCertificate, WalletLogEntry,
};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

#[test]
fn taps_verify_and_are_logged_in_a_chain() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());

    let sel = send(&w, &CommandApdu::select_mancard());
    assert_eq!(sel.sw, StatusWord::Ok);
    assert_eq!(
        SelectResponse::decode(&sel.data).unwrap().cert_hash,
        Some(cert.hash())
    );
    w.deactivated();

    let mut last = None;
    for i in 0..5u64 {
        let ch = challenge(i, 20_000, T0 + i as i64 * 60);
        let (c, a) = tap(&w, &ch).unwrap();
        assert_eq!(c, cert);
        verify(&issuer, &c, &ch, &a);
        assert_eq!(a.amount, 20_000);
        if let Some(l) = last {
            assert!(a.counter > l);
        }
        last = Some(a.counter);
    }
    // the tap log holds exactly what was answered, chained
    assert_eq!(w.verify_tap_log().unwrap(), 5);
    let entries: Vec<WalletLogEntry> = w
        .tap_log(0, 100)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap())
        .collect();
    mancard_protocol::verify_chain(&entries, mancard_protocol::GENESIS_HASH, 0, None).unwrap();
    match &entries[4].proof {
        TapProof::Nfc { authorization, .. } => assert_eq!(Some(authorization.counter), last),
        TapProof::Qr { .. } => panic!("expected an NFC proof"),
    }
    // ledger and history
    let l = w.ledger().unwrap();
    assert_eq!((l.pending_taps, l.pending_amount), (5, 100_000));
    assert_eq!(l.offline_allowance_remaining, 10_000_000 - 100_000);
    w.set_confirmed_balance(500_000, Some(2), T0 + 400).unwrap();
    let l = w.ledger().unwrap();
    assert_eq!((l.pending_taps, l.pending_amount), (2, 40_000));
    assert_eq!(l.available_balance, 460_000);
    assert!(w.set_confirmed_balance(1, Some(99), T0).is_err());
    let h = w.history(None, 10).unwrap();
    assert_eq!(h.items.len(), 5);
    assert!(h.items.iter().all(|i| i.kind == HistoryKind::Tap));
    assert_eq!(h.items[0].counter, last);
}

#[test]
fn read_certificate_is_optional_when_cached() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.issuer_key()]).unwrap();
    assert_eq!(send(&w, &CommandApdu::select_mancard()).sw, StatusWord::Ok);
    let ch = challenge(1, 10_000, T0);
    let r = send(&w, &CommandApdu::authorize_tap(&ch));
    assert_eq!(r.sw, StatusWord::Ok);
    vc.verify_tap(&ch, &TapAuthorization::decode(&r.data).unwrap())
        .unwrap();
    // a replayed answer does not verify for a new challenge
    let ch2 = challenge(2, 10_000, T0);
    assert!(vc
        .verify_tap(&ch2, &TapAuthorization::decode(&r.data).unwrap())
        .is_err());
}

fn refusal_sw(w: &mancard::Wallet, ch: &mancard_protocol::TapChallenge) -> StatusWord {
    tap(w, ch).expect_err("expected a refusal")
}

#[test]
fn refusals_have_the_right_status_word_and_are_in_history() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);

    // no credential: SELECT works (no hash), READ CERTIFICATE and AUTHORIZE say 6A88
    let sel = send(&w, &CommandApdu::select_mancard());
    assert_eq!(SelectResponse::decode(&sel.data).unwrap().cert_hash, None);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::NoCredential
    );
    assert_eq!(
        send(&w, &CommandApdu::authorize_tap(&challenge(0, 1, T0))).sw,
        StatusWord::NoCredential
    );
    w.deactivated();

    provision(
        &w,
        &issuer,
        CertSpec {
            first: 10,
            last: 12,
            max_amount: 50_000,
            ..CertSpec::default()
        },
    );
    // not valid at the validator's time (before and after the window)
    assert_eq!(
        refusal_sw(&w, &challenge(1, 1, T0 - 2 * 86_400)),
        StatusWord::CredentialNotValid
    );
    assert_eq!(
        refusal_sw(&w, &challenge(2, 1, T0 + 8 * 86_400)),
        StatusWord::CredentialNotValid
    );
    // fare above the remaining allowance
    assert_eq!(
        refusal_sw(&w, &challenge(3, 50_001, T0)),
        StatusWord::AllowanceExhausted
    );
    tap(&w, &challenge(4, 30_000, T0)).unwrap();
    assert_eq!(
        refusal_sw(&w, &challenge(5, 20_001, T0)),
        StatusWord::AllowanceExhausted
    );
    // locked
    w.set_locked(true).unwrap();
    assert_eq!(
        refusal_sw(&w, &challenge(6, 1, T0)),
        StatusWord::WalletLocked
    );
    w.set_locked(false).unwrap();
    // counters 10..=12: two more taps, then exhausted
    tap(&w, &challenge(7, 1, T0)).unwrap();
    tap(&w, &challenge(8, 1, T0)).unwrap();
    assert_eq!(
        refusal_sw(&w, &challenge(9, 1, T0)),
        StatusWord::CountersExhausted
    );
    assert_eq!(w.status(T0).unwrap().state, CredentialState::Exhausted);

    let h = w.history(None, 100).unwrap();
    let refusals: Vec<u16> = h
        .items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .map(|i| i.status_word.unwrap())
        .collect();
    assert_eq!(
        refusals,
        vec![0x6A83, 0x6982, 0x6A84, 0x6A84, 0x6984, 0x6984, 0x6A88]
    );
    assert!(h
        .items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .all(|i| !i.detail.is_empty()));
    assert_eq!(w.verify_tap_log().unwrap(), 3);
}

#[test]
fn revoked_credential_is_refused_and_replacement_works() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    let (_, a1) = tap(&w, &challenge(1, 10, T0)).unwrap();
    w.mark_revoked("reported stolen".into(), T0).unwrap();
    assert_eq!(
        refusal_sw(&w, &challenge(2, 10, T0)),
        StatusWord::CredentialNotValid
    );
    let st = w.status(T0).unwrap();
    assert_eq!(st.state, CredentialState::Revoked);
    assert!(st.problem.unwrap().contains("reported stolen"));
    assert!(matches!(
        w.boarding_pass(T0),
        Err(WalletError::CredentialNotValid { .. })
    ));
    // a new certificate (counter range continuing) restores service
    let cert2 = provision(&w, &issuer, CertSpec::default());
    let (c, a2) = tap(&w, &challenge(3, 10, T0)).unwrap();
    assert_eq!(c, cert2);
    assert!(a2.counter > a1.counter);
    verify(&issuer, &c, &challenge(3, 10, T0), &a2);
    assert_eq!(w.verify_tap_log().unwrap(), 2);
}

#[test]
fn certificate_install_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let other = Issuer::new(2);
    let req = w.prepare_credential_request().unwrap();
    // the same pending key until a certificate is installed
    assert_eq!(w.prepare_credential_request().unwrap(), req);
    assert_eq!(
        w.pending_tap_public_key().unwrap(),
        Some(req.tap_public_key.clone())
    );
    let cert = issuer.issue(&req.tap_public_key, CertSpec::default());
    // unknown issuer, wrong signature
    assert!(matches!(
        w.install_certificate(cert.encode(), vec![other.info()], T0),
        Err(WalletError::InvalidCertificate { .. })
    ));
    let mut forged = other.info();
    forged.key_id = 1;
    assert!(matches!(
        w.install_certificate(cert.encode(), vec![forged], T0),
        Err(WalletError::InvalidCertificate { .. })
    ));
    // a certificate for somebody else's key
    let (stranger, _) = mancard_protocol::SigningKey::generate().unwrap();
    let foreign = issuer.issue(stranger.public_key().as_bytes(), CertSpec::default());
    assert!(matches!(
        w.install_certificate(foreign.encode(), vec![issuer.info()], T0),
        Err(WalletError::InvalidCertificate { .. })
    ));
    // garbage and an already expired certificate
    assert!(w
        .install_certificate(vec![1, 2, 3], vec![issuer.info()], T0)
        .is_err());
    let old = issuer.issue(
        &req.tap_public_key,
        CertSpec {
            valid_from: T0 - 10 * 86_400,
            valid_until: T0 - 86_400,
            ..CertSpec::default()
        },
    );
    assert!(w
        .install_certificate(old.encode(), vec![issuer.info()], T0)
        .is_err());
    assert_eq!(w.status(T0).unwrap().state, CredentialState::NoCredential);
    // the right one
    w.install_certificate(cert.encode(), vec![issuer.info()], T0)
        .unwrap();
    w.install_certificate(cert.encode(), vec![issuer.info()], T0)
        .unwrap();
    assert_eq!(w.pending_tap_public_key().unwrap(), None);
    let st = w.status(T0).unwrap();
    assert_eq!(st.state, CredentialState::Active);
    assert_eq!(st.fare_class.as_deref(), Some("adult"));
    assert!(
        st.summary.contains("available offline until"),
        "{}",
        st.summary
    );
    // the old key stays until the next certificate is installed
    let req2 = w.prepare_credential_request().unwrap();
    assert_ne!(req2.tap_public_key, req.tap_public_key);
    let (c, _) = tap(&w, &challenge(1, 5, T0)).unwrap();
    assert_eq!(c, cert);
}

#[test]
fn replenish_due_by_time_and_by_allowance() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(
        &w,
        &issuer,
        CertSpec {
            valid_until: T0 + 10 * 86_400,
            max_amount: 300_000,
            class: FareClass::Adult,
            ..CertSpec::default()
        },
    );
    // 300,000 / 30,000 (highest adult fare) = 10 rides > 4
    let st = w.status(T0).unwrap();
    assert_eq!(
        (st.state, st.rides_available),
        (CredentialState::Active, 10)
    );
    assert_eq!(st.amount_available, 300_000);
    // near expiry
    assert_eq!(
        w.status(T0 + 9 * 86_400).unwrap().state,
        CredentialState::ReplenishDue
    );
    assert_eq!(
        w.status(T0 + 11 * 86_400).unwrap().state,
        CredentialState::Expired
    );
    // low allowance: 7 taps of 30,000 leave 3 rides
    for i in 0..7 {
        tap(&w, &challenge(i, 30_000, T0)).unwrap();
    }
    let st = w.status(T0).unwrap();
    assert_eq!(
        (st.state, st.rides_available),
        (CredentialState::ReplenishDue, 3)
    );
    assert!(
        st.summary
            .starts_with("3 rides / 9,000 toman (90,000 rials)"),
        "{}",
        st.summary
    );
}

#[test]
fn protocol_order_and_session() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    // without SELECT
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    assert_eq!(
        send(&w, &CommandApdu::authorize_tap(&challenge(0, 1, T0))).sw,
        StatusWord::ConditionsNotSatisfied
    );
    // SELECT then field drop
    send(&w, &CommandApdu::select_mancard());
    w.deactivated();
    assert_eq!(
        send(&w, &CommandApdu::authorize_tap(&challenge(0, 1, T0))).sw,
        StatusWord::ConditionsNotSatisfied
    );
    // selecting another application ends the session too
    send(&w, &CommandApdu::select_mancard());
    let mut other = CommandApdu::select_mancard();
    other.data = vec![0xA0, 0, 0, 0, 3, 0x10, 0x10];
    assert_eq!(send(&w, &other).sw, StatusWord::AppNotFound);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    // nothing was logged by any of this
    assert_eq!(w.verify_tap_log().unwrap(), 0);
    let r: ResponseApdu = send(&w, &CommandApdu::select_mancard());
    assert_eq!(r.sw, StatusWord::Ok);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// For any fare and validator time, the wallet authorizes exactly when the certificate is
        /// valid then and the fare fits the allowance, and what it authorizes verifies.
        #[test]
        fn authorizes_exactly_when_it_should(
            fares in prop::collection::vec(0i64..40_000, 1..6),
            dt in prop::collection::vec(-3i64 * 86_400..10 * 86_400, 1..6),
        ) {
            let d = tempfile::tempdir().unwrap();
            let w = open(d.path());
            let issuer = Issuer::new(1);
            let spec = CertSpec { max_amount: 60_000, ..CertSpec::default() };
            let cert = provision(&w, &issuer, spec);
            let vc = VerifiedCertificate::new(cert, &[issuer.issuer_key()]).unwrap();
            let mut spent = 0;
            for (i, (fare, dt)) in fares.iter().zip(dt.iter().cycle()).enumerate() {
                let t = T0 + dt;
                let ch = challenge(i as u64, *fare, t);
                let valid = (spec.valid_from..=spec.valid_until).contains(&t);
                let fits = spent + fare <= spec.max_amount;
                match tap(&w, &ch) {
                    Ok((_, a)) => {
                        prop_assert!(valid && fits);
                        vc.verify_tap(&ch, &a).unwrap();
                        spent += fare;
                    }
                    Err(sw) if !valid => prop_assert_eq!(sw, StatusWord::CredentialNotValid),
                    Err(sw) => {
                        prop_assert!(!fits);
                        prop_assert_eq!(sw, StatusWord::AllowanceExhausted);
                    }
                }
            }
            prop_assert_eq!(w.ledger().unwrap().offline_allowance_remaining, 60_000 - spent);
        }
    }
}
