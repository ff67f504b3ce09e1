//! Protocol v2 at the validator: its own certificate, the mutually authenticated tap (pair
//! counts, the requote for another fare class), every refusal a phone can answer with, and
//! non-canonical signatures.

use mancard_protocol::{
    ConfigBody, FareClass, FareKind, Signature, SigningKey, StatusWord, TapBatch, TapProof, Tariff,
    TimeRules,
};
use mancard_testkit::validator::{
    card, card_of, certify, timeless_issuer, uncertified_validator, validator_cert_for,
    validator_in_memory, ISSUER_KEY_ID, LINE, VALIDATOR_ID,
};
use mancard_testkit::T0;
use mancard_validator::{CertificateError, Decision, Refusal, Validator, ValidatorError};
use std::collections::HashSet;

fn refusal(d: &Decision) -> Refusal {
    d.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("expected a refusal, got {d:?}"))
}

/// The NFC records of the validator's next sealed batch.
fn sealed_nfc(v: &mut Validator) -> Vec<(i64, TapProof)> {
    let sealed = v.seal().unwrap().unwrap();
    TapBatch::decode(&sealed.bytes)
        .unwrap()
        .body
        .records
        .into_iter()
        .map(|r| (r.fare, r.proof))
        .collect()
}

#[test]
fn without_a_validator_certificate_nfc_taps_are_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = uncertified_validator(&issuer, T0);
    assert!(v.certificate().is_none());
    assert!(v.status().unwrap().certificate.is_none());
    let mut c = card(&issuer, T0);
    let o = v.tap_nfc(&mut c);
    assert_eq!(refusal(&o.decision), Refusal::NoValidatorCertificate);
    assert_eq!(o.decision.code(), "no_validator_certificate");
    assert!(
        o.decision
            .display_text()
            .contains("no validator certificate installed"),
        "{}",
        o.decision
    );
    // Refused before the phone is asked anything, and journaled like every refusal.
    assert_eq!((o.apdus, c.taps, c.requotes), (0, 0, 0));
    let st = v.status().unwrap();
    assert_eq!(
        (st.journal.accepted_total, st.journal.refusals_total),
        (0, 1)
    );
    assert_eq!(
        v.journal().recent(1).unwrap()[0].code,
        "no_validator_certificate"
    );
    // A QR pass needs no reader authentication.
    assert!(v
        .verify_qr(&c.pass(150, T0, 30_000).to_text())
        .decision
        .is_accepted());
    // Once certified, the same phone is accepted.
    certify(&issuer, &mut v, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
}

#[test]
fn a_certificate_for_another_validator_or_key_is_refused_at_install() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = uncertified_validator(&issuer, T0);
    let key = v.public_key();
    let (from, until) = (T0 - 86_400, T0 + 86_400);
    let other_key = SigningKey::generate().unwrap().0.public_key();
    let impostor = timeless_issuer(ISSUER_KEY_ID);
    let unknown = timeless_issuer(99);
    let genuine = issuer.validator_cert_with(VALIDATOR_ID, &key, Vec::new(), from, until);
    let mut high_s = genuine.clone();
    high_s.signature = Signature(genuine.signature.malleated());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            issuer
                .validator_cert_with(VALIDATOR_ID + 1, &key, Vec::new(), from, until)
                .encode(),
            "for validator 4243, but this is validator 4242",
        ),
        (
            issuer
                .validator_cert_with(VALIDATOR_ID, &other_key, Vec::new(), from, until)
                .encode(),
            "another public key",
        ),
        (
            impostor
                .validator_cert_with(VALIDATOR_ID, &key, Vec::new(), from, until)
                .encode(),
            "signature does not verify",
        ),
        (
            unknown
                .validator_cert_with(VALIDATOR_ID, &key, Vec::new(), from, until)
                .encode(),
            "unknown issuer key 99",
        ),
        (high_s.encode(), "not canonical"),
        (b"not a certificate".to_vec(), "cannot be decoded"),
    ];
    for (bytes, text) in cases {
        let e = v.install_certificate(&bytes).unwrap_err();
        assert!(matches!(e, ValidatorError::Certificate(_)), "{e:?}");
        assert!(e.to_string().contains(text), "{e} (expected {text:?})");
        assert!(
            v.certificate().is_none(),
            "a refused certificate changes nothing"
        );
    }
    let e = v.install_certificate(&high_s.encode()).unwrap_err();
    assert!(matches!(
        e,
        ValidatorError::Certificate(CertificateError::Refused(
            mancard_protocol::VerifyError::NonCanonicalSignature
        ))
    ));
    v.install_certificate(&genuine.encode()).unwrap();
    assert_eq!(v.certificate(), Some(&genuine));
    // A refused one later does not replace the installed one.
    assert!(v.install_certificate(&high_s.encode()).is_err());
    assert_eq!(v.certificate(), Some(&genuine));
}

