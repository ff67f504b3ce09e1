//! The mutually authenticated tap (protocol v2), phone side: a reader proves itself with an
//! issuer-signed validator certificate and a challenge signed for this session before the phone
//! reveals or signs anything; a locked phone reveals nothing; a certified but rogue reader
//! cannot make the phone sign an excessive fare, nor sign too often. Every refusal has its own
//! status word and a history entry the rider can read.

use mancard::{HistoryKind, Wallet, WalletConfig};
use mancard_protocol::{
    AuthorizeResponse, CommandApdu, CredentialCertificate, FareClass, ResponseApdu, SelectResponse,
    Signature, SigningKey, StatusWord, TapChallenge, TimeRules, ValidatorCertificate, MANCARD_AID,
};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

/// A wallet with a certificate and the issuer's bundle, its clock at [`T0`].
fn world(dir: &std::path::Path, config: WalletConfig) -> (Wallet, Issuer, CredentialCertificate) {
    let w = open_with(dir, config);
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    (w, issuer, cert)
}

fn authorize(w: &Wallet, ch: &TapChallenge, cert: Option<&ValidatorCertificate>) -> ResponseApdu {
    send(w, &CommandApdu::authorize_tap(ch, cert))
}

fn refusal_words(w: &Wallet) -> Vec<u16> {
    let mut v: Vec<u16> = w
        .history(None, 500)
        .unwrap()
        .items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .map(|i| {
            assert!(!i.detail.is_empty(), "a refusal without a sentence");
            i.status_word.unwrap()
        })
        .collect();
    v.reverse();
    v
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|x| x == needle)
}

/// What one refused attack showed the reader: every response, the AUTHORIZE status word.
struct Attempt {
    responses: Vec<Vec<u8>>,
    sw: StatusWord,
}

/// SELECT, then AUTHORIZE built by `make` from the session, then READ CERTIFICATE.
fn attempt(
    w: &Wallet,
    make: impl FnOnce([u8; 16]) -> (TapChallenge, Option<ValidatorCertificate>),
) -> Attempt {
    let sel = w.process_apdu(CommandApdu::select_mancard().encode().unwrap());
    let r = ResponseApdu::parse(&sel).unwrap();
    assert_eq!(r.sw, StatusWord::Ok);
    let session = SelectResponse::decode(&r.data).unwrap().session;
    let (ch, cert) = make(session);
    let a = w.process_apdu(
        CommandApdu::authorize_tap(&ch, cert.as_ref())
            .encode()
            .unwrap(),
    );
    let rc = w.process_apdu(CommandApdu::read_certificate().encode().unwrap());
    w.deactivated();
    let sw = ResponseApdu::parse(&a).unwrap().sw;
    let rc_sw = ResponseApdu::parse(&rc).unwrap().sw;
    assert_eq!(
        rc_sw,
        StatusWord::ConditionsNotSatisfied,
        "READ CERTIFICATE answered"
    );
    Attempt {
        responses: vec![sel, a, rc],
        sw,
    }
}

