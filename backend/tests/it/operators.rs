//! Named operators with scopes, the two-person rule on large adjustments, and the append-only,
//! hash-chained operator log. The adversaries: an outsider with no or a guessed token, a
//! rider's session token, an operator acting beyond their scopes, one operator trying to move
//! a large amount alone (directly, by approving their own request, or by splitting it), and
//! someone who edits the database file to hide what an operator did.

use mancard_api::endpoints::{
    ACCOUNT, ADMIN_ADJUSTMENTS, ADMIN_APPROVE_ADJUSTMENT, ADMIN_AUDIT, ADMIN_AUDIT_LOG,
    ADMIN_DENY_VALIDATOR, ADMIN_FRAUD_CASE, ADMIN_FRAUD_CASES, ADMIN_ISSUER_KEYS,
    ADMIN_PENDING_ADJUSTMENTS, ADMIN_REJECT_ADJUSTMENT, ADMIN_RESOLVE_FRAUD, ADMIN_ROTATE_KEYS,
    ADMIN_VALIDATORS,
};
use mancard_api::{
    AccountResponse, Adjustment, AdjustmentRequest, AdjustmentResponse, AdjustmentStatus,
    DecideAdjustmentResponse, KeysResponse, LedgerKind, OperatorLogResponse, ProblemCode,
};
use mancard_backend::operators::DEFAULT_SECOND_APPROVAL_ABOVE;
use mancard_testkit::backend::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn assert_problem(got: &(StatusCode, Value), status: StatusCode, code: ProblemCode) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code.as_str(), "{}", got.1);
}

fn adjustment(account_id: i64, amount: i64, key: &str) -> AdjustmentRequest {
    AdjustmentRequest {
        account_id,
        amount,
        idempotency_key: key.into(),
        note: format!("goodwill credit {key}"),
    }
}

/// A rider's session token and account id.
async fn rider(h: &Harness, phone: &str) -> (String, i64) {
    let token = h.login(phone).await;
    let a: AccountResponse = h.get_ok(ACCOUNT.path, Some(&token)).await;
    (token, a.account_id)
}

fn adjustment_entries(h: &Harness, account_id: i64) -> Vec<i64> {
    h.handle()
        .engine()
        .ledger(account_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == LedgerKind::Adjustment)
        .map(|e| e.amount)
        .collect()
}

async fn log(h: &Harness) -> OperatorLogResponse {
    h.get_ok(ADMIN_AUDIT_LOG.path, Some(READER)).await
}

async fn approve(h: &Harness, token: &str, id: i64) -> (StatusCode, Value) {
    let path = ADMIN_APPROVE_ADJUSTMENT.path_with(&id.to_string());
    h.post(&path, Some(token), &json!({"note": "checked the ticket"}))
        .await
}

async fn reject(h: &Harness, token: &str, id: i64, note: &str) -> (StatusCode, Value) {
    let path = ADMIN_REJECT_ADJUSTMENT.path_with(&id.to_string());
    h.post(&path, Some(token), &json!({ "note": note })).await
}