#[test]
fn the_certificate_is_persisted_and_survives_reopen() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut v = Validator::init(tmp.path(), &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    v.install_config(&issuer.bundle(1, now - 60, vec![]).encode())
        .unwrap();
    let cert = validator_cert_for(&issuer, &v, now);
    v.install_certificate(&cert.encode()).unwrap();
    drop(v);
    let mut v = Validator::open(tmp.path()).unwrap();
    assert_eq!(v.certificate(), Some(&cert));
    assert_eq!(v.status().unwrap().certificate, Some(cert.clone()));
    let mut c = card(&issuer, now);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // Re-initialising the directory keeps the key, and so the certificate...
    drop(v);
    let v = Validator::init(tmp.path(), &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    assert_eq!(v.certificate(), Some(&cert));
    // ... unless it becomes another validator: the certificate does not name it.
    drop(v);
    let mut v = Validator::init(tmp.path(), &issuer.anchor(), VALIDATOR_ID + 1, LINE).unwrap();
    assert!(v.certificate().is_none());
    assert_eq!(
        v.tap_nfc(&mut c).decision.code(),
        "no_validator_certificate"
    );
}

#[test]
fn a_certificate_signed_by_a_key_the_bundle_lists_installs() {
    // The trust anchor signs a bundle that also lists a second issuer key (a rotation); the
    // backend now certifies validators with the second key.
    let anchor = timeless_issuer(ISSUER_KEY_ID);
    let next = timeless_issuer(ISSUER_KEY_ID + 1);
    let mut v = uncertified_validator(&anchor, T0);
    let cert = validator_cert_for(&next, &v, T0);
    assert!(matches!(
        v.install_certificate(&cert.encode()),
        Err(ValidatorError::Certificate(CertificateError::Refused(_)))
    ));
    let bundle = ConfigBody {
        bundle_version: 2,
        issued_at: T0,
        signer_key_id: anchor.key_id,
        issuer_keys: vec![anchor.issuer_key(), next.issuer_key()],
        deny_list: Vec::new(),
        validator_deny_list: Vec::new(),
        time_rules: TimeRules::default(),
        tariff: Tariff::urmia_default(),
    }
    .sign(&anchor.key)
    .unwrap();
    v.install_config(&bundle.encode()).unwrap();
    v.install_certificate(&cert.encode()).unwrap();
    let mut c = card(&next, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
}

#[test]
fn each_phone_status_word_maps_to_its_own_refusal() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let table = [
        (
            StatusWord::ReaderCertificateRequired,
            Refusal::PhoneNeedsReaderCertificate,
            "reader_certificate_required",
        ),
        (
            StatusWord::ReaderUnknown,
            Refusal::PhoneDistrustsReader,
            "reader_unknown",
        ),
        (
            StatusWord::ReaderExpired,
            Refusal::PhoneSaysReaderExpired,
            "reader_expired",
        ),
        (
            StatusWord::ReaderDenied,
            Refusal::PhoneSaysReaderDenied,
            "reader_denied",
        ),
        (
            StatusWord::BadChallengeSignature,
            Refusal::PhoneRejectedChallenge,
            "bad_challenge_signature",
        ),
        (
            StatusWord::ReaderClockOff,
            Refusal::PhoneClockMismatch,
            "reader_clock_off",
        ),
        (
            StatusWord::FareTooHigh,
            Refusal::PhoneSaysFareTooHigh,
            "fare_too_high",
        ),
        (
            StatusWord::TooManyTaps,
            Refusal::PhoneTooManyTaps,
            "too_many_taps",
        ),
        (
            StatusWord::ReaderLineNotAllowed,
            Refusal::PhoneSaysLineNotAllowed,
            "reader_line_not_allowed",
        ),
        (
            StatusWord::StaleChallenge,
            Refusal::PhoneSaysStaleChallenge,
            "stale_challenge",
        ),
    ];
    let mut texts = HashSet::new();
    for (i, (sw, expected, code)) in table.into_iter().enumerate() {
        let mut c = card(&issuer, T0);
        c.bad.refuse_with = Some(sw);
        let o = v.tap_nfc(&mut c);
        assert_eq!(refusal(&o.decision), expected, "{sw:?}");
        assert_eq!(o.decision.code(), code);
        assert_eq!(o.apdus, 2, "SELECT and the refused AUTHORIZE TAP");
        let text = o.decision.display_text();
        assert!(!text.contains("Card error"), "{sw:?}: {text}");
        assert!(
            texts.insert(text),
            "{sw:?} shares its text with another reason"
        );
        let st = v.status().unwrap();
        assert_eq!(st.journal.refusals_total, i as i64 + 1);
        assert_eq!(st.journal.accepted_total, 0);
    }
}

#[test]
fn pair_counts_cached_and_first_sight_for_every_class() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    // Adult, first sight: SELECT, AUTHORIZE TAP, READ CERTIFICATE.
    let mut adult = card(&issuer, T0);
    let o = v.tap_nfc(&mut adult);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!((o.apdus, o.cert_cached, adult.reads), (3, false, 1));
    // Adult, cached: SELECT, AUTHORIZE TAP.
    v.set_clock(mancard_testkit::validator::fixed(T0 + 3600));
    let o = v.tap_nfc(&mut adult);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!((o.apdus, o.cert_cached, adult.reads), (2, true, 1));
    // Student, first sight: the adult quote is signed at the student's own fare of the line,
    // then READ CERTIFICATE: three pairs, no requote.
    let mut student = card_of(&issuer, T0, FareClass::Student);
    let o = v.tap_nfc(&mut student);
    let a = o.decision.acceptance().cloned().expect("accepted");
    assert_eq!((a.fare, a.fare_kind), (10_000, FareKind::Full));
    assert_eq!((o.apdus, o.cert_cached), (3, false));
    assert_eq!((student.requotes, student.taps, student.reads), (0, 1, 1));
    // Student again, the certificate cached: two pairs, like an adult.
    let o = v.tap_nfc(&mut student);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!((o.apdus, o.cert_cached), (2, true));
    // Every journaled proof: the validator-signed challenge the phone answered.
    let key = v.public_key();
    let records = sealed_nfc(&mut v);
    assert_eq!(records.len(), 4);
    for (fare, proof) in records {
        let TapProof::Nfc {
            challenge,
            authorization,
        } = proof
        else {
            panic!("an NFC tap journaled as {proof:?}")
        };
        challenge.verify(&key).unwrap();
        assert_eq!(challenge.body.validator_id, VALIDATOR_ID);
        // every challenge quotes the adult fare; a student's phone signed its own
        assert_eq!(
            (challenge.body.fare_class, challenge.body.fare),
            (FareClass::Adult, 20_000)
        );
        assert_eq!(fare, authorization.amount);
        assert!(fare == 20_000 || fare == 10_000, "{fare}");
    }
}