#[test]
fn an_unauthenticated_reader_learns_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, cert) = world(d.path(), test_config());
    // validator 9 is on the validator deny list of the current bundle
    install_bundle(
        &w,
        &issuer.bundle_with(2, T0, Vec::new(), vec![9], TimeRules::default()),
    );
    let good = Reader::new(&issuer, READER_ID);
    let forger = Issuer::new(1); // same key id, another key
    let forged = Reader::new(&forger, 8);
    let expired = {
        let k = SigningKey::generate().unwrap().0;
        let c = issuer.validator_cert_with(
            8,
            &k.public_key(),
            Vec::new(),
            T0 - 9 * 86_400,
            T0 - 86_400,
        );
        Reader::with_certificate(k, c)
    };
    let denied = Reader::new(&issuer, 9);
    let line_2_only = {
        let k = SigningKey::generate().unwrap().0;
        let c = issuer.validator_cert_with(10, &k.public_key(), vec![2], T0 - 86_400, T0 + 86_400);
        Reader::with_certificate(k, c)
    };
    let impostor_key = SigningKey::generate().unwrap().0;
    let mut old_session = [0u8; 16];
    old_session[0] = 1;
    let fare = 20_000;
    let ch = |r: &Reader, s: [u8; 16]| r.challenge(s, T0, 1, fare, FareClass::Adult);

    let before = w.stats().next_counter;
    let mut attempts: Vec<(&str, Attempt, StatusWord)> = Vec::new();
    let mut run = |name, sw, a: Attempt| attempts.push((name, a, sw));
    run(
        "no certificate (P1=00, never seen)",
        StatusWord::ReaderCertificateRequired,
        attempt(&w, |s| (ch(&good, s), None)),
    );
    run(
        "forged certificate",
        StatusWord::ReaderUnknown,
        attempt(&w, |s| (ch(&forged, s), Some(forged.cert.clone()))),
    );
    run(
        "expired certificate",
        StatusWord::ReaderExpired,
        attempt(&w, |s| (ch(&expired, s), Some(expired.cert.clone()))),
    );
    run(
        "denied validator",
        StatusWord::ReaderDenied,
        attempt(&w, |s| (ch(&denied, s), Some(denied.cert.clone()))),
    );
    run(
        "challenge signed by another key",
        StatusWord::BadChallengeSignature,
        attempt(&w, |s| {
            let c = good
                .body(s, T0, 1, fare, FareClass::Adult)
                .sign(&impostor_key)
                .unwrap();
            (c, Some(good.cert.clone()))
        }),
    );
    run(
        "high-S challenge signature",
        StatusWord::BadChallengeSignature,
        attempt(&w, |s| {
            let mut c = ch(&good, s);
            c.signature = Signature(c.signature.malleated());
            assert!(!c.signature.is_low_s());
            (c, Some(good.cert.clone()))
        }),
    );
    run(
        "challenge naming another validator",
        StatusWord::BadChallengeSignature,
        attempt(&w, |s| {
            let mut body = good.body(s, T0, 1, fare, FareClass::Adult);
            body.validator_id = 8;
            (body.sign(&good.key).unwrap(), Some(good.cert.clone()))
        }),
    );
    run(
        "line the certificate does not cover",
        StatusWord::ReaderLineNotAllowed,
        attempt(&w, |s| {
            (ch(&line_2_only, s), Some(line_2_only.cert.clone()))
        }),
    );
    run(
        "stale session (a replayed or relayed challenge)",
        StatusWord::StaleChallenge,
        attempt(&w, |_| (ch(&good, old_session), Some(good.cert.clone()))),
    );
    // the good reader's certificate was verified above, but its reader never authenticated
    // (no challenge for this session): it is not remembered, so by id alone it is still
    // "show your certificate" (a failed attempt leaves nothing in the phone)
    run(
        "stale session, certificate by id",
        StatusWord::ReaderCertificateRequired,
        attempt(&w, |_| (ch(&good, old_session), None)),
    );
    run(
        "P1=00 for a validator never seen",
        StatusWord::ReaderCertificateRequired,
        attempt(&w, |s| (ch(&Reader::new(&issuer, 77), s), None)),
    );

    let pseudonym = cert.body.pseudonym.0;
    let id = cert.id();
    let encoded = cert.encode();
    let mut sessions = std::collections::HashSet::new();
    for (name, a, sw) in &attempts {
        assert_eq!(a.sw, *sw, "{name}");
        for r in &a.responses {
            assert!(!contains(r, &pseudonym), "{name}: the pseudonym leaked");
            assert!(!contains(r, &id), "{name}: the certificate id leaked");
            assert!(
                !contains(r, &encoded[..40]),
                "{name}: the certificate leaked"
            );
        }
        // SELECT: the version header and a random session, never the same twice
        let sel = ResponseApdu::parse(&a.responses[0]).unwrap();
        assert_eq!(sel.data.len(), SelectResponse::LEN, "{name}");
        assert!(
            sessions.insert(sel.data[2..].to_vec()),
            "{name}: a session value repeated"
        );
        // the refused AUTHORIZE and READ CERTIFICATE carry no data at all
        assert_eq!(a.responses[1].len(), 2, "{name}");
        assert_eq!(a.responses[2].len(), 2, "{name}");
    }
    // two SELECTs in a row: nothing but the header in common
    let s1 = send(&w, &CommandApdu::select_mancard()).data;
    let s2 = send(&w, &CommandApdu::select_mancard()).data;
    w.deactivated();
    assert_eq!(s1[..2], s2[..2]);
    assert_ne!(s1[2..], s2[2..]);
    // nothing was signed, no counter used; every refusal is in the rider's history
    assert_eq!(w.verify_tap_log().unwrap(), 0);
    assert_eq!(w.stats().next_counter, before);
    let words: Vec<u16> = attempts.iter().map(|(_, _, sw)| sw.code()).collect();
    assert_eq!(refusal_words(&w), words);
    // and the good reader, authenticated, gets its tap
    let t = good.tap_with(&w, &Quote::fare_at(fare, T0)).unwrap();
    verify(&issuer, &cert, &t.challenge, &t.authorization);
}

