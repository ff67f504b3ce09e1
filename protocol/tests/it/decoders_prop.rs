//! Property tests for every decoder: generated messages round-trip; arbitrary bytes and mutated
//! valid encodings (truncations, bit flips, appended bytes) never panic and give typed errors;
//! truncation and trailing bytes are always rejected; whatever decodes re-encodes to the same
//! bytes (one encoding per message). Exhaustive bit flips of signed messages: `bit_flips`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::inspect::{decode_any, decode_bytes};
use mancard_protocol::*;
use mancard_testkit::protocol::*;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use std::sync::OnceLock;

// ───────────────────────────── strategies ─────────────────────────────

fn key_pool() -> &'static [PublicKey] {
    static POOL: OnceLock<Vec<PublicKey>> = OnceLock::new();
    POOL.get_or_init(|| Keys::new().all().iter().map(|k| k.public).collect())
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    prop::sample::select(key_pool())
}

fn bytes16() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>()
}

fn bytes32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn signature() -> impl Strategy<Value = Signature> {
    vec(any::<u8>(), 64).prop_map(|v| Signature(v.try_into().unwrap()))
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![0..=1_000_000i64, 0..=i64::MAX]
}

fn window() -> impl Strategy<Value = (i64, i64)> {
    (any::<i64>(), any::<i64>())
        .prop_filter("non-empty window", |(a, b)| a != b)
        .prop_map(|(a, b)| (a.min(b), a.max(b)))
}

fn fare_class() -> impl Strategy<Value = FareClass> {
    prop::sample::select(FareClass::ALL.to_vec())
}

fn fare_kind() -> impl Strategy<Value = FareKind> {
    prop::sample::select(vec![FareKind::Full, FareKind::Transfer, FareKind::Capped])
}

fn certificate() -> impl Strategy<Value = CredentialCertificate> {
    (
        any::<u32>(),
        bytes16(),
        public_key(),
        window(),
        fare_class(),
        (any::<u32>(), any::<u32>()),
        amount(),
        signature(),
    )
        .prop_map(|(id, p, key, (from, until), class, (c1, c2), max, sig)| {
            CredentialCertificate {
                body: CertificateBody {
                    issuer_key_id: id,
                    pseudonym: Pseudonym(p),
                    tap_public_key: key,
                    valid_from: from,
                    valid_until: until,
                    fare_class: class,
                    allowance: OfflineAllowance {
                        counter_first: c1.min(c2),
                        counter_last: c1.max(c2),
                        max_amount: max,
                    },
                },
                signature: sig,
            }
        })
}

fn validator_certificate() -> impl Strategy<Value = ValidatorCertificate> {
    (
        (any::<u32>(), any::<u32>(), any::<u32>()),
        public_key(),
        (any::<u32>(), any::<u32>()).prop_filter("non-empty window", |(a, b)| a != b),
        btree_set(any::<u32>(), 0..=ValidatorCertBody::MAX_LINES),
        signature(),
    )
        .prop_map(
            |((issuer_key_id, validator_id, operator_id), public_key, (a, b), lines, signature)| {
                ValidatorCertificate {
                    body: ValidatorCertBody {
                        issuer_key_id,
                        validator_id,
                        operator_id,
                        public_key,
                        valid_from: a.min(b),
                        valid_until: a.max(b),
                        lines: lines.into_iter().collect(),
                    },
                    signature,
                }
            },
        )
}

fn tap_challenge() -> impl Strategy<Value = TapChallenge> {
    (
        any::<u32>(),
        bytes16(),
        bytes16(),
        any::<i64>(),
        any::<u32>(),
        amount(),
        fare_class(),
        signature(),
    )
        .prop_map(
            |(
                validator_id,
                nonce,
                session,
                validator_time,
                line_id,
                fare,
                fare_class,
                signature,
            )| {
                TapChallenge {
                    body: ChallengeBody {
                        validator_id,
                        nonce,
                        session,
                        validator_time,
                        line_id,
                        fare,
                        fare_class,
                    },
                    signature,
                }
            },
        )
}

fn tap_authorization() -> impl Strategy<Value = TapAuthorization> {
    (any::<u32>(), amount(), bytes32(), bytes32(), signature()).prop_map(
        |(counter, amount, prev, cert_id, signature)| TapAuthorization {
            counter,
            amount,
            prev,
            cert_id,
            signature,
        },
    )
}

