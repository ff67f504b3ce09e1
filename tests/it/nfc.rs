//! Full NFC exchanges (the v2 reader flow of `mancard_testkit::wallet::Reader`) against the
//! protocol crate's verifier, valid and refused, and the signed tap chain they leave.

use mancard::{CredentialState, HistoryKind, Wallet, WalletError};
use mancard_protocol::{
    chain_start, AuthorizeResponse, ChainHead, CommandApdu, CredentialCertificate, FareClass,
    ResponseApdu, SelectResponse, StatusWord, TapAuthorization, TapChallenge, TapProof,
    VerifiedCertificate, WalletLogEntry,
};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

/// One tap of `fare` at validator time `time`, READ CERTIFICATE included: the certificate,
/// the challenge and the authorization.
/// The metro line, whose adult fare (30,000 rials) is the tariff's highest: the phone bounds
/// a fare by the line's fare for its class.
const METRO: u32 = 10;

fn tap(
    w: &Wallet,
    r: &Reader,
    fare: i64,
    time: i64,
) -> Result<(CredentialCertificate, TapChallenge, TapAuthorization), StatusWord> {
    let q = Quote {
        read_certificate: true,
        line_id: METRO,
        ..Quote::fare_at(fare, time)
    };
    let t = r.tap_with(w, &q)?;
    Ok((t.certificate.unwrap(), t.challenge, t.authorization))
}

fn entries(w: &Wallet) -> Vec<WalletLogEntry> {
    w.tap_log(0, 1000)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap())
        .collect()
}

#[test]
fn taps_verify_and_are_logged_in_a_signed_chain() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);

    // SELECT: the version and a session value, nothing of the certificate
    let sel = send(&w, &CommandApdu::select_mancard());
    assert_eq!(sel.sw, StatusWord::Ok);
    assert_eq!(sel.data.len(), SelectResponse::LEN);
    w.deactivated();

    let mut last = None;
    for i in 0..5i64 {
        let (c, ch, a) = tap(&w, &reader, 20_000, T0 + i * 60).unwrap();
        assert_eq!(c, cert);
        verify(&issuer, &c, &ch, &a);
        assert_eq!(a.amount, 20_000);
        assert_eq!(a.cert_id, cert.id());
        if let Some(l) = last {
            assert!(a.counter > l);
        }
        last = Some(a.counter);
    }
    // the tap log holds exactly what was answered, each proof signing the one before it
    assert_eq!(w.verify_tap_log().unwrap(), 5);
    let entries = entries(&w);
    let head = mancard_protocol::verify_chain(&entries, ChainHead::default()).unwrap();
    assert_eq!(head.next_seq, 5);
    assert_eq!(entries[0].proof.prev(), chain_start(&cert.id()));
    for pair in entries.windows(2) {
        assert_eq!(pair[1].proof.prev(), pair[0].proof.id());
        assert_eq!(pair[1].proof.prev(), pair[0].hash());
    }
    match &entries[4].proof {
        TapProof::Nfc { authorization, .. } => assert_eq!(Some(authorization.counter), last),
        TapProof::Qr { .. } => panic!("expected an NFC proof"),
    }
    for e in &entries {
        e.proof
            .verify_phone_signature(&cert.body.tap_public_key)
            .unwrap();
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
    assert_eq!(h.items[0].validator_id, Some(READER_ID));
}

#[test]
fn the_chain_head_survives_a_reopen_and_restarts_with_a_new_certificate() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let cert = {
        let w = open(d.path());
        let cert = provision(&w, &issuer, CertSpec::default());
        set_clock(&w, T0);
        tap(&w, &reader, 10, T0).unwrap();
        cert
    };
    let w = open(d.path());
    let (_, _, a) = tap(&w, &reader, 10, T0 + 1).unwrap();
    let e = entries(&w);
    assert_eq!(a.prev, e[0].proof.id(), "the second tap signs the first");
    // a pass continues the same chain
    w.boarding_pass(device_time(&w, T0 + 2)).unwrap();
    let e = entries(&w);
    assert_eq!(e[2].proof.prev(), e[1].proof.id());
    // a new certificate starts its own chain (nothing links two certificates)
    let cert2 = provision(&w, &issuer, CertSpec::default());
    assert_ne!(cert2.id(), cert.id());
    let (_, _, a2) = tap(&w, &reader, 10, T0 + 3).unwrap();
    assert_eq!(a2.prev, chain_start(&cert2.id()));
    assert_eq!(a2.cert_id, cert2.id());
    assert_eq!(w.verify_tap_log().unwrap(), 4);
    mancard_protocol::verify_chain(&entries(&w), ChainHead::default()).unwrap();
}