#[test]
fn a_locked_phone_reveals_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, cert) = world(d.path(), test_config());
    let reader = Reader::new(&issuer, READER_ID);
    // a first tap: the reader's certificate is cached, the phone has answered this reader
    reader.tap_with(&w, &Quote::fare_at(20_000, T0)).unwrap();
    let counter = w.stats().next_counter;
    w.set_locked(true).unwrap();

    let sel = send(&w, &CommandApdu::select_mancard());
    assert_eq!(
        sel.sw,
        StatusWord::Ok,
        "SELECT still answers: version and session only"
    );
    assert_eq!(sel.data.len(), SelectResponse::LEN);
    let session = SelectResponse::decode(&sel.data).unwrap().session;
    let ch = reader.challenge(session, T0, 1, 20_000, FareClass::Adult);
    for r in [
        authorize(&w, &ch, Some(&reader.cert)),
        authorize(&w, &ch, None),
        send(&w, &CommandApdu::read_certificate()),
    ] {
        assert_eq!(r.sw, StatusWord::WalletLocked);
        assert!(r.data.is_empty());
    }
    // another class: a locked phone does not re-quote with its certificate either
    let other = reader.challenge(session, T0, 1, 10_000, FareClass::Student);
    let r = authorize(&w, &other, Some(&reader.cert));
    assert_eq!((r.sw, r.data.len()), (StatusWord::WalletLocked, 0));
    assert!(!contains(&sel.data, &cert.body.pseudonym.0));
    w.deactivated();
    assert_eq!(reader.tap(&w).unwrap_err(), StatusWord::WalletLocked);
    assert_eq!(w.stats().next_counter, counter, "no counter used");
    assert_eq!(w.verify_tap_log().unwrap(), 1);
    assert_eq!(refusal_words(&w), vec![0x6982; 4]);

    w.set_locked(false).unwrap();
    reader.tap_with(&w, &Quote::fare_at(20_000, T0)).unwrap();
    assert_eq!(w.verify_tap_log().unwrap(), 2);
}