#[tokio::test]
async fn a_large_adjustment_needs_a_second_operator() {
    let h = Harness::start().await;
    let (token, account) = rider(&h, "+989121500001").await;
    let large = DEFAULT_SECOND_APPROVAL_ABOVE + 1;

    // the first operator's request waits: 202, nothing credited
    let pending: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large, "big-1"),
        )
        .await;
    assert_eq!(pending.status, AdjustmentStatus::Pending);
    assert_eq!(pending.requested_by, "ops-adjuster");
    assert_eq!(pending.ledger_entry_id, None);
    assert_eq!(h.balance(&token).await, 0);
    assert!(adjustment_entries(&h, account).is_empty());
    // the same request again: the same pending adjustment, still nothing credited
    let again: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large, "big-1"),
        )
        .await;
    assert_eq!(again.id, pending.id);
    // the key reused for another amount: a conflict
    let got = h
        .post(
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large + 1, "big-1"),
        )
        .await;
    assert_problem(&got, StatusCode::CONFLICT, ProblemCode::IdempotencyConflict);
    let listed: Vec<Adjustment> = h
        .get_ok(ADMIN_PENDING_ADJUSTMENTS.path, Some(APPROVER))
        .await;
    assert_eq!(listed, vec![pending.clone()]);

    // the requester cannot approve it, nor can an operator without `adjust`
    let got = approve(&h, ADJUSTER, pending.id).await;
    assert_problem(&got, StatusCode::FORBIDDEN, ProblemCode::SelfApproval);
    let got = approve(&h, READER, pending.id).await;
    assert_problem(&got, StatusCode::FORBIDDEN, ProblemCode::MissingScope);
    let got = approve(
        &h,
        "mco_not-an-operator-0123456789abcdef0123456789",
        pending.id,
    )
    .await;
    assert_problem(&got, StatusCode::UNAUTHORIZED, ProblemCode::BadAdminToken);
    assert_eq!(
        h.balance(&token).await,
        0,
        "nothing credited before approval"
    );

    // a second operator approves: credited once
    let got = approve(&h, APPROVER, pending.id).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let r: DecideAdjustmentResponse = serde_json::from_value(got.1).unwrap();
    assert!(r.changed);
    assert_eq!(r.adjustment.status, AdjustmentStatus::Approved);
    assert_eq!(r.adjustment.decided_by.as_deref(), Some("ops-approver"));
    assert!(r.adjustment.ledger_entry_id.is_some());
    assert_eq!(r.balance, large);
    // approving again (anyone but the requester) is idempotent
    for t in [APPROVER, ADMIN] {
        let got = approve(&h, t, pending.id).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
        let r: DecideAdjustmentResponse = serde_json::from_value(got.1).unwrap();
        assert!(!r.changed);
        assert_eq!(r.adjustment.decided_by.as_deref(), Some("ops-approver"));
    }
    // the request repeated after approval: in the ledger already, nothing appended
    let r: AdjustmentResponse = h
        .post_ok(
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large, "big-1"),
        )
        .await;
    assert!(!r.created);
    // an approved adjustment cannot be rejected
    let got = reject(&h, APPROVER, pending.id, "too late").await;
    assert_problem(&got, StatusCode::CONFLICT, ProblemCode::AdjustmentDecided);
    assert_eq!(adjustment_entries(&h, account), vec![large]);
    assert_eq!(h.balance(&token).await, large);
    let listed: Vec<Adjustment> = h.get_ok(ADMIN_PENDING_ADJUSTMENTS.path, Some(READER)).await;
    assert!(listed.is_empty());

    // a small one is applied at once by one operator
    let r: AdjustmentResponse = h
        .post_ok(
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, -5_000, "small-1"),
        )
        .await;
    assert!(r.created);
    assert_eq!(r.balance, large - 5_000);
    assert!(h.audit().await.ok);
}

