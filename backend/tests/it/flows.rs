//! End-to-end flows over real HTTP on a loopback port with a real SQLite file.

use mancard_api::endpoints::{
    ACCOUNT, ADMIN_ADJUSTMENTS, ADMIN_AUDIT, ADMIN_ISSUER_KEYS, ADMIN_ROTATE_KEYS,
    ADMIN_VALIDATORS, CREATE_SESSION, CREATE_TOPUP, HEALTHZ, OPENAPI, PROVISION, REPLENISH,
    REQUEST_OTP, SANDBOX_OTP, TOPUP_CALLBACK, TOPUP_STATUS, VALIDATOR_BATCHES, VALIDATOR_CONFIG,
    WALLET_LOG, WALLET_SYNC,
};
use mancard_api::{
    AccountResponse, CredentialResponse, Health, LedgerEntry, LedgerKind, LogResponse, OtpResponse,
    SandboxOtp, SessionResponse, TapResult, TopupIntentResponse,
};
use mancard_api::{
    AdjustmentRequest, CredentialRequest, KeysResponse, OtpRequest, Problem, ProblemCode,
    RegisterValidatorRequest, SessionRequest, SyncRequest, TopupRequest,
};
use mancard_api::{CredentialState, FraudKind, TapStatus, TopupStatus};
use mancard_protocol::{verify_config, Pseudonym, VerifiedCertificate};
use mancard_testkit::backend::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The problem code of an error answer (the body must be a problem document).
fn problem_code(v: &Value) -> ProblemCode {
    serde_json::from_value::<Problem>(v.clone()).unwrap().code
}

fn otp_request(phone: impl Into<String>) -> OtpRequest {
    OtpRequest {
        phone: phone.into(),
    }
}

fn statuses(taps: &[TapResult]) -> Vec<TapStatus> {
    taps.iter().map(|r| r.status).collect()
}

fn fares(taps: &[TapResult]) -> Vec<i64> {
    taps.iter().map(|r| r.fare.unwrap_or(-1)).collect()
}

