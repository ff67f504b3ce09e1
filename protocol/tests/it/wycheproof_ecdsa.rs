//! Project Wycheproof's ECDSA P-256 / SHA-256 vectors in the fixed r ‖ s (IEEE P1363) form,
//! run through the protocol's one signature check, `PublicKey::verify`, with an empty domain
//! tag (so the message is exactly the vector's). Every valid vector verifies unless its s is
//! high, in which case it is refused as non-canonical (and counted apart); every invalid vector
//! is refused. Keys that are not valid uncompressed points, and signatures that are not 64
//! bytes (they test DER-like framing, not ours), are skipped and counted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::{PublicKey, Signature, SignatureError};
use wycheproof::ecdsa::{TestName, TestSet};
use wycheproof::TestResult;

#[derive(Debug, Default)]
struct Counts {
    valid_verified: usize,
    valid_high_s_refused: usize,
    invalid_refused: usize,
    acceptable: usize,
    skipped_key: usize,
    skipped_signature_length: usize,
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let mut n = Counts::default();
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let Ok(key) = PublicKey::from_bytes(&group.key.key, "wycheproof key") else {
            n.skipped_key += group.tests.len();
            continue;
        };
        for t in &group.tests {
            let Ok(raw) = <[u8; 64]>::try_from(t.sig.as_slice()) else {
                n.skipped_signature_length += 1;
                continue;
            };
            let sig = Signature(raw);
            let got = key.verify(b"", &t.msg, &sig);
            let id = format!("tcId {} ({})", t.tc_id, t.comment);
            match t.result {
                TestResult::Valid if sig.is_low_s() => {
                    if got.is_ok() {
                        n.valid_verified += 1;
                    } else {
                        failures.push(format!("{id}: valid, low S, refused: {got:?}"));
                    }
                }
                TestResult::Valid => {
                    // A valid high-S signature: the curve accepts it, the protocol refuses it,
                    // and its low-S twin is the one that verifies.
                    let curve = key.verify_any_s(b"", &t.msg, &sig);
                    let twin = key.verify(b"", &t.msg, &sig.to_low_s());
                    if got == Err(SignatureError::NonCanonical) && curve.is_ok() && twin.is_ok() {
                        n.valid_high_s_refused += 1;
                    } else {
                        failures.push(format!(
                            "{id}: valid, high S: verify {got:?}, curve {curve:?}, twin {twin:?}"
                        ));
                    }
                }
                TestResult::Invalid => {
                    if got.is_err() {
                        n.invalid_refused += 1;
                    } else {
                        failures.push(format!("{id}: invalid, accepted"));
                    }
                }
                TestResult::Acceptable => n.acceptable += 1,
            }
        }
    }
    println!("Wycheproof ecdsa_secp256r1_sha256_p1363: {n:?}");
    println!(
        "  {} valid vectors refused as non-canonical (high S)",
        n.valid_high_s_refused
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let total = n.valid_verified
        + n.valid_high_s_refused
        + n.invalid_refused
        + n.acceptable
        + n.skipped_key
        + n.skipped_signature_length;
    assert_eq!(total, set.number_of_tests, "every vector is accounted for");
    assert!(
        n.valid_verified > 50,
        "too few valid vectors verified: {n:?}"
    );
    assert!(n.valid_high_s_refused > 0, "no valid high-S vector: {n:?}");
    assert!(n.invalid_refused > 50, "too few invalid vectors: {n:?}");
    assert!(
        n.skipped_key + n.skipped_signature_length < set.number_of_tests / 5,
        "most vectors skipped: {n:?}"
    );
}