#[tokio::test]
async fn a_pending_adjustment_can_be_rejected_and_is_never_credited() {
    let h = Harness::start().await;
    let (token, account) = rider(&h, "+989121500002").await;
    let large = -(DEFAULT_SECOND_APPROVAL_ABOVE * 3);
    let a: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADMIN),
            &adjustment(account, large, "debit-1"),
        )
        .await;
    // a rejection needs a reason; a bad one changes nothing
    let got = reject(&h, APPROVER, a.id, " ").await;
    assert_problem(
        &got,
        StatusCode::BAD_REQUEST,
        ProblemCode::InvalidAdjustment,
    );
    for bad in ["999", "x"] {
        let path = ADMIN_REJECT_ADJUSTMENT.path_with(bad);
        let got = h.post(&path, Some(APPROVER), &json!({"note": "n"})).await;
        assert_problem(&got, StatusCode::NOT_FOUND, ProblemCode::UnknownAdjustment);
    }
    let got = reject(&h, APPROVER, a.id, "no ticket explains this debit").await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let r: DecideAdjustmentResponse = serde_json::from_value(got.1).unwrap();
    assert!(r.changed);
    assert_eq!(r.adjustment.status, AdjustmentStatus::Rejected);
    let got = reject(&h, APPROVER, a.id, "again").await;
    let r: DecideAdjustmentResponse = serde_json::from_value(got.1).unwrap();
    assert!(!r.changed, "rejecting twice changes nothing");
    // a rejected adjustment cannot be approved afterwards, nor re-requested under its key
    let got = approve(&h, APPROVER, a.id).await;
    assert_problem(&got, StatusCode::CONFLICT, ProblemCode::AdjustmentDecided);
    let again: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADMIN),
            &adjustment(account, large, "debit-1"),
        )
        .await;
    assert_eq!(again.status, AdjustmentStatus::Rejected);
    // the requester may withdraw their own pending request
    let b: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, -large, "credit-2"),
        )
        .await;
    let got = reject(&h, ADJUSTER, b.id, "typed the wrong account").await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert!(adjustment_entries(&h, account).is_empty());
    assert_eq!(h.balance(&token).await, 0);
    assert!(h.audit().await.ok);
}

/// One operator cannot move a large amount alone by cutting it into adjustments under the
/// per-adjustment limit: beyond the daily single-approval limit every one waits.
#[tokio::test]
async fn splitting_a_large_adjustment_does_not_avoid_the_second_approval() {
    let h = Harness::start().await;
    let (token, account) = rider(&h, "+989121500003").await;
    let piece = DEFAULT_SECOND_APPROVAL_ABOVE; // at the limit: one operator suffices
    for i in 0..5 {
        let r: AdjustmentResponse = h
            .post_ok(
                ADMIN_ADJUSTMENTS.path,
                Some(ADJUSTER),
                &adjustment(account, piece, &format!("piece-{i}")),
            )
            .await;
        assert!(r.created);
    }
    // 5 × 10,000,000 = the daily limit: the sixth piece (and a tiny seventh) wait
    for (key, amount) in [("piece-5", piece), ("piece-6", 1)] {
        let p: Adjustment = h
            .post_as(
                StatusCode::ACCEPTED,
                ADMIN_ADJUSTMENTS.path,
                Some(ADJUSTER),
                &adjustment(account, amount, key),
            )
            .await;
        assert_eq!(p.status, AdjustmentStatus::Pending);
    }
    // debits count too (absolute amounts)
    let p: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, -1, "piece-7"),
        )
        .await;
    assert_eq!(p.status, AdjustmentStatus::Pending);
    assert_eq!(h.balance(&token).await, 5 * piece);
    // another operator's own allowance is separate
    let r: AdjustmentResponse = h
        .post_ok(
            ADMIN_ADJUSTMENTS.path,
            Some(APPROVER),
            &adjustment(account, 1, "other-operator"),
        )
        .await;
    assert!(r.created);
}