#[tokio::test]
async fn health_openapi_and_problem_errors() {
    let h = Harness::start().await;
    let v: Health = h.get_ok(HEALTHZ.path, None).await;
    assert_eq!(v.status, "ok");
    let (s, doc) = h.get(OPENAPI.path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for p in [
        WALLET_SYNC.path,
        VALIDATOR_BATCHES.path,
        PROVISION.path,
        CREATE_TOPUP.path,
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }

    let (s, v) = h.get("/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(problem_code(&v), ProblemCode::NotFound);
    let problem: Problem = serde_json::from_value(v).unwrap();
    assert_eq!(problem.status, 404);

    // malformed JSON, wrong type, missing field, wrong media type, too large
    let r = h
        .http
        .post(h.u(REQUEST_OTP.path))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, v) = decode(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(&v), ProblemCode::InvalidJson);
    // deliberately malformed bodies below stay raw JSON: a number for the phone, no phone
    let (s, v) = h
        .post(REQUEST_OTP.path, None, &json!({ "phone": 12 }))
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    let (s, _) = h.post(REQUEST_OTP.path, None, &json!({})).await;
    assert!(s.is_client_error());
    let r = h
        .http
        .post(h.u(REQUEST_OTP.path))
        .body("phone=1")
        .send()
        .await
        .unwrap();
    let (s, v) = decode(r).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, v) = h.post(REQUEST_OTP.path, None, &otp_request(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (s, v) = h.post(REQUEST_OTP.path, None, &otp_request("12ab")).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidPhone)
    );

    // authentication
    let (s, v) = h.get(ACCOUNT.path, None).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized)
    );
    let (s, _) = h.get(ACCOUNT.path, Some("00")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h.get(ACCOUNT.path, Some(&"ab".repeat(32))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = h.get(ADMIN_AUDIT.path, Some("wrong")).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::UNAUTHORIZED, ProblemCode::BadAdminToken)
    );
    let r = h.http.delete(h.u(HEALTHZ.path)).send().await.unwrap();
    let (s, v) = decode(r).await;
    assert_eq!(
        (s, problem_code(&v)),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::MethodNotAllowed
        )
    );

    // binary endpoints and authenticated endpoints with garbage
    for body in [
        vec![],
        vec![0u8; 3],
        vec![b'B'; 40],
        b"hello world".to_vec(),
    ] {
        let (s, v) = h.upload(&body).await;
        assert_eq!(
            (s, problem_code(&v)),
            (StatusCode::BAD_REQUEST, ProblemCode::InvalidBatch)
        );
    }
    let token = h.login("+989121111111").await;
    let (s, v) = h
        .post(
            PROVISION.path,
            Some(&token),
            // malformed: not hex, empty keys, and no `next_counter` member at all
            &json!({ "nonce": "zz", "binding_public_key": "", "tap_public_key": "", "signature": "" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = h
        .post(
            PROVISION.path,
            Some(&token),
            &CredentialRequest {
                nonce: "00".repeat(32),
                binding_public_key: "04".repeat(65),
                tap_public_key: "04".repeat(65),
                signature: "00".repeat(64),
                next_counter: None,
            },
        )
        .await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidKey)
    );
    let (s, v) = h
        .post(
            WALLET_SYNC.path,
            Some(&token),
            &SyncRequest {
                pseudonym: "00".repeat(16),
                cursor: 0,
                entries: vec!["4c01ff".into()],
                verdict_cursor: 0,
            },
        )
        .await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidEntry)
    );
    let (s, v) = h
        .post(
            WALLET_SYNC.path,
            Some(&token),
            // the members with a default left out, as an old client sends them
            &json!({ "pseudonym": "00".repeat(16) }),
        )
        .await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::NOT_FOUND, ProblemCode::UnknownDevice)
    );
    let (s, v) = h
        .post(
            WALLET_SYNC.path,
            Some(&token),
            &SyncRequest {
                pseudonym: "00".into(),
                cursor: -1,
                entries: vec![],
                verdict_cursor: 0,
            },
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    for amount in [-5, 0, 1, i64::MAX] {
        let (s, v) = h
            .post(
                CREATE_TOPUP.path,
                Some(&token),
                &TopupRequest {
                    amount,
                    idempotency_key: "k".into(),
                },
            )
            .await;
        assert_eq!(
            (s, problem_code(&v)),
            (StatusCode::BAD_REQUEST, ProblemCode::InvalidAmount)
        );
    }
    let (s, _) = h
        .get(&TOPUP_STATUS.path_with("doesnotexist"), Some(&token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.get(TOPUP_CALLBACK.path, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .get(&format!("{}?token=abc", TOPUP_CALLBACK.path), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // hostile: a path traversal in the gateway token, kept raw
    let (s, _) = h.get("/sandbox/pay/..%2f..", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .get(
            &format!("{}?pseudonym=00&from_seq=x", WALLET_LOG.path),
            Some(&token),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = h
        .admin_post(
            ADMIN_VALIDATORS.path,
            &RegisterValidatorRequest::new(1, "04"),
        )
        .await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidKey)
    );
}

#[tokio::test]
async fn one_time_codes_are_single_use_rate_limited_and_expire() {
    let h = Harness::start().await;
    let phone = "09121234567"; // normalized to +989121234567
    let v: OtpResponse = h
        .post_as(
            StatusCode::ACCEPTED,
            REQUEST_OTP.path,
            None,
            &otp_request(phone),
        )
        .await;
    assert_eq!(v.phone, "+989121234567");
    assert_eq!(v.request_id.len(), 32);
    let login = |code: &str, request_id: &str| SessionRequest {
        phone: phone.into(),
        code: code.into(),
        request_id: request_id.into(),
    };
    let otp: SandboxOtp = h
        .get_ok(&format!("{}?phone=%2B989121234567", SANDBOX_OTP.path), None)
        .await;
    let code = otp.code;
    assert_eq!(code.len(), 8);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..3 {
        let (s, _) = h
            .post(CREATE_SESSION.path, None, &login(wrong, &v.request_id))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // three wrong guesses kill the code: even the right one is refused
    let (s, body) = h
        .post(CREATE_SESSION.path, None, &login(&code, &v.request_id))
        .await;
    assert_eq!(
        (s, problem_code(&body)),
        (StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized)
    );
    // a code of the wrong length, a malformed request id: 400, and nothing counted
    for (c, r, want) in [
        ("123456", v.request_id.as_str(), ProblemCode::InvalidCode),
        ("12345678", "not-a-request", ProblemCode::InvalidRequestId),
        ("12345678", "", ProblemCode::InvalidRequestId),
    ] {
        let (s, body) = h.post(CREATE_SESSION.path, None, &login(c, r)).await;
        assert_eq!((s, problem_code(&body)), (StatusCode::BAD_REQUEST, want));
    }

    // a fresh code works once, and only with its own request id
    let v2: OtpResponse = h
        .post_as(
            StatusCode::ACCEPTED,
            REQUEST_OTP.path,
            None,
            &otp_request(phone),
        )
        .await;
    let otp: SandboxOtp = h
        .get_ok(&format!("{}?phone=09121234567", SANDBOX_OTP.path), None)
        .await;
    let code = otp.code;
    let (s, _) = h
        .post(CREATE_SESSION.path, None, &login(&code, &v.request_id))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "another request's code");
    let sess: SessionResponse = h
        .post_ok(CREATE_SESSION.path, None, &login(&code, &v2.request_id))
        .await;
    let token = sess.token.as_str();
    assert_eq!(token.len(), 64);
    let (s, _) = h
        .post(CREATE_SESSION.path, None, &login(&code, &v2.request_id))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let acct: AccountResponse = h.get_ok(ACCOUNT.path, Some(token)).await;
    assert_eq!(acct.phone, "+989121234567");
    assert_eq!(acct.balance, 0);
    // same number again: same account
    let t2 = h.login("+989121234567").await;
    let acct2: AccountResponse = h.get_ok(ACCOUNT.path, Some(&t2)).await;
    assert_eq!(acct2.account_id, acct.account_id);

    // sends from one address are paced: a burst of 3 (used), then one per two minutes,
    // with Retry-After
    let (s, body) = h.post(REQUEST_OTP.path, None, &otp_request(phone)).await;
    assert_eq!(
        (s, problem_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, ProblemCode::RateLimited)
    );
    h.handle().engine().advance_clock(120).unwrap();
    let (s, _) = h.post(REQUEST_OTP.path, None, &otp_request(phone)).await;
    assert_eq!(s, StatusCode::ACCEPTED);

    // expiry
    let other = "+989121234500";
    let v3: OtpResponse = h
        .post_as(
            StatusCode::ACCEPTED,
            REQUEST_OTP.path,
            None,
            &otp_request(other),
        )
        .await;
    let otp: SandboxOtp = h
        .get_ok(&format!("{}?phone=%2B989121234500", SANDBOX_OTP.path), None)
        .await;
    h.handle().engine().advance_clock(301).unwrap();
    let (s, _) = h
        .post(
            CREATE_SESSION.path,
            None,
            &SessionRequest {
                phone: other.into(),
                code: otp.code,
                request_id: v3.request_id,
            },
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .get(&format!("{}?phone=%2B989121234500", SANDBOX_OTP.path), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn provisioning_replenishment_and_lost_phone() {
    let h = Harness::start().await;
    let token = h.login("+989120000001").await;
    h.topup(&token, 100_000, "first").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    // a random start below the gap (2^16), 1,024 counters (a certificate's counters outlast
    // the rides its allowance pays for)
    assert!(c.counter_first < 1 << 16);
    assert_eq!(c.counter_last, c.counter_first + 1_023);
    assert_eq!(c.max_amount, 100_000);
    assert_eq!(c.fare_class, "adult");
    assert!(c.valid_until - c.server_time == 72 * 3600);
    // the certificate verifies under the issuer keys of the validator bundle
    let cfg = h.config().await;
    let vc = VerifiedCertificate::new(w.cert.clone(), &cfg.body.issuer_keys).unwrap();
    assert_eq!(hex::encode(vc.hash), c.certificate_hash);
    let k = &c.issuer_keys[0];
    assert_eq!(k.key_id, 1);
    assert_eq!(
        k.public_key,
        hex::encode(cfg.body.issuer_keys[0].public_key.as_bytes())
    );
    assert_eq!(k.valid_from, cfg.body.issuer_keys[0].valid_from);
    let tariff = hex::decode(c.tariff.as_str()).unwrap();
    assert_eq!(
        mancard_protocol::Tariff::decode(&tariff).unwrap(),
        cfg.body.tariff
    );

    // replenish: a new pseudonym, the next counter range, a new tap key
    let first_pseudonym = w.pseudonym.clone();
    let r = w.replenish(&h).await;
    assert_ne!(r.pseudonym, first_pseudonym);
    // after the previous range, by a random gap: the two ranges do not continue each other
    // on the wire (with probability 1 − 2^-16 the gap is not 0)
    assert!(r.counter_first > c.counter_last && r.counter_first <= c.counter_last + (1 << 16));
    assert_eq!(r.counter_last, r.counter_first + 1_023);

    // a proof for the other purpose, a reused nonce, or a foreign binding key is refused
    let (tap, _) = mancard_protocol::SigningKey::generate().unwrap();
    let req = Wallet::credential_request(
        &h,
        &token,
        &w.binding,
        &tap,
        mancard_protocol::provision::ProvisionPurpose::Provision,
    )
    .await;
    let (s, v) = h.post(REPLENISH.path, Some(&token), &req).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::BadProof)
    );
    let req = Wallet::credential_request(
        &h,
        &token,
        &w.binding,
        &tap,
        mancard_protocol::provision::ProvisionPurpose::Replenish,
    )
    .await;
    let first: CredentialResponse = h.post_ok(REPLENISH.path, Some(&token), &req).await;
    // the same request again (its answer lost): the same certificate, nothing new issued
    let again: CredentialResponse = h.post_ok(REPLENISH.path, Some(&token), &req).await;
    assert_eq!(again.certificate, first.certificate);
    // a reused nonce with another tap key is refused
    let (tap, _) = mancard_protocol::SigningKey::generate().unwrap();
    let mut other_key = req.clone();
    other_key.tap_public_key = hex::encode(tap.public_key().as_bytes());
    let (s, v) = h.post(REPLENISH.path, Some(&token), &other_key).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::BadProof)
    );
    // the wallet may ask the range to start further on (counters it reserved)
    let mut req = Wallet::credential_request(
        &h,
        &token,
        &w.binding,
        &tap,
        mancard_protocol::provision::ProvisionPurpose::Replenish,
    )
    .await;
    req.next_counter = Some(300);
    let v: CredentialResponse = h.post_ok(REPLENISH.path, Some(&token), &req).await;
    // (after every earlier range of the device, a random gap further)
    assert!(v.counter_first >= 300 && v.counter_first > r.counter_last);
    assert_eq!(v.counter_last, v.counter_first + 1_023);
    let other = h.login("+989120000002").await;
    let req = Wallet::credential_request(
        &h,
        &other,
        &w.binding,
        &tap,
        mancard_protocol::provision::ProvisionPurpose::Provision,
    )
    .await;
    let (s, v) = h.post(PROVISION.path, Some(&other), &req).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::BindingKeyInUse)
    );

    // ride a bit, then lose the phone
    let v7 = Validator::register(&h, 7).await;
    let base = ride_base(w.server_time);
    let (_, e0) = w.nfc_tap(&v7, 1, 20_000, base);
    let v = w.sync_ok(&h, &[e0]).await;
    assert_eq!(v.balance, 80_000);

    // the new phone logs in and provisions: the old phone's session ends
    let token2 = h.login("+989120000001").await;
    let (w2, c2) = Wallet::provision(&h, &token2).await;
    assert_ne!(w2.pseudonym, first_pseudonym);
    let (s, _) = w.sync(&h, &[]).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the lost phone's token is dead"
    );
    // the lost phone's four live certificates: every pseudonym of them is revoked
    assert_eq!(
        c2.revoked_pseudonyms.len(),
        4,
        "{:?}",
        c2.revoked_pseudonyms
    );
    assert!(c2.revoked_pseudonyms.contains(&first_pseudonym));
    assert!(c2.revoked_pseudonyms.contains(&w.pseudonym));
    assert_eq!(c2.balance, 80_000, "balance carries over");
    assert_eq!(c2.max_amount, 80_000);
    assert!(c2.counter_first < 1 << 16);
    let cfg = h.config().await;
    for p in &c2.revoked_pseudonyms {
        assert!(cfg.is_denied(&Pseudonym::from_hex(p).unwrap()));
    }
    assert!(!cfg.is_denied(&Pseudonym::from_hex(&w2.pseudonym).unwrap()));
    assert_eq!(
        bundle_from(&c2.config_bundle),
        cfg,
        "the wallet gets the current bundle"
    );
    // the old phone, found again and logged in, learns it is revoked and cannot replenish
    w.token = h.login("+989120000001").await;
    let token = w.token.clone();
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, CredentialState::Revoked);
    assert_eq!(
        v.credential.reason.as_deref(),
        Some("replaced_by_new_device")
    );
    let req = Wallet::credential_request(
        &h,
        &token,
        &w.binding,
        &tap,
        mancard_protocol::provision::ProvisionPurpose::Replenish,
    )
    .await;
    let (s, v) = h.post(REPLENISH.path, Some(&token), &req).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::CredentialRevoked)
    );
    // taps the old phone made offline before it was lost still settle
    let (_, e1) = w.nfc_tap(&v7, 1, 20_000, base + 7200);
    let v = w.sync_ok(&h, &[e1]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    assert_eq!(h.balance(&token).await, 60_000);
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

#[tokio::test]
async fn topup_is_credited_exactly_once() {
    let h = Harness::start().await;
    let token = h.login("+989120000003").await;
    let i1: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 50_000,
                idempotency_key: "k1".into(),
            },
        )
        .await;
    assert_eq!(i1.status, TopupStatus::Pending);
    let again: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 50_000,
                idempotency_key: "k1".into(),
            },
        )
        .await;
    assert_eq!(again.intent_id, i1.intent_id);
    let (s, v) = h
        .post(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 60_000,
                idempotency_key: "k1".into(),
            },
        )
        .await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::IdempotencyConflict)
    );

    // the gateway page
    let pay_url = i1.payment_url.clone();
    let page = h
        .http
        .get(&pay_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("50000") && page.contains("Pay") && page.contains("Cancel"));

    // pay, but the redirect back is lost
    let no_redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.post(&pay_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains(&format!("{}?token=", TOPUP_CALLBACK.path)));
    assert_eq!(
        h.balance(&token).await,
        0,
        "nothing credited before verification"
    );
    // the wallet polls: verification happens, credited once
    let id = i1.intent_id.as_str();
    let st: TopupIntentResponse = h.get_ok(&TOPUP_STATUS.path_with(id), Some(&token)).await;
    assert_eq!(st.status, TopupStatus::Credited);
    assert!(st.gateway_ref.is_some());
    assert_eq!(h.balance(&token).await, 50_000);
    // the redirect arrives late, twice; the page is submitted again; the intent is retried
    for _ in 0..2 {
        let html = h
            .http
            .get(&callback)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("credited"));
    }
    let r = no_redirect.post(&pay_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let again: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 50_000,
                idempotency_key: "k1".into(),
            },
        )
        .await;
    assert_eq!(again.status, TopupStatus::Credited);
    assert_eq!(again.ledger_entry_id, st.ledger_entry_id);
    assert_eq!(h.balance(&token).await, 50_000);

    // another rider cannot see the intent
    let t2 = h.login("+989120000004").await;
    let (s, _) = h.get(&TOPUP_STATUS.path_with(id), Some(&t2)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // cancelled payment: nothing credited, paying afterwards changes nothing
    let i2: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 20_000,
                idempotency_key: "k2".into(),
            },
        )
        .await;
    let url2 = i2.payment_url.as_str();
    let html = h
        .http
        .post(format!("{url2}/cancel"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("cancelled"));
    let html = h
        .http
        .post(url2)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("cancelled"));
    assert_eq!(h.balance(&token).await, 50_000);

    // expired intent: the gateway refuses, nothing credited, the retry returns the same intent
    let i3: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 30_000,
                idempotency_key: "k3".into(),
            },
        )
        .await;
    h.handle().engine().advance_clock(901).unwrap();
    h.sandbox_gateway().advance_clock(901);
    let st3: TopupIntentResponse = h
        .get_ok(&TOPUP_STATUS.path_with(&i3.intent_id), Some(&token))
        .await;
    assert_eq!(st3.status, TopupStatus::Expired);
    let r = h.http.post(&i3.payment_url).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the gateway refuses an expired page"
    );
    let again3: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 30_000,
                idempotency_key: "k3".into(),
            },
        )
        .await;
    assert_eq!(again3.intent_id, i3.intent_id);
    assert_eq!(again3.status, TopupStatus::Expired);
    assert_eq!(h.balance(&token).await, 50_000);

    // paid, redirect lost, the wallet never polls: reconciliation credits it, once
    let i4: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&token),
            &TopupRequest {
                amount: 10_000,
                idempotency_key: "k4".into(),
            },
        )
        .await;
    let r = no_redirect.post(&i4.payment_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let e = std::sync::Arc::clone(h.handle().engine());
    assert_eq!(
        tokio::task::spawn_blocking(move || e.reconcile_topups())
            .await
            .unwrap()
            .unwrap(),
        1
    );
    let e = std::sync::Arc::clone(h.handle().engine());
    assert_eq!(
        tokio::task::spawn_blocking(move || e.reconcile_topups())
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(h.balance(&token).await, 60_000);
    let st4: TopupIntentResponse = h
        .get_ok(&TOPUP_STATUS.path_with(&i4.intent_id), Some(&token))
        .await;
    assert_eq!(st4.status, TopupStatus::Credited);
    assert_eq!(h.balance(&token).await, 60_000);

    // the ledger: one entry per credited top-up
    let (w, _) = Wallet::provision(&h, &token).await;
    let mut w = w;
    let v = w.sync_ok(&h, &[]).await;
    let ledger = &v.ledger;
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].kind, LedgerKind::Topup);
    assert_eq!(ledger[0].amount, 50_000);
    assert_eq!(ledger[1].amount, 10_000);
    let audit = h.audit().await;
    assert_eq!(audit.intents_credited_twice, 0);
}

