//! Fraud cases after they are opened (issue #13, rule 6): a case keeps its signed evidence,
//! freezes the account's issuance (top-ups are still credited) until an operator resolves it
//! through the admin API; `dismissed` lifts the device's revocation, `confirmed` keeps it.

use mancard_api::admin::{
    FraudCaseDetail, FraudCaseStatus, FraudResolution, ResolveFraudRequest, ResolveFraudResponse,
};
use mancard_api::endpoints::{
    ACCOUNT, ADMIN_FRAUD_CASE, ADMIN_FRAUD_CASES, ADMIN_RESOLVE_FRAUD, PROVISION, REPLENISH,
};
use mancard_api::{FraudCase, FraudKind, ProblemCode, TapStatus, TopupStatus};
use mancard_backend::features::fraud::{decode_evidence, describe_evidence};
use mancard_protocol::provision::ProvisionPurpose;
use mancard_protocol::{Pseudonym, SigningKey, TapRecord};
use mancard_testkit::backend::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The wallet's next `n` taps at `v1`, and a clone of each (same tap key, same counter) at
/// `v2` a minute later: `n` pairs of different signed taps with one counter.
fn clone_taps(w: &mut Wallet, v1: &Validator, v2: &Validator, n: u32) -> [Vec<TapRecord>; 2] {
    let t = w.server_time + 10;
    let mut genuine = Vec::new();
    let mut clones = Vec::new();
    for i in 0..n {
        let at = t + i64::from(i) * 120;
        let (r, _) = w.nfc_tap(v1, 1, 20_000, at);
        let (c, _) = w.nfc_tap_with_counter(v2, 2, 20_000, at + 60, r.counter);
        genuine.push(r);
        clones.push(c);
    }
    [genuine, clones]
}

/// Uploads the genuine taps, then their clones: one `duplicate_counter` case per clone.
async fn open_cases(h: &Harness, w: &mut Wallet, n: u32) -> [Vec<TapRecord>; 2] {
    let v1 = Validator::register(h, 1).await;
    let v2 = Validator::register(h, 2).await;
    let [genuine, clones] = clone_taps(w, &v1, &v2, n);
    let b = h.upload_ok(&v1.batch(genuine.clone())).await;
    assert!(
        b.records.iter().all(|r| r.status == TapStatus::Settled),
        "{b:?}"
    );
    let b = h.upload_ok(&v2.batch(clones.clone())).await;
    assert!(
        b.records.iter().all(|r| r.status == TapStatus::Fraud),
        "{b:?}"
    );
    [genuine, clones]
}

async fn cases(h: &Harness, status: &str) -> Vec<FraudCase> {
    let path = format!("{}?status={status}", ADMIN_FRAUD_CASES.path);
    h.get_ok(&path, Some(ADMIN)).await
}

async fn resolve(h: &Harness, id: i64, resolution: FraudResolution) -> (StatusCode, Value) {
    let req = ResolveFraudRequest {
        resolution,
        note: "checked the two taps with the rider".into(),
        operator: "ops-sara".into(),
    };
    h.admin_post(&ADMIN_RESOLVE_FRAUD.path_with(&id.to_string()), &req)
        .await
}

async fn resolve_ok(h: &Harness, id: i64, resolution: FraudResolution) -> ResolveFraudResponse {
    let (s, v) = resolve(h, id, resolution).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    serde_json::from_value(v).unwrap()
}

/// A provisioning (a fresh binding key) or a replenishment of `w`'s device: the raw answer.
async fn issue(h: &Harness, w: &Wallet, purpose: ProvisionPurpose) -> (StatusCode, Value) {
    let (tap, _) = SigningKey::generate().unwrap();
    let (fresh, _) = SigningKey::generate().unwrap();
    let (binding, path) = match purpose {
        ProvisionPurpose::Provision => (&fresh, PROVISION.path),
        ProvisionPurpose::Replenish => (&w.binding, REPLENISH.path),
    };
    // a new device logs in first (a bound session provisions only its own device)
    let token = match purpose {
        ProvisionPurpose::Provision => {
            let a: mancard_api::AccountResponse = h.get_ok(ACCOUNT.path, Some(&w.token)).await;
            h.login(&a.phone).await
        }
        ProvisionPurpose::Replenish => w.token.clone(),
    };
    let req = Wallet::credential_request(h, &token, binding, &tap, purpose).await;
    h.post(path, Some(&token), &req).await
}

fn assert_problem(got: &(StatusCode, Value), status: StatusCode, code: ProblemCode) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code.as_str(), "{}", got.1);
}

async fn is_denied(h: &Harness, pseudonym: &str) -> bool {
    h.config()
        .await
        .is_denied(&Pseudonym::from_hex(pseudonym).unwrap())
}