fn boarding_pass() -> impl Strategy<Value = BoardingPass> {
    (
        certificate(),
        any::<u32>(),
        any::<i64>(),
        1..=u16::MAX,
        amount(),
        bytes32(),
        signature(),
    )
        .prop_map(
            |(certificate, counter, issued_at, lifetime_secs, max_amount, prev, signature)| {
                BoardingPass {
                    body: PassBody {
                        fare_class: certificate.body.fare_class,
                        certificate,
                        counter,
                        issued_at,
                        lifetime_secs,
                        max_amount,
                        prev,
                    },
                    signature,
                }
            },
        )
}

fn fares4() -> impl Strategy<Value = [i64; 4]> {
    [amount(), amount(), amount(), amount()]
}

fn tariff() -> impl Strategy<Value = Tariff> {
    (
        -14 * 3600..=14 * 3600i32,
        0..86_400u32,
        any::<u32>(),
        fares4(),
        fares4(),
        btree_map(any::<u32>(), fares4(), 0..8),
    )
        .prop_map(|(off, start, win, tf, caps, lines)| Tariff {
            utc_offset_secs: off,
            day_start_secs: start,
            transfer_window_secs: win,
            transfer_fares: tf,
            daily_caps: caps,
            lines: lines
                .into_iter()
                .map(|(line_id, fares)| LineFare { line_id, fares })
                .collect(),
        })
}

fn time_rules() -> impl Strategy<Value = TimeRules> {
    (1..=u16::MAX, any::<u16>(), any::<u16>()).prop_map(|(max, skew, window)| TimeRules {
        max_pass_lifetime_secs: max,
        clock_skew_secs: skew,
        tap_window_secs: window,
    })
}

fn validator_config() -> impl Strategy<Value = ValidatorConfig> {
    (
        (any::<u64>(), any::<i64>(), any::<u32>()),
        btree_map(any::<u32>(), (public_key(), window()), 0..=16),
        btree_set(bytes16(), 0..20),
        btree_set(any::<u32>(), 0..8),
        time_rules(),
        tariff(),
        signature(),
    )
        .prop_map(
            |((bv, at, signer), keys, deny, vdeny, time_rules, tariff, signature)| {
                ValidatorConfig {
                    body: ConfigBody {
                        bundle_version: bv,
                        issued_at: at,
                        signer_key_id: signer,
                        issuer_keys: keys
                            .into_iter()
                            .map(
                                |(key_id, (public_key, (valid_from, valid_until)))| IssuerKey {
                                    key_id,
                                    public_key,
                                    valid_from,
                                    valid_until,
                                },
                            )
                            .collect(),
                        deny_list: deny.into_iter().map(Pseudonym).collect(),
                        validator_deny_list: vdeny.into_iter().map(DeniedValidator).collect(),
                        time_rules,
                        tariff,
                    },
                    signature,
                }
            },
        )
}

fn tap_proof() -> impl Strategy<Value = TapProof> {
    prop_oneof![
        (tap_challenge(), tap_authorization()).prop_map(|(challenge, authorization)| {
            TapProof::Nfc {
                challenge,
                authorization,
            }
        }),
        boarding_pass().prop_map(|pass| TapProof::Qr { pass }),
    ]
}

fn tap_record() -> impl Strategy<Value = TapRecord> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        bytes16(),
        amount(),
        fare_kind(),
        tap_proof(),
    )
        .prop_map(|(v, l, t, p, fare, kind, proof)| TapRecord {
            validator_id: v,
            line_id: l,
            time: t,
            pseudonym: Pseudonym(p),
            counter: proof.counter(),
            fare,
            fare_kind: kind,
            proof,
        })
}

fn torn_record() -> impl Strategy<Value = TornRecord> {
    (any::<i64>(), tap_challenge()).prop_map(|(time, challenge)| TornRecord { time, challenge })
}

fn tap_batch() -> impl Strategy<Value = TapBatch> {
    (
        (any::<u32>(), bytes16(), any::<i64>()),
        vec(tap_record(), 0..4),
        vec(torn_record(), 0..3),
        signature(),
    )
        .prop_map(
            |((validator_id, batch_id, created_at), records, torn, signature)| TapBatch {
                body: BatchBody {
                    validator_id,
                    batch_id,
                    created_at,
                    records,
                    torn,
                },
                signature,
            },
        )
}