#[tokio::test]
async fn validator_bundle_batches_and_settlement() {
    let h = Harness::start().await;
    let token = h.login("+989120000005").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;

    // bundle: signed, versioned, ETag / If-None-Match
    let r = h.http.get(h.u(VALIDATOR_CONFIG.path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let cfg = mancard_protocol::ValidatorConfig::decode(&r.bytes().await.unwrap()).unwrap();
    verify_config(&cfg, &cfg.body.issuer_keys, None).unwrap();
    assert_eq!(cfg.body.tariff, mancard_protocol::Tariff::urmia_default());
    assert_eq!(etag, format!("\"{}\"", cfg.body.bundle_version));
    let r = h
        .http
        .get(h.u(VALIDATOR_CONFIG.path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = h
        .http
        .get(h.u(VALIDATOR_CONFIG.path))
        .header("if-none-match", "\"999\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // three rides: full, transfer, full (same line again)
    let base = ride_base(w.server_time);
    let (r0, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let (r1, e1) = w.nfc_tap(&v1, 2, 20_000, base + 600);
    let (r2, e2) = w.nfc_tap(&v1, 2, 20_000, base + 1200);
    let batch = v1.batch(vec![r0.clone(), r1.clone(), r2.clone()]);
    let b = h.upload_ok(&batch).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled; 3]);
    assert_eq!(fares(&b.records), [20_000, 5_000, 20_000]);
    assert_eq!(h.balance(&token).await, 155_000);

    // replayed batch: the stored answer, nothing charged again
    let b2 = h.upload_ok(&batch).await;
    assert!(b2.duplicate_batch);
    assert_eq!(b2.records, b.records);
    assert_eq!(h.balance(&token).await, 155_000);
    // same batch id, other content
    let id: [u8; 16] = hex::decode(&b.batch_id).unwrap().try_into().unwrap();
    let (s, v) = h.upload(&v1.batch_with_id(id, vec![r0.clone()])).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::BatchIdConflict)
    );
    // unknown validator, wrong key
    let stranger = Validator::unregistered(99);
    let (s, v) = h.upload(&stranger.batch(vec![r0.clone()])).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::UnknownValidator)
    );
    let forger = Validator::unregistered(1);
    let (s, v) = h.upload(&forger.batch(vec![r0.clone()])).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::BadBatchSignature)
    );

    // the wallet syncs the same taps plus a new one: duplicates, then settled
    let (r3, e3) = w.nfc_tap(&v1, 10, 30_000, base + 3 * 3600);
    let v = w.sync_ok(&h, &[e0.clone(), e1, e2, e3]).await;
    assert_eq!(
        statuses(&v.taps),
        [
            TapStatus::Duplicate,
            TapStatus::Duplicate,
            TapStatus::Duplicate,
            TapStatus::Settled
        ]
    );
    // daily cap: 20000 + 5000 + 20000 = 45000, so the 30000 metro ride costs 15000
    assert_eq!(fares(&v.taps), [20_000, 5_000, 20_000, 15_000]);
    assert_eq!(v.balance, 140_000);
    assert_eq!(v.credential.status, CredentialState::Active);
    assert_eq!(v.chain.next_seq, 4);
    let kinds: Vec<LedgerKind> = v.ledger.iter().map(|e| e.kind).collect();
    use LedgerKind::{Fare, Topup};
    assert_eq!(kinds, [Topup, Fare, Fare, Fare, Fare]);
    // re-sending the same entries is idempotent
    let v = w.sync_ok(&h, &[e0]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Duplicate]);
    assert_eq!(v.ledger.len(), 0, "cursor moved past old entries");
    // a validator batch holding a record already settled by the wallet: partial duplicate
    let (r4, _) = w.nfc_tap(&v1, 1, 20_000, base + 4 * 3600);
    let b = h.upload_ok(&v1.batch(vec![r3, r4])).await;
    assert_eq!(
        statuses(&b.records),
        [TapStatus::Duplicate, TapStatus::Settled]
    );
    assert_eq!(fares(&b.records), [15_000, 0], "capped at 60000 a day");
    assert_eq!(h.balance(&token).await, 140_000);

    // a record whose own fields disagree with the signed challenge is rejected
    let (mut r5, _) = w.nfc_tap(&v1, 1, 20_000, base + 5 * 3600);
    r5.line_id = 2;
    let b = h.upload_ok(&v1.batch(vec![r5])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Rejected]);
    assert_eq!(b.records[0].reason.as_deref(), Some("record_mismatch"));
    // a tampered amount (the validator re-signs its challenge): the phone's signature does
    // not verify, rejected, not fraud
    let (mut r6, _) = w.nfc_tap(&v1, 1, 20_000, base + 6 * 3600);
    if let mancard_protocol::TapProof::Nfc {
        authorization,
        challenge,
    } = &mut r6.proof
    {
        authorization.amount = 1;
        *challenge = mancard_protocol::ChallengeBody {
            fare: 1,
            ..challenge.body.clone()
        }
        .sign(&v1.key)
        .unwrap();
    }
    r6.fare = 1;
    let b = h.upload_ok(&v1.batch(vec![r6])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Rejected]);
    assert_eq!(b.records[0].reason.as_deref(), Some("bad_signature"));
    assert!(h.fraud_cases().await.is_empty());
    h.audit().await;
}

