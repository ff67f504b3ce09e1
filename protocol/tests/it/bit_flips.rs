//! Exhaustive single-bit flips: no flip of a signed message survives verification, and no flip
//! of a wallet log entry outside its unsigned clock goes unnoticed by the chain and signatures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::*;
use mancard_testkit::protocol::*;

fn every_bit_flip(valid: &[u8], mut accepted: impl FnMut(&[u8]) -> bool) {
    assert!(accepted(valid), "the unflipped message must be accepted");
    for i in 0..valid.len() {
        for bit in 0..8 {
            let mut b = valid.to_vec();
            b[i] ^= 1 << bit;
            assert!(
                !accepted(&b),
                "flip of bit {bit} of byte {i} still accepted"
            );
        }
    }
}

#[test]
fn no_single_bit_flip_survives_verification() {
    let k = Keys::new();
    let cfg = std_config(&k);
    let cert = std_cert(&k);
    let vcert = std_validator_cert(&k);
    let ch = std_challenge(&k);
    let auth = std_authorization(&k);
    let keys = &cfg.body.issuer_keys;

    every_bit_flip(&cert.encode(), |b| {
        CredentialCertificate::decode(b)
            .ok()
            .and_then(|c| VerifiedCertificate::new(c, keys).ok())
            .is_some()
    });
    every_bit_flip(&vcert.encode(), |b| {
        ValidatorCertificate::decode(b)
            .ok()
            .is_some_and(|v| verify_validator_certificate(&v, keys, |_| false, T0).is_ok())
    });
    every_bit_flip(&auth.encode(), |b| {
        TapAuthorization::decode(b)
            .ok()
            .is_some_and(|a| verify_nfc_tap(&cfg, &cert, &ch, &a).is_ok())
    });
    every_bit_flip(&ch.encode(), |b| {
        TapChallenge::decode(b).ok().is_some_and(|c| {
            verify_challenge(&c, &vcert).is_ok() && verify_nfc_tap(&cfg, &cert, &c, &auth).is_ok()
        })
    });
    let pass = std_pass(&k);
    every_bit_flip(&pass.encode(), |b| {
        BoardingPass::decode(b)
            .ok()
            .is_some_and(|p| verify_boarding_pass(&cfg, &p, T0 + 10).is_ok())
    });
    every_bit_flip(&cfg.encode(), |b| {
        ValidatorConfig::decode(b)
            .ok()
            .is_some_and(|c| verify_config(&c, &issuer_keys(&k), None).is_ok())
    });
    let batch = batch_of(&k, 2);
    every_bit_flip(&batch.encode(), |b| {
        TapBatch::decode(b)
            .ok()
            .is_some_and(|x| x.verify_signature(&k.validator.public))
    });
}

/// The chain and the signatures together catch every bit flip of a log entry, except in the
/// wallet's own unsigned clock (`time`, bytes 10..18), which nothing is decided on.
#[test]
fn log_chain_detects_every_bit_flip() {
    let k = Keys::new();
    let cert = std_cert(&k);
    let vcert = std_validator_cert(&k);
    let entries = log_chain(&k, 3);
    let head = verify_chain(&entries, ChainHead::default()).unwrap();
    let proof_ok = |p: &TapProof| {
        p.verify_phone_signature(&cert.body.tap_public_key).is_ok()
            && match p {
                TapProof::Nfc { challenge, .. } => verify_challenge(challenge, &vcert).is_ok(),
                TapProof::Qr { pass } => pass.body.certificate == cert,
            }
    };
    assert!(entries.iter().all(|e| proof_ok(&e.proof)));
    for mid in [1, 2] {
        let bytes = entries[mid].encode();
        for i in (0..bytes.len()).filter(|i| !(10..18).contains(i)) {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(e) = WalletLogEntry::decode(&b) {
                    let mut es = entries.clone();
                    es[mid] = e;
                    let caught = verify_chain(&es, ChainHead::default()) != Ok(head)
                        || !proof_ok(&es[mid].proof);
                    assert!(
                        caught,
                        "entry {mid}: flip of bit {bit} of byte {i} unnoticed"
                    );
                }
            }
        }
    }
}