#[tokio::test]
async fn scopes_are_enforced_per_endpoint() {
    let h = Harness::start().await;
    let (session, account) = rider(&h, "+989121500004").await;
    let wrong = "mco_not-an-operator-0123456789abcdef0123456789";
    let adj = json!({"account_id": account, "amount": 1, "idempotency_key": "s", "note": "n"});
    let validator = json!({"validator_id": 4242, "public_key": "04"});
    let resolve = json!({"resolution": "dismissed", "note": "n"});
    let deny = json!({"validator_id": 1});
    let empty = json!({});
    let case = ADMIN_FRAUD_CASE.path_with("1");
    let resolve_path = ADMIN_RESOLVE_FRAUD.path_with("1");
    let approve_path = ADMIN_APPROVE_ADJUSTMENT.path_with("999");
    // (GET or POST body, path, the operators refused for lack of a scope)
    let table: Vec<(Option<&Value>, &str, Vec<&str>)> = vec![
        (None, ADMIN_AUDIT.path, vec![ADJUSTER, FRAUD_OPS, KEYS_OPS]),
        (
            None,
            ADMIN_AUDIT_LOG.path,
            vec![ADJUSTER, FRAUD_OPS, KEYS_OPS],
        ),
        (None, ADMIN_ISSUER_KEYS.path, vec![ADJUSTER, FRAUD_OPS]),
        (None, ADMIN_FRAUD_CASES.path, vec![ADJUSTER, KEYS_OPS]),
        (None, &case, vec![ADJUSTER, KEYS_OPS]),
        (
            None,
            ADMIN_PENDING_ADJUSTMENTS.path,
            vec![FRAUD_OPS, KEYS_OPS],
        ),
        (
            Some(&adj),
            ADMIN_ADJUSTMENTS.path,
            vec![READER, FRAUD_OPS, KEYS_OPS],
        ),
        (Some(&adj), &approve_path, vec![READER, FRAUD_OPS, KEYS_OPS]),
        (
            Some(&resolve),
            &resolve_path,
            vec![READER, ADJUSTER, APPROVER, KEYS_OPS],
        ),
        (
            Some(&validator),
            ADMIN_VALIDATORS.path,
            vec![READER, APPROVER, FRAUD_OPS],
        ),
        (
            Some(&deny),
            ADMIN_DENY_VALIDATOR.path,
            vec![READER, FRAUD_OPS],
        ),
        (
            Some(&empty),
            ADMIN_ROTATE_KEYS.path,
            vec![READER, ADJUSTER, FRAUD_OPS],
        ),
    ];
    let keys_before: KeysResponse = h.get_ok(ADMIN_ISSUER_KEYS.path, Some(READER)).await;
    for (body, path, refused) in &table {
        let h = &h;
        let call = |t: Option<&'static str>| async move {
            match body {
                None => h.get(path, t).await,
                Some(b) => h.post(path, t, b).await,
            }
        };
        // no credential, a wrong one, a rider's session: 401
        let got = call(None).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized);
        let got = call(Some(wrong)).await;
        assert_problem(&got, StatusCode::UNAUTHORIZED, ProblemCode::BadAdminToken);
        let got = match body {
            None => h.get(path, Some(&session)).await,
            Some(b) => h.post(path, Some(&session), b).await,
        };
        assert_problem(&got, StatusCode::UNAUTHORIZED, ProblemCode::BadAdminToken);
        // a valid operator without the scope: 403 missing_scope, before anything is looked at
        for t in refused {
            let got = call(Some(t)).await;
            assert_problem(&got, StatusCode::FORBIDDEN, ProblemCode::MissingScope);
        }
        // an operator with every scope gets past the check (the answer is the endpoint's own)
        let got = call(Some(ADMIN)).await;
        assert_ne!(got.1["code"], "missing_scope", "{path}: {}", got.1);
        assert!(
            got.0 != StatusCode::UNAUTHORIZED && got.0 != StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // the ones allowed by a narrow scope
    let _: KeysResponse = h.get_ok(ADMIN_ISSUER_KEYS.path, Some(KEYS_OPS)).await;
    let _: Vec<Value> = h.get_ok(ADMIN_FRAUD_CASES.path, Some(FRAUD_OPS)).await;
    let _: Vec<Value> = h.get_ok(ADMIN_FRAUD_CASES.path, Some(READER)).await;
    // the refusals changed nothing: one 1-rial adjustment (by ADMIN), one key rotation
    assert_eq!(adjustment_entries(&h, account), vec![1]);
    let keys_after: KeysResponse = h.get_ok(ADMIN_ISSUER_KEYS.path, Some(READER)).await;
    assert_eq!(keys_after.keys.len(), keys_before.keys.len() + 1);
}