#[tokio::test]
async fn late_reports_are_rerated_with_adjustments() {
    let h = Harness::start().await;
    let token = h.login("+989120000006").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let (_r0, _e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let (_r1, e1) = w.nfc_tap(&v1, 2, 20_000, base + 600);
    // a wallet that lost entry 0 and starts its upload at entry 1: a gap, refused, not fraud
    let (s, v) = w.sync(&h, std::slice::from_ref(&e1)).await;
    assert_eq!(
        (s, problem_code(&v)),
        (StatusCode::CONFLICT, ProblemCode::ChainGap)
    );
    assert!(h.fraud_cases().await.is_empty(), "a gap is not fraud");

    // second rider: ride 1 is reported first, ride 0 (earlier) only later, by the validator
    let token2 = h.login("+989120000007").await;
    h.topup(&token2, 200_000, "t").await;
    let (mut w2, _) = Wallet::provision(&h, &token2).await;
    // (a day after the first rider's: the backend's clock moved past those rides)
    let base = ride_base(w2.server_time);
    let (a0, _) = w2.nfc_tap(&v1, 1, 20_000, base);
    let (a1, _) = w2.nfc_tap(&v1, 2, 20_000, base + 600);
    let b = h.upload_ok(&v1.batch(vec![a1])).await;
    assert_eq!(fares(&b.records), [20_000]);
    let b = h.upload_ok(&v1.batch(vec![a0])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert_eq!(fares(&b.records), [20_000]);
    // ride 1 is now a transfer: corrected by an adjustment of +15000
    assert_eq!(h.balance(&token2).await, 200_000 - 20_000 - 5_000);
    let v = w2.sync_ok(&h, &[]).await;
    let adj: Vec<&LedgerEntry> = v
        .ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::FareAdjustment)
        .collect();
    assert_eq!(adj.len(), 1);
    assert_eq!(adj[0].amount, 15_000);

    // QR known only from the wallet: pending, not charged, until the reader's record names
    // the line and charges its fare
    let token3 = h.login("+989120000008").await;
    h.topup(&token3, 200_000, "t").await;
    let (mut q, _) = Wallet::provision(&h, &token3).await;
    let base = ride_base(q.server_time);
    let (rec, entry) = q.qr_tap(1, 1, 20_000, base, 30_000);
    let v = q.sync_ok(&h, &[entry]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Pending]);
    assert_eq!(fares(&v.taps), [0]);
    assert_eq!(v.balance, 200_000);
    let b = h.upload_ok(&v1.batch(vec![rec])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(fares(&b.records), [20_000]);
    assert_eq!(h.balance(&token3).await, 180_000);
    drop(w);
    h.audit().await;
}

#[tokio::test]
async fn clone_with_same_counter_is_fraud_and_denied() {
    let h = Harness::start().await;
    let token = h.login("+989120000009").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let v2 = Validator::register(&h, 2).await;
    let base = ride_base(w.server_time);
    let before = h.config().await.body.bundle_version;
    let (r0, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    // the clone (same tap key, copied data directory) uses counter 0 again on another bus
    let (c0, _) = w.nfc_tap_with_counter(&v2, 2, 20_000, base + 3600, r0.counter);
    let b = h.upload_ok(&v1.batch(vec![r0])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    let b = h.upload_ok(&v2.batch(vec![c0])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Fraud]);
    assert_eq!(b.records[0].reason.as_deref(), Some("duplicate_counter"));
    let cases = h.fraud_cases().await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].kind, FraudKind::DuplicateCounter);
    assert_eq!(cases[0].pseudonym, w.pseudonym.as_str());
    let cfg = h.config().await;
    assert!(cfg.is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    // a new, higher bundle version: a validator holding the old one gets it
    assert!(cfg.body.bundle_version > before);
    let r = h
        .http
        .get(h.u(VALIDATOR_CONFIG.path))
        .header("if-none-match", format!("\"{before}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // the genuine wallet's own report of counter 0 still matches the first: a duplicate
    let v = w.sync_ok(&h, &[e0]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Duplicate]);
    assert_eq!(v.credential.status, CredentialState::Revoked);
    assert_eq!(v.balance, 180_000, "the conflicting tap is not charged");
    h.audit().await;
}

#[tokio::test]
async fn restored_backup_breaks_the_chain() {
    let h = Harness::start().await;
    let token = h.login("+989120000010").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let (_, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let (seq1, prev1, ctr1) = (w.seq, w.prev, w.next_counter);
    let (_, e1) = w.nfc_tap(&v1, 1, 20_000, base + 3600);
    w.sync_ok(&h, &[e0, e1]).await;
    // the app restored from a backup taken after entry 0 writes a different entry 1
    w.seq = seq1;
    w.prev = prev1;
    w.next_counter = ctr1 + 1;
    let (_, f1) = w.nfc_tap(&v1, 2, 20_000, base + 7200);
    let v = w.sync_ok(&h, &[f1]).await;
    assert_eq!(v.credential.status, CredentialState::Revoked);
    assert_eq!(v.credential.reason.as_deref(), Some("broken_chain"));
    let cases = h.fraud_cases().await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].kind, FraudKind::BrokenChain);
    assert!(h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    h.audit().await;
}

#[tokio::test]
async fn counter_beyond_range_is_fraud() {
    let h = Harness::start().await;
    let token = h.login("+989120000011").await;
    h.topup(&token, 200_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let last = c.counter_last;
    let (r, _) = w.nfc_tap_with_counter(&v1, 1, 20_000, base, last + 1);
    let b = h.upload_ok(&v1.batch(vec![r])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Fraud]);
    assert_eq!(b.records[0].reason.as_deref(), Some("counter_out_of_range"));
    assert_eq!(h.fraud_cases().await[0].kind, FraudKind::CounterOutOfRange);
    assert!(h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    h.audit().await;
}

#[tokio::test]
async fn key_rotation_restart_and_log_recovery() {
    let h = Harness::start().await;
    let token = h.login("+989120000012").await;
    h.topup(&token, 100_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    assert_eq!(c.issuer_key_id, 1);
    let v1 = Validator::register(&h, 1).await;
    // raw: the test reads the whole body for key material
    let (s, k) = h.admin_post(ADMIN_ROTATE_KEYS.path, &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    let keys: KeysResponse = serde_json::from_value(k.clone()).unwrap();
    assert_eq!(keys.current_key_id, 2);
    assert!(k.to_string().find("pkcs8").is_none());
    let cfg = h.config().await;
    let ids: Vec<u32> = cfg.body.issuer_keys.iter().map(|k| k.key_id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(cfg.body.signer_key_id, 2);
    // the old certificate still verifies and its taps settle; new certificates use key 2
    VerifiedCertificate::new(w.cert.clone(), &cfg.body.issuer_keys).unwrap();
    let base = ride_base(w.server_time);
    let (r0, e0) = w.nfc_tap(&v1, 1, 20_000, base);
    let b = h.upload_ok(&v1.batch(vec![r0])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    let r = w.replenish(&h).await;
    assert_eq!(r.issuer_key_id, 2);
    VerifiedCertificate::new(w.cert.clone(), &cfg.body.issuer_keys).unwrap();
    let (_, e1) = w.nfc_tap(&v1, 10, 30_000, base + 3600);
    let v = w.sync_ok(&h, &[e0.clone(), e1.clone()]).await;
    assert_eq!(
        statuses(&v.taps),
        [TapStatus::Duplicate, TapStatus::Settled]
    );

    // key file permissions
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let kf = mancard_backend::keys::key_file_path(&db_path(&h.dir));
        let mode = std::fs::metadata(kf).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        if !skip_on_postgres("the database file's mode (there is no file)") {
            let mode = std::fs::metadata(db_path(&h.dir))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "the database holds personal data");
        }
    }

    // restart on the same files: sessions, balances, keys and the chain survive (the bundle
    // changed when the replenishment superseded the first certificate: its pseudonym is denied)
    let before = h.balance(&token).await;
    let cfg = h.config().await;
    let h = h.restart().await;
    assert_eq!(h.balance(&token).await, before);
    assert_eq!(before, 50_000);
    let cfg2 = h.config().await;
    assert_eq!(cfg2.body.bundle_version, cfg.body.bundle_version);
    // a wallet that lost its last record after a power loss learns it back
    let log: LogResponse = h
        .get_ok(
            &format!("{}?pseudonym={}&from_seq=1", WALLET_LOG.path, w.pseudonym),
            Some(&token),
        )
        .await;
    assert_eq!(log.entries.len(), 1);
    assert_eq!(log.entries[0].entry, hex::encode(e1.encode()));
    let (_, e2) = w.nfc_tap(&v1, 1, 20_000, base + 7200);
    let v = w.sync_ok(&h, &[e2]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Settled]);
    h.audit().await;
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test]
async fn hostile_inputs_never_cause_a_server_error() {
    let h = Harness::start().await;
    let token = h.login("+989120000013").await;
    h.topup(&token, 100_000, "t").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);

    // extreme times in a correctly signed batch
    let (mut r, _) = w.nfc_tap(&v1, 1, 20_000, i64::MAX);
    r.time = i64::MIN;
    let b = h.upload_ok(&v1.batch(vec![r])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Rejected]);

    // random bytes, and every single-byte corruption of a sample of positions
    for _ in 0..50 {
        let len = (rng.next() % 600) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let (s, _) = h.upload(&bytes).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    let (rec, entry) = w.nfc_tap(&v1, 1, 20_000, base);
    let good = v1.batch(vec![rec]);
    let entry_bytes = entry.encode();
    for _ in 0..60 {
        let mut b = good.clone();
        let i = (rng.next() as usize) % b.len();
        b[i] ^= 1 << (rng.next() % 8);
        let (s, v) = h.upload(&b).await;
        assert!(s.is_success() || s.is_client_error(), "{s} {v}");
        let mut e = entry_bytes.clone();
        let i = (rng.next() as usize) % e.len();
        e[i] ^= 1 << (rng.next() % 8);
        let body = json!({ "pseudonym": w.pseudonym, "entries": [hex::encode(&e)] });
        let (s, v) = h.post(WALLET_SYNC.path, Some(&token), &body).await;
        assert!(s.is_success() || s.is_client_error(), "{s} {v}");
    }
    // JSON of the wrong shape everywhere
    for path in [
        CREATE_SESSION.path,
        PROVISION.path,
        REPLENISH.path,
        CREATE_TOPUP.path,
        WALLET_SYNC.path,
        ADMIN_VALIDATORS.path,
        ADMIN_ADJUSTMENTS.path,
    ] {
        for body in [
            json!(null),
            json!([]),
            json!({"a": 1}),
            json!("x"),
            json!({"amount": 1e300}),
        ] {
            let (s, v) = h
                .post(
                    path,
                    Some(if path.contains("admin") {
                        ADMIN
                    } else {
                        &token
                    }),
                    &body,
                )
                .await;
            assert!(s.is_client_error(), "{path} {s} {v}");
        }
    }
    let (s, v) = h
        .admin_post(
            ADMIN_ADJUSTMENTS.path,
            &AdjustmentRequest {
                account_id: 1,
                amount: i64::MAX,
                idempotency_key: "x".into(),
                note: String::new(),
            },
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    h.audit().await;
}

#[tokio::test]
async fn credential_status_tells_when_to_replenish() {
    let h = Harness::start().await;
    let token = h.login("+989120000014").await;
    h.topup(&token, 100_000, "a").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v1 = Validator::register(&h, 1).await;
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, CredentialState::Active);
    assert_eq!(v.credential.pseudonym, w.pseudonym);
    assert!(v.server_time > 1_700_000_000);
    // a top-up lets the allowance grow
    h.topup_from(&w, 50_000, "b").await;
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, CredentialState::ReplenishDue);
    assert_eq!(v.credential.reason.as_deref(), Some("allowance_can_grow"));
    let c = w.replenish(&h).await;
    assert_eq!(c.max_amount, 150_000);
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, CredentialState::Active);
    assert_eq!(v.credential.certificate, Some(c.certificate));
    assert_eq!(
        v.credential.pseudonym, c.pseudonym,
        "the newest certificate's"
    );
    // under a quarter of the counters left (the wallet's own rule too): a quarter left is
    // not low yet, one counter fewer is
    let base = ride_base(w.server_time);
    let range = i64::from(mancard_backend::DEFAULT_COUNTERS_PER_CERT);
    let mut entries = Vec::new();
    for k in 0..range * 3 / 4 {
        let (_, e) = w.nfc_tap(&v1, 1 + (k % 2) as u32, 0, base + k * 60);
        entries.push(e);
    }
    let v = w.sync_ok(&h, &entries).await;
    assert_eq!(v.credential.status, CredentialState::Active, "{v:?}");
    let (_, e) = w.nfc_tap(&v1, 1, 0, base + range * 60);
    let v = w.sync_ok(&h, &[e]).await;
    assert_eq!(v.credential.status, CredentialState::ReplenishDue);
    assert_eq!(v.credential.reason.as_deref(), Some("counters_low"));
    // expiry near
    w.replenish(&h).await;
    h.handle().engine().advance_clock(49 * 3600).unwrap();
    let v = w.sync_ok(&h, &[]).await;
    assert_eq!(v.credential.status, CredentialState::ReplenishDue);
    assert_eq!(v.credential.reason.as_deref(), Some("expiry_near"));
    h.audit().await;
}

/// The certificate's `max_amount` bounds the signed amounts of all its taps together (a stolen
/// tap key is worth at most that), counted once per tap whatever the number of reports.
#[tokio::test]
async fn authorized_total_over_the_allowance_is_fraud_and_denied() {
    let h = Harness::start().await;
    let token = h.login("+989120000020").await;
    h.topup(&token, 100_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    assert_eq!(c.max_amount, 100_000);
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let p = Pseudonym::from_hex(&w.pseudonym).unwrap();
    // every amount is within the allowance; the NFC authorizations together, 30 000 + 30 000
    // + 50 000 = 110 000, are not (a pass is not counted: the phone releases an unscanned
    // pass's reservation when it expires)
    let (r0, e0) = w.nfc_tap(&v1, 1, 30_000, base);
    let (r1, e1) = w.nfc_tap(&v1, 2, 30_000, base + 3600);
    let (r2, e2) = w.qr_tap(1, 1, 20_000, base + 2 * 3600, 30_000);
    let (r3, e3) = w.nfc_tap(&v1, 10, 50_000, base + 3 * 3600);

    // 60 000 settled by the validator, then replayed: the same batch and a new batch
    let batch = v1.batch(vec![r0.clone(), r1.clone()]);
    let b = h.upload_ok(&batch).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled; 2]);
    let b = h.upload_ok(&batch).await;
    assert!(b.duplicate_batch);
    let b = h.upload_ok(&v1.batch(vec![r0.clone(), r1.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate; 2]);
    // the wallet reports the same two and the QR pass (pending: no validator reported it
    // yet), twice
    let v = w.sync_ok(&h, &[e0.clone(), e1.clone(), e2.clone()]).await;
    assert_eq!(
        statuses(&v.taps),
        [
            TapStatus::Duplicate,
            TapStatus::Duplicate,
            TapStatus::Pending
        ]
    );
    let v = w.sync_ok(&h, &[e0, e1, e2]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Duplicate; 3]);
    // the reader's record of the pass names its line: a duplicate too
    let b = h.upload_ok(&v1.batch(vec![r2])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert!(
        h.fraud_cases().await.is_empty(),
        "replays do not count twice"
    );
    assert_ne!(v.credential.status, CredentialState::Revoked, "{v:?}");
    let before = h.config().await;
    assert!(!before.is_denied(&p));

    // the tap that takes the total over the allowance
    let b = h.upload_ok(&v1.batch(vec![r3.clone()])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Fraud]);
    let rec = &b.records[0];
    assert_eq!(rec.reason.as_deref(), Some("over_allowance"));
    assert_eq!(
        rec.detail.as_deref().unwrap(),
        "authorized total 110000 exceeds the certificate's offline allowance 100000"
    );
    assert!(rec.fare.is_some(), "the ride is still charged");
    let cases = h.fraud_cases().await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].kind, FraudKind::OverAllowance);
    assert_eq!(cases[0].counter, Some(r3.counter));
    assert_eq!(cases[0].pseudonym, w.pseudonym.as_str());
    assert_eq!(Some(&cases[0].detail), rec.detail.as_ref());
    // revoked: on the next bundle's deny list, and the wallet learns it
    let after = h.config().await;
    assert!(after.is_denied(&p));
    assert!(after.body.bundle_version > before.body.bundle_version);
    let v = w.sync_ok(&h, &[e3]).await;
    assert_eq!(statuses(&v.taps), [TapStatus::Duplicate]);
    assert_eq!(v.credential.status, CredentialState::Revoked);
    assert_eq!(v.credential.reason.as_deref(), Some("over_allowance"));
    // a replay of the crossing tap opens no second case
    let b = h.upload_ok(&v1.batch(vec![r3])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Duplicate]);
    assert_eq!(h.fraud_cases().await.len(), 1);
    h.audit().await;
}