#[tokio::test]
async fn a_fraud_case_freezes_issuance_until_resolved() {
    let h = Harness::start().await;
    let token = h.login("+989120000201").await;
    h.topup(&token, 200_000, "t1").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let account_id = {
        let a: mancard_api::AccountResponse = h
            .get_ok(mancard_api::endpoints::ACCOUNT.path, Some(&token))
            .await;
        a.account_id
    };
    let [genuine, clones] = open_cases(&h, &mut w, 1).await;

    // the case: open, on the account, keeping both signed taps as its evidence
    let open = cases(&h, "open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let case = &open[0];
    assert_eq!(case.kind, FraudKind::DuplicateCounter);
    assert_eq!(case.status, FraudCaseStatus::Open);
    assert_eq!(case.account_id, account_id);
    assert_eq!(case.counter, Some(genuine[0].counter));
    assert_eq!(case.resolution, None);
    assert_eq!(h.fraud_cases().await, open, "open is the default");
    let d: FraudCaseDetail = h
        .get_ok(
            &ADMIN_FRAUD_CASE.path_with(&case.id.to_string()),
            Some(ADMIN),
        )
        .await;
    assert_eq!(&d.case, case);
    let evidence = hex::decode(&d.evidence).unwrap();
    let parts = decode_evidence(&evidence).unwrap();
    let proofs: Vec<_> = parts.iter().map(|p| p.proof().cloned()).collect();
    assert_eq!(
        proofs,
        [
            Some(genuine[0].proof.clone()),
            Some(clones[0].proof.clone())
        ],
        "the evidence is the two signed taps with one counter"
    );
    // what `mancard inspect` prints for it, and the backend's summary with signature checks
    let lines = describe_evidence(&evidence).unwrap();
    assert_eq!(lines[0], "fraud case evidence:");
    assert!(
        lines.contains(&"  part 1: tap proof (NFC)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"  part 2: tap proof (NFC)".to_string()),
        "{lines:?}"
    );
    for l in &lines {
        assert!(d.evidence_summary.contains(l), "{l} not in the summary");
    }
    let verified = d
        .evidence_summary
        .iter()
        .filter(|l| l.contains("verifies under certificate"))
        .count();
    assert_eq!(verified, 2, "{:?}", d.evidence_summary);

    // frozen: no new certificate, by provisioning or by replenishing
    assert!(is_denied(&h, &w.pseudonym).await);
    let frozen = issue(&h, &w, ProvisionPurpose::Provision).await;
    assert_problem(&frozen, StatusCode::FORBIDDEN, ProblemCode::AccountFrozen);
    let frozen = issue(&h, &w, ProvisionPurpose::Replenish).await;
    assert_problem(&frozen, StatusCode::FORBIDDEN, ProblemCode::AccountFrozen);
    // ... while a top-up is still credited
    assert_eq!(h.balance(&token).await, 180_000, "the genuine tap only");
    let t = h.topup_from(&w, 50_000, "t2").await;
    assert_eq!(t.status, TopupStatus::Credited);
    assert_eq!(h.balance(&token).await, 230_000);

    // dismissed: unfrozen, the device's revocation lifted (its pseudonym leaves the deny list)
    let r = resolve_ok(&h, case.id, FraudResolution::Dismissed).await;
    assert!(r.changed);
    assert!(!r.account_frozen);
    assert!(!r.device_revoked);
    assert_eq!(r.case.status, FraudCaseStatus::Resolved);
    assert_eq!(r.case.resolution, Some(FraudResolution::Dismissed));
    // the resolver is the authenticated operator, whatever name the body claims
    assert_eq!(r.case.resolved_by.as_deref(), Some(ADMIN_NAME));
    assert_eq!(
        r.case.note.as_deref(),
        Some("checked the two taps with the rider")
    );
    assert!(!is_denied(&h, &w.pseudonym).await);
    // the operator log names the resolver (written with the resolution)
    let log = h.handle().engine().operator_log_rows().unwrap();
    let row = log.iter().find(|r| r.action == "fraud.resolved").unwrap();
    assert_eq!(row.operator.as_deref(), Some(ADMIN_NAME));
    assert_eq!(row.target, format!("fraud case {}", case.id));
    assert!(row.detail.starts_with("dismissed"), "{}", row.detail);
    assert!(cases(&h, "open").await.is_empty());
    assert_eq!(cases(&h, "resolved").await, std::slice::from_ref(&r.case));
    assert_eq!(cases(&h, "all").await, std::slice::from_ref(&r.case));

    // issuance works again: the same device replenishes, a new device provisions
    let c = w.replenish(&h).await;
    assert_eq!(c.balance, 230_000);
    let new_phone = h.login("+989120000201").await;
    let (w2, _) = Wallet::provision(&h, &new_phone).await;
    assert_ne!(w2.pseudonym, w.pseudonym);
    h.audit().await;
}

#[tokio::test]
async fn a_confirmed_case_keeps_the_device_revoked_and_every_case_must_be_resolved() {
    let h = Harness::start().await;
    let token = h.login("+989120000202").await;
    h.topup(&token, 200_000, "t1").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    open_cases(&h, &mut w, 2).await;
    let open = cases(&h, "open").await;
    assert_eq!(open.len(), 2, "{open:?}");

    // one of two dismissed: still frozen, and the other case keeps the device revoked
    let r = resolve_ok(&h, open[0].id, FraudResolution::Dismissed).await;
    assert!(r.changed);
    assert!(r.account_frozen);
    assert!(r.device_revoked);
    assert!(is_denied(&h, &w.pseudonym).await);
    let frozen = issue(&h, &w, ProvisionPurpose::Provision).await;
    assert_problem(&frozen, StatusCode::FORBIDDEN, ProblemCode::AccountFrozen);

    // the other confirmed: unfrozen, the device stays revoked; the rider provisions a new one
    let r = resolve_ok(&h, open[1].id, FraudResolution::Confirmed).await;
    assert!(r.changed);
    assert!(!r.account_frozen);
    assert!(r.device_revoked);
    assert!(is_denied(&h, &w.pseudonym).await);
    let revoked = issue(&h, &w, ProvisionPurpose::Replenish).await;
    assert_problem(
        &revoked,
        StatusCode::CONFLICT,
        ProblemCode::CredentialRevoked,
    );
    let new_phone = h.login("+989120000202").await;
    let (w2, c) = Wallet::provision(&h, &new_phone).await;
    assert_eq!(c.balance, 160_000, "both genuine taps charged, no clone");
    assert!(!is_denied(&h, &w2.pseudonym).await);
    assert_eq!(cases(&h, "resolved").await.len(), 2);
    h.audit().await;
}

#[tokio::test]
async fn the_fraud_admin_api_answers_typed_problems_and_resolving_is_idempotent() {
    let h = Harness::start().await;
    let token = h.login("+989120000203").await;
    h.topup(&token, 100_000, "t1").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    open_cases(&h, &mut w, 1).await;
    let id = cases(&h, "open").await[0].id;
    let one = |id: &str| ADMIN_FRAUD_CASE.path_with(id);
    let resolve_path = |id: &str| ADMIN_RESOLVE_FRAUD.path_with(id);

    // unknown ids: 404 unknown_fraud_case, for a number and for anything else
    for bad in ["9999", "x1"] {
        let got = h.get(&one(bad), Some(ADMIN)).await;
        assert_problem(&got, StatusCode::NOT_FOUND, ProblemCode::UnknownFraudCase);
    }
    let got = resolve(&h, 9999, FraudResolution::Dismissed).await;
    assert_problem(&got, StatusCode::NOT_FOUND, ProblemCode::UnknownFraudCase);
    // the admin token is required
    let got = h.get(&one(&id.to_string()), None).await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{}", got.1);
    let got = h
        .get(&one(&id.to_string()), Some("wrong-admin-token-000000"))
        .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, ProblemCode::BadAdminToken);
    // a bad status filter
    let got = h
        .get(
            &format!("{}?status=closed", ADMIN_FRAUD_CASES.path),
            Some(ADMIN),
        )
        .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery);

    // bad bodies: not JSON (400), an unknown resolution or a missing field (422), an empty
    // operator or note (400 invalid_resolution); none resolves the case
    let raw = h
        .http
        .post(h.u(&resolve_path(&id.to_string())))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"resolution\":")
        .send()
        .await
        .unwrap();
    let got = decode(raw).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidJson);
    for body in [
        json!({"resolution": "maybe", "note": "n", "operator": "o"}),
        json!({"resolution": "dismissed", "operator": "o"}),
    ] {
        let got = h.admin_post(&resolve_path(&id.to_string()), &body).await;
        assert_problem(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidJson,
        );
    }
    // (the body's operator is ignored over HTTP: the credential names the resolver)
    for (note, operator) in [("", "o"), (" ", "o"), (&"n".repeat(501) as &str, "o")] {
        let body = json!({"resolution": "dismissed", "note": note, "operator": operator});
        let got = h.admin_post(&resolve_path(&id.to_string()), &body).await;
        assert_problem(
            &got,
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidResolution,
        );
    }
    assert_eq!(cases(&h, "open").await.len(), 1, "still open");

    // resolving twice the same way: the same answer, nothing changed; the other way: 409
    let first = resolve_ok(&h, id, FraudResolution::Confirmed).await;
    assert!(first.changed);
    let again = resolve_ok(&h, id, FraudResolution::Confirmed).await;
    assert!(!again.changed);
    assert_eq!(again.case, first.case, "the first resolution is kept");
    let got = resolve(&h, id, FraudResolution::Dismissed).await;
    assert_problem(&got, StatusCode::CONFLICT, ProblemCode::FraudCaseResolved);
    let d: FraudCaseDetail = h.get_ok(&one(&id.to_string()), Some(ADMIN)).await;
    assert_eq!(d.case.resolution, Some(FraudResolution::Confirmed));
    assert!(first.device_revoked);
}

