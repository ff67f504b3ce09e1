//! Decisions of the validator, honest and under attack: each attack has its own reason.

use mancard_protocol::{FareClass, FareKind, SigningKey, StatusWord};
use mancard_testkit::validator::{
    card, fixed, timeless_issuer, validator_in_memory, TestCard, ISSUER_KEY_ID,
};
use mancard_testkit::{CertSpec, T0};
use mancard_validator::{
    CardChannel, ChannelError, ConfigInstall, Decision, FnChannel, Refusal, ValidatorError,
};
use std::cell::RefCell;

fn refusal(d: &Decision) -> Refusal {
    d.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("expected a refusal, got {d:?}"))
}

#[test]
fn honest_tap_reads_certificate_once_then_uses_cache() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    let o1 = v.tap_nfc(&mut c);
    let a1 = o1.decision.acceptance().expect("accepted").clone();
    assert_eq!(
        (a1.fare, a1.fare_kind, a1.counter),
        (20_000, FareKind::Full, 100)
    );
    assert_eq!((o1.apdus, o1.cert_cached), (3, false));
    assert_eq!(
        o1.decision.display_text(),
        "OK - 20,000 rials (2,000 toman) (full fare)"
    );
    // Second tap on the same line: cached certificate, 2 APDUs.
    let o2 = v.tap_nfc(&mut c);
    assert!(o2.decision.is_accepted(), "{:?}", o2.decision);
    assert_eq!((o2.apdus, o2.cert_cached), (2, true));
    assert_eq!(c.reads, 1);
    let st = v.status().unwrap();
    assert_eq!(st.journal.accepted_total, 2);
    assert_eq!(st.journal.unsealed, 2);
    assert_eq!(st.deny_list_age_secs, Some(3600));
}

#[test]
fn in_process_closure_channel() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let c = RefCell::new(card(&issuer, T0));
    let mut ch = FnChannel::new(|apdu: Vec<u8>| c.borrow_mut().process_apdu(&apdu));
    let o = v.tap_nfc(&mut ch);
    assert!(o.decision.is_accepted(), "{:?}", o.decision);
    assert_eq!(ch.exchanges, 3);
}

#[test]
fn fares_transfer_and_daily_cap_through_taps() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    let mut fare_at = |v: &mut mancard_validator::Validator, t: i64, line: u32| {
        v.set_clock(fixed(t));
        v.set_line(line).unwrap();
        let o = v.tap_nfc(&mut c);
        let a = o.decision.acceptance().cloned().expect("accepted");
        (a.fare, a.fare_kind)
    };
    assert_eq!(fare_at(&mut v, T0, 1), (20_000, FareKind::Full));
    assert_eq!(fare_at(&mut v, T0 + 600, 2), (5_000, FareKind::Transfer));
    assert_eq!(fare_at(&mut v, T0 + 700, 2), (20_000, FareKind::Full));
    assert_eq!(fare_at(&mut v, T0 + 7200, 10), (15_000, FareKind::Capped));
    assert_eq!(fare_at(&mut v, T0 + 9000, 10), (0, FareKind::Capped));
    let o = v.tap_nfc(&mut c);
    assert_eq!(
        o.decision.display_text(),
        "OK - free ride (daily cap reached)"
    );
    // Student fare class.
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 - 10,
            valid_until: T0 + 86_400,
            class: FareClass::Student,
            first: 1,
            last: 10,
            max_amount: 100_000,
        },
    );
    let mut student = TestCard::new(tap, cert);
    v.set_line(1).unwrap();
    let o = v.tap_nfc(&mut student);
    assert_eq!(o.decision.acceptance().unwrap().fare, 10_000);
}

#[test]
fn replayed_authorization_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // An attacker records the phone's answer and plays it back to the next challenge: it signs
    // another challenge (nonce, session), so its signature does not verify for this one.
    c.bad.replay_answer = c.last_answer.clone();
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::BadSignature);
    assert!(d.display_text().contains("bad signature"));
    assert_eq!(v.status().unwrap().journal.accepted_total, 1);
}