/// The running total belongs to one certificate (a replenished one starts from zero), is
/// stored (it survives a restart), and a late report under the old certificate still counts.
#[tokio::test]
async fn allowance_total_is_per_certificate_and_survives_restart() {
    let h = Harness::start().await;
    let token = h.login("+989120000021").await;
    h.topup(&token, 100_000, "t").await;
    let (mut w, c) = Wallet::provision(&h, &token).await;
    assert_eq!(c.max_amount, 100_000);
    let v1 = Validator::register(&h, 1).await;
    let base = ride_base(w.server_time);
    let (r0, _) = w.nfc_tap(&v1, 1, 40_000, base);
    let (r1, _) = w.nfc_tap(&v1, 2, 40_000, base + 3600);
    // signed under the first certificate, reported only at the end
    let (late, _) = w.nfc_tap(&v1, 1, 30_000, base + 2 * 3600);
    let b = h.upload_ok(&v1.batch(vec![r0, r1])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled; 2]);

    let h = h.restart().await;
    let c2 = w.replenish(&h).await;
    assert!(c2.max_amount >= 40_000, "{c2:?}");
    // 40 000 under the new certificate: its own total, not the first one's 80 000
    let (r2, _) = w.nfc_tap(&v1, 10, 40_000, base + 3 * 3600);
    let b = h.upload_ok(&v1.batch(vec![r2])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Settled]);
    assert!(h.fraud_cases().await.is_empty());
    // the late tap under the first certificate: 80 000 (stored before the restart) + 30 000
    let b = h.upload_ok(&v1.batch(vec![late])).await;
    assert_eq!(statuses(&b.records), [TapStatus::Fraud]);
    assert_eq!(b.records[0].reason.as_deref(), Some("over_allowance"));
    assert_eq!(
        b.records[0].detail.as_deref().unwrap(),
        "authorized total 110000 exceeds the certificate's offline allowance 100000"
    );
    assert!(h
        .config()
        .await
        .is_denied(&Pseudonym::from_hex(&w.pseudonym).unwrap()));
    h.audit().await;
}