#[tokio::test]
async fn every_admin_request_lands_in_the_operator_log() {
    let h = Harness::start().await;
    let (_, account) = rider(&h, "+989121500005").await;
    let large = DEFAULT_SECOND_APPROVAL_ABOVE * 2;
    let _ = h.get(ADMIN_AUDIT.path, None).await; // 401, no operator: not a row (anyone can)
    let _ = h.get(ADMIN_AUDIT.path, Some(ADJUSTER)).await; // 403 missing scope
    let p: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large, "logged"),
        )
        .await;
    let _ = approve(&h, ADJUSTER, p.id).await; // 403 self approval
    let _ = approve(&h, APPROVER, p.id).await; // 200
    let bad = h
        .post(
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &json!({"amount": 1}),
        )
        .await; // 422: an operator's malformed body is logged too
    assert!(bad.0.is_client_error());

    let l = log(&h).await;
    assert!(l.chain_ok);
    assert_eq!(l.total, l.rows.len() as i64);
    let rows: Vec<(Option<&str>, &str, &str, &str)> = l
        .rows
        .iter()
        .map(|r| {
            (
                r.operator.as_deref(),
                r.action.as_str(),
                r.target.as_str(),
                r.outcome.as_str(),
            )
        })
        .collect();
    let approve_target = format!(
        "POST {}",
        ADMIN_APPROVE_ADJUSTMENT.path_with(&p.id.to_string())
    );
    let adjust_target = format!("POST {}", ADMIN_ADJUSTMENTS.path);
    let audit_target = format!("GET {}", ADMIN_AUDIT.path);
    let adj = format!("adjustment {}", p.id);
    let expected: Vec<(Option<&str>, &str, &str, &str)> = vec![
        (Some("ops-adjuster"), "request", &audit_target, "403"),
        (Some("ops-adjuster"), "adjustment.requested", &adj, "ok"),
        (Some("ops-adjuster"), "request", &adjust_target, "202"),
        (Some("ops-adjuster"), "request", &approve_target, "403"),
        (Some("ops-approver"), "adjustment.approved", &adj, "ok"),
        (Some("ops-approver"), "request", &approve_target, "200"),
        (Some("ops-adjuster"), "request", &adjust_target, "422"),
    ];
    assert_eq!(rows, expected, "{:#?}", l.rows);
    assert!(
        l.rows[4].detail.contains(&format!("amount {large}")),
        "{}",
        l.rows[4].detail
    );
    assert!(
        l.rows[3].detail.contains("self_approval"),
        "{}",
        l.rows[3].detail
    );
    // reading the log is logged too (after this page was made)
    let l2 = log(&h).await;
    let last = l2.rows.last().unwrap();
    assert_eq!(
        (last.operator.as_deref(), last.target.as_str()),
        (
            Some("ops-reader"),
            format!("GET {}", ADMIN_AUDIT_LOG.path).as_str()
        )
    );
    // paging
    let page: OperatorLogResponse = h
        .get_ok(
            &format!("{}?after=2&limit=3", ADMIN_AUDIT_LOG.path),
            Some(READER),
        )
        .await;
    assert_eq!(
        page.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let got = h
        .get(&format!("{}?after=x", ADMIN_AUDIT_LOG.path), Some(READER))
        .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery);
}

