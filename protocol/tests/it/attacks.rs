//! The protocol-level attacks of issue 12, each named for what it proves: a re-encoded
//! (flipped-s) signature never makes a new certificate or a second tap, and a forked tap chain
//! (a cloned or rolled-back wallet) is proved by the phone's signatures alone, while nothing
//! else is.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::*;
use mancard_testkit::protocol::*;

/// The attack 2: a modified app re-encodes its certificate's signature (s → n − s) to
/// present a "new" certificate. The id is a hash of the body, so it is the same certificate,
/// and the re-encoded signature is refused as non-canonical; any edit of the body is another
/// id (and a broken signature).
#[test]
fn a_reencoded_certificate_is_the_same_certificate() {
    let k = Keys::new();
    let keys = issuer_keys(&k);
    let cert = std_cert(&k);
    let twin = with_flipped_s(&cert);
    assert_ne!(
        twin.encode(),
        cert.encode(),
        "a different encoding on the wire"
    );
    assert_eq!(twin.id(), cert.id(), "but the same certificate id");
    assert_eq!(twin.hash(), cert.id(), "hash() is the id");
    // The twin is a genuine malleated signature: the bare curve check accepts it.
    k.issuer1
        .public
        .verify_any_s(
            crypto::tags::CERTIFICATE,
            &cert.body.encode(),
            &twin.signature,
        )
        .unwrap();
    verify_certificate_signature(&cert, &keys).unwrap();
    assert_eq!(
        verify_certificate_signature(&twin, &keys),
        Err(VerifyError::NonCanonicalSignature)
    );
    assert_eq!(
        VerifiedCertificate::new(twin.clone(), &keys),
        Err(VerifyError::NonCanonicalSignature)
    );
    // A tap bound to the certificate id verifies with the certificate and is refused with its
    // re-encoded twin: the id alone never admits a modified signature.
    let cfg = std_config(&k);
    let (ch, auth) = (std_challenge(&k), std_authorization(&k));
    verify_nfc_tap(&cfg, &cert, &ch, &auth).unwrap();
    assert_eq!(
        verify_nfc_tap(&cfg, &twin, &ch, &auth),
        Err(VerifyError::NonCanonicalSignature)
    );
    // The issuer signing the same body again (ring, a fresh random nonce) is the same
    // certificate too.
    let resigned = cert.body.clone().sign(&k.issuer1.ring()).unwrap();
    assert_ne!(resigned.signature, cert.signature);
    assert_eq!(resigned.id(), cert.id());

    // Every edit of the body is another certificate, and the old signature no longer covers it.
    type Edit = (&'static str, fn(&mut CertificateBody));
    let edits: [Edit; 8] = [
        ("issuer key id", |b| b.issuer_key_id = 2),
        ("pseudonym", |b| b.pseudonym.0[0] ^= 1),
        ("tap key", |b| {
            b.tap_public_key = Keys::new().tap_other.public
        }),
        ("valid from", |b| b.valid_from -= 1),
        ("valid until", |b| b.valid_until += 1),
        ("fare class", |b| b.fare_class = FareClass::Free),
        ("counter range", |b| b.allowance.counter_last += 1),
        ("allowance", |b| b.allowance.max_amount += 1),
    ];
    for (what, edit) in edits {
        let mut edited = cert.clone();
        edit(&mut edited.body);
        assert_ne!(edited.id(), cert.id(), "editing the {what} keeps the id");
        assert!(
            matches!(
                verify_certificate_signature(&edited, &keys),
                Err(VerifyError::BadSignature | VerifyError::UnknownIssuerKey(_))
                    | Err(VerifyError::IssuerKeyNotValid(_))
            ),
            "editing the {what} keeps a valid signature"
        );
    }

    // The same holds for a validator certificate.
    let vcert = std_validator_cert(&k);
    let vtwin = with_flipped_s(&vcert);
    assert_eq!(vtwin.id(), vcert.id());
    assert_eq!(
        verify_validator_certificate(&vtwin, &keys, |_| false, T0),
        Err(VerifyError::NonCanonicalSignature)
    );
    let mut moved = vcert.clone();
    moved.body.operator_id = 2;
    assert_ne!(moved.id(), vcert.id());
}

/// A photographed pass or a journaled authorization with its s flipped is the same tap (same
/// id), refused by every verifier as non-canonical, and never a second proof of its counter.
#[test]
fn a_flipped_s_tap_is_the_same_tap_and_refused() {
    let k = Keys::new();
    let cfg = std_config(&k);
    let cert = std_cert(&k);
    let pass = std_pass(&k);
    let photo = with_flipped_s(&pass);
    let (p, q) = (
        TapProof::Qr { pass: pass.clone() },
        TapProof::Qr {
            pass: photo.clone(),
        },
    );
    assert_eq!(
        p.id(),
        q.id(),
        "the tap's identity never includes the signature"
    );
    verify_boarding_pass(&cfg, &pass, T0 + 10).unwrap();
    assert_eq!(
        verify_boarding_pass(&cfg, &photo, T0 + 10),
        Err(VerifyError::NonCanonicalSignature)
    );
    assert_eq!(
        prove_fork(&cert, &p, &q),
        Err(NotAFork::Signature(SignatureError::NonCanonical))
    );
    let ch = std_challenge(&k);
    let auth = std_authorization(&k);
    let journaled = TapAuthorization {
        signature: flip_s(&auth.signature),
        ..auth.clone()
    };
    let (a, b) = (
        TapProof::Nfc {
            challenge: ch.clone(),
            authorization: auth,
        },
        TapProof::Nfc {
            challenge: ch.clone(),
            authorization: journaled.clone(),
        },
    );
    assert_eq!(a.id(), b.id());
    assert_eq!(
        verify_nfc_tap(&cfg, &cert, &ch, &journaled),
        Err(VerifyError::NonCanonicalSignature)
    );
    assert_eq!(
        b.verify_phone_signature(&cert.body.tap_public_key),
        Err(SignatureError::NonCanonical)
    );
    // A challenge whose validator signature was flipped is refused the same way.
    assert_eq!(
        verify_challenge(&with_flipped_s(&ch), &std_validator_cert(&k)),
        Err(VerifyError::NonCanonicalSignature)
    );
}

/// An NFC tap under `cert` signed by `key` (ring: as a real phone signs).
fn nfc_tap(
    k: &Keys,
    key: &SigningKey,
    cert: &CredentialCertificate,
    name: &str,
    counter: u32,
    prev: &[u8; 32],
) -> TapProof {
    let challenge = challenge(k, name, T0 + 600, 1, 20_000);
    let authorization =
        TapAuthorization::sign(key, &challenge.body, &cert.id(), counter, 20_000, prev).unwrap();
    TapProof::Nfc {
        challenge,
        authorization,
    }
}

/// The point 4: two signed taps with the same predecessor, or one counter under two
/// different signed bodies, are signed proof of a clone or a rollback; a forged, unsigned or
/// re-encoded proof, the same tap seen twice, or unrelated taps are not.
#[test]
fn a_forked_chain_is_proved_by_signatures_alone() {
    let k = Keys::new();
    let cert = std_cert(&k);
    let tap = k.tap.ring();
    let log = log_chain(&k, 3);
    verify_chain(&log, ChainHead::default()).unwrap();
    let (e1, e2) = (&log[1].proof, &log[2].proof);

    // A clone of the wallet taps on from entry 1 with a fresh counter: same predecessor.
    let clone = nfc_tap(&k, &tap, &cert, "clone", 1003, &log[1].hash());
    assert_eq!(prove_fork(&cert, e2, &clone), Ok(Fork::SamePredecessor));
    assert_eq!(prove_fork(&cert, &clone, e2), Ok(Fork::SamePredecessor));
    // A restored backup reuses counter 1002 on another link: same counter, two bodies.
    let rollback = nfc_tap(&k, &tap, &cert, "rollback", 1002, &chain_start(&cert.id()));
    assert_eq!(prove_fork(&cert, e2, &rollback), Ok(Fork::SameCounter));
    // A QR pass continuing the same link is a fork too.
    let mut body = pass_body(cert.clone(), 1004, T0 + 900, 60, 30_000);
    body.prev = log[1].hash();
    let pass = TapProof::Qr {
        pass: body.sign(&tap).unwrap(),
    };
    assert_eq!(prove_fork(&cert, e2, &pass), Ok(Fork::SamePredecessor));

    // Not a fork: a proof nobody with the tap key signed.
    let forged = nfc_tap(
        &k,
        &k.tap_other.ring(),
        &cert,
        "forged",
        1003,
        &log[1].hash(),
    );
    assert_eq!(
        prove_fork(&cert, e2, &forged),
        Err(NotAFork::Signature(SignatureError::Invalid))
    );
    let TapProof::Nfc {
        challenge,
        authorization,
    } = &clone
    else {
        panic!("an NFC tap")
    };
    let unsigned = TapProof::Nfc {
        challenge: challenge.clone(),
        authorization: TapAuthorization {
            signature: Signature([0; 64]),
            ..authorization.clone()
        },
    };
    assert!(matches!(
        prove_fork(&cert, e2, &unsigned),
        Err(NotAFork::Signature(_))
    ));
    // Nor the high-S copy of a real tap (it is the same tap, re-encoded).
    let high = TapProof::Nfc {
        challenge: challenge.clone(),
        authorization: TapAuthorization {
            signature: flip_s(&authorization.signature),
            ..authorization.clone()
        },
    };
    assert_eq!(
        prove_fork(&cert, &clone, &high),
        Err(NotAFork::Signature(SignatureError::NonCanonical))
    );
    // Nor the same tap twice, even logged twice under other sequence numbers and times.
    assert_eq!(prove_fork(&cert, e1, e1), Err(NotAFork::SameTap));
    let mut relogged = log[1].clone();
    relogged.seq = 9;
    relogged.time += 3600;
    assert_eq!(
        prove_fork(&cert, e1, &relogged.proof),
        Err(NotAFork::SameTap)
    );
    // Nor two taps that follow each other, nor taps of another certificate.
    assert_eq!(
        prove_fork(&cert, &log[0].proof, e2),
        Err(NotAFork::Unrelated)
    );
    assert_eq!(prove_fork(&cert, e1, e2), Err(NotAFork::Unrelated));
    let other = sign_cert(cert_body(1, "rider-2", &k.tap), &k.issuer1);
    assert_eq!(
        prove_fork(&other, e2, &clone),
        Err(NotAFork::OtherCertificate)
    );
    // And the chain itself refuses the clone's tap after entry 2.
    let mut forked = log.clone();
    forked.push(WalletLogEntry {
        seq: 3,
        time: T0 + 900,
        amount: 20_000,
        proof: clone,
    });
    assert_eq!(
        verify_chain(&forked, ChainHead::default()),
        Err(ChainError::BrokenLink { seq: 3 })
    );
}

/// A replenished certificate (same phone, a fresh pseudonym) restarts the chain at its own
/// chain start: nothing signed links two certificates, and the counters still increase.
#[test]
fn the_chain_restarts_with_every_certificate() {
    let k = Keys::new();
    let tap = k.tap.ring();
    let old = std_cert(&k);
    let mut nb = cert_body(1, "rider-1-renewed", &k.tap);
    nb.allowance.counter_first = 1100;
    nb.allowance.counter_last = 1199;
    let new = sign_cert(nb, &k.issuer1);
    assert_ne!(chain_start(&old.id()), chain_start(&new.id()));
    assert_eq!(
        chain_start(&new.id()),
        sha256(&[crypto::tags::CHAIN_START, &new.id()])
    );

    let log = log_chain(&k, 2);
    let head = verify_chain(&log, ChainHead::default()).unwrap();
    assert_eq!(head.next_seq, 2);
    assert_eq!(head.last, Some((old.id(), log[1].hash())));
    assert_eq!(head.last_counter, Some(1001));
    assert_eq!(head.expected_prev(&old.id()), log[1].hash());
    assert_eq!(head.expected_prev(&new.id()), chain_start(&new.id()));

    let entry = |seq: u64, proof: TapProof| WalletLogEntry {
        seq,
        time: T0 + 600,
        amount: proof.amount(),
        proof,
    };
    let first_new = entry(
        2,
        nfc_tap(&k, &tap, &new, "renewed", 1100, &chain_start(&new.id())),
    );
    let head2 = verify_chain(std::slice::from_ref(&first_new), head).unwrap();
    assert_eq!(head2.last, Some((new.id(), first_new.hash())));
    assert_eq!(head2.expected_prev(&new.id()), first_new.hash());
    assert_eq!(
        head2.expected_prev(&old.id()),
        chain_start(&old.id()),
        "an old certificate's next tap would restart too"
    );
    // The whole log checks from scratch as well.
    let mut all = log.clone();
    all.push(first_new.clone());
    assert_eq!(verify_chain(&all, ChainHead::default()), Ok(head2));

    // The new certificate's first tap may not continue the old certificate's link…
    let linked = entry(2, nfc_tap(&k, &tap, &new, "linked", 1100, &log[1].hash()));
    assert_eq!(
        verify_chain(&[linked], head),
        Err(ChainError::BrokenLink { seq: 2 })
    );
    // …nor may counters go back across certificates.
    let mut low = cert_body(1, "rider-1-low", &k.tap);
    low.allowance.counter_first = 900;
    let low = sign_cert(low, &k.issuer1);
    let back = entry(
        2,
        nfc_tap(&k, &tap, &low, "back", 900, &chain_start(&low.id())),
    );
    assert_eq!(
        verify_chain(&[back], head),
        Err(ChainError::CounterNotIncreasing {
            seq: 2,
            counter: 900
        })
    );
    // A chain that skips a sequence number is refused, wherever it resumes.
    let skipped = WalletLogEntry {
        seq: 3,
        ..first_new
    };
    assert_eq!(
        verify_chain(&[skipped], head),
        Err(ChainError::SequenceGap {
            seq: 3,
            expected: 2
        })
    );
}
