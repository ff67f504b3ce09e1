//! Settlement v2 at the backend (issue #13), each test named for the attack it tries: charges
//! only for rides taken, the allowance bounded per account, fraud only on signed evidence.
//! The rules: docs/settlement.md.

use mancard_api::endpoints::{PROVISION, REPLENISH};
use mancard_api::{
    CredentialResponse, Problem, ProblemCode, SyncResponse, TapResult, TapStatus, TapVerdict,
    VerdictStatus,
};
use mancard_protocol::provision::ProvisionPurpose;
use mancard_protocol::{
    BatchBody, ChallengeBody, Pseudonym, SigningKey, TapAuthorization, TapProof, TornRecord,
    WalletLogEntry,
};
use mancard_testkit::backend::*;
use reqwest::StatusCode;

fn statuses(taps: &[TapResult]) -> Vec<TapStatus> {
    taps.iter().map(|r| r.status).collect()
}

fn reasons(taps: &[TapResult]) -> Vec<&str> {
    taps.iter()
        .map(|r| r.reason.as_deref().unwrap_or(""))
        .collect()
}

fn problem_code(v: &serde_json::Value) -> ProblemCode {
    serde_json::from_value::<Problem>(v.clone()).unwrap().code
}

/// The newest verdict of a tap in a sync's feed.
fn verdict(v: &SyncResponse, counter: u32) -> &TapVerdict {
    v.verdicts
        .iter()
        .rev()
        .find(|x| x.counter == counter)
        .unwrap_or_else(|| panic!("no verdict for counter {counter}: {:?}", v.verdicts))
}

/// A rider with `balance` rials, a provisioned wallet and validators 1 and 2.
async fn rider(h: &Harness, phone: &str, balance: i64) -> (String, Wallet, Validator, Validator) {
    let token = h.login(phone).await;
    h.topup(&token, balance, "t").await;
    let (w, _) = Wallet::provision(h, &token).await;
    let v1 = Validator::register(h, 1).await;
    let v2 = Validator::register(h, 2).await;
    (token, w, v1, v2)
}

