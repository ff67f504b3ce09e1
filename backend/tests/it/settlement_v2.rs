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
    ChallengeBody, Pseudonym, SigningKey, TapAuthorization, TapProof, WalletLogEntry,
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
    let (token, w) = Wallet::funded(h, phone, balance).await;
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
    let (token, mut honest) = Wallet::funded(&h, "+989121300010", 100_000).await;
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
    let (_, mut b) = Wallet::funded(&h, "+989121300006", 50_000).await;
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
    let torn_batch = |recs: &[&mancard_protocol::TapRecord]| v1.torn_batch(recs, 120);
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
    let forged = v2.torn_batch(&[&r2], 100);
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

/// Card `y`'s answer to the challenge of `r` (another card's tap): the validator's record of
/// it, signed with `y`'s next counter after its chain's head.
fn answered_by(y: &mut Wallet, r: &mancard_protocol::TapRecord) -> mancard_protocol::TapRecord {
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
}

/// A torn challenge the validator re-sends to the next card: a modified phone answers it with
/// its own key and the gate opens for it. The torn card's owner, whose wallet reports its own
/// signature of that challenge, is not charged for a ride it did not take.
#[tokio::test]
async fn a_torn_challenge_answered_by_another_card_is_not_charged_to_its_owner() {
    let h = Harness::start().await;
    let (token_x, mut x, v1, _) = rider(&h, "+989121300012", 100_000).await;
    let (token_y, mut y) = Wallet::funded(&h, "+989121300013", 100_000).await;
    let base = ride_base(x.server_time);
    // the validator's record first, then X's wallet: X is not charged
    let (rx, ex) = x.nfc_tap(&v1, 1, 20_000, base);
    let ry = answered_by(&mut y, &rx);
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
    let ry = answered_by(&mut y, &rx);
    h.upload_ok(&v1.batch(vec![ry])).await;
    assert_eq!(h.balance(&token_x).await, 100_000, "refunded");
    assert_eq!(
        h.balance(&token_y).await,
        60_000,
        "the card the gate opened for pays"
    );
    h.audit().await;
}

/// The same torn challenge, with both wallets reporting before the validator: the validator's
/// record of Y's answer is then a duplicate of Y's own report, and X must still be refunded,
/// as when the validator's record comes first (the charge does not depend on arrival order).
#[tokio::test]
async fn another_card_s_answer_reported_first_by_its_own_wallet_still_refunds_the_owner() {
    let h = Harness::start().await;
    let (token_x, mut x, v1, _) = rider(&h, "+989121300014", 100_000).await;
    let (token_y, mut y) = Wallet::funded(&h, "+989121300015", 100_000).await;
    let base = ride_base(x.server_time);
    let (rx, ex) = x.nfc_tap(&v1, 1, 20_000, base);
    let ry = answered_by(&mut y, &rx);
    let ey = y.log(base, ry.fare, ry.proof.clone());
    x.sync_ok(&h, &[ex]).await;
    let v = y.sync_ok(&h, &[ey]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(h.balance(&token_x).await, 80_000, "no validator record yet");
    let b = h.upload_ok(&v1.batch(vec![ry])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.balance(&token_x).await, 100_000, "refunded");
    assert_eq!(
        h.balance(&token_y).await,
        80_000,
        "the card the gate opened for pays"
    );
    let v = x.sync_ok(&h, &[]).await;
    let xv = verdict(&v, rx.counter);
    assert_eq!(
        (xv.status, xv.charged, xv.reason.as_deref()),
        (
            VerdictStatus::NotCharged,
            0,
            Some("gate_opened_for_another_card")
        )
    );
    h.audit().await;
}

/// The validator's record of a tap its wallet reported first names the validator for good: Y's
/// wallet reports its answer to X's torn challenge, then the validator's batch records it
/// (a duplicate; the validator is kept and written with the batch's taps), and only then
/// does X's wallet report its own answer: X is not charged, the gate opened for Y. Fails if
/// the batch's record of the validator is not written (X would pay for Y's ride).
#[tokio::test]
async fn a_validator_s_record_of_a_tap_its_wallet_reported_first_is_kept() {
    let h = Harness::start().await;
    let (token_x, mut x, v1, _) = rider(&h, "+989121300016", 100_000).await;
    let (token_y, mut y) = Wallet::funded(&h, "+989121300017", 100_000).await;
    let base = ride_base(x.server_time);
    let (rx, ex) = x.nfc_tap(&v1, 1, 20_000, base);
    let ry = answered_by(&mut y, &rx);
    let ey = y.log(base, ry.fare, ry.proof.clone());
    y.sync_ok(&h, &[ey]).await;
    // in one batch with a tap of the validator's own, so that the record is kept while a
    // new tap is kept too
    let (other, _) = y.nfc_tap(&v1, 2, 20_000, base + 3600);
    let b = h.upload_ok(&v1.batch(vec![ry, other])).await;
    assert_eq!(
        statuses(&b.records),
        [TapStatus::Duplicate, TapStatus::Settled]
    );
    let v = x.sync_ok(&h, &[ex]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::NotCharged]);
    assert_eq!(reasons(&v.taps), ["gate_opened_for_another_card"]);
    assert_eq!(h.balance(&token_x).await, 100_000);
    assert_eq!(
        h.balance(&token_y).await,
        100_000 - 2 * 20_000,
        "Y pays both rides"
    );
    h.audit().await;
}