/// The in-process fixture benches use: a rider set up through the engine, a validator's
/// batch ingested by it, each tap charged once.
#[test]
fn an_engine_rider_settles_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let e = mancard_backend::Engine::open(backend_config(&dir), "http://127.0.0.1".into()).unwrap();
    let mut r = EngineRider::setup(&e, "+989127770000", 100_000);
    let v = Validator::register_on(&e, 3);
    let base = ride_base(e.now());
    let records = vec![
        r.nfc_record(&v, 1, 20_000, base),
        r.nfc_record(&v, 2, 20_000, base + 3 * 3600),
    ];
    let batch = signed_batch(&v.key, 3, [7; 16], base, records);
    // uploaded after the rides
    e.advance_clock(base + 3 * 3600 - e.now()).unwrap();
    let b = e.ingest_batch(&batch).unwrap();
    assert_eq!(statuses(&b.records), [TapStatus::Settled; 2]);
    assert!(e.ingest_batch(&batch).unwrap().duplicate_batch);
    assert_eq!(e.account(r.account_id).unwrap().balance, 60_000);
    assert!(e.audit().unwrap().ok);
}

/// Settlement is set-based: a batch costs a few statements whatever its size, not a few per
/// tap (issue #16: on PostgreSQL each statement is a round trip). Ten times the riders and
/// taps cost at most a few statements more (on PostgreSQL, whose statements take their rows
/// as arrays, none more), and every tap is still charged once.
#[test]
fn a_batch_costs_a_few_statements_whatever_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let e = mancard_backend::Engine::open(backend_config(&dir), "http://127.0.0.1".into()).unwrap();
    let v = Validator::register_on(&e, 3);
    let base = ride_base(e.now());
    let mut riders: Vec<EngineRider> = (0..40)
        .map(|i| EngineRider::setup(&e, &format!("+98912777{i:04}"), 100_000))
        .collect();
    e.advance_clock(base + 3 * 3600 - e.now()).unwrap();
    // two rides a rider (the second re-rates the day), `n` riders a batch
    let ingest = |riders: &mut [EngineRider], batch_id: u8| {
        let batch = two_rides_each(&v, riders, batch_id, base);
        let before = mancard_backend::statements_on_this_thread();
        let b = e.ingest_batch(&batch).unwrap();
        let cost = mancard_backend::statements_on_this_thread() - before;
        assert!(
            b.records.iter().all(|t| t.status == TapStatus::Settled),
            "{b:?}"
        );
        cost
    };
    let (small, large) = riders.split_at_mut(4);
    let eight = ingest(small, 1);
    let seventy_two = ingest(large, 2);
    // (about 20 and 36 here; one statement per tap or per rider would be 64 more, and the
    // tap-by-tap settlement this replaced took about 11 a tap)
    assert!(
        seventy_two <= eight + 20,
        "8 taps: {eight} statements, 72 taps: {seventy_two}"
    );
    assert!(seventy_two < 60, "72 taps: {seventy_two} statements");
    // PostgreSQL binds a statement's rows as arrays: one statement a table, whatever the count
    assert!(
        !on_postgres() || seventy_two == eight,
        "on PostgreSQL, 8 taps: {eight} statements, 72 taps: {seventy_two}"
    );
    for r in &riders {
        assert_eq!(e.account(r.account_id).unwrap().balance, 60_000);
    }
    assert!(e.audit().unwrap().ok);
}