#[test]
fn reused_counter_is_already_used() {
    // A cloned phone (same tap key) answering a fresh challenge with a counter already spent.
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    c.bad.counter = Some(100);
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::AlreadyUsed { counter: 100 });
    assert!(d.display_text().contains("Already used"));
}

#[test]
fn tampered_amount_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    c.bad.sign_amount = Some(1);
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(
        refusal(&d),
        Refusal::AmountMismatch {
            asked: 20_000,
            signed: 1
        }
    );
}

#[test]
fn tampered_signature_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    c.bad.corrupt_signature = true;
    assert_eq!(refusal(&v.tap_nfc(&mut c).decision), Refusal::BadSignature);
}

#[test]
fn forged_certificates_are_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    // Signed by a key the validator never heard of, under another key id (the phone trusts
    // the real issuer's validator certificates).
    let rogue = timeless_issuer(99);
    let mut c = card(&rogue, T0);
    c.trust = vec![issuer.issuer_key()];
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::UnknownIssuer(99));
    assert!(d.display_text().contains("unknown issuer"));
    // Signed by a rogue key claiming the real issuer's key id.
    let impostor = timeless_issuer(ISSUER_KEY_ID);
    let mut c = card(&impostor, T0);
    c.trust = vec![issuer.issuer_key()];
    assert_eq!(refusal(&v.tap_nfc(&mut c).decision), Refusal::BadSignature);
    // A genuine certificate signed for, another one (forged) sent.
    let mut c = card(&issuer, T0);
    c.bad.swap_certificate = Some(card(&impostor, T0).cert.unwrap().encode());
    assert!(matches!(
        refusal(&v.tap_nfc(&mut c).decision),
        Refusal::Malformed(_)
    ));
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 - 10 * 86_400,
            valid_until: T0 - 1,
            class: FareClass::Adult,
            first: 1,
            last: 9,
            max_amount: 99_999,
        },
    );
    // An honest phone refuses to sign outside its certificate's validity (6984)...
    let mut old = TestCard::new(tap, cert);
    assert_eq!(
        refusal(&v.tap_nfc(&mut old).decision),
        Refusal::CredentialNotValidOnPhone
    );
    assert_eq!(old.taps, 0);
    // ... and a phone that signs anyway is refused by the validator, which reads the
    // certificate the authorization names.
    old.bad.ignore_validity = true;
    let d = v.tap_nfc(&mut old).decision;
    assert_eq!(
        refusal(&d),
        Refusal::Expired {
            valid_until: T0 - 1
        }
    );
    assert!(d.display_text().contains("expired"));
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 + 3600,
            valid_until: T0 + 86_400,
            class: FareClass::Adult,
            first: 1,
            last: 9,
            max_amount: 99_999,
        },
    );
    let mut early = TestCard::new(tap, cert);
    early.bad.ignore_validity = true;
    let d = v.tap_nfc(&mut early).decision;
    assert_eq!(
        refusal(&d),
        Refusal::NotYetValid {
            valid_from: T0 + 3600
        }
    );
    // Nothing was accepted.
    assert_eq!(v.status().unwrap().journal.accepted_total, 0);
}

#[test]
fn counter_outside_range_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    c.bad.counter = Some(5_000);
    assert_eq!(
        refusal(&v.tap_nfc(&mut c).decision),
        Refusal::CounterOutOfRange {
            counter: 5_000,
            first: 100,
            last: 199
        }
    );
}

#[test]
fn deny_listed_card_is_blocked() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // The card is reported stolen: bundle v2 denies it; the cached certificate does not help.
    v.install_config(&issuer.bundle(2, T0, vec![c.pseudonym()]).encode())
        .unwrap();
    let d = v.tap_nfc(&mut c).decision;
    assert_eq!(refusal(&d), Refusal::Blocked);
    assert!(d.display_text().contains("blocked"));
    // QR too.
    let pass = c.pass(150, T0, 30_000);
    assert_eq!(
        refusal(&v.verify_qr(&pass.to_text()).decision),
        Refusal::Blocked
    );
}