fn log_entry() -> impl Strategy<Value = WalletLogEntry> {
    (any::<u64>(), any::<i64>(), tap_proof()).prop_map(|(seq, time, proof)| WalletLogEntry {
        seq,
        time,
        amount: proof.amount(),
        proof,
    })
}

fn select_response() -> impl Strategy<Value = SelectResponse> {
    bytes16().prop_map(|session| SelectResponse { session })
}

fn authorize_response() -> impl Strategy<Value = AuthorizeResponse> {
    prop_oneof![
        tap_authorization().prop_map(AuthorizeResponse::Authorized),
        certificate().prop_map(AuthorizeResponse::Requote),
    ]
}

fn command_apdu() -> impl Strategy<Value = CommandApdu> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        vec(any::<u8>(), 0..=255),
        prop::option::of(1..=256u16),
    )
        .prop_map(|(cla, ins, p1, p2, data, le)| CommandApdu {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
}

fn response_apdu() -> impl Strategy<Value = ResponseApdu> {
    (vec(any::<u8>(), 0..=256), any::<u16>()).prop_map(|(data, sw)| ResponseApdu {
        data,
        sw: StatusWord::from_code(sw),
    })
}

fn junk() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..700)
}

// ───────────────────────────── checks ─────────────────────────────

/// Whatever a decoder accepts re-encodes to the very same bytes.
fn canonical<T, E>(bytes: &[u8], decode: fn(&[u8]) -> Result<T, E>, encode: fn(&T) -> Vec<u8>) {
    if let Ok(m) = decode(bytes) {
        assert_eq!(encode(&m), bytes, "accepted a non-canonical encoding");
    }
}

/// The mutation checks shared by every ManCard message decoder.
fn mutations<T: PartialEq + std::fmt::Debug>(
    valid: &[u8],
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    encode: fn(&T) -> Vec<u8>,
    cut: usize,
    extra: &[u8],
    flip: (usize, u8),
) -> Result<(), TestCaseError> {
    // Every strict prefix is rejected.
    let cut = cut % valid.len();
    prop_assert!(
        decode(&valid[..cut]).is_err(),
        "prefix of {cut} bytes accepted"
    );
    // Any appended bytes are rejected, as trailing bytes.
    let mut longer = valid.to_vec();
    longer.extend_from_slice(extra);
    prop_assert!(
        matches!(decode(&longer), Err(DecodeError::TrailingBytes { .. })),
        "appended bytes not rejected as trailing: {:?}",
        decode(&longer).err()
    );
    // A bit flip decodes to an error or to another canonical message.
    let mut flipped = valid.to_vec();
    let i = flip.0 % flipped.len();
    flipped[i] ^= 1 << (flip.1 % 8);
    canonical(&flipped, decode, encode);
    if let Ok(m) = decode(&flipped) {
        prop_assert_ne!(Some(m), decode(valid).ok());
    }
    Ok(())
}

macro_rules! message_props {
    ($name:ident, $strategy:expr, $t:ty) => {
        proptest! {
            #[test]
            fn $name(m in $strategy, cut in any::<usize>(), extra in vec(any::<u8>(), 1..8),
                     flip in (any::<usize>(), any::<u8>()), junk in junk()) {
                let b = m.encode();
                prop_assert_eq!(<$t>::decode(&b), Ok(m.clone()));
                mutations(&b, <$t>::decode, <$t>::encode, cut, &extra, flip)?;
                // Arbitrary bytes, raw and behind a valid type tag and version.
                canonical(&junk, <$t>::decode, <$t>::encode);
                let mut tagged = b[..2].to_vec();
                tagged.extend_from_slice(&junk);
                canonical(&tagged, <$t>::decode, <$t>::encode);
            }
        }
    };
}

message_props!(certificate_props, certificate(), CredentialCertificate);
message_props!(
    validator_certificate_props,
    validator_certificate(),
    ValidatorCertificate
);
message_props!(challenge_props, tap_challenge(), TapChallenge);
message_props!(authorization_props, tap_authorization(), TapAuthorization);
message_props!(pass_props, boarding_pass(), BoardingPass);
message_props!(tariff_props, tariff(), Tariff);
message_props!(config_props, validator_config(), ValidatorConfig);
message_props!(record_props, tap_record(), TapRecord);
message_props!(torn_props, torn_record(), TornRecord);
message_props!(batch_props, tap_batch(), TapBatch);
message_props!(log_entry_props, log_entry(), WalletLogEntry);
message_props!(select_props, select_response(), SelectResponse);
message_props!(
    authorize_response_props,
    authorize_response(),
    AuthorizeResponse
);

