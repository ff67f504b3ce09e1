//! The v2 messages one by one: the validator certificate's decoder limits, AUTHORIZE TAP's
//! command data and answer, the reader checks a phone makes before it signs, the pass bounds
//! the bundle sets, the SELECT answer, and v1 refused by every decoder.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::apdu::{AuthorizeP1, P1_CACHED_CERTIFICATE, P1_RECOVER, P1_WITH_CERTIFICATE};
use mancard_protocol::inspect::decode_bytes;
use mancard_protocol::*;
use mancard_testkit::protocol::*;

fn lined(k: &Keys, lines: Vec<u32>) -> ValidatorCertificate {
    let mut b = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    b.lines = lines;
    sign_validator_cert(b, &k.issuer1)
}

#[test]
fn validator_certificate_decoder_limits() {
    let k = Keys::new();
    for n in 0..=ValidatorCertBody::MAX_LINES {
        let lines: Vec<u32> = (1..=n as u32).map(|l| l * 10).collect();
        let c = lined(&k, lines.clone());
        let b = c.encode();
        assert_eq!(b.len(), ValidatorCertificate::MIN_LEN + 4 * n);
        assert_eq!(ValidatorCertificate::decode(&b), Ok(c.clone()));
        assert_eq!(c.body.lines, lines);
        assert_eq!(&b[..2], b"G\x02");
    }
    let std = std_validator_cert(&k);
    let b = std.encode();
    // The key travels compressed (33 bytes): 02/03 only, and on the curve.
    assert_eq!(&b[14..47], &k.validator.public.to_compressed());
    assert_eq!(std.body.public_key, k.validator.public);
    for prefix in [0x00, 0x04, 0x05] {
        let mut bad = b.clone();
        bad[14] = prefix;
        assert!(matches!(
            ValidatorCertificate::decode(&bad),
            Err(DecodeError::InvalidPoint { .. })
        ));
    }
    // Four lines: refused by the decoder and never signed.
    let mut four = b[..55].to_vec();
    four.push(4);
    four.extend_from_slice(&[0; 16]);
    four.extend_from_slice(&b[56..]);
    assert!(matches!(
        ValidatorCertificate::decode(&four),
        Err(DecodeError::InvalidValue {
            field: "validator certificate lines",
            ..
        })
    ));
    let mut body = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    body.lines = vec![4, 3, 2, 1];
    assert!(matches!(
        body.clone().sign(&k.issuer1.ring()),
        Err(KeyError::MessageTooLarge { len: 4, max: 3, .. })
    ));
    // The signer puts lines in order and drops duplicates; the decoder refuses anything else.
    body.lines = vec![10, 2, 10];
    let signed = body.clone().sign(&k.issuer1.ring()).unwrap();
    assert_eq!(signed.body.lines, vec![2, 10]);
    let mut unsorted = signed.clone();
    unsorted.body.lines = vec![10, 2];
    assert!(matches!(
        ValidatorCertificate::decode(&unsorted.encode()),
        Err(DecodeError::InvalidValue { .. })
    ));
    let mut dup = signed.clone();
    dup.body.lines = vec![2, 2];
    assert!(ValidatorCertificate::decode(&dup.encode()).is_err());
    // A window of at least a second, in signer and decoder.
    body.lines.clear();
    body.valid_until = body.valid_from;
    assert_eq!(
        body.clone().sign(&k.issuer1.ring()).err(),
        Some(KeyError::InvalidBody(
            "valid_from must be before valid_until"
        ))
    );
    let mut empty = std.clone();
    empty.body.valid_until = empty.body.valid_from;
    assert!(ValidatorCertificate::decode(&empty.encode()).is_err());
    // Lines and validity as the phone reads them.
    let l = lined(&k, vec![2, 10]);
    assert!(l.body.allows_line(2) && l.body.allows_line(10));
    assert!(!l.body.allows_line(1));
    assert!(std.body.allows_line(1) && std.body.allows_line(u32::MAX));
    let (from, until) = (
        i64::from(std.body.valid_from),
        i64::from(std.body.valid_until),
    );
    assert!(std.body.valid_at(from) && std.body.valid_at(until));
    assert!(!std.body.valid_at(from - 1) && !std.body.valid_at(until + 1));
    // Truncated anywhere, or with a byte more: refused.
    for cut in 0..b.len() {
        assert!(ValidatorCertificate::decode(&b[..cut]).is_err());
    }
    let mut longer = b.clone();
    longer.push(0);
    assert_eq!(
        ValidatorCertificate::decode(&longer),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

/// What a phone checks of a reader before it signs, each refused for its own reason.
#[test]
fn a_bad_reader_is_refused_for_its_own_reason() {
    let k = Keys::new();
    let cfg = std_config(&k);
    let keys = &cfg.body.issuer_keys;
    let denied = |id: u32| cfg.is_validator_denied(id);
    let vc = std_validator_cert(&k);
    let ch = std_challenge(&k);
    verify_validator_certificate(&vc, keys, denied, T0).unwrap();
    verify_challenge(&ch, &vc).unwrap();

    let unknown = sign_validator_cert(
        validator_cert_body(3, VALIDATOR_ID, &k.validator),
        &k.issuer3,
    );
    assert_eq!(
        verify_validator_certificate(&unknown, keys, denied, T0),
        Err(VerifyError::UnknownIssuerKey(3))
    );
    let rogue = sign_validator_cert(validator_cert_body(1, VALIDATOR_ID, &k.validator), &k.rogue);
    assert_eq!(
        verify_validator_certificate(&rogue, keys, denied, T0),
        Err(VerifyError::BadSignature)
    );
    let until = i64::from(vc.body.valid_until);
    assert!(matches!(
        verify_validator_certificate(&vc, keys, denied, until + 1),
        Err(VerifyError::ValidatorCertNotValid { .. })
    ));
    assert!(cfg.is_validator_denied(DENIED_VALIDATOR_ID));
    let blocked = sign_validator_cert(
        validator_cert_body(1, DENIED_VALIDATOR_ID, &k.validator),
        &k.issuer1,
    );
    assert_eq!(
        verify_validator_certificate(&blocked, keys, denied, T0),
        Err(VerifyError::ValidatorDenied(DENIED_VALIDATOR_ID))
    );
    // A challenge signed by another key, for another validator, or for a line not allowed.
    assert_eq!(
        verify_challenge(&sign_challenge(ch.body.clone(), &k.validator_other), &vc),
        Err(VerifyError::BadSignature)
    );
    let mut other = ch.body.clone();
    other.validator_id = OTHER_VALIDATOR_ID;
    assert_eq!(
        verify_challenge(&sign_challenge(other, &k.validator_other), &vc),
        Err(VerifyError::WrongValidator {
            challenge: OTHER_VALIDATOR_ID,
            certificate: VALIDATOR_ID
        })
    );
    assert_eq!(
        verify_challenge(&ch, &lined(&k, vec![2, 10])),
        Err(VerifyError::LineNotAllowed {
            validator_id: VALIDATOR_ID,
            line_id: 1
        })
    );
    // The phone's authorization binds the whole challenge: another fare, time or session is
    // another digest.
    let d = ch.body.digest();
    let edits: [fn(&mut ChallengeBody); 4] = [
        |b: &mut ChallengeBody| b.fare += 1,
        |b: &mut ChallengeBody| b.validator_time += 1,
        |b: &mut ChallengeBody| b.session[0] ^= 1,
        |b: &mut ChallengeBody| b.fare_class = FareClass::Student,
    ];
    for edit in edits {
        let mut e = ch.body.clone();
        edit(&mut e);
        assert_ne!(e.digest(), d);
    }
}

#[test]
fn authorize_command_parsing() {
    let k = Keys::new();
    let ch = std_challenge(&k);
    let vc = std_validator_cert(&k);
    let inline = CommandApdu::authorize_tap(&ch, Some(&vc));
    assert_eq!(
        (inline.cla, inline.ins, inline.p1, inline.p2),
        (0x80, 0x20, 0x01, 0)
    );
    assert_eq!(
        inline.data.len(),
        TapChallenge::LEN + ValidatorCertificate::MIN_LEN
    );
    let parsed = AuthorizeCommand::parse(inline.p1, &inline.data).unwrap();
    assert_eq!(
        (parsed.challenge, parsed.validator_cert),
        (ch.clone(), Some(vc.clone()))
    );
    let cached = CommandApdu::authorize_tap(&ch, None);
    assert_eq!(cached.p1, P1_CACHED_CERTIFICATE);
    assert_eq!(cached.data, ch.encode());
    assert_eq!(
        AuthorizeCommand::parse(cached.p1, &cached.data)
            .unwrap()
            .validator_cert,
        None
    );
    let widest = CommandApdu::authorize_tap(&ch, Some(&lined(&k, vec![1, 2, 10])));
    assert_eq!(
        widest.data.len(),
        255,
        "the largest command fills a short APDU"
    );
    assert!(widest.encode().is_ok());

    // Trailing bytes: after the certificate, or a certificate under P1 00.
    let mut longer = inline.data.clone();
    longer.push(0);
    assert_eq!(
        AuthorizeCommand::parse(P1_WITH_CERTIFICATE, &longer),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    assert_eq!(
        AuthorizeCommand::parse(P1_CACHED_CERTIFICATE, &inline.data),
        Err(DecodeError::TrailingBytes {
            count: ValidatorCertificate::MIN_LEN
        })
    );
    // Truncation: of the challenge, of the certificate, or no certificate under P1 01.
    for cut in 0..inline.data.len() {
        assert!(
            AuthorizeCommand::parse(P1_WITH_CERTIFICATE, &inline.data[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
    for cut in 2..TapChallenge::LEN {
        assert!(matches!(
            AuthorizeCommand::parse(P1_CACHED_CERTIFICATE, &inline.data[..cut]),
            Err(DecodeError::Truncated { .. })
        ));
    }
    assert!(matches!(
        AuthorizeCommand::parse(P1_WITH_CERTIFICATE, &ch.encode()),
        Err(DecodeError::Truncated { .. })
    ));
    // P1 02 (recover): the data of P1 01, the challenge and the validator certificate.
    let recover = CommandApdu::recover_tap(&ch, &vc);
    assert_eq!(
        (recover.cla, recover.ins, recover.p1, recover.p2, recover.le),
        (0x80, 0x20, P1_RECOVER, 0, Some(256))
    );
    assert_eq!(recover.data, inline.data);
    assert_eq!(
        AuthorizeCommand::parse(P1_RECOVER, &recover.data).unwrap(),
        AuthorizeCommand::parse(P1_WITH_CERTIFICATE, &inline.data).unwrap()
    );
    assert!(matches!(
        AuthorizeCommand::parse(P1_RECOVER, &ch.encode()),
        Err(DecodeError::Truncated { .. })
    ));
    assert_eq!(
        AuthorizeCommand::parse(P1_RECOVER, &longer),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    // Any other P1 is refused, whatever the data.
    for p1 in [0x03, 0x04, 0x80, 0xFF] {
        assert_eq!(AuthorizeP1::from_byte(p1), None);
        for data in [&ch.encode()[..], &inline.data[..]] {
            assert!(matches!(
                AuthorizeCommand::parse(p1, data),
                Err(DecodeError::InvalidValue { .. })
            ));
        }
    }
    for p in [
        AuthorizeP1::Cached,
        AuthorizeP1::WithCertificate,
        AuthorizeP1::Recover,
    ] {
        assert_eq!(AuthorizeP1::from_byte(p.byte()), Some(p));
    }
    // A v1 reader's AUTHORIZE (a 42-byte unsigned challenge) is an unknown version.
    let mut v1 = ch.encode()[..42].to_vec();
    v1[1] = 1;
    assert!(matches!(
        AuthorizeCommand::parse(P1_CACHED_CERTIFICATE, &v1),
        Err(DecodeError::UnknownVersion { found: 1, .. })
    ));
    // The certificate slot takes a validator certificate only.
    let mut wrong = ch.encode();
    wrong.extend_from_slice(&std_cert(&k).encode());
    assert!(matches!(
        AuthorizeCommand::parse(P1_WITH_CERTIFICATE, &wrong),
        Err(DecodeError::WrongType { .. })
    ));
}

/// `AuthorizeCommand::parse_with_known` is `parse` whatever the phone holds: the certificate
/// the bytes encode (taken as is), another one of the same validator (one line more, or
/// re-signed), or none; for every valid, cut, lengthened or mistyped command and every P1.
#[test]
fn parsing_with_a_known_certificate_answers_as_parsing() {
    let k = Keys::new();
    let ch = std_challenge(&k);
    let vc = std_validator_cert(&k);
    let inline = CommandApdu::authorize_tap(&ch, Some(&vc)).data;
    let mut inputs = vec![inline.clone(), ch.encode()];
    inputs.extend((0..inline.len()).map(|cut| inline[..cut].to_vec()));
    let mut longer = inline.clone();
    longer.push(0);
    inputs.push(longer);
    let mut wrong = ch.encode();
    wrong.extend_from_slice(&std_cert(&k).encode());
    inputs.push(wrong);
    let mut resigned = vc.clone();
    resigned.signature.0[10] ^= 1;
    let holdings = [
        None,
        Some(vc.clone()),
        Some(lined(&k, vec![1, 2])),
        Some(resigned),
    ];
    for p1 in [0x00, 0x01, 0x02, 0x03, 0xFF] {
        for data in &inputs {
            let plain = AuthorizeCommand::parse(p1, data);
            for held in &holdings {
                let asked = std::cell::Cell::new(None);
                let got = AuthorizeCommand::parse_with_known(p1, data, |id| {
                    asked.set(Some(id));
                    held.as_ref()
                });
                assert_eq!(got, plain, "P1 {p1:02X}, {} bytes", data.len());
                if plain.is_ok() && p1 != 0x00 {
                    assert_eq!(asked.get(), Some(ch.body.validator_id));
                }
            }
        }
    }
}

#[test]
fn authorize_response_parsing() {
    let k = Keys::new();
    let auth = std_authorization(&k);
    let cert = std_cert(&k);
    for r in [
        AuthorizeResponse::Authorized(auth.clone()),
        AuthorizeResponse::Requote(cert.clone()),
    ] {
        let b = r.encode();
        assert_eq!(AuthorizeResponse::decode(&b), Ok(r.clone()));
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(
            AuthorizeResponse::decode(&longer),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
        for cut in 0..b.len() {
            assert!(matches!(
                AuthorizeResponse::decode(&b[..cut]),
                Err(DecodeError::Truncated { .. })
            ));
        }
    }
    assert_eq!(auth.encode().len(), TapAuthorization::LEN);
    let mut v1 = auth.encode()[..110].to_vec();
    v1[1] = 1;
    assert!(matches!(
        AuthorizeResponse::decode(&v1),
        Err(DecodeError::UnknownVersion { found: 1, .. })
    ));
    // Neither an authorization nor a credential certificate: refused by type.
    assert!(matches!(
        AuthorizeResponse::decode(&std_validator_cert(&k).encode()),
        Err(DecodeError::WrongType { .. })
    ));
}

/// The bundle, not the signer, bounds a pass: a lifetime over its maximum is refused by every
/// pass check, at any time, whatever its signature.
#[test]
fn a_pass_lifetime_over_the_bundle_max_is_refused() {
    let k = Keys::new();
    let cfg = std_config(&k);
    let rules = cfg.body.time_rules;
    assert_eq!(rules, TimeRules::default());
    assert_eq!(rules.max_pass_lifetime_secs, 60);
    let ok = std_pass(&k);
    verify_boarding_pass(&cfg, &ok, T0 + 10).unwrap();
    for lifetime in [61u16, 3600, 64_800, u16::MAX] {
        let long = make_pass(&k.tap, std_cert(&k), 1001, T0, lifetime, 30_000);
        for now in [T0, T0 + 10, T0 + 59] {
            assert_eq!(
                verify_boarding_pass(&cfg, &long, now),
                Err(VerifyError::PassTooLong { lifetime, max: 60 })
            );
        }
        let vc = VerifiedCertificate::new(std_cert(&k), &cfg.body.issuer_keys).unwrap();
        assert!(matches!(
            vc.verify_pass(&long, T0 + 10, &rules),
            Err(VerifyError::PassTooLong { .. })
        ));
        assert!(matches!(
            check_pass_time(&long, T0 + 10, &rules),
            Err(VerifyError::PassTooLong { .. })
        ));
        // `mancard inspect` checks against the default bundle too.
        let shown = decode_bytes(&long.encode()).unwrap();
        let key = &cfg.body.issuer_keys[0];
        assert!(matches!(
            shown.verify_issuer(key),
            Some(Err(VerifyError::PassTooLong { .. }))
        ));
    }
    // A bundle that allows longer passes accepts them; its skew widens the window.
    let mut body = std_config_body(&k);
    body.time_rules = TimeRules {
        max_pass_lifetime_secs: 120,
        clock_skew_secs: 5,
        tap_window_secs: 300,
    };
    let long_cfg = make_config(body, &k.issuer1);
    let two_minutes = make_pass(&k.tap, std_cert(&k), 1001, T0, 120, 30_000);
    verify_boarding_pass(&long_cfg, &two_minutes, T0 + 125).unwrap();
    assert!(matches!(
        verify_boarding_pass(&long_cfg, &two_minutes, T0 + 126),
        Err(VerifyError::PassOutsideWindow { skew: 5, .. })
    ));
    assert!(matches!(
        verify_boarding_pass(&cfg, &two_minutes, T0 + 10),
        Err(VerifyError::PassTooLong {
            lifetime: 120,
            max: 60
        })
    ));
    // The pass carries its class (the certificate's) and the most it may be charged.
    assert_eq!(ok.body.fare_class, ok.body.certificate.body.fare_class);
    let mut other_class = ok.encode();
    other_class[200] = FareClass::Student as u8;
    assert!(matches!(
        BoardingPass::decode(&other_class),
        Err(DecodeError::InvalidValue {
            field: "pass fare class",
            ..
        })
    ));
}

/// SELECT answers the protocol version and a random session value: 18 bytes, nothing that
/// names the phone, its certificate or its rider.
#[test]
fn the_select_answer_is_version_and_session_only() {
    let s = SelectResponse {
        session: session("tap-1"),
    };
    let b = s.encode();
    assert_eq!(b.len(), SelectResponse::LEN);
    assert_eq!(&b[..2], b"S\x02");
    assert_eq!(&b[2..], &session("tap-1"));
    let k = Keys::new();
    let cert = std_cert(&k);
    let window = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    assert!(!window(&cert.body.pseudonym.0));
    assert!(!window(&cert.id()[..8]));
}

/// Every v2 decoder refuses a v1 version byte with a typed, clear error.
#[test]
fn every_decoder_refuses_v1() {
    let k = Keys::new();
    let to_v1 = |mut b: Vec<u8>| {
        assert_eq!(b[1], 2, "a v2 message");
        b[1] = 1;
        b
    };
    let is_v1 = |r: Result<(), DecodeError>, what: &str| match r {
        Err(
            e @ DecodeError::UnknownVersion {
                found: 1,
                supported: 2,
                ..
            },
        ) => {
            assert!(e.to_string().contains("version 1"), "{what}: {e}");
        }
        other => panic!("{what}: {other:?}"),
    };
    let cert = std_cert(&k);
    is_v1(
        CredentialCertificate::decode(&to_v1(cert.encode())).map(|_| ()),
        "certificate",
    );
    is_v1(
        ValidatorCertificate::decode(&to_v1(std_validator_cert(&k).encode())).map(|_| ()),
        "validator certificate",
    );
    is_v1(
        TapChallenge::decode(&to_v1(std_challenge(&k).encode())).map(|_| ()),
        "challenge",
    );
    is_v1(
        TapAuthorization::decode(&to_v1(std_authorization(&k).encode())).map(|_| ()),
        "authorization",
    );
    is_v1(
        BoardingPass::decode(&to_v1(std_pass(&k).encode())).map(|_| ()),
        "pass",
    );
    is_v1(
        ValidatorConfig::decode(&to_v1(std_config(&k).encode())).map(|_| ()),
        "config",
    );
    let rec = &chained_records(&k, 1)[0];
    is_v1(
        TapRecord::decode(&to_v1(rec.encode())).map(|_| ()),
        "record",
    );
    is_v1(
        TapBatch::decode(&to_v1(batch_of(&k, 1).encode())).map(|_| ()),
        "batch",
    );
    is_v1(
        WalletLogEntry::decode(&to_v1(log_chain(&k, 1)[0].encode())).map(|_| ()),
        "log entry",
    );
    is_v1(
        SelectResponse::decode(&to_v1(SelectResponse { session: [0; 16] }.encode())).map(|_| ()),
        "select response",
    );
    let text = std_pass(&k).to_text().replacen("MC2:", "MC1:", 1);
    is_v1(BoardingPass::from_text(&text).map(|_| ()), "pass text");
    assert_eq!(PROTOCOL_VERSION, 2);
}