#[test]
fn a_rogue_reader_cannot_make_the_phone_sign_an_excessive_fare() {
    let d = tempfile::tempdir().unwrap();
    // the production configuration: six authorizations a minute
    let (w, issuer, cert) = world(d.path(), mancard_testkit::wallet::english());
    // a certified validator gone rogue (a stolen reader, not yet on the deny list)
    let rogue = Reader::new(&issuer, 66);
    let before = w.stats().next_counter;
    // more than line 1's adult fare (20,000), or the tariff's highest (30,000, line 10's),
    // though the allowance would allow it
    for fare in [20_001, 30_000, 500_000, 9_999_999] {
        assert_eq!(
            rogue.tap_with(&w, &Quote::fare_at(fare, T0)).unwrap_err(),
            StatusWord::FareTooHigh,
            "fare {fare}"
        );
    }
    // a line the tariff does not list has no fare: nothing may be asked for it
    let unknown_line = Quote {
        line_id: 99,
        ..Quote::fare_at(1, T0)
    };
    assert_eq!(
        rogue.tap_with(&w, &unknown_line).unwrap_err(),
        StatusWord::FareTooHigh
    );
    // a validator clock far from the phone's: 69C5 either way
    for dt in [3_600, -3_600, 330, -330] {
        assert_eq!(
            rogue
                .tap_with(&w, &Quote::fare_at(10, T0 + dt))
                .unwrap_err(),
            StatusWord::ReaderClockOff,
            "validator time off by {dt}"
        );
    }
    assert_eq!(w.stats().next_counter, before, "nothing signed");
    assert_eq!(w.verify_tap_log().unwrap(), 0);
    // within the window and the fare: six authorizations, then 69C7 for the rest of the minute
    for i in 0..6 {
        let t = rogue
            .tap_with(&w, &Quote::fare_at(20_000, T0 + i * 10))
            .unwrap();
        verify(&issuer, &cert, &t.challenge, &t.authorization);
    }
    let counter = w.stats().next_counter;
    assert_eq!(
        rogue.tap_with(&w, &Quote::fare_at(1, T0 + 70)).unwrap_err(),
        StatusWord::TooManyTaps
    );
    // an honest validator is refused too: the limit protects the allowance, whoever asks
    let honest = Reader::new(&issuer, READER_ID);
    assert_eq!(honest.tap(&w).unwrap_err(), StatusWord::TooManyTaps);
    assert_eq!(w.stats().next_counter, counter);
    assert_eq!(w.verify_tap_log().unwrap(), 6);
    assert_eq!(w.ledger().unwrap().pending_amount, 120_000);
    let mut expected = vec![0x69C6; 5];
    expected.extend([0x69C5; 4]);
    expected.extend([0x69C7; 2]);
    assert_eq!(refusal_words(&w), expected);
    let h = w.history(None, 100).unwrap();
    let fares: Vec<_> = h
        .items
        .iter()
        .filter(|i| i.status_word == Some(0x69C6))
        .collect();
    assert!(
        fares
            .iter()
            .any(|i| i.detail.contains("more than the adult fare of line 1")),
        "{fares:?}"
    );
    assert!(
        fares
            .iter()
            .any(|i| i.detail.contains("line 99, which has no fare")),
        "{fares:?}"
    );
    assert!(fares.iter().all(|i| i.validator_id == Some(66)));
}

#[test]
fn every_refusal_writes_a_history_entry_the_rider_can_read() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let mut expected = Vec::new();
    // out of order: no SELECT
    let s = [0u8; 16];
    let ch = reader.challenge(s, T0, 1, 10, FareClass::Adult);
    assert_eq!(
        authorize(&w, &ch, Some(&reader.cert)).sw,
        StatusWord::ConditionsNotSatisfied
    );
    expected.push(0x6985);
    // no config bundle yet: "sync first"
    assert_eq!(reader.tap(&w).unwrap_err(), StatusWord::ReaderUnknown);
    expected.push(0x69C1);
    // a bundle, no certificate yet
    install_bundle(&w, &issuer.bundle(1, T0, Vec::new()));
    set_clock(&w, T0);
    assert_eq!(
        reader.tap_with(&w, &Quote::fare_at(10, T0)).unwrap_err(),
        StatusWord::NoCredential
    );
    expected.push(0x6A88);
    // unreadable challenge data of the right length
    let sel = select(&w);
    let mut cmd =
        CommandApdu::authorize_tap(&reader.challenge(sel, T0, 1, 10, FareClass::Adult), None);
    cmd.data[0] ^= 0xFF;
    assert_eq!(send(&w, &cmd).sw, StatusWord::IncorrectData);
    expected.push(0x6A80);
    w.deactivated();
    let h = w.history(None, 10).unwrap();
    let words: Vec<u16> = h
        .items
        .iter()
        .rev()
        .map(|i| i.status_word.unwrap())
        .collect();
    assert_eq!(words, expected);
    for i in &h.items {
        assert_eq!(i.kind, HistoryKind::Refusal);
        assert!(i.detail.len() > 20, "{}", i.detail);
        if i.status_word != Some(0x6A88) {
            // an unverified reader's fare, line and id are not the rider's history
            assert_eq!((i.amount, i.line_id, i.validator_id), (0, None, None));
        }
    }
    assert!(
        h.items[2].detail.contains("sync first"),
        "{}",
        h.items[2].detail
    );
}