#[test]
fn read_certificate_only_after_a_verified_challenge() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.issuer_key()]).unwrap();
    let session = select(&w);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    let ch = reader.challenge(session, T0, 1, 10_000, FareClass::Adult);
    let r = reader.authorize(&w, &ch, true);
    assert_eq!(r.sw, StatusWord::Ok);
    let AuthorizeResponse::Authorized(a) = AuthorizeResponse::decode(&r.data).unwrap() else {
        panic!("expected an authorization");
    };
    vc.verify_tap(&ch, &a).unwrap();
    let rc = send(&w, &CommandApdu::read_certificate());
    assert_eq!((rc.sw, rc.data), (StatusWord::Ok, cert.encode()));
    // the same challenge again in a normal AUTHORIZE TAP in this session: signed again under
    // a new counter (the reader sent it twice); only AUTHORIZE TAP P1 02 (recover) answers the
    // authorization already signed
    let r2 = reader.authorize(&w, &ch, false);
    let AuthorizeResponse::Authorized(a2) = AuthorizeResponse::decode(&r2.data).unwrap() else {
        panic!("expected an authorization");
    };
    assert!(a2.counter > a.counter);
    let r3 = send(&w, &CommandApdu::recover_tap(&ch, &reader.cert));
    assert_eq!((r3.sw, &r3.data), (StatusWord::Ok, &r2.data), "the newest");
    w.deactivated();
    // a replayed answer does not verify for a new challenge
    let ch2 = reader.challenge(select(&w), T0, 1, 10_000, FareClass::Adult);
    assert!(vc.verify_tap(&ch2, &a).is_err());
    w.deactivated();
}

fn refusal_sw(w: &Wallet, r: &Reader, fare: i64, time: i64) -> StatusWord {
    tap(w, r, fare, time).expect_err("expected a refusal")
}