/// No token (nor its digest) is in any answer, in the operator log or in the database files.
#[tokio::test]
async fn no_token_appears_in_any_log_or_answer() {
    let h = Harness::start().await;
    let (_, account) = rider(&h, "+989121500006").await;
    let wrong = "mco_guessed-token-0123456789abcdef0123456789ab";
    let mut answers = Vec::new();
    for (i, t) in [
        ADMIN, READER, ADJUSTER, APPROVER, FRAUD_OPS, KEYS_OPS, wrong,
    ]
    .into_iter()
    .enumerate()
    {
        answers.push(h.get(ADMIN_AUDIT.path, Some(t)).await.1);
        answers.push(h.get(ADMIN_AUDIT_LOG.path, Some(t)).await.1);
        answers.push(
            h.post(
                ADMIN_ADJUSTMENTS.path,
                Some(t),
                &adjustment(account, DEFAULT_SECOND_APPROVAL_ABOVE + 1, &format!("k{i}")),
            )
            .await
            .1,
        );
    }
    let log_text = serde_json::to_string(&log(&h).await).unwrap();
    let db = db_path(&h.dir);
    let mut files = Vec::new();
    for suffix in ["", "-wal"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(b) = std::fs::read(&p) {
            files.push(String::from_utf8_lossy(&b).into_owned());
        }
    }
    for t in [
        ADMIN, READER, ADJUSTER, APPROVER, FRAUD_OPS, KEYS_OPS, wrong,
    ] {
        let secret = t.trim_start_matches("mco_");
        let digest = hex::encode(mancard_backend::operators::token_digest(t));
        for a in &answers {
            let a = a.to_string();
            assert!(!a.contains(secret) && !a.contains(&digest), "{a}");
        }
        assert!(!log_text.contains(secret) && !log_text.contains(&digest));
        for f in &files {
            assert!(
                !f.contains(secret) && !f.contains(&digest),
                "a token in the database"
            );
        }
    }
}

/// The log refuses UPDATE and DELETE; an edit of the file behind SQLite's back (triggers
/// dropped) is found by the chain check, at the edited row.
#[tokio::test]
async fn a_tampered_operator_log_is_detected() {
    if skip_on_postgres("it edits the SQLite file behind the backend's back") {
        return;
    }
    let h = Harness::start().await;
    let (_, account) = rider(&h, "+989121500007").await;
    for i in 0..3 {
        let _: AdjustmentResponse = h
            .post_ok(
                ADMIN_ADJUSTMENTS.path,
                Some(ADJUSTER),
                &adjustment(account, 1_000 + i, &format!("t{i}")),
            )
            .await;
    }
    let before = log(&h).await;
    assert!(before.chain_ok);
    let db = db_path(&h.dir);
    let engine = std::sync::Arc::clone(h.handle().engine());
    let check = engine.verify_operator_log().unwrap();
    assert!(check.ok());
    // through SQL, the log and decided adjustments cannot change
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    for sql in [
        "UPDATE operator_log SET detail = 'nothing happened' WHERE id = 3",
        "DELETE FROM operator_log WHERE id = 3",
        "UPDATE adjustments SET amount = 1 WHERE id = 1",
        "DELETE FROM adjustments WHERE id = 1",
    ] {
        assert!(conn.execute(sql, []).is_err(), "{sql}");
    }
    // behind its back: the edited row breaks the chain
    conn.execute_batch(
        "DROP TRIGGER operator_log_no_update;
         UPDATE operator_log SET detail = replace(detail, 'amount 1001', 'amount 1')
             WHERE detail LIKE '%amount 1001%' AND action = 'adjustment.applied';",
    )
    .unwrap();
    let edited: i64 = conn
        .query_row(
            "SELECT id FROM operator_log WHERE detail LIKE '%amount 1 key%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let check = engine.verify_operator_log().unwrap();
    assert_eq!(check.broken.map(|b| b.0), Some(edited));
    let after = log(&h).await;
    assert!(!after.chain_ok);
}

/// Without operators the admin API is off for everyone (and says so); with no operator to name,
/// the refusals are not rows of the operator log.
#[tokio::test]
async fn without_operators_the_admin_api_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backend_config(&dir);
    let handle = mancard_backend::Backend::start(cfg).await.unwrap();
    let http = client();
    for token in [None, Some(ADMIN)] {
        let mut r = http.get(format!("{}{}", handle.url(), ADMIN_AUDIT.path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let got = decode(r.send().await.unwrap()).await;
        assert_problem(&got, StatusCode::FORBIDDEN, ProblemCode::AdminDisabled);
    }
    let check = handle.engine().verify_operator_log().unwrap();
    assert!(check.ok());
    assert_eq!(check.rows, 0);
    handle.shutdown().await.unwrap();
}

/// Two operators approving the same adjustment at once (and a repeated approver) credit it
/// exactly once.
#[tokio::test]
async fn concurrent_approvals_credit_once() {
    let h = Harness::start().await;
    let (token, account) = rider(&h, "+989121500008").await;
    let large = DEFAULT_SECOND_APPROVAL_ABOVE + 7;
    let p: Adjustment = h
        .post_as(
            StatusCode::ACCEPTED,
            ADMIN_ADJUSTMENTS.path,
            Some(ADJUSTER),
            &adjustment(account, large, "race"),
        )
        .await;
    let path = ADMIN_APPROVE_ADJUSTMENT.path_with(&p.id.to_string());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (http, url) = (h.http.clone(), h.u(&path));
        let t = if i % 2 == 0 { APPROVER } else { ADMIN };
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(t)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            decode(r).await
        }));
    }
    let mut changed = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        let r: DecideAdjustmentResponse = serde_json::from_value(v).unwrap();
        changed += usize::from(r.changed);
        assert_eq!(r.balance, large);
    }
    assert_eq!(changed, 1);
    assert_eq!(adjustment_entries(&h, account), vec![large]);
    assert_eq!(h.balance(&token).await, large);
    assert!(h.audit().await.ok);
    assert!(log(&h).await.chain_ok);
}