/// Every endpoint of `mancard_api::endpoints` is routed with its method, and one without
/// credentials is refused exactly when the constant says it needs them.
#[tokio::test]
async fn every_endpoint_constant_is_routed_with_its_auth() {
    use mancard_api::endpoints::{self, Auth, Method};
    let h = Harness::start().await;
    for e in endpoints::ALL {
        let url = h.u(&e.path_with(&"ab".repeat(16)));
        let req = match e.method {
            Method::Get => h.http.get(&url),
            Method::Post => h
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        // a 2xx answer is not a problem document: no code
        let code = serde_json::from_str::<Problem>(&body).ok().map(|p| p.code);
        assert!(
            code != Some(ProblemCode::NotFound) && code != Some(ProblemCode::MethodNotAllowed),
            "{e:?} is not routed: {status} {body}"
        );
        match e.auth {
            Auth::Session | Auth::Admin => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{e:?}: {body}")
            }
            Auth::Public | Auth::ValidatorSigned | Auth::Sandbox => {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{e:?}: {body}")
            }
        }
    }
}

/// A careless or hostile operator rotating the issuer key again and again: once the keys still
/// listed for verification would overflow a config bundle (16), rotation is refused with 409
/// and the bundle (which provisioning, sync and every validator need) keeps being served.
#[tokio::test]
async fn rotating_past_what_a_bundle_carries_is_refused_and_the_bundle_still_served() {
    let h = Harness::start().await;
    for i in 0..15 {
        let (s, k) = h.admin_post(ADMIN_ROTATE_KEYS.path, &json!({})).await;
        assert_eq!(s, StatusCode::OK, "rotation {i}: {k}");
    }
    let (s, k) = h.admin_post(ADMIN_ROTATE_KEYS.path, &json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{k}");
    assert_eq!(k["code"], "too_many_issuer_keys", "{k}");
    let (s, k) = h.get(ADMIN_ISSUER_KEYS.path, Some(ADMIN)).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    let keys: KeysResponse = serde_json::from_value(k).unwrap();
    assert_eq!(keys.current_key_id, 16);
    let cfg = h.config().await;
    assert_eq!(cfg.body.issuer_keys.len(), 16);
    assert_eq!(cfg.body.signer_key_id, 16);
}