/// A pass over the certificate's allowance (a modified app) reported by its wallet first is
/// pending with a fraud case; the validator's scan then charges it, and it stays a fraud tap
/// in the rider's and the operator's view (the charge changes, not the finding).
#[tokio::test]
async fn a_fraud_pass_confirmed_by_a_validator_stays_a_fraud_tap() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300016", 200_000).await;
    let base = ride_base(w.server_time);
    let over = w.cert.body.allowance.max_amount + 1;
    let (rec, entry) = w.qr_tap(v1.id, 1, 20_000, base, over);
    let v = w.sync_ok(&h, &[entry]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Pending]);
    assert_eq!(h.fraud_cases().await.len(), 1, "a case for the pass");
    let x = verdict(&v, rec.counter);
    assert_eq!(x.reason.as_deref(), Some("over_allowance"));
    assert_eq!(h.balance(&token).await, 200_000, "pending: not scanned yet");
    let b = h.upload_ok(&v1.batch(vec![rec.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.balance(&token).await, 180_000, "scanned: charged");
    let v = w.sync_ok(&h, &[]).await;
    let x = verdict(&v, rec.counter);
    assert_eq!(
        (x.status, x.charged, x.reason.as_deref()),
        (VerdictStatus::Fraud, 20_000, Some("over_allowance"))
    );
    assert_eq!(h.fraud_cases().await.len(), 1);
    h.audit().await;
}

/// The same, with Y's phone forked: its wallet reports one body for the counter, the validator
/// records another (same key, same counter). The validator's record replaces the wallet-only
/// one and opens a case; the gate opened for Y, so X is still refunded.
#[tokio::test]
async fn a_forked_answer_replacing_its_wallet_report_still_refunds_the_owner() {
    let h = Harness::start().await;
    let (token_x, mut x, v1, _) = rider(&h, "+989121300017", 100_000).await;
    let (token_y, mut y) = Wallet::funded(&h, "+989121300018", 100_000).await;
    let base = ride_base(x.server_time);
    let (rx, ex) = x.nfc_tap(&v1, 1, 20_000, base);
    let reported = answered_by(&mut y, &rx);
    let ey = y.log(base, reported.fare, reported.proof.clone());
    // the fork: the same counter again, after another chain link
    y.next_counter -= 1;
    y.prev = [7; 32];
    let recorded = answered_by(&mut y, &rx);
    assert_eq!(recorded.counter, reported.counter);
    x.sync_ok(&h, &[ex]).await;
    y.sync_ok(&h, &[ey]).await;
    assert_eq!(h.balance(&token_x).await, 80_000, "no validator record yet");
    let b = h.upload_ok(&v1.batch(vec![recorded])).await;
    assert_eq!(reasons(&b.records), ["duplicate_counter"]);
    assert_eq!(h.balance(&token_x).await, 100_000, "refunded");
    assert_eq!(
        h.balance(&token_y).await,
        80_000,
        "the card the gate opened for pays"
    );
    h.audit().await;
}

/// A modified app spends a counter on an NFC answer it reports only itself, then shows a pass
/// signed with the same counter at a validator: the validator's record of the pass replaces
/// the wallet-only tap (a proven fork, a case), and the certificate's running total of NFC
/// authorizations no longer counts the replaced answer. Fails the audit when the total keeps
/// a row for a certificate whose NFC taps are all gone; and, with an allowance of 30,000, an
/// honest NFC ride later in the same batch must not be found over the allowance (the total
/// read ahead for the batch still counted the replaced answer).
#[tokio::test]
async fn an_nfc_answer_replaced_by_a_pass_leaves_its_certificate_s_total() {
    let h = Harness::start().await;
    let (token, mut w, v1, _) = rider(&h, "+989121300019", 30_000).await;
    assert_eq!(w.cert.body.allowance.max_amount, 30_000);
    let base = ride_base(w.server_time);
    let prev = w.prev;
    let (nfc, entry) = w.nfc_tap(&v1, 1, 20_000, base);
    w.sync_ok(&h, &[entry]).await;
    assert_eq!(h.balance(&token).await, 10_000);
    // the same counter again, after the same link, as a pass
    w.prev = prev;
    w.next_counter = nfc.counter;
    let (pass, _) = w.qr_tap(v1.id, 1, 20_000, base + 600, 30_000);
    assert_eq!(pass.counter, nfc.counter);
    let (later, _) = w.nfc_tap(&v1, 10, 20_000, base + 3 * 3600);
    let b = h.upload_ok(&v1.batch(vec![pass, later])).await;
    assert_eq!(reasons(&b.records), ["duplicate_counter", ""]);
    assert_eq!(statuses(&b.records)[1], TapStatus::Settled);
    assert_eq!(
        h.balance(&token).await,
        -10_000,
        "two rides, each charged once"
    );
    h.audit().await;
}

/// Taps over the certificate's allowance (a cloned or stolen tap key) keep their fraud reason
/// when their charge goes: one's challenge is reported torn, another card answered the other's
/// at the gate. The rider and the operator still see the finding, not only "not charged".
#[tokio::test]
async fn a_fraud_tap_whose_charge_goes_keeps_its_fraud_reason() {
    let h = Harness::start().await;
    let (_, mut x, v1, _) = rider(&h, "+989121300020", 100_000).await;
    let (_, mut y) = Wallet::funded(&h, "+989121300021", 100_000).await;
    let base = ride_base(x.server_time);
    // two taps more than the allowance covers, reported by the wallet only
    let n = x.cert.body.allowance.max_amount / 20_000 + 2;
    let (taps, entries): (Vec<_>, Vec<_>) = (0..n)
        .map(|k| x.nfc_tap(&v1, 1, 20_000, base + k * 7_200))
        .unzip();
    let v = x.sync_ok(&h, &entries).await;
    let over: Vec<&mancard_protocol::TapRecord> = taps
        .iter()
        .zip(&v.taps)
        .filter(|(_, r)| r.reason.as_deref() == Some("over_allowance"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(over.len(), 2, "{:?}", v.taps);
    assert_eq!(h.upload_ok(&v1.torn_batch(&over[..1], 10)).await.torn, 1);
    let answer = answered_by(&mut y, over[1]);
    h.upload_ok(&v1.batch(vec![answer])).await;
    let v = x.sync_ok(&h, &[]).await;
    for t in over {
        let got = verdict(&v, t.counter);
        assert_eq!(
            (got.status, got.charged, got.reason.as_deref()),
            (VerdictStatus::NotCharged, 0, Some("over_allowance"))
        );
    }
    h.audit().await;
}
