//! Torn records (issue 13): a challenge the gate did not open for, in a validator's batch. Its
//! strict encoding, the challenge id it is named by, and the batch's second list.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::crypto::tags;
use mancard_protocol::inspect::decode_bytes;
use mancard_protocol::*;
use mancard_testkit::protocol::*;

fn torn(k: &Keys, name: &str, time: i64) -> TornRecord {
    TornRecord {
        time: time + 2,
        challenge: challenge(k, name, time, 1, 20_000),
    }
}

fn batch(k: &Keys, torn: Vec<TornRecord>) -> TapBatch {
    let mut b = batch_of(k, 2);
    b.body.torn = torn;
    make_batch(b.body, &k.validator)
}

#[test]
fn a_torn_record_round_trips_and_is_strict() {
    let k = Keys::new();
    let t = torn(&k, "torn-1", T0);
    let b = t.encode();
    assert_eq!(b.len(), TornRecord::LEN);
    assert_eq!(&b[..2], b"N\x02");
    assert_eq!(TornRecord::decode(&b), Ok(t.clone()));
    // truncation at every length, a trailing byte, another version, another type
    for n in 0..b.len() {
        assert!(
            matches!(
                TornRecord::decode(&b[..n]),
                Err(DecodeError::Truncated { .. })
            ),
            "cut at {n}"
        );
    }
    let mut long = b.clone();
    long.push(0);
    assert_eq!(
        TornRecord::decode(&long),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    for v in [1u8, 3] {
        let mut other = b.clone();
        other[1] = v;
        assert_eq!(
            TornRecord::decode(&other),
            Err(DecodeError::UnknownVersion {
                message: "torn record",
                found: v,
                supported: 2
            })
        );
    }
    let mut tariff_tag = b.clone();
    tariff_tag[0] = b'T';
    assert!(matches!(
        TornRecord::decode(&tariff_tag),
        Err(DecodeError::WrongType {
            expected: "torn record",
            ..
        })
    ));
    // the challenge inside is a whole v2 challenge
    let mut inner_v1 = b.clone();
    inner_v1[11] = 1;
    assert!(matches!(
        TornRecord::decode(&inner_v1),
        Err(DecodeError::UnknownVersion {
            message: "tap challenge",
            ..
        })
    ));
    // inspect names it and its challenge id
    let d = decode_bytes(&b).unwrap();
    assert_eq!(d.kind(), "torn record");
    let text = d.describe().join("\n");
    assert!(text.contains(&hex::encode(t.challenge_id())), "{text}");
    assert!(text.contains("gate did not open"), "{text}");
}

#[test]
fn a_challenge_id_hashes_the_signed_body_only() {
    let k = Keys::new();
    let ch = challenge(&k, "torn-1", T0, 1, 20_000);
    assert_eq!(
        ch.id(),
        sha256(&[tags::CHALLENGE_ID, &ch.body.encode()]),
        "SHA-256(CHALLENGE_ID || body)"
    );
    assert_ne!(ch.id(), ch.body.digest(), "not the digest the phone signs");
    // a re-encoded signature is the same challenge; another nonce is another one
    let mut high = ch.clone();
    high.signature = flip_s(&high.signature);
    assert_eq!(high.id(), ch.id());
    assert_ne!(challenge(&k, "torn-2", T0, 1, 20_000).id(), ch.id());
    let t = TornRecord {
        time: T0,
        challenge: ch.clone(),
    };
    assert_eq!(t.challenge_id(), ch.id());
}

#[test]
fn a_batch_carries_torn_records_after_its_tap_records() {
    let k = Keys::new();
    let torn_list = vec![torn(&k, "torn-1", T0), torn(&k, "torn-2", T0 + 60)];
    let b = batch(&k, torn_list.clone());
    let bytes = b.encode();
    let back = TapBatch::decode(&bytes).unwrap();
    assert_eq!(back.body.torn, torn_list);
    assert_eq!(back.body.records.len(), 2);
    assert!(back.verify(&k.validator.public).is_ok());
    // the validator signed the torn list: dropping a torn record breaks the signature
    let mut dropped = back.clone();
    dropped.body.torn.pop();
    assert!(dropped.verify(&k.validator.public).is_err());
    // the torn list is part of the body: a batch without it is truncated, a byte more trails
    let torn_at = bytes.len() - 64 - 2 - 2 * (2 + TornRecord::LEN);
    let mut no_list = bytes[..torn_at].to_vec();
    no_list.extend_from_slice(&bytes[bytes.len() - 64..]);
    assert!(TapBatch::decode(&no_list).is_err());
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        TapBatch::decode(&long),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
    // at most 1000 torn records: the signer refuses more, the decoder refuses the count
    let many = vec![torn(&k, "torn-1", T0); BatchBody::MAX_TORN + 1];
    let body = BatchBody {
        torn: many,
        ..batch(&k, vec![]).body
    };
    assert!(matches!(
        body.sign(&SigningKey::generate().unwrap().0),
        Err(KeyError::MessageTooLarge {
            field: "batch torn record list",
            len: 1001,
            max: 1000
        })
    ));
    let mut over = bytes.clone();
    over[torn_at..torn_at + 2].copy_from_slice(&1001u16.to_be_bytes());
    assert_eq!(
        TapBatch::decode(&over),
        Err(DecodeError::LengthOutOfRange {
            field: "batch torn record count",
            len: 1001,
            max: 1000
        })
    );
    // inspect lists them
    let text = decode_bytes(&bytes).unwrap().describe().join("\n");
    assert!(text.contains("torn records: 2"), "{text}");
}