#[test]
fn refusals_have_the_right_status_word_and_are_in_history() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);

    // no bundle: every reader is unknown ("sync first"); no credential: 6A88 to a reader the
    // phone trusts, and READ CERTIFICATE says the same once the reader proved itself
    assert_eq!(refusal_sw(&w, &reader, 1, T0), StatusWord::ReaderUnknown);
    install_bundle(&w, &issuer.bundle(1, T0, Vec::new()));
    set_clock(&w, T0);
    let s = select(&w);
    let r = reader.authorize(&w, &reader.challenge(s, T0, 1, 1, FareClass::Adult), true);
    assert_eq!(r.sw, StatusWord::NoCredential);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
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
    // not valid at the validator's time (before and after the window), the phone's clock
    // agreeing with the validator's
    set_clock(&w, T0 - 2 * 86_400);
    assert_eq!(
        refusal_sw(&w, &reader, 1, T0 - 2 * 86_400),
        StatusWord::CredentialNotValid
    );
    set_clock(&w, T0 + 8 * 86_400);
    assert_eq!(
        refusal_sw(&w, &reader, 1, T0 + 8 * 86_400),
        StatusWord::CredentialNotValid
    );
    set_clock(&w, T0);
    // above the metro's adult fare (the tariff's highest), then above the remaining allowance
    assert_eq!(refusal_sw(&w, &reader, 30_001, T0), StatusWord::FareTooHigh);
    tap(&w, &reader, 30_000, T0).unwrap();
    assert_eq!(
        refusal_sw(&w, &reader, 20_001, T0),
        StatusWord::AllowanceExhausted
    );
    // locked
    w.set_locked(true).unwrap();
    assert_eq!(refusal_sw(&w, &reader, 1, T0), StatusWord::WalletLocked);
    w.set_locked(false).unwrap();
    // counters 10..=12: two more taps, then exhausted
    tap(&w, &reader, 1, T0).unwrap();
    tap(&w, &reader, 1, T0).unwrap();
    assert_eq!(
        refusal_sw(&w, &reader, 1, T0),
        StatusWord::CountersExhausted
    );
    assert_eq!(
        w.status(device_time(&w, T0)).unwrap().state,
        CredentialState::Exhausted
    );

    let h = w.history(None, 100).unwrap();
    let refusals: Vec<u16> = h
        .items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .map(|i| i.status_word.unwrap())
        .collect();
    assert_eq!(
        refusals,
        vec![0x6A83, 0x6982, 0x6A84, 0x69C6, 0x6984, 0x6984, 0x6A88, 0x69C1]
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
    let reader = Reader::new(&issuer, READER_ID);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let (_, _, a1) = tap(&w, &reader, 10, T0).unwrap();
    w.mark_revoked("reported stolen".into(), T0).unwrap();
    assert_eq!(
        refusal_sw(&w, &reader, 10, T0),
        StatusWord::CredentialNotValid
    );
    let st = w.status(device_time(&w, T0)).unwrap();
    assert_eq!(st.state, CredentialState::Revoked);
    assert!(st.problem.unwrap().contains("reported stolen"));
    assert!(matches!(
        w.boarding_pass(device_time(&w, T0)),
        Err(WalletError::CredentialNotValid { .. })
    ));
    // a new certificate (counter range continuing) restores service
    let cert2 = provision(&w, &issuer, CertSpec::default());
    let (c, ch, a2) = tap(&w, &reader, 10, T0).unwrap();
    assert_eq!(c, cert2);
    assert!(a2.counter > a1.counter);
    verify(&issuer, &c, &ch, &a2);
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
    install_bundle(&w, &issuer.bundle(1, T0, Vec::new()));
    set_clock(&w, T0);
    let (c, _, _) = tap(&w, &Reader::new(&issuer, READER_ID), 5, T0).unwrap();
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
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    for i in 0..7 {
        tap(&w, &reader, 30_000, T0 + i).unwrap();
    }
    let st = w.status(device_time(&w, T0)).unwrap();
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
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    let ch = |s| reader.challenge(s, T0, 1, 1, FareClass::Adult);
    // without SELECT
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    assert_eq!(
        reader.authorize(&w, &ch([0; 16]), true).sw,
        StatusWord::ConditionsNotSatisfied
    );
    // SELECT then field drop: the session and its value are gone
    let s = select(&w);
    w.deactivated();
    assert_eq!(
        reader.authorize(&w, &ch(s), true).sw,
        StatusWord::ConditionsNotSatisfied
    );
    // a new SELECT makes a new session: a challenge for the old one is stale
    let s2 = select(&w);
    assert_ne!(s, s2);
    assert_eq!(
        reader.authorize(&w, &ch(s), true).sw,
        StatusWord::StaleChallenge
    );
    // selecting another application ends the session too
    let mut other = CommandApdu::select_mancard();
    other.data = vec![0xA0, 0, 0, 0, 3, 0x10, 0x10];
    assert_eq!(send(&w, &other).sw, StatusWord::AppNotFound);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    assert_eq!(
        reader.authorize(&w, &ch(s2), true).sw,
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

        /// For any fare and validator time (the phone's clock agreeing), the wallet authorizes
        /// exactly when the fare is within the tariff's highest fare, the certificate is valid
        /// then and the fare fits the allowance, and what it authorizes verifies.
        #[test]
        fn authorizes_exactly_when_it_should(
            fares in prop::collection::vec(0i64..40_000, 1..6),
            dt in prop::collection::vec(-3i64 * 86_400..10 * 86_400, 1..6),
        ) {
            let d = tempfile::tempdir().unwrap();
            let w = open(d.path());
            let issuer = Issuer::new(1);
            let reader = Reader::new(&issuer, READER_ID);
            let spec = CertSpec { max_amount: 60_000, ..CertSpec::default() };
            let cert = provision(&w, &issuer, spec);
            let vc = VerifiedCertificate::new(cert, &[issuer.issuer_key()]).unwrap();
            let mut spent = 0;
            for (fare, dt) in fares.iter().zip(dt.iter().cycle()) {
                let t = T0 + dt;
                set_clock(&w, t);
                let valid = (spec.valid_from..=spec.valid_until).contains(&t);
                let fits = spent + fare <= spec.max_amount;
                let q = Quote { line_id: METRO, ..Quote::fare_at(*fare, t) };
                match reader.tap_with(&w, &q) {
                    Ok(x) => {
                        prop_assert!(*fare <= 30_000 && valid && fits);
                        vc.verify_tap(&x.challenge, &x.authorization).unwrap();
                        spent += fare;
                    }
                    Err(sw) if *fare > 30_000 => prop_assert_eq!(sw, StatusWord::FareTooHigh),
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