fn command_encode(c: &CommandApdu) -> Vec<u8> {
    c.encode().unwrap()
}

proptest! {
    #[test]
    fn fixed_sizes(c in certificate(), v in validator_certificate(), ch in tap_challenge(),
                   a in tap_authorization(), p in boarding_pass(), s in select_response()) {
        prop_assert_eq!(c.encode().len(), CredentialCertificate::LEN);
        prop_assert_eq!(
            v.encode().len(),
            ValidatorCertificate::MIN_LEN + 4 * v.body.lines.len()
        );
        prop_assert!(v.encode().len() <= ValidatorCertificate::MAX_LEN);
        prop_assert_eq!(ch.encode().len(), TapChallenge::LEN);
        prop_assert_eq!(TornRecord { time: 0, challenge: ch.clone() }.encode().len(), TornRecord::LEN);
        prop_assert_eq!(a.encode().len(), TapAuthorization::LEN);
        prop_assert_eq!(p.encode().len(), BoardingPass::LEN);
        prop_assert_eq!(s.encode().len(), SelectResponse::LEN);
    }

    /// AUTHORIZE TAP's data: the challenge, then (P1 = 01) the validator certificate. It
    /// round-trips, always fits a short APDU, and any cut or appended byte is refused.
    #[test]
    fn authorize_command_props(ch in tap_challenge(), v in prop::option::of(validator_certificate()),
                               cut in any::<usize>(), extra in vec(any::<u8>(), 1..8),
                               junk in junk(), p1 in any::<u8>()) {
        let apdu = CommandApdu::authorize_tap(&ch, v.as_ref());
        prop_assert!(apdu.data.len() <= 255);
        prop_assert!(apdu.encode().is_ok());
        let parsed = AuthorizeCommand::parse(apdu.p1, &apdu.data).unwrap();
        prop_assert_eq!(&parsed.challenge, &ch);
        prop_assert_eq!(&parsed.validator_cert, &v);
        let cut = cut % apdu.data.len();
        prop_assert!(AuthorizeCommand::parse(apdu.p1, &apdu.data[..cut]).is_err());
        let mut longer = apdu.data.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(AuthorizeCommand::parse(apdu.p1, &longer).is_err());
        // Arbitrary data under any P1 never panics; what parses re-encodes to itself.
        if let Ok(c) = AuthorizeCommand::parse(p1, &junk) {
            let again = CommandApdu::authorize_tap(&c.challenge, c.validator_cert.as_ref());
            prop_assert_eq!(again.data, junk);
        }
    }

    #[test]
    fn pass_text_roundtrip(p in boarding_pass(), cut in any::<usize>(), junk in "\\PC{0,40}") {
        let t = p.to_text();
        prop_assert!(t.starts_with("MC2:"));
        prop_assert_eq!(BoardingPass::from_text(&t), Ok(p.clone()));
        let crlf = format!("{t}\r\n");
        prop_assert_eq!(BoardingPass::from_text(&crlf), Ok(p));
        let cut = PASS_TEXT_PREFIX.len() + cut % (t.len() - PASS_TEXT_PREFIX.len());
        prop_assert!(BoardingPass::from_text(&t[..cut]).is_err());
        // Anything appended is rejected (CR, LF and tab are trimmed by design).
        let tail = junk.trim_end_matches(['\r', '\n', '\t']);
        if !tail.is_empty() {
            let appended = format!("{t}{tail}");
            prop_assert!(BoardingPass::from_text(&appended).is_err());
        }
        // The same payload behind the v1 prefix is an unknown version.
        let v1 = format!("MC1:{}", &t[PASS_TEXT_PREFIX.len()..]);
        prop_assert!(
            matches!(
                BoardingPass::from_text(&v1),
                Err(DecodeError::UnknownVersion { found: 1, .. })
            ),
            "v1 prefix not refused as v1"
        );
    }

    #[test]
    fn text_decoders_never_panic(s in "\\PC{0,500}", alnum in "[0-9A-Z $%*+./:-]{0,500}") {
        let _ = BoardingPass::from_text(&s);
        let _ = BoardingPass::from_text(&format!("MC2:{alnum}"));
        let _ = base45::decode(&s);
        if let Ok(b) = base45::decode(&alnum) {
            prop_assert_eq!(base45::encode(&b), alnum);
        }
        if let Ok(m) = decode_any(&s) {
            let _ = m.describe();
        }
    }

    #[test]
    fn base45_roundtrip(b in vec(any::<u8>(), 0..400)) {
        let t = base45::encode(&b);
        prop_assert!(t.bytes().all(|c| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&c)));
        prop_assert_eq!(t.len(), b.len() / 2 * 3 + (b.len() % 2) * 2);
        prop_assert_eq!(base45::decode(&t), Ok(b));
    }

    #[test]
    fn inspect_never_panics(b in junk(), tag in prop::sample::select(b"CGHAPVTNRBLS\x00\x80".to_vec()),
                            version in 1..=2u8) {
        for input in [b.clone(), [&[tag, version][..], &b].concat()] {
            if let Ok(m) = decode_bytes(&input) {
                let _ = m.describe();
                let _ = m.kind();
            }
            let _ = decode_any(&hex::encode(&input));
        }
    }

    #[test]
    fn command_apdu_props(c in command_apdu(), junk in vec(any::<u8>(), 0..300)) {
        let b = c.encode().unwrap();
        prop_assert!(b.len() <= 4 + 1 + 255 + 1);
        prop_assert_eq!(CommandApdu::parse(&b), Ok(c));
        canonical(&junk, CommandApdu::parse, command_encode);
        // Fewer than 4 bytes is never a command; extended-length framing is always refused.
        prop_assert!(CommandApdu::parse(&junk[..junk.len().min(3)]).is_err());
        if junk.len() >= 7 {
            let mut ext = junk.clone();
            ext[4] = 0;
            prop_assert!(CommandApdu::parse(&ext).is_err());
        }
    }

    #[test]
    fn command_data_too_long(n in 256usize..600) {
        let c = CommandApdu { cla: 0x80, ins: 0x20, p1: 0, p2: 0, data: vec![0; n], le: None };
        prop_assert_eq!(c.encode(), Err(mancard_protocol::apdu::ApduError::DataTooLong));
    }

    #[test]
    fn response_apdu_props(r in response_apdu(), junk in vec(any::<u8>(), 0..300)) {
        let b = r.encode();
        prop_assert_eq!(ResponseApdu::parse(&b), Ok(r));
        canonical(&junk, ResponseApdu::parse, ResponseApdu::encode);
        prop_assert_eq!(ResponseApdu::parse(&junk).is_err(), junk.len() < 2);
    }

    #[test]
    fn status_words_roundtrip(code in any::<u16>()) {
        prop_assert_eq!(StatusWord::from_code(code).code(), code);
    }

    /// Signatures made by the library are low-S and verify, only over their own domain tag and
    /// bytes; their high-S twin passes the bare curve check and is refused as non-canonical.
    #[test]
    fn tap_signature_binds_everything(ch in tap_challenge(), counter in any::<u32>(), amount in amount(),
                                      cert_id in bytes32(), prev in bytes32(),
                                      flip in (any::<usize>(), any::<u8>())) {
        let key = tap_key();
        let a = TapAuthorization::sign(key, &ch.body, &cert_id, counter, amount, &prev).unwrap();
        prop_assert_eq!((a.cert_id, a.prev), (cert_id, prev));
        let pk = key.public_key();
        prop_assert!(a.signature.is_low_s());
        prop_assert!(a.verify(&pk, &ch.body).is_ok());
        let bytes = a.signed_bytes(&ch.body);
        prop_assert!(pk.verify(crypto::tags::PASS, &bytes, &a.signature).is_err());
        let mut body = bytes.clone();
        let i = flip.0 % body.len();
        body[i] ^= 1 << (flip.1 % 8);
        prop_assert!(pk.verify(crypto::tags::TAP, &body, &a.signature).is_err());
        let twin = Signature(a.signature.malleated());
        prop_assert!(pk.verify_any_s(crypto::tags::TAP, &bytes, &twin).is_ok());
        prop_assert_eq!(
            pk.verify(crypto::tags::TAP, &bytes, &twin),
            Err(SignatureError::NonCanonical)
        );
    }
}

fn tap_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::new("tap").ring())
}