#[test]
fn a_phone_of_another_class_signs_its_own_fare_in_two_pairs() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let spec = CertSpec {
        class: FareClass::Student,
        ..CertSpec::default()
    };
    let cert = provision(&w, &issuer, spec);
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    // A reader cannot know the rider's class before the answer, so it quotes the adult fare
    // (20,000 on line 1): the student's phone signs its own class's fare of the line, 10,000,
    // never the adult one. SELECT + AUTHORIZE: two pairs, the validator's cache names the rest.
    let t = reader.tap_with(&w, &Quote::default()).unwrap();
    assert_eq!(t.pairs, 2);
    assert_eq!(t.challenge.body.fare_class, FareClass::Adult);
    assert_eq!(t.authorization.amount, 10_000, "the student fare of line 1");
    verify(&issuer, &cert, &t.challenge, &t.authorization);
    let tariff = mancard_protocol::Tariff::urmia_default();
    assert_eq!(
        mancard_protocol::authorized_amount(&t.challenge.body, FareClass::Student, &tariff),
        Some(10_000)
    );
    // by id (the phone has the reader cached now): still two pairs
    let cached = Quote {
        cert_inline: false,
        ..Quote::default()
    };
    assert_eq!(reader.tap_with(&w, &cached).unwrap().pairs, 2);
    // a quote below the rider's own fare (a free ride quoted): the phone answers with its
    // certificate and signs nothing; the reader re-quotes for the student class
    let before = w.stats().next_counter;
    let s = select(&w);
    let r = authorize(
        &w,
        &reader.challenge(s, T0, 1, 0, FareClass::Free),
        Some(&reader.cert),
    );
    assert_eq!(r.sw, StatusWord::Ok);
    assert_eq!(
        AuthorizeResponse::decode(&r.data).unwrap(),
        AuthorizeResponse::Requote(cert.clone())
    );
    assert_eq!(w.stats().next_counter, before);
    // the reader is authenticated now: READ CERTIFICATE answers
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).data,
        cert.encode()
    );
    w.deactivated();
    let free = Quote {
        class: FareClass::Free,
        fare: Some(0),
        ..Quote::default()
    };
    let t = reader.tap_with(&w, &free).unwrap();
    assert_eq!(
        t.pairs, 3,
        "SELECT, AUTHORIZE → certificate, AUTHORIZE → signature"
    );
    assert_eq!(t.challenge.body.fare_class, FareClass::Student);
    // an adult phone at first sight: SELECT, AUTHORIZE, READ CERTIFICATE
    let d2 = tempfile::tempdir().unwrap();
    let adult = open(d2.path());
    let adult_cert = provision(&adult, &issuer, CertSpec::default());
    set_clock(&adult, T0);
    let q = Quote {
        read_certificate: true,
        ..Quote::default()
    };
    let t = reader.tap_with(&adult, &q).unwrap();
    assert_eq!((t.pairs, t.certificate), (3, Some(adult_cert)));
}