#[test]
fn phone_status_words_map_to_reasons() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut none = TestCard::empty();
    assert_eq!(
        refusal(&v.tap_nfc(&mut none).decision),
        Refusal::NoCredential
    );
    // Allowance too low for the fare: the phone says 6A84.
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 - 10,
            valid_until: T0 + 86_400,
            class: FareClass::Adult,
            first: 1,
            last: 9,
            max_amount: 30_000,
        },
    );
    let mut poor = TestCard::new(tap, cert);
    assert!(v.tap_nfc(&mut poor).decision.is_accepted());
    v.set_line(2).unwrap();
    v.set_clock(fixed(T0 + 3 * 3600));
    let d = v.tap_nfc(&mut poor).decision;
    assert_eq!(
        refusal(&d),
        Refusal::InsufficientAllowance {
            fare: 20_000,
            available: None
        }
    );
    assert!(d.display_text().contains("20,000 rials (2,000 toman)"));
    // A full fare above the whole certificate allowance: the phone refuses to sign it.
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 - 10,
            valid_until: T0 + 86_400,
            class: FareClass::Adult,
            first: 1,
            last: 9,
            max_amount: 1_000,
        },
    );
    let mut tiny = TestCard::new(tap, cert);
    assert!(matches!(
        refusal(&v.tap_nfc(&mut tiny).decision),
        Refusal::InsufficientAllowance {
            fare: 20_000,
            available: None,
        }
    ));
    assert_eq!(tiny.taps, 0);
    // A phone that signs more than its certificate allows is refused by the validator.
    tiny.bad.ignore_allowance = true;
    assert_eq!(
        refusal(&v.tap_nfc(&mut tiny).decision),
        Refusal::InsufficientAllowance {
            fare: 20_000,
            available: Some(1_000),
        }
    );
    // Counters used up.
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: T0 - 10,
            valid_until: T0 + 86_400,
            class: FareClass::Adult,
            first: 1,
            last: 1,
            max_amount: 100_000,
        },
    );
    let mut one = TestCard::new(tap, cert);
    one.next_counter = 2;
    assert_eq!(
        refusal(&v.tap_nfc(&mut one).decision),
        Refusal::CountersExhausted
    );
}

struct Scripted(Vec<Vec<u8>>, usize);
impl CardChannel for Scripted {
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let r = self.0.get(self.1).cloned();
        self.1 += 1;
        r.ok_or(ChannelError::CardRemoved)
    }
}

#[test]
fn malformed_answers_give_typed_refusals() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let sel = mancard_protocol::ResponseApdu::ok(
        mancard_protocol::SelectResponse { session: [5; 16] }.encode(),
    )
    .encode();
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![vec![]], "malformed"),
        (vec![vec![0x90]], "malformed"),
        (vec![vec![0x6A, 0x82]], "not_a_mancard"),
        (vec![vec![0x69, 0x82]], "wallet_locked"),
        (vec![vec![1, 2, 3, 0x90, 0x00]], "malformed"),
        (vec![], "communication"),
        (vec![sel.clone()], "communication"),
        (vec![sel.clone(), vec![0xFF; 300]], "card_error"),
        (
            vec![sel.clone(), [vec![0xFF; 250], vec![0x90, 0]].concat()],
            "malformed",
        ),
        (vec![sel.clone(), vec![0x90, 0x00]], "malformed"),
        (vec![sel.clone(), vec![0x62, 0x83]], "card_error"),
        (
            vec![sel.clone(), vec![0x69, 0xC4]],
            "bad_challenge_signature",
        ),
    ];
    for (script, code) in cases {
        // a fresh validator each time: a lost answer leaves a torn tap the next tap repeats
        let mut v = validator_in_memory(&issuer, T0);
        let d = v.tap_nfc(&mut Scripted(script.clone(), 0)).decision;
        assert_eq!(d.code(), code, "{script:?} -> {d:?}");
    }
    // Random garbage at every step never panics.
    let mut seed = 0x1234_5678_u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2_000 {
        let n = (rnd() % 3 + 1) as usize;
        let script: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                if i == 0 && rnd() % 2 == 0 {
                    sel.clone()
                } else {
                    let len = (rnd() % 200) as usize;
                    let mut b: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                    if rnd() % 2 == 0 {
                        b.extend_from_slice(&[0x90, 0x00]);
                    }
                    b
                }
            })
            .collect();
        let d = v.tap_nfc(&mut Scripted(script, 0)).decision;
        assert!(!d.is_accepted());
    }
}