#[tokio::test]
async fn a_forked_chain_keeps_both_signed_log_entries_as_evidence() {
    let h = Harness::start().await;
    let token = h.login("+989120000204").await;
    h.topup(&token, 100_000, "t1").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let t = w.server_time - 200;
    let (seq0, prev0) = (w.seq, w.prev);
    let (_, e0) = w.nfc_tap(&v1, 1, 20_000, t);
    w.sync_ok(&h, std::slice::from_ref(&e0)).await;
    // the same tap key signs another tap after the same predecessor, at the same seq
    (w.seq, w.prev) = (seq0, prev0);
    let (_, fork) = w.nfc_tap(&v1, 2, 20_000, t + 100);
    w.sync_ok(&h, std::slice::from_ref(&fork)).await;
    let open = cases(&h, "open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, FraudKind::BrokenChain);
    let d: FraudCaseDetail = h
        .get_ok(
            &ADMIN_FRAUD_CASE.path_with(&open[0].id.to_string()),
            Some(ADMIN),
        )
        .await;
    let parts = decode_evidence(&hex::decode(&d.evidence).unwrap()).unwrap();
    let kinds: Vec<String> = parts.iter().map(|p| p.kind()).collect();
    assert_eq!(kinds, ["wallet log entry", "wallet log entry"]);
    let proofs: Vec<_> = parts.iter().map(|p| p.proof().cloned()).collect();
    assert_eq!(proofs, [Some(e0.proof), Some(fork.proof)]);
    let frozen = issue(&h, &w, ProvisionPurpose::Provision).await;
    assert_problem(&frozen, StatusCode::FORBIDDEN, ProblemCode::AccountFrozen);
}

/// The fraud event of a case reported again (the clone's record re-sent in a new batch, as a
/// validator rebuilding its batches from its journal may, or another body signed for the same
/// counter) opens no second case and does not revoke again what an operator's dismissal
/// lifted: the event is the device, the kind and the counter, not the evidence's bytes.
#[tokio::test]
async fn evidence_reported_again_opens_no_second_case() {
    let h = Harness::start().await;
    let token = h.login("+989120000219").await;
    h.topup(&token, 200_000, "t1").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let v2 = Validator::register(&h, 2).await;
    let [genuine, clones] = clone_taps(&mut w, &v1, &v2, 1);
    h.upload_ok(&v1.batch(genuine)).await;
    let b = h.upload_ok(&v2.batch(clones.clone())).await;
    assert_eq!(b.records[0].status, TapStatus::Fraud, "{b:?}");
    let open = cases(&h, "open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let r = resolve_ok(&h, open[0].id, FraudResolution::Dismissed).await;
    assert!(!r.device_revoked);
    assert!(!is_denied(&h, &w.pseudonym).await);

    // the same clone record in a new batch: still fraud evidence, but the same case's
    let again = h.upload_ok(&v2.batch(clones.clone())).await;
    assert!(!again.duplicate_batch);
    assert_eq!(again.records[0].status, TapStatus::Fraud, "{again:?}");
    assert_eq!(cases(&h, "all").await.len(), 1, "no second case");
    assert!(cases(&h, "open").await.is_empty());
    assert!(!is_denied(&h, &w.pseudonym).await, "the dismissal stands");
    assert_eq!(h.balance(&token).await, 180_000, "the genuine tap only");

    // a third body signed for the same counter (another time): the same event
    let counter = clones[0].counter;
    let (third, _) = w.nfc_tap_with_counter(&v2, 2, 20_000, w.server_time + 200, counter);
    let b = h.upload_ok(&v2.batch(vec![third])).await;
    assert_eq!(b.records[0].status, TapStatus::Fraud, "{b:?}");
    assert_eq!(cases(&h, "all").await.len(), 1, "no second case");
    assert!(!is_denied(&h, &w.pseudonym).await, "the dismissal stands");
    assert_eq!(h.balance(&token).await, 180_000, "the genuine tap only");
    h.audit().await;
}