#[test]
fn a_new_bundle_changes_which_readers_the_phone_answers() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, _) = world(d.path(), test_config());
    let reader = Reader::new(&issuer, 12);
    reader.tap_with(&w, &Quote::fare_at(100, T0)).unwrap();
    // the reader is denied by the next bundle: its cached certificate no longer helps
    install_bundle(
        &w,
        &issuer.bundle_with(2, T0, Vec::new(), vec![12], TimeRules::default()),
    );
    let q = Quote {
        cert_inline: false,
        ..Quote::fare_at(100, T0)
    };
    assert_eq!(
        reader.tap_with(&w, &q).unwrap_err(),
        StatusWord::ReaderCertificateRequired
    );
    assert_eq!(
        reader.tap_with(&w, &Quote::fare_at(100, T0)).unwrap_err(),
        StatusWord::ReaderDenied
    );
    // a bundle with a narrower tap window
    let rules = TimeRules {
        tap_window_secs: 10,
        ..TimeRules::default()
    };
    install_bundle(
        &w,
        &issuer.bundle_with(3, T0, Vec::new(), Vec::new(), rules),
    );
    assert_eq!(
        reader
            .tap_with(&w, &Quote::fare_at(100, T0 + 60))
            .unwrap_err(),
        StatusWord::ReaderClockOff
    );
    reader.tap_with(&w, &Quote::fare_at(100, T0 + 5)).unwrap();
    // reopened: the bundle was stored
    drop(w);
    let w = open(d.path());
    assert_eq!(w.config_version(), Some(3));
    assert_eq!(
        reader
            .tap_with(&w, &Quote::fare_at(100, T0 + 60))
            .unwrap_err(),
        StatusWord::ReaderClockOff
    );
    // an AID other than ManCard's is not answered
    let mut other = CommandApdu::select_mancard();
    other.data = MANCARD_AID[..5].to_vec();
    assert_eq!(send(&w, &other).sw, StatusWord::AppNotFound);
}

/// A challenge naming `validator_id`, signed by a key that is nobody's validator key.
fn rogue_challenge(rogue: &SigningKey, validator_id: u32, session: [u8; 16]) -> TapChallenge {
    mancard_protocol::ChallengeBody {
        validator_id,
        nonce: [7; 16],
        session,
        validator_time: T0,
        line_id: 1,
        fare: 0,
        fare_class: FareClass::Adult,
    }
    .sign(rogue)
    .unwrap()
}

/// The phone's cache of readers it met must tell a rogue reader nothing and take nothing
/// from it: probing by validator id (P1 = 00) or with a captured certificate whose signature
/// is garbled gets the same answer whether or not the phone rode there; replaying genuine
/// certificates with a challenge the reader signed itself plants nothing; a new certificate
/// (a new pseudonym) starts with an empty cache, so the readers met do not link the two.
#[test]
fn a_rogue_reader_can_neither_probe_nor_plant_the_phones_reader_cache() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, _) = world(d.path(), mancard_testkit::wallet::english());
    // the rider taps at validators 7 and 12, never at 8 or 13
    let (seen_7, seen_12) = (Reader::new(&issuer, 7), Reader::new(&issuer, 12));
    seen_7.tap(&w).unwrap();
    seen_12.tap(&w).unwrap();
    let before = w.stats().next_counter;
    let rogue = SigningKey::generate().unwrap().0;
    let probe = |id: u32, cert: Option<ValidatorCertificate>| {
        attempt(&w, |s| (rogue_challenge(&rogue, id, s), cert)).sw
    };
    // by id only: the same "show your certificate" everywhere
    for id in [7, 8, 12, 13] {
        assert_eq!(
            probe(id, None),
            StatusWord::ReaderCertificateRequired,
            "{id}"
        );
    }
    // a captured certificate with a garbled signature: "not trusted", met or not
    let garbled = |c: &ValidatorCertificate| {
        let mut c = c.clone();
        c.signature = Signature([0x11; 64]);
        c
    };
    let seen_8 = Reader::new(&issuer, 8);
    assert_eq!(
        probe(7, Some(garbled(&seen_7.cert))),
        StatusWord::ReaderUnknown
    );
    assert_eq!(
        probe(8, Some(garbled(&seen_8.cert))),
        StatusWord::ReaderUnknown
    );
    // planting: genuine certificates replayed with a self-signed challenge are refused and
    // leave nothing a later probe could read back
    for id in [20, 23] {
        let genuine = Reader::new(&issuer, id).cert;
        assert_eq!(probe(id, Some(genuine)), StatusWord::BadChallengeSignature);
    }
    for id in [20, 21, 23] {
        assert_eq!(
            probe(id, None),
            StatusWord::ReaderCertificateRequired,
            "{id}"
        );
    }
    assert_eq!(w.stats().next_counter, before, "nothing signed");

    // a genuine reader that authenticated is cached: it may name itself by id next time
    let cached = Quote {
        cert_inline: false,
        ..Quote::default()
    };
    seen_7.tap_with(&w, &cached).unwrap();
    // a new certificate (a new pseudonym) forgets every reader met under the old one
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    assert_eq!(
        seen_7.tap_with(&w, &cached).unwrap_err(),
        StatusWord::ReaderCertificateRequired
    );
    seen_7.tap(&w).unwrap();
}

