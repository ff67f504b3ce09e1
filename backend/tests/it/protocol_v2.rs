//! Protocol v2 at the backend (issue #12): only a registered validator's signed challenge is
//! evidence, every certificate has its own pseudonym, a high-S signature anywhere is refused,
//! passes are bounded by the bundle, validators get certificates and can be denied.

use mancard_api::endpoints::ADMIN_VALIDATORS;
use mancard_api::{
    CredentialState, Problem, ProblemCode, RegisterValidatorRequest, RegisterValidatorResponse,
    TapResult, TapStatus,
};
use mancard_protocol::{
    chain_start, verify_boarding_pass, verify_certificate_signature, verify_validator_certificate,
    ChallengeBody, CredentialCertificate, FareKind, Pseudonym, Signature, SigningKey, TapBatch,
    TapProof, TapRecord, TimeRules, VerifyError, WalletLogEntry,
};
use mancard_testkit::backend::*;
use mancard_testkit::protocol::TestKey;
use reqwest::StatusCode;

fn statuses(taps: &[TapResult]) -> Vec<TapStatus> {
    taps.iter().map(|r| r.status).collect()
}

fn reasons(taps: &[TapResult]) -> Vec<&str> {
    taps.iter()
        .map(|r| r.reason.as_deref().unwrap_or(""))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Replaces the signature of the challenge in an NFC proof.
fn challenge_signature(proof: &mut TapProof, f: impl Fn(&Signature) -> Signature) {
    if let TapProof::Nfc { challenge, .. } = proof {
        challenge.signature = f(&challenge.signature);
    }
}

/// (r, n − s): the other signature that verifies, as anyone can compute from a copy.
fn flipped(s: &Signature) -> Signature {
    Signature(s.malleated())
}

/// A validator's record of a QR tap.
fn qr_record(validator_id: u32, proof: TapProof, time: i64, fare: i64) -> TapRecord {
    let TapProof::Qr { pass } = &proof else {
        panic!("not a pass");
    };
    TapRecord {
        validator_id,
        line_id: 1,
        time,
        pseudonym: pass.body.certificate.body.pseudonym,
        counter: proof.counter(),
        fare,
        fare_kind: FareKind::Full,
        proof,
    }
}

#[tokio::test]
async fn the_wallet_cannot_invent_a_challenge() {
    let h = Harness::start().await;
    let token = h.login("+989120000101").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let (rogue, _) = SigningKey::generate().unwrap();
    let base = ride_base(w.server_time);
    let c = w.next_counter;

    // a challenge for a validator that does not exist, signed by a key of the wallet's
    let (_, unknown) = w.nfc_tap_signed_by(&rogue, 77, 1, 0, base, c);
    // validator 1's id, another key
    let (forged_rec, forged) = w.nfc_tap_signed_by(&rogue, 1, 1, 0, base + 600, c + 1);
    w.next_counter = c + 2;
    // validator 1's own challenge with its signature zeroed, garbled, or flipped to high S
    let (mut unsigned_rec, mut unsigned) = w.nfc_tap(&v1, 1, 0, base + 1200);
    let (_, mut garbled) = w.nfc_tap(&v1, 1, 0, base + 1800);
    let (mut high_s_rec, mut high_s) = w.nfc_tap(&v1, 1, 0, base + 2400);
    for p in [&mut unsigned_rec.proof, &mut unsigned.proof] {
        challenge_signature(p, |_| Signature([0; 64]));
    }
    challenge_signature(&mut garbled.proof, |s| {
        let mut b = s.0;
        b[10] ^= 0x10;
        Signature(b)
    });
    for p in [&mut high_s_rec.proof, &mut high_s.proof] {
        challenge_signature(p, flipped);
    }
    // and a genuine tap at validator 1
    let (honest_rec, honest) = w.nfc_tap(&v1, 1, 20_000, base + 3000);

    let v = w
        .sync_ok(&h, &[unknown, forged, unsigned, garbled, high_s, honest])
        .await;
    use TapStatus::{Duplicate, Rejected, Settled};
    assert_eq!(
        statuses(&v.taps),
        [Rejected, Rejected, Rejected, Rejected, Rejected, Settled]
    );
    assert_eq!(
        reasons(&v.taps)[..5],
        [
            "unknown_validator",
            "unsigned_challenge",
            "unsigned_challenge",
            "unsigned_challenge",
            "non_canonical_signature",
        ]
    );
    // never charged at the made-up fare (or any), never a fraud case
    for r in &v.taps[..5] {
        assert_eq!(r.fare, None, "{r:?}");
    }
    assert_eq!(v.taps[5].fare, Some(20_000));
    assert_eq!(v.balance, 180_000);
    assert_eq!(v.credential.status, CredentialState::Active);
    assert_eq!(v.chain.next_seq, 6, "the signed chain itself is intact");
    assert!(h.fraud_cases().await.is_empty());

    // the same made-up challenges in a validator's batch are refused the same way
    let b = h
        .upload_ok(&v1.batch(vec![forged_rec, unsigned_rec, high_s_rec, honest_rec]))
        .await;
    assert_eq!(
        statuses(&b.records),
        [Rejected, Rejected, Rejected, Duplicate]
    );
    assert_eq!(
        reasons(&b.records)[..3],
        [
            "unsigned_challenge",
            "unsigned_challenge",
            "non_canonical_signature"
        ]
    );
    assert_eq!(h.balance(&token).await, 180_000);
    assert!(h.fraud_cases().await.is_empty());
    assert_eq!(h.audit().await.taps, 1);
}

#[tokio::test]
async fn two_certificates_share_no_identifier() {
    let h = Harness::start().await;
    let token = h.login("+989120000102").await;
    h.topup(&token, 100_000, "t").await;
    let v1 = Validator::register(&h, 1).await;
    let (mut w, c1) = Wallet::provision(&h, &token).await;
    let cert1 = w.cert.clone();
    let base = ride_base(w.server_time);
    let (r1, e1) = w.nfc_tap(&v1, 1, 20_000, base);
    let c2 = w.replenish(&h).await;
    let cert2 = w.cert.clone();
    let (r2, e2) = w.nfc_tap(&v1, 1, 20_000, base + 3 * 3600);

    // no pseudonym, id or tap key in common
    assert_ne!(c1.pseudonym, c2.pseudonym);
    assert_ne!(c1.certificate_hash, c2.certificate_hash);
    assert_ne!(cert1.body.pseudonym, cert2.body.pseudonym);
    assert_ne!(cert1.id(), cert2.id());
    assert_ne!(cert1.body.tap_public_key, cert2.body.tap_public_key);
    // nor do their counter ranges continue each other (a random gap of 0..2^16 between them;
    // a gap of 0 has probability 2^-16)
    let (a1, a2) = (cert1.body.allowance, cert2.body.allowance);
    assert!(a2.counter_first > a1.counter_last + 1, "{a1:?} then {a2:?}");
    assert_eq!(c2.certificate_hash, hex::encode(cert2.id()));
    // and nothing one certificate's taps carry names the other
    let marks = |c: &CredentialCertificate| {
        vec![
            c.body.pseudonym.0.to_vec(),
            c.id().to_vec(),
            c.body.tap_public_key.as_bytes().to_vec(),
            chain_start(&c.id()).to_vec(),
        ]
    };
    let wire = |c: &CredentialCertificate, r: &TapRecord, e: &WalletLogEntry| {
        [c.encode(), r.encode(), e.encode()]
    };
    for (mine, theirs) in [
        (wire(&cert1, &r1, &e1), marks(&cert2)),
        (wire(&cert2, &r2, &e2), marks(&cert1)),
    ] {
        for bytes in &mine {
            for m in &theirs {
                assert!(!contains(bytes, m), "an identifier is shared");
            }
        }
    }
    // the second certificate's first tap starts its own chain
    assert_eq!(e2.proof.prev(), chain_start(&cert2.id()));
    assert_eq!(e1.proof.prev(), chain_start(&cert1.id()));

    // the backend links them: a sync may name the device by either pseudonym
    w.pseudonym = c1.pseudonym.clone();
    let v = w.sync_ok(&h, &[e1, e2]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled; 2]);
    assert_eq!(v.taps[0].pseudonym.as_deref(), Some(c1.pseudonym.as_str()));
    assert_eq!(v.taps[1].pseudonym.as_deref(), Some(c2.pseudonym.as_str()));
    assert_eq!(
        v.credential.pseudonym, c2.pseudonym,
        "the newest certificate's"
    );
    w.pseudonym = c2.pseudonym.clone();
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.chain.next_seq, 2);
    let b = h.upload_ok(&v1.batch(vec![r1, r2])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate; 2]);

    // the phone is lost: every pseudonym of its live certificates goes on the deny list
    let token3 = h.login("+989120000102").await; // the new phone logs in
    let (w3, c3) = Wallet::provision(&h, &token3).await;
    let mut revoked = c3.revoked_pseudonyms.clone();
    revoked.sort();
    let mut expected = vec![c1.pseudonym.clone(), c2.pseudonym.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    for bundle in [bundle_from(&c3.config_bundle), h.config().await] {
        for p in &expected {
            assert!(bundle.is_denied(&Pseudonym::from_hex(p).unwrap()));
        }
        assert!(!bundle.is_denied(&Pseudonym::from_hex(&w3.pseudonym).unwrap()));
    }
    // the old phone's session ended with the new phone's provisioning; found again, it logs in
    w.token = h.login("+989120000102").await;
    for p in [&c1.pseudonym, &c2.pseudonym] {
        w.pseudonym = p.clone();
        let v = w.sync_ok(&h, &[]).await;
        assert_eq!(v.credential.status, CredentialState::Revoked);
        assert!(bundle_from(&v.config_bundle).is_denied(&Pseudonym::from_hex(p).unwrap()));
    }
    h.audit().await;
}