#[test]
fn the_full_fare_is_signed_and_the_quote_charged() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    v.set_clock(mancard_testkit::validator::fixed(T0 + 600));
    v.set_line(2).unwrap();
    let a = v.tap_nfc(&mut c).decision.acceptance().cloned().unwrap();
    assert_eq!((a.fare, a.fare_kind), (5_000, FareKind::Transfer));
    let records = sealed_nfc(&mut v);
    // The phone authorized line 2's full fare; the validator charged the transfer.
    let (fare, proof) = &records[1];
    assert_eq!((*fare, proof.amount()), (5_000, 20_000));
}

#[test]
fn a_phone_asking_for_quote_after_quote_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    // An adult phone answering the adult quote with its certificate: refused at once.
    let mut adult = card(&issuer, T0);
    adult.bad.always_requote = true;
    let o = v.tap_nfc(&mut adult);
    assert_eq!(refusal(&o.decision), Refusal::FareClassMismatch);
    assert_eq!(o.apdus, 2);
    // A student phone answering the adult quote with its certificate, then the student quote
    // with its certificate again.
    let mut student = card_of(&issuer, T0, FareClass::Student);
    student.bad.always_requote = true;
    let o = v.tap_nfc(&mut student);
    assert_eq!(refusal(&o.decision), Refusal::FareClassMismatch);
    assert_eq!((o.apdus, student.requotes), (3, 2));
    // A deny-listed student that answers with its certificate is refused at it, before a
    // second challenge.
    let mut blocked = card_of(&issuer, T0, FareClass::Student);
    blocked.bad.always_requote = true;
    v.install_config(&issuer.bundle(2, T0, vec![blocked.pseudonym()]).encode())
        .unwrap();
    let o = v.tap_nfc(&mut blocked);
    assert_eq!(refusal(&o.decision), Refusal::Blocked);
    assert_eq!((o.apdus, blocked.taps), (2, 0));
    assert_eq!(v.status().unwrap().journal.accepted_total, 0);
}