#[test]
fn qr_pass_accept_replay_window_and_max_amount() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let c = card(&issuer, T0);
    let pass = c.pass(150, T0 - 20, 30_000);
    let text = pass.to_text();
    let o = v.verify_qr(&format!("{text}\r\n"));
    let a = o.decision.acceptance().cloned().expect("accepted");
    assert_eq!((a.fare, a.counter), (20_000, 150));
    // Replayed pass (a screenshot shown twice).
    let d = v.verify_qr(&text).decision;
    assert_eq!(refusal(&d), Refusal::AlreadyUsed { counter: 150 });
    // Outside its window: issued 10 minutes ago (or a phone clock a day off).
    let stale = c.pass(151, T0 - 600, 30_000);
    let d = v.verify_qr(&stale.to_text()).decision;
    assert_eq!(
        refusal(&d),
        Refusal::PhoneClockOff {
            issued_at: T0 - 600,
            now: T0
        }
    );
    assert!(d.display_text().contains("clock"));
    let future = c.pass(152, T0 + 86_400, 30_000);
    assert_eq!(
        refusal(&v.verify_qr(&future.to_text()).decision).code(),
        "phone_clock_off"
    );
    // Within the skew tolerance: accepted.
    let skewed = c.pass(153, T0 + 25, 30_000);
    assert!(v.verify_qr(&skewed.to_text()).decision.is_accepted());
    // Fare above the pass maximum (line 10 costs 30,000; 40,000 already spent of the
    // 60,000 cap, so 20,000).
    v.set_line(10).unwrap();
    v.set_clock(fixed(T0 + 4 * 3600));
    let low = c.pass(154, T0 + 4 * 3600, 10_000);
    assert_eq!(
        refusal(&v.verify_qr(&low.to_text()).decision),
        Refusal::InsufficientAllowance {
            fare: 20_000,
            available: Some(10_000)
        }
    );
    // Not a pass at all.
    assert_eq!(refusal(&v.verify_qr("hello").decision).code(), "not_a_pass");
    assert_eq!(
        refusal(&v.verify_qr("MC1:AAAA").decision).code(),
        "not_a_pass"
    );
    // Tampered pass text (max amount raised).
    let mut p = c.pass(155, T0 + 4 * 3600, 1_000);
    p.body.max_amount = 400_000;
    assert_eq!(
        refusal(&v.verify_qr(&p.to_text()).decision),
        Refusal::BadSignature
    );
}

#[test]
fn qr_and_nfc_share_the_replay_cache() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted()); // counter 100
    let pass = c.pass(100, T0, 30_000);
    assert_eq!(
        refusal(&v.verify_qr(&pass.to_text()).decision),
        Refusal::AlreadyUsed { counter: 100 }
    );
}

#[test]
fn bundle_with_bad_signature_or_older_version_is_refused_and_old_kept() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    assert_eq!(v.config().unwrap().body.bundle_version, 1);
    // Signed by an impostor under the issuer's key id.
    let impostor = timeless_issuer(ISSUER_KEY_ID);
    let bad = impostor.bundle(2, T0, vec![]);
    let e = v.install_config(&bad.encode()).unwrap_err();
    assert!(matches!(e, ValidatorError::Config(_)), "{e}");
    assert!(e.to_string().contains("signature"), "{e}");
    // Valid bundle with one byte flipped.
    let mut bytes = issuer.bundle(2, T0, vec![]).encode();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    assert!(v.install_config(&bytes).is_err());
    // Older and same-version bundles.
    assert!(v
        .install_config(&issuer.bundle(0, T0, vec![]).encode())
        .is_err());
    assert!(matches!(
        v.install_config(&issuer.bundle(1, T0 + 5, vec![]).encode()),
        Err(ValidatorError::Config(_))
    ));
    // Garbage.
    assert!(v.install_config(b"not a bundle").is_err());
    assert_eq!(v.config().unwrap().body.bundle_version, 1);
    // Everything still works with the old bundle.
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    // A genuine newer bundle installs; re-installing it is a no-op.
    let b2 = issuer.bundle(2, T0, vec![]).encode();
    assert_eq!(
        v.install_config(&b2).unwrap(),
        ConfigInstall::Installed { version: 2 }
    );
    assert_eq!(
        v.install_config(&b2).unwrap(),
        ConfigInstall::Unchanged { version: 2 }
    );
}