/// Anyone can send admin requests with no token or a made-up one: a flood of them must not
/// grow the operator log (each row a write to the one SQLite writer, burying the operators'
/// real actions). Only an identified operator's refusals are rows.
#[tokio::test]
async fn a_flood_of_anonymous_admin_requests_leaves_the_operator_log_alone() {
    let h = Harness::start().await;
    let before = log(&h).await.total;
    for i in 0..300 {
        let token = (i % 2 == 0).then_some("mco_made-up-token-0123456789abcdef0123456789");
        let (s, _) = h
            .post(ADMIN_ADJUSTMENTS.path, token, &json!({"amount": 1}))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let after = log(&h).await;
    assert!(after.chain_ok);
    // the first read of the log is itself a row; nothing else was added
    assert_eq!(after.total, before + 1, "{:#?}", after.rows);
}

/// A NUL character (U+0000) in any text is refused with a 400 and changes nothing, on both
/// databases (PostgreSQL cannot store one: it reached the database as a 500 before): an
/// operator's note, a `%00` in a path or query, a form. An escaped backslash followed by
/// `u0000` is text, and passes.
#[tokio::test]
async fn a_nul_character_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    let (_token, account) = rider(&h, "+989121500009").await;
    let mut adj = adjustment(account, 1_000, "nul-1");
    adj.note = "goodwill\u{0}credit".into();
    let got = h.post(ADMIN_ADJUSTMENTS.path, Some(ADJUSTER), &adj).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidJson);
    assert!(adjustment_entries(&h, account).is_empty());
    // the key was not taken: the same request with clean text goes through
    adj.note = "goodwill \\u0000 credit".into();
    let ok: AdjustmentResponse = h
        .post_ok(ADMIN_ADJUSTMENTS.path, Some(ADJUSTER), &adj)
        .await;
    assert!(ok.created);
    assert_eq!(adjustment_entries(&h, account), [1_000]);

    let got = h
        .get(&ADMIN_FRAUD_CASE.path_with("1%00"), Some(FRAUD_OPS))
        .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery);
    let got = h
        .get(
            &format!("{}?status=open%00", ADMIN_FRAUD_CASES.path),
            Some(FRAUD_OPS),
        )
        .await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery);
    let resp = client()
        .post(h.u(mancard_api::endpoints::TOPUP_CALLBACK.path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=abc%00&ResCode=0")
        .send()
        .await
        .unwrap();
    let got = decode(resp).await;
    assert_problem(&got, StatusCode::BAD_REQUEST, ProblemCode::InvalidQuery);
}