#[test]
fn a_phone_answering_with_a_high_s_authorization_is_refused_as_non_canonical() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    c.bad.high_s = true;
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::NonCanonicalSignature);
    assert_eq!(d.code(), "non_canonical_signature");
    assert!(d.display_text().contains("modified signature"), "{d}");
    // Cached certificate too.
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::NonCanonicalSignature);
    assert_eq!(v.status().unwrap().journal.accepted_total, 0);
    // The same phone signing canonically is accepted.
    c.bad.high_s = false;
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // A phone whose certificate was re-encoded with the issuer's s flipped (the same
    // certificate id): refused at first sight as non-canonical, not as a new card.
    let mut v = validator_in_memory(&issuer, T0);
    let mut copy = c.cert.clone().unwrap();
    copy.signature = Signature(copy.signature.malleated());
    assert_eq!(copy.id(), c.cert.as_ref().unwrap().id());
    c.bad.swap_certificate = Some(copy.encode());
    let o = v.tap_nfc(&mut c);
    assert_eq!(refusal(&o.decision), Refusal::NonCanonicalSignature);
    assert_eq!(o.apdus, 3);
}

#[test]
fn a_validator_the_bundle_denies_refuses_every_tap() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    // Another validator denied: nothing changes here.
    let other = issuer.bundle_with(2, T0, vec![], vec![VALIDATOR_ID + 1], TimeRules::default());
    v.install_config(&other.encode()).unwrap();
    assert!(!v.status().unwrap().blocked);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // This one denied (a stolen reader): NFC and QR refused with their own reason.
    let me = issuer.bundle_with(3, T0, vec![], vec![VALIDATOR_ID], TimeRules::default());
    v.install_config(&me.encode()).unwrap();
    assert!(v.status().unwrap().blocked);
    let o = v.tap_nfc(&mut c);
    assert_eq!(refusal(&o.decision), Refusal::ValidatorBlocked);
    assert_eq!(o.decision.code(), "validator_blocked");
    assert!(o
        .decision
        .display_text()
        .contains("This validator is blocked"));
    assert_eq!((o.apdus, c.taps), (0, 1));
    let d = v.verify_qr(&c.pass(150, T0, 30_000).to_text()).decision;
    assert_eq!(refusal(&d), Refusal::ValidatorBlocked);
    assert_eq!(v.status().unwrap().journal.accepted_total, 1);
}

#[test]
fn the_validator_certificate_must_cover_the_line() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = uncertified_validator(&issuer, T0);
    let cert = issuer.validator_cert_with(
        VALIDATOR_ID,
        &v.public_key(),
        vec![2, 10],
        T0 - 86_400,
        T0 + 86_400,
    );
    v.install_certificate(&cert.encode()).unwrap();
    let mut c = card(&issuer, T0);
    let o = v.tap_nfc(&mut c);
    assert_eq!(refusal(&o.decision), Refusal::ValidatorLineNotAllowed(LINE));
    assert_eq!(o.apdus, 0);
    // A QR pass on a line the certificate does not cover is refused too: the backend would
    // not charge it (a validator certified for some lines must not report others).
    let pass = c.pass_for(190, T0, 60, 30_000);
    let d = v.verify_qr(&pass.to_text()).decision;
    assert_eq!(refusal(&d), Refusal::ValidatorLineNotAllowed(LINE));
    v.set_line(2).unwrap();
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    let d = v
        .verify_qr(&c.pass_for(191, T0, 60, 30_000).to_text())
        .decision;
    assert!(d.is_accepted(), "{d:?}");
    // Its validity: a day after it ended, refused before the phone is asked.
    v.set_clock(mancard_testkit::validator::fixed(T0 + 2 * 86_400));
    let o = v.tap_nfc(&mut c);
    assert_eq!(o.decision.code(), "validator_certificate_not_valid");
    assert_eq!(o.apdus, 0);
}