/// A rogue reader held near the phone, refused thousands of times: the history keeps the
/// newest 1,000 refusals (`refusal_log_limit`), and the rider's rides stay in it.
#[test]
fn a_flood_of_refusals_cannot_grow_the_history_without_bound() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, _) = world(d.path(), mancard_testkit::wallet::english());
    Reader::new(&issuer, READER_ID).tap(&w).unwrap();
    let rogue = SigningKey::generate().unwrap().0;
    for i in 0..1_200u32 {
        let sw = attempt(&w, |s| (rogue_challenge(&rogue, 100_000 + i, s), None)).sw;
        assert_eq!(sw, StatusWord::ReaderCertificateRequired);
    }
    let items = crate::support::whole_history(&w);
    let refusals: Vec<_> = items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .collect();
    assert_eq!(refusals.len(), 1_000);
    assert!(
        refusals.iter().any(|i| i.detail.contains("reader 101199")),
        "the newest refusal is kept"
    );
    assert!(!refusals.iter().any(|i| i.detail.contains("reader 100000 ")));
    assert_eq!(w.verify_tap_log().unwrap(), 1, "the ride is still there");
}

/// What a P1 02 probe could change: the counter, the tap log, the history.
fn footprint(w: &Wallet) -> (u64, Vec<Vec<u8>>, mancard::HistoryPage) {
    (
        w.stats().next_counter,
        w.tap_log(0, 1_000).unwrap(),
        w.history(None, 1_000).unwrap(),
    )
}

fn recover(w: &Wallet, ch: &TapChallenge, cert: &ValidatorCertificate) -> ResponseApdu {
    send(w, &CommandApdu::recover_tap(ch, cert))
}

/// AUTHORIZE TAP P1 02 (recover) with a challenge this phone never signed: 6A88 and nothing
/// else, the same for every such challenge (a fresh one of a reader met or not, one bit off a
/// signed one, a forged one, a signed one outside the tap window): no history entry, no
/// counter, no rate-limit tick, the session unchanged.
#[test]
fn a_recover_probe_for_a_challenge_never_signed_is_6a88_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, _) = world(
        d.path(),
        WalletConfig {
            max_authorizations_per_minute: 2,
            ..test_config()
        },
    );
    let met = Reader::new(&issuer, READER_ID);
    let stranger = Reader::new(&issuer, 8);
    let signed = met.tap(&w).unwrap(); // the first of the two authorizations this minute
    let before = footprint(&w);
    let rogue = SigningKey::generate().unwrap().0;

    let session = select(&w);
    let mut one_bit_off = signed.challenge.clone();
    one_bit_off.body.nonce[15] ^= 1;
    let probes = [
        (
            met.challenge(session, T0, 1, 20_000, FareClass::Adult),
            &met.cert,
        ),
        (
            met.challenge(
                signed.challenge.body.session,
                T0,
                1,
                20_000,
                FareClass::Adult,
            ),
            &met.cert,
        ),
        (
            stranger.challenge(session, T0, 1, 20_000, FareClass::Adult),
            &stranger.cert,
        ),
        (one_bit_off, &met.cert),
        (rogue_challenge(&rogue, READER_ID, session), &met.cert),
    ];
    for (i, (ch, cert)) in probes.iter().enumerate() {
        let r = recover(&w, ch, cert);
        assert_eq!(r.encode(), vec![0x6A, 0x88], "probe {i}");
    }
    // the session is unchanged: its reader is still not authenticated...
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::ConditionsNotSatisfied
    );
    assert_eq!(footprint(&w), before, "a probe writes nothing");
    // ...and the same session still takes a normal tap: the second authorization this minute
    let ch = met.challenge(session, T0, 1, 20_000, FareClass::Adult);
    assert_eq!(authorize(&w, &ch, Some(&met.cert)).sw, StatusWord::Ok);
    assert_eq!(
        send(&w, &CommandApdu::read_certificate()).sw,
        StatusWord::Ok
    );
    w.deactivated();
    // the probes ticked nothing: the limit of 2 is reached only now
    assert_eq!(met.tap(&w).unwrap_err(), StatusWord::TooManyTaps);

    // a challenge it did sign, once outside the tap window of the phone's clock: 6A88 too
    set_clock(&w, T0 + 3_600);
    select(&w);
    let r = recover(&w, &signed.challenge, &met.cert);
    assert_eq!(r.encode(), vec![0x6A, 0x88]);
    w.deactivated();
    set_clock(&w, T0);
    // and within it: the very authorization, nothing new
    let before = footprint(&w);
    select(&w);
    let r = recover(&w, &signed.challenge, &met.cert);
    assert_eq!(
        (r.sw, r.data),
        (
            StatusWord::Ok,
            AuthorizeResponse::Authorized(signed.authorization.clone()).encode()
        )
    );
    w.deactivated();
    assert_eq!(footprint(&w), before);
}