/// A tampered wallet reports first, with a made-up challenge and with a cheaper authorization
/// of the genuine one: neither is charged; the validator's genuine record then is, at the
/// fare the validator signed, once.
#[tokio::test]
async fn a_cheaper_self_report_cannot_lower_the_fare() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300001", 200_000).await;
    let base = ride_base(w.server_time);
    let counter = w.next_counter;
    let prev = w.prev;
    // the genuine tap at validator 1 (the wallet's own log entry is not sent)
    let (genuine, _) = w.nfc_tap(&v1, 1, 20_000, base);
    let TapProof::Nfc { challenge, .. } = &genuine.proof else {
        panic!("NFC");
    };
    // (a) the same challenge, authorized by the tap key at 0 rials, self-reported first
    let cheap =
        TapAuthorization::sign(&w.tap, &challenge.body, &w.cert_hash, counter, 0, &prev).unwrap();
    let cheap = WalletLogEntry {
        seq: 0,
        time: base,
        amount: 0,
        proof: TapProof::Nfc {
            challenge: challenge.clone(),
            authorization: cheap,
        },
    };
    let cheap_link = cheap.hash();
    let v = w.sync_ok(&h, &[cheap]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Rejected]);
    assert_eq!(reasons(&v.taps), ["challenge_mismatch"]);
    // (b) a made-up challenge: fare 0 on a line nobody runs, signed by a key of its own
    let (rogue, _) = SigningKey::generate().unwrap();
    let made_up = ChallengeBody {
        fare: 0,
        line_id: 999,
        ..challenge.body.clone()
    }
    .sign(&rogue)
    .unwrap();
    let auth = TapAuthorization::sign(
        &w.tap,
        &made_up.body,
        &w.cert_hash,
        counter + 1,
        0,
        &cheap_link,
    )
    .unwrap();
    let invented = WalletLogEntry {
        seq: 1,
        time: base,
        amount: 0,
        proof: TapProof::Nfc {
            challenge: made_up,
            authorization: auth,
        },
    };
    let v = w.sync_ok(&h, &[invented]).await;
    assert_eq!(reasons(&v.taps), ["unsigned_challenge"]);
    assert_eq!(h.balance(&token).await, 200_000, "nothing charged yet");
    // the validator's genuine record: charged its signed fare, once, no fraud
    let b = h.upload_ok(&v1.batch(vec![genuine.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert_eq!(b.records[0].fare, Some(20_000));
    let b = h.upload_ok(&v1.batch(vec![genuine])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.balance(&token).await, 180_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;

    // an honest wallet reporting first is charged at the validator's fare, and the
    // validator's later record is the same tap
    let token = h.login("+989121300010").await;
    h.topup(&token, 100_000, "t").await;
    let (mut honest, _) = Wallet::provision(&h, &token).await;
    let base = ride_base(honest.server_time);
    let (rec, entry) = honest.nfc_tap(&v1, 2, 20_000, base);
    let v = honest.sync_ok(&h, &[entry]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(v.taps[0].fare, Some(20_000));
    let b = h.upload_ok(&v1.batch(vec![rec])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.balance(&token).await, 80_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

/// Five replenishments on a 100,000-rial balance: at every step the unspent allowance of the
/// account's live certificates (not expired, not on the signed deny list) is at most the
/// balance, because each new certificate supersedes the device's older ones.
#[tokio::test]
async fn replenishing_never_exceeds_the_balance_across_certificates() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300002", 100_000).await;
    let mut issued: Vec<(Pseudonym, i64)> = vec![(w.cert.body.pseudonym, 100_000)];
    let base = ride_base(w.server_time);
    let (rec, _) = w.nfc_tap(&v1, 1, 20_000, base);
    h.upload_ok(&v1.batch(vec![rec])).await;
    for _ in 0..5 {
        let c = w.replenish(&h).await;
        issued.push((w.cert.body.pseudonym, c.max_amount));
        let balance = h.balance(&token).await;
        assert_eq!(balance, 80_000);
        assert_eq!(c.max_amount, 80_000, "min(balance, cap)");
        let cfg = h.config().await;
        let live: Vec<&(Pseudonym, i64)> =
            issued.iter().filter(|(p, _)| !cfg.is_denied(p)).collect();
        assert_eq!(live.len(), 1, "only the newest certificate is live");
        let unspent: i64 = live.iter().map(|(_, a)| a).sum();
        assert!(unspent <= balance, "{unspent} > {balance}");
    }
    // the superseded certificates' taps signed before are still charged (a late report)
    let h_cases = h.fraud_cases().await;
    assert!(h_cases.is_empty(), "{h_cases:?}");
    h.audit().await;
}

/// A provisioning answer is lost: the same request, and a fresh nonce for the same tap key,
/// get the same certificate back; nothing new is issued, no second allowance.
#[tokio::test]
async fn a_provisioning_retry_gets_the_same_certificate() {
    let h = Harness::start().await;
    let token = h.login("+989121300003").await;
    h.topup(&token, 100_000, "t").await;
    let (binding, _) = SigningKey::generate().unwrap();
    let (tap, _) = SigningKey::generate().unwrap();
    let req =
        Wallet::credential_request(&h, &token, &binding, &tap, ProvisionPurpose::Provision).await;
    let first: CredentialResponse = h.post_ok(PROVISION.path, Some(&token), &req).await;
    let again: CredentialResponse = h.post_ok(PROVISION.path, Some(&token), &req).await;
    assert_eq!(again.certificate, first.certificate);
    let fresh =
        Wallet::credential_request(&h, &token, &binding, &tap, ProvisionPurpose::Provision).await;
    let third: CredentialResponse = h.post_ok(PROVISION.path, Some(&token), &fresh).await;
    assert_eq!(third.certificate, first.certificate);
    assert_eq!(third.counter_first, first.counter_first);
    // no certificate was superseded or revoked by the retries
    let cfg = h.config().await;
    assert!(!cfg.is_denied(&Pseudonym::from_hex(&first.pseudonym).unwrap()));
    // a replay by another account of the same request is refused
    let other = h.login("+989121300004").await;
    let (s, v) = h.post(PROVISION.path, Some(&other), &req).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(problem_code(&v), ProblemCode::BindingKeyInUse);
    // a new tap key is a new certificate, superseding the first
    let (tap2, _) = SigningKey::generate().unwrap();
    let req2 =
        Wallet::credential_request(&h, &token, &binding, &tap2, ProvisionPurpose::Replenish).await;
    let second: CredentialResponse = h.post_ok(REPLENISH.path, Some(&token), &req2).await;
    assert_ne!(second.certificate, first.certificate);
    assert!(h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&first.pseudonym).unwrap()));
    // an old request retried after that does not bring the superseded certificate back
    let (s, v) = h.post(PROVISION.path, Some(&token), &req).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidNonce)
    );
    // issuance is rate-limited per device
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        let (k, _) = SigningKey::generate().unwrap();
        let r =
            Wallet::credential_request(&h, &token, &binding, &k, ProvisionPurpose::Replenish).await;
        let (s, v) = h.post(REPLENISH.path, Some(&token), &r).await;
        last = s;
        if s != StatusCode::OK {
            assert_eq!(problem_code(&v), ProblemCode::RateLimited);
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    h.audit().await;
}

/// Wallet-log entries whose proofs do not verify (a flipped byte, another account's
/// certificate) never enter the stored chain and never open a case: 409, nothing stored.
#[tokio::test]
async fn unsigned_bytes_never_open_a_fraud_case() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300005", 100_000).await;
    let base = ride_base(w.server_time);
    let (_, genuine) = w.nfc_tap(&v1, 1, 20_000, base);
    let mut forged = genuine.clone();
    if let TapProof::Nfc { authorization, .. } = &mut forged.proof {
        authorization.signature.0[40] ^= 1;
    }
    let (s, v) = w.sync(&h, std::slice::from_ref(&forged)).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::ChainConflict)
    );
    // the same sequence number with another flipped byte: still nothing stored, no case
    let mut forged2 = genuine.clone();
    if let TapProof::Nfc { authorization, .. } = &mut forged2.proof {
        authorization.signature.0[41] ^= 1;
    }
    let (s, _) = w.sync(&h, &[forged2]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // another account's certificate under this device
    let token_b = h.login("+989121300006").await;
    h.topup(&token_b, 50_000, "t").await;
    let (mut b, _) = Wallet::provision(&h, &token_b).await;
    let (_, foreign) = b.nfc_tap(&v1, 1, 20_000, base);
    let (s, _) = w.sync(&h, &[foreign]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(h.fraud_cases().await.is_empty());
    // the genuine entry is then stored and charged; the device is not revoked
    let v = w.sync_ok(&h, &[genuine]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(v.chain.next_seq, 1);
    assert_ne!(v.credential.status, mancard_api::CredentialState::Revoked);
    assert_eq!(h.balance(&token).await, 80_000);
    h.audit().await;
}

/// One pass shown to two validators: charged once, an abuse event each time, the rider's
/// verdict says so; a second one the same day puts the rider's device on the deny list.
#[tokio::test]
async fn one_pass_at_two_validators_is_recorded_as_abuse() {
    let h = Harness::start().await;
    let (token, mut w, _, _) = rider(&h, "+989121300007", 200_000).await;
    let v1 = Validator::register(&h, 11).await;
    let v2 = Validator::register(&h, 12).await;
    let base = ride_base(w.server_time);
    let (rec, entry) = w.qr_tap(11, 1, 20_000, base, 30_000);
    let mut copy = rec.clone();
    copy.validator_id = 12;
    let b = h.upload_ok(&v1.batch(vec![rec])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    let b = h.upload_ok(&v2.batch(vec![copy])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(reasons(&b.records), ["shared_pass"]);
    assert_eq!(h.balance(&token).await, 180_000, "charged once");
    let v = w.sync_ok(&h, &[entry]).await;
    let x = verdict(&v, w.next_counter - 1);
    assert_eq!(x.status, VerdictStatus::Charged);
    assert_eq!(x.charged, 20_000);
    assert_eq!(x.reason.as_deref(), Some("shared_pass"));
    assert!(!h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    // a second shared pass the same day, again at validator 12: one validator key alone
    // (which could replay photographed passes) never deny-lists a rider
    let (rec, _) = w.qr_tap(11, 1, 20_000, base + 3600, 30_000);
    let mut copy = rec.clone();
    copy.validator_id = 12;
    h.upload_ok(&v1.batch(vec![rec])).await;
    let b = h.upload_ok(&v2.batch(vec![copy])).await;
    assert_eq!(reasons(&b.records), ["shared_pass"]);
    assert!(!h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    // a third, at yet another validator: two different validators saw shared passes today,
    // over the limit (1): the device is denied
    let v3 = Validator::register(&h, 13).await;
    let (rec, _) = w.qr_tap(11, 1, 20_000, base + 7200, 30_000);
    let mut copy = rec.clone();
    copy.validator_id = 13;
    h.upload_ok(&v1.batch(vec![rec])).await;
    let b = h.upload_ok(&v3.batch(vec![copy])).await;
    assert_eq!(reasons(&b.records), ["shared_pass"]);
    assert!(h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, mancard_api::CredentialState::Revoked);
    assert_eq!(v.credential.reason.as_deref(), Some("shared_pass"));
    assert!(h.fraud_cases().await.is_empty(), "abuse, not a fraud case");
    h.audit().await;
}

/// Taps dated later than the backend's clock plus its tolerance are refused with their own
/// reason, from a validator and from a wallet; the same taps are settled once the clock has
/// passed them.
#[tokio::test]
async fn a_tap_from_the_future_is_refused() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300008", 100_000).await;
    let now = h.handle().engine().now();
    let (rec, entry) = w.nfc_tap(&v1, 1, 20_000, now + 2 * 3600);
    let (s, v) = h.upload_now(&v1.batch(vec![rec.clone()])).await;
    assert_eq!(s, StatusCode::OK);
    let b: mancard_api::BatchResponse = serde_json::from_value(v).unwrap();
    assert_eq!(statuses(&b.records), [TapStatus::Rejected]);
    assert_eq!(reasons(&b.records), ["from_the_future"]);
    let (s, v) = w.sync_now(&h, std::slice::from_ref(&entry)).await;
    assert_eq!(s, StatusCode::OK);
    let v: SyncResponse = serde_json::from_value(v).unwrap();
    assert_eq!(reasons(&v.taps), ["from_the_future"]);
    assert_eq!(
        verdict(&v, entry.proof.counter()).status,
        VerdictStatus::Rejected
    );
    assert_eq!(h.balance(&token).await, 100_000);
    // within the tolerance (a validator clock a little fast): settled
    let (near, _) = w.nfc_tap(&v1, 2, 20_000, now + 200);
    let (_, v) = h.upload_now(&v1.batch(vec![near])).await;
    let b: mancard_api::BatchResponse = serde_json::from_value(v).unwrap();
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    // the future tap, once its time has come
    h.clock_past(now + 2 * 3600);
    let b = h.upload_ok(&v1.batch(vec![rec])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

/// A tap the wallet reported whose challenge its validator then reports torn (the gate stayed
/// closed) is refunded; reported torn first, it is never charged; a validator's record of a
/// challenge wins over a torn record.
#[tokio::test]
async fn a_torn_challenge_is_never_charged() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300009", 100_000).await;
    let base = ride_base(w.server_time);
    let torn_batch = |recs: &[&mancard_protocol::TapRecord]| {
        let torn = recs
            .iter()
            .map(|r| {
                let TapProof::Nfc { challenge, .. } = &r.proof else {
                    panic!("NFC");
                };
                TornRecord {
                    time: r.time + 120,
                    challenge: challenge.clone(),
                }
            })
            .collect();
        let (k, _) = SigningKey::generate().unwrap();
        let mut id = [0u8; 16];
        id.copy_from_slice(&k.public_key().as_bytes()[1..17]);
        BatchBody {
            validator_id: v1.id,
            batch_id: id,
            created_at: base,
            records: Vec::new(),
            torn,
        }
        .sign(&v1.key)
        .unwrap()
        .encode()
    };
    // wallet first, then the torn record: refunded
    let (r0, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let v = w.sync_ok(&h, &[e0]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(h.balance(&token).await, 80_000);
    h.clock_past(base + 200);
    let b = h.upload_ok(&torn_batch(&[&r0])).await;
    assert_eq!(b.torn, 1);
    assert_eq!(h.balance(&token).await, 100_000, "refunded");
    let v = w.sync_ok(&h, &[]).await;
    let x = verdict(&v, r0.counter);
    assert_eq!(
        (x.status, x.charged, x.reason.as_deref()),
        (VerdictStatus::NotCharged, 0, Some("torn_gate_closed"))
    );
    // torn first, then the wallet: never charged
    let (r1, e1) = w.nfc_tap(&v1, 2, 20_000, base + 3600);
    h.clock_past(base + 3800);
    h.upload_ok(&torn_batch(&[&r1])).await;
    let v = w.sync_ok(&h, &[e1]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::NotCharged]);
    assert_eq!(h.balance(&token).await, 100_000);
    // a torn record forged by another validator for validator 1's challenge is ignored
    let (r2, e2) = w.nfc_tap(&v1, 1, 20_000, base + 7200);
    w.sync_ok(&h, &[e2]).await;
    let v2 = Validator::register(&h, 2).await;
    let TapProof::Nfc { challenge, .. } = &r2.proof else {
        panic!("NFC");
    };
    let forged = BatchBody {
        validator_id: v2.id,
        batch_id: [9; 16],
        created_at: base,
        records: Vec::new(),
        torn: vec![TornRecord {
            time: base + 7300,
            challenge: challenge.clone(),
        }],
    }
    .sign(&v2.key)
    .unwrap()
    .encode();
    let b = h.upload_ok(&forged).await;
    assert_eq!(b.torn, 0);
    assert_eq!(h.balance(&token).await, 80_000);
    // the validator's own record of a torn challenge (a dishonest operator uploading both):
    // the phone's signature reached the gate, so it is charged
    let b = h.upload_ok(&v1.batch(vec![r1])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.balance(&token).await, 60_000);
    h.audit().await;
}

/// A modified app takes a counter first with a pass it never shows (stored pending, free),
/// then rides on NFC with the same counter: the validator's record of the ride replaces the
/// wallet-only pass, is charged, and the two signed bodies open a case.
#[tokio::test]
async fn a_counter_taken_first_by_an_unscanned_pass_still_pays_for_the_ride() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300011", 100_000).await;
    let base = ride_base(w.server_time);
    let prev = w.prev;
    let pass = w.pass(base, 60, 30_000);
    let counter = pass.counter();
    let entry = w.log(base, 30_000, pass);
    let v = w.sync_ok(&h, &[entry]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Pending]);
    // the ride, signed with the same counter after the same link
    w.prev = prev;
    let (ride, _) = w.nfc_tap_with_counter(&v1, 1, 20_000, base + 600, counter);
    let b = h.upload_ok(&v1.batch(vec![ride])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Fraud]);
    assert_eq!(reasons(&b.records), ["duplicate_counter"]);
    assert_eq!(h.balance(&token).await, 80_000, "the ride is charged");
    let v = w.sync_ok(&h, &[]).await;
    let x = verdict(&v, counter);
    assert_eq!((x.status, x.charged), (VerdictStatus::Fraud, 20_000));
    h.audit().await;
}

/// A torn challenge the validator re-sends to the next card: a modified phone answers it with
/// its own key and the gate opens for it. The torn card's owner, whose wallet reports its own
/// signature of that challenge, is not charged for a ride it did not take.
#[tokio::test]
async fn a_torn_challenge_answered_by_another_card_is_not_charged_to_its_owner() {
    let h = Harness::start().await;
    let (token_x, mut x, v1, _) = rider(&h, "+989121300012", 100_000).await;
    let token_y = h.login("+989121300013").await;
    h.topup(&token_y, 100_000, "t").await;
    let (mut y, _) = Wallet::provision(&h, &token_y).await;
    let base = ride_base(x.server_time);
    let answered_by_y = |y: &mut Wallet, r: &mancard_protocol::TapRecord| {
        let TapProof::Nfc { challenge, .. } = &r.proof else {
            panic!("NFC");
        };
        let counter = y.next_counter;
        y.next_counter += 1;
        let a = TapAuthorization::sign(
            &y.tap,
            &challenge.body,
            &y.cert_hash,
            counter,
            r.fare,
            &y.prev,
        )
        .unwrap();
        mancard_protocol::TapRecord {
            pseudonym: y.cert.body.pseudonym,
            counter,
            proof: TapProof::Nfc {
                challenge: challenge.clone(),
                authorization: a,
            },
            ..r.clone()
        }
    };
    // the validator's record first, then X's wallet: X is not charged
    let (rx, ex) = x.nfc_tap(&v1, 1, 20_000, base);
    let ry = answered_by_y(&mut y, &rx);
    let b = h.upload_ok(&v1.batch(vec![ry])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    let v = x.sync_ok(&h, &[ex]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::NotCharged]);
    assert_eq!(reasons(&v.taps), ["gate_opened_for_another_card"]);
    // X's wallet first, then the validator's record of Y's answer: X is refunded
    let (rx, ex) = x.nfc_tap(&v1, 2, 20_000, base + 3600);
    let v = x.sync_ok(&h, &[ex]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(h.balance(&token_x).await, 80_000);
    let ry = answered_by_y(&mut y, &rx);
    h.upload_ok(&v1.batch(vec![ry])).await;
    assert_eq!(h.balance(&token_x).await, 100_000, "refunded");
    assert_eq!(
        h.balance(&token_y).await,
        60_000,
        "the card the gate opened for pays"
    );
    h.audit().await;
}