#[test]
fn unconfigured_validator_refuses() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut j = mancard_validator::Journal::in_memory().unwrap();
    mancard_validator::Validator::provision_journal(&mut j, &issuer.anchor(), 1, 1).unwrap();
    let mut v =
        mancard_validator::Validator::from_parts(j, SigningKey::generate().unwrap().0, fixed(T0))
            .unwrap();
    let mut c = card(&issuer, T0);
    assert_eq!(refusal(&v.tap_nfc(&mut c).decision), Refusal::NotConfigured);
    assert_eq!(v.status().unwrap().journal.refusals_total, 1);
}

#[test]
fn phone_status_word_table() {
    for (sw, code) in [
        (StatusWord::NoCredential, "no_credential"),
        (StatusWord::CredentialNotValid, "credential_not_valid"),
        (StatusWord::CountersExhausted, "counters_exhausted"),
        (StatusWord::AllowanceExhausted, "insufficient_allowance"),
        (StatusWord::StorageFailure, "phone_storage_failure"),
        (
            StatusWord::ReaderCertificateRequired,
            "reader_certificate_required",
        ),
        (StatusWord::ReaderUnknown, "reader_unknown"),
        (StatusWord::ReaderExpired, "reader_expired"),
        (StatusWord::ReaderDenied, "reader_denied"),
        (StatusWord::BadChallengeSignature, "bad_challenge_signature"),
        (StatusWord::ReaderClockOff, "reader_clock_off"),
        (StatusWord::FareTooHigh, "fare_too_high"),
        (StatusWord::TooManyTaps, "too_many_taps"),
        (StatusWord::ReaderLineNotAllowed, "reader_line_not_allowed"),
        (StatusWord::StaleChallenge, "stale_challenge"),
        (StatusWord::NotReady, "phone_not_ready"),
        (StatusWord::Other(0x6283), "card_error"),
    ] {
        assert_eq!(Refusal::from_status(sw, Some(1)).code(), code);
        assert!(!Refusal::from_status(sw, Some(1)).display_text().is_empty());
    }
}

/// A phone whose app is still opening its wallet answers every command with 6400: the ride is
/// refused as "tap again", nothing is journaled as accepted or torn, and the next tap works.
#[test]
fn a_phone_still_starting_is_told_to_tap_again() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let mut starting = FnChannel::new(|_apdu: Vec<u8>| vec![0x64, 0x00]);
    let d = v.tap_nfc(&mut starting).decision;
    assert_eq!(refusal(&d).code(), "phone_not_ready");
    assert!(d.text(mancard_l10n::Lang::En).contains("tap again"), "{d}");
    let j = v.status().unwrap().journal;
    assert_eq!((j.torn_waiting, j.accepted_total), (0, 0));
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
}

#[test]
fn validator_clock_behind_bundle_is_reported() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    assert!(!v.status().unwrap().clock_behind_bundle);
    // The RTC lost power: back to 1970.
    v.set_clock(fixed(0));
    let st = v.status().unwrap();
    assert!(st.clock_behind_bundle);
    let mut c = card(&issuer, T0);
    // Its own certificate is not valid at 1970: refused before the phone is asked anything.
    assert_eq!(
        refusal(&v.tap_nfc(&mut c).decision).code(),
        "validator_certificate_not_valid"
    );
    assert_eq!(c.taps + c.requotes, 0);
}