/// P1 02 runs only the lock, the session and the command's form before the lookup: a locked
/// phone answers 6982 (even for a challenge it signed), out of order 6985, bad data 6A80, an
/// unknown P1 6A86; none of them writes a history entry (the reader's normal AUTHORIZE TAP
/// that follows records a locked tap once). A phone with no credential answers 6A88.
#[test]
fn a_recover_probe_to_a_locked_phone_is_6982_and_quiet() {
    let d = tempfile::tempdir().unwrap();
    let (w, issuer, _) = world(d.path(), test_config());
    let reader = Reader::new(&issuer, READER_ID);
    let signed = reader.tap(&w).unwrap();
    let before = footprint(&w);
    // out of order: no SELECT
    let r = recover(&w, &signed.challenge, &reader.cert);
    assert_eq!(r.sw, StatusWord::ConditionsNotSatisfied);
    w.set_locked(true).unwrap();
    let session = select(&w);
    for ch in [
        signed.challenge.clone(),
        reader.challenge(session, T0, 1, 20_000, FareClass::Adult),
    ] {
        let r = recover(&w, &ch, &reader.cert);
        assert_eq!((r.sw, r.data.len()), (StatusWord::WalletLocked, 0));
    }
    w.deactivated();
    w.set_locked(false).unwrap();
    select(&w);
    let mut bad = CommandApdu::recover_tap(&signed.challenge, &reader.cert);
    bad.data[0] ^= 0xFF;
    assert_eq!(send(&w, &bad).sw, StatusWord::IncorrectData);
    let mut short = CommandApdu::recover_tap(&signed.challenge, &reader.cert);
    short.data.truncate(TapChallenge::LEN);
    assert_eq!(send(&w, &short).sw, StatusWord::WrongLength);
    let mut p1 = CommandApdu::recover_tap(&signed.challenge, &reader.cert);
    p1.p1 = 0x03;
    assert_eq!(send(&w, &p1).sw, StatusWord::WrongP1P2);
    w.deactivated();
    assert_eq!(footprint(&w), before, "nothing written");
    assert!(refusal_words(&w).is_empty());

    // a phone without a credential has signed nothing: 6A88, quietly
    let d2 = tempfile::tempdir().unwrap();
    let bare = open(d2.path());
    install_bundle(&bare, &issuer.bundle(1, T0, Vec::new()));
    set_clock(&bare, T0);
    select(&bare);
    let r = recover(&bare, &signed.challenge, &reader.cert);
    assert_eq!(r.sw, StatusWord::NoCredential);
    bare.deactivated();
    assert!(bare.history(None, 10).unwrap().items.is_empty());
}