#[tokio::test]
async fn a_photographed_pass_with_flipped_s_is_refused_everywhere() {
    let key = TestKey::new("backend issuer: photographed pass");
    let (h, issuer) = Harness::start_with_issuer(&key, chrono::Utc::now().timestamp() - 60).await;
    let token = h.login("+989120000103").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let now = h.handle().engine().now();

    // a real pass, photographed over the rider's shoulder; s replaced by n − s
    let honest = w.pass(now, 60, 30_000);
    let TapProof::Qr { pass } = &honest else {
        unreachable!()
    };
    let mut copy = pass.clone();
    copy.signature = flipped(&pass.signature);
    let copied = TapProof::Qr { pass: copy.clone() };
    assert_ne!(copy.encode(), pass.encode());
    assert_eq!(copied.id(), honest.id(), "the same signed tap");

    // the protocol's one verifier
    let cfg = h.config().await;
    verify_boarding_pass(&cfg, pass, now).unwrap();
    assert_eq!(
        verify_boarding_pass(&cfg, &copy, now).unwrap_err(),
        VerifyError::NonCanonicalSignature
    );
    // a validator trusting the backend's issuer key
    let mut reader = mancard_testkit::validator::uncertified_validator(&issuer, now);
    let out = reader.verify_qr(&copy.to_text());
    assert!(!out.decision.is_accepted());
    assert_eq!(
        out.decision.refusal().map(|r| r.code()),
        Some("non_canonical_signature")
    );
    assert!(reader.verify_qr(&pass.to_text()).decision.is_accepted());

    // the backend: the copy comes first, in a validator's batch
    let copy_rec = qr_record(1, copied.clone(), now + 5, 20_000);
    let b = h.upload_ok(&v1.batch(vec![copy_rec.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Rejected]);
    assert_eq!(reasons(&b.records), ["non_canonical_signature"]);
    // the rider's report (pending: a pass is charged once a validator reports it) and the
    // genuine reader's record settle the ride once
    let entry = w.log(now, 30_000, honest.clone());
    let v = w.sync_ok(&h, std::slice::from_ref(&entry)).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Pending]);
    let b = h
        .upload_ok(&v1.batch(vec![qr_record(1, honest, now + 5, 20_000)]))
        .await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(
        b.records[0].fare,
        Some(20_000),
        "re-rated once its line is known"
    );
    // the copy again, in a batch and in a wallet log: refused, neither a second tap nor fraud
    let b = h.upload_ok(&v1.batch(vec![copy_rec])).await;
    assert_eq!(reasons(&b.records), ["non_canonical_signature"]);
    let copy_entry = WalletLogEntry {
        proof: copied,
        ..entry
    };
    let v = w.sync_ok(&h, &[copy_entry]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Rejected]);
    assert_eq!(reasons(&v.taps), ["non_canonical_signature"]);

    // the NFC variant, from a validator's journal: the authorization's or the challenge's s
    let (tap_rec, _) = w.nfc_tap(&v1, 1, 20_000, now + 7200);
    let b = h.upload_ok(&v1.batch(vec![tap_rec.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert_eq!(b.records[0].fare, Some(20_000));
    let mut auth_copy = tap_rec.clone();
    if let TapProof::Nfc { authorization, .. } = &mut auth_copy.proof {
        authorization.signature = flipped(&authorization.signature);
    }
    let mut challenge_copy = tap_rec;
    challenge_signature(&mut challenge_copy.proof, flipped);
    let b = h
        .upload_ok(&v1.batch(vec![auth_copy, challenge_copy]))
        .await;
    assert_eq!(
        reasons(&b.records),
        ["non_canonical_signature", "non_canonical_signature"]
    );

    assert!(
        h.fraud_cases().await.is_empty(),
        "no case against the rider"
    );
    assert_eq!(v.credential.status, CredentialState::Active);
    // the pass charged once, the NFC tap once
    assert_eq!(h.balance(&token).await, 200_000 - 20_000 - 20_000);
    assert_eq!(h.audit().await.taps, 2);
}

#[tokio::test]
async fn a_reencoded_certificate_is_the_same_certificate_at_the_backend() {
    let h = Harness::start().await;
    let token = h.login("+989120000104").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let now = h.handle().engine().now();
    let cfg = h.config().await;

    // the issuer's signature re-encoded (s flipped): the same id, refused as non-canonical
    let genuine = w.cert.clone();
    let reencoded = CredentialCertificate {
        body: genuine.body.clone(),
        signature: flipped(&genuine.signature),
    };
    assert_ne!(reencoded.encode(), genuine.encode());
    assert_eq!(reencoded.id(), genuine.id());
    assert_eq!(hex::encode(reencoded.id()), c.certificate_hash);
    verify_certificate_signature(&genuine, &cfg.body.issuer_keys).unwrap();
    assert_eq!(
        verify_certificate_signature(&reencoded, &cfg.body.issuer_keys).unwrap_err(),
        VerifyError::NonCanonicalSignature
    );

    // a modified app puts it in a pass it signs with its own tap key: the backend knows the
    // certificate (not `unknown_certificate`) and refuses the copy
    w.cert = reencoded;
    let pass = w.pass(now, 60, 30_000);
    w.cert = genuine;
    let entry = w.log(now, 30_000, pass.clone());
    let v = w.sync_ok(&h, &[entry]).await;
    assert_eq!(reasons(&v.taps), ["non_canonical_signature"]);
    let b = h
        .upload_ok(&v1.batch(vec![qr_record(1, pass, now + 5, 20_000)]))
        .await;
    assert_eq!(reasons(&b.records), ["non_canonical_signature"]);
    // an NFC tap names its certificate by id: nothing to re-encode, it settles as usual
    let (_, e) = w.nfc_tap(&v1, 1, 20_000, now + 3600);
    let v = w.sync_ok(&h, &[e]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(v.balance, 180_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

#[tokio::test]
async fn a_pass_longer_than_the_bundle_allows_is_refused_at_settlement() {
    let h = Harness::start().await;
    let token = h.login("+989120000105").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let now = h.handle().engine().now();
    let max = h.config().await.body.time_rules.max_pass_lifetime_secs;
    assert_eq!(max, TimeRules::default().max_pass_lifetime_secs);

    let long = w.pass(now, max + 1, 30_000);
    let long_rec = qr_record(1, long.clone(), now + 5, 20_000);
    let e0 = w.log(now, 30_000, long);
    let ok = w.pass(now + 600, max, 30_000);
    let e1 = w.log(now + 600, 30_000, ok);
    let v = w.sync_ok(&h, &[e0, e1]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Rejected, TapStatus::Pending]);
    assert_eq!(reasons(&v.taps)[0], "pass_too_long");
    let b = h.upload_ok(&v1.batch(vec![long_rec])).await;
    assert_eq!(reasons(&b.records), ["pass_too_long"]);
    // the pass only the wallet reported is not charged
    assert_eq!(h.balance(&token).await, 200_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

#[tokio::test]
async fn a_validator_gets_a_certificate_and_can_be_denied() {
    let h = Harness::start().await;
    let (key, _) = SigningKey::generate().unwrap();
    let req = RegisterValidatorRequest {
        validator_id: 5,
        public_key: hex::encode(key.public_key().as_bytes()),
        operator_id: Some(3),
        lines: vec![10, 1],
    };
    let r: RegisterValidatorResponse = h.post_ok(ADMIN_VALIDATORS.path, Some(ADMIN), &req).await;
    let vc = certificate_from(&r);
    let b = &vc.body;
    assert_eq!((b.validator_id, b.operator_id, b.issuer_key_id), (5, 3, 1));
    assert_eq!(b.public_key, key.public_key());
    assert_eq!(b.lines, [1, 10]);
    assert_eq!((r.operator_id, r.lines.clone()), (3, vec![1, 10]));
    // back-dated like a credential certificate (a phone's clock may run a little behind)
    assert_eq!(i64::from(b.valid_from), r.registered_at - 300);
    assert_eq!(r.valid_from, r.registered_at - 300);
    assert_eq!(i64::from(b.valid_until), r.registered_at + 365 * 86_400);
    let cfg = h.config().await;
    assert_eq!(cfg.body.time_rules, TimeRules::default());
    assert!(cfg.body.validator_deny_list.is_empty());
    verify_validator_certificate(&vc, &cfg.body.issuer_keys, |_| false, r.registered_at).unwrap();
    // a certificate names at most three lines
    let (s, v) = h
        .admin_post(
            ADMIN_VALIDATORS.path,
            &RegisterValidatorRequest {
                lines: vec![1, 2, 3, 4],
                ..req.clone()
            },
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_value::<Problem>(v).unwrap().code,
        ProblemCode::InvalidLines
    );

    // a rider taps at it: on a line its certificate names, and on one it does not
    let token = h.login("+989120000106").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v5 = Validator {
        id: 5,
        key,
        certificate: Some(vc.clone()),
    };
    let base = ride_base(w.server_time);
    let (before, _) = w.nfc_tap(&v5, 1, 20_000, base);
    let (off_line, _) = w.nfc_tap(&v5, 2, 20_000, base + 600);
    let (after, _) = w.nfc_tap(&v5, 1, 20_000, base + 7200);

    // denied an hour after the first tap (idempotent: the first time stays)
    let e = h.handle().engine();
    e.advance_clock(base + 3600 - e.now()).unwrap();
    let d = h.deny_validator(5).await;
    assert_eq!(h.deny_validator(5).await, d);
    let cfg2 = h.config().await;
    assert!(cfg2.is_validator_denied(5));
    assert!(cfg2.body.bundle_version > cfg.body.bundle_version);
    assert_eq!(
        verify_validator_certificate(
            &vc,
            &cfg2.body.issuer_keys,
            |id| cfg2.is_validator_denied(id),
            d.denied_at
        )
        .unwrap_err(),
        VerifyError::ValidatorDenied(5)
    );
    let v = w.sync_ok(&h, &[]).await;
    assert!(bundle_from(&v.config_bundle).is_validator_denied(5));
    let (s, v) = h
        .admin_post(
            mancard_api::endpoints::ADMIN_DENY_VALIDATOR.path,
            &mancard_api::DenyValidatorRequest { validator_id: 6 },
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // its batch is still taken: what it signed before the denial is charged, after it not
    let b = h.upload_ok(&v5.batch(vec![before, off_line, after])).await;
    assert_eq!(
        statuses(&b.records),
        [TapStatus::Settled, TapStatus::Rejected, TapStatus::Rejected]
    );
    assert_eq!(
        reasons(&b.records)[1..],
        ["line_not_allowed", "validator_denied"]
    );
    assert_eq!(h.balance(&token).await, 180_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

#[tokio::test]
async fn a_tap_is_identified_by_what_the_phone_signed() {
    let h = Harness::start().await;
    let token = h.login("+989120000107").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let (rec, _) = w.nfc_tap(&v1, 1, 20_000, base);
    let b = h.upload_ok(&v1.batch(vec![rec.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    // the validator signs the same challenge again (ECDSA is randomized): other bytes, the
    // same tap: a duplicate, not "two different taps with one counter"
    let mut again = rec.clone();
    if let TapProof::Nfc { challenge, .. } = &mut again.proof {
        *challenge = ChallengeBody::sign(challenge.body.clone(), &v1.key).unwrap();
    }
    assert_ne!(again.encode(), rec.encode());
    assert_eq!(again.proof.id(), rec.proof.id());
    let b = h.upload_ok(&v1.batch(vec![again])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert!(h.fraud_cases().await.is_empty());

    // a batch whose own signature is flipped to high S is refused as a whole
    let mut batch = TapBatch::decode(&v1.batch(vec![rec])).unwrap();
    batch.signature = flipped(&batch.signature);
    let (s, v) = h.upload(&batch.encode()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_value::<Problem>(v).unwrap().code,
        ProblemCode::NonCanonicalSignature
    );
    assert_eq!(h.balance(&token).await, 180_000);
    h.audit().await;
}

/// "A broken chain can be claimed with bytes nobody signed" (#12): an uploaded log that does
/// not continue the stored chain is refused (409 `chain_conflict`) and opens no case unless
/// two taps signed by the tap key prove the fork; the honest rider is never revoked on
/// unsigned bytes.
#[tokio::test]
async fn unsigned_bytes_never_open_a_chain_case() {
    let h = Harness::start().await;
    let token = h.login("+989120000131").await;
    h.topup(&token, 100_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let (seq0, prev0, ctr0) = (w.seq, w.prev, w.next_counter);

    // a tap-shaped first entry nobody signed: garbage link, zero signature
    let (_, mut forged) = w.nfc_tap(&v1, 1, 20_000, base);
    if let TapProof::Nfc { authorization, .. } = &mut forged.proof {
        authorization.prev = [0xAB; 32];
        authorization.signature = Signature([0; 64]);
    }
    let (s, v) = w.sync(&h, &[forged]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "chain_conflict", "{v}");
    assert!(h.fraud_cases().await.is_empty());

    // the genuine entry 0 is stored; then a different, unsigned entry 0 is refused, no case
    (w.seq, w.prev, w.next_counter) = (seq0, prev0, ctr0);
    let (_, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let ok = w.sync_ok(&h, std::slice::from_ref(&e0)).await;
    assert_eq!(statuses(&ok.taps), [TapStatus::Settled]);
    let mut flipped = e0.clone();
    flipped.time += 1; // unsigned bookkeeping: the same signed tap, a different entry
    if let TapProof::Nfc { authorization, .. } = &mut flipped.proof {
        authorization.signature = Signature([7; 64]);
        authorization.amount = 1;
    }
    flipped.amount = 1;
    let (s, v) = w.sync(&h, &[flipped]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        h.fraud_cases().await.is_empty(),
        "no case on unsigned bytes"
    );
    let ok = w.sync_ok(&h, &[]).await;
    assert_eq!(ok.credential.status, CredentialState::Active);
    assert_eq!(ok.balance, 80_000, "charged once, for the one signed tap");

    // two taps the tap key signed after the same predecessor: signed proof, a case
    (w.seq, w.prev) = (seq0, prev0);
    let (_, fork) = w.nfc_tap(&v1, 2, 20_000, base + 600);
    let ok = w.sync_ok(&h, &[fork]).await;
    let cases = h.fraud_cases().await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].kind, mancard_api::FraudKind::BrokenChain);
    assert!(
        cases[0].detail.contains("continue the same previous tap"),
        "{cases:?}"
    );
    assert_eq!(ok.credential.status, CredentialState::Revoked);
}

/// A dishonest validator operator: the backend never charges more than the phone signed, and
/// a QR record is charged only on a line the validator's certificate covers, from a validator
/// not denied, within the pass's window (the bundle's skew either side).
#[tokio::test]
async fn a_validator_cannot_charge_more_than_signed_or_off_its_lines() {
    let h = Harness::start().await;
    let token = h.login("+989120000132").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    // NFC: a challenge signed for 0 rials on the metro (30,000) is charged 0, not the tariff
    let (mut rec, _) = w.nfc_tap(&v1, 10, 0, base);
    rec.fare = 0;
    let b = h.upload_ok(&v1.batch(vec![rec])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert_eq!(b.records[0].fare, Some(0));

    // QR: a validator certified for line 1 only
    let mut v5 = Validator::unregistered(5);
    let mut req = RegisterValidatorRequest::new(5, hex::encode(v5.key.public_key().as_bytes()));
    req.lines = vec![1];
    let r: RegisterValidatorResponse = h.post_ok(ADMIN_VALIDATORS.path, Some(ADMIN), &req).await;
    v5.certificate = Some(certificate_from(&r));
    let on_line = |line: u32, proof: TapProof, time: i64| {
        let mut r = qr_record(5, proof, time, 20_000);
        r.line_id = line;
        r
    };
    let day = 86_400;
    let recs = vec![
        on_line(1, w.pass(base + 3600, 60, 30_000), base + 3605),
        on_line(10, w.pass(base + 2 * 3600, 60, 30_000), base + 2 * 3600 + 5),
        on_line(
            4242,
            w.pass(base + 3 * 3600, 60, 30_000),
            base + 3 * 3600 + 5,
        ),
        // scanned two days after its 60 s window
        on_line(
            1,
            w.pass(base + 4 * 3600, 60, 30_000),
            base + 4 * 3600 + 2 * day,
        ),
        // scanned just inside the window's skew (60 s + 30 s)
        on_line(1, w.pass(base + 5 * 3600, 60, 30_000), base + 5 * 3600 + 90),
    ];
    let b = h.upload_ok(&v5.batch(recs)).await;
    assert_eq!(
        statuses(&b.records),
        [
            TapStatus::Settled,
            TapStatus::Rejected,
            TapStatus::Rejected,
            TapStatus::Rejected,
            TapStatus::Settled
        ]
    );
    assert_eq!(
        reasons(&b.records),
        [
            "",
            "line_not_allowed",
            "line_not_allowed",
            "record_mismatch",
            ""
        ]
    );
    assert!(h.fraud_cases().await.is_empty());
}
