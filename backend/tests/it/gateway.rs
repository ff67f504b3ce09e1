//! Top-up against the sandbox payment gateway over HTTP, with each of its failures switched
//! on: every payment ends credited exactly once (and then settled at the gateway) or not at
//! all (and then not settled: reversed, cancelled, expired or still pending), and the ledger
//! audits clean. Mismatches (amount, merchant, a reused reference number) are reversed; a
//! forged callback credits nothing.

use mancard_api::endpoints::{CREATE_TOPUP, TOPUP_CALLBACK, TOPUP_STATUS};
use mancard_api::{TopupIntentResponse, TopupRequest, TopupStatus};
use mancard_backend::gateway_sandbox::Faults;
use mancard_backend::providers::payment::GatewayState;
use mancard_testkit::backend::Harness;
use reqwest::StatusCode;

const AMOUNT: i64 = 50_000;

struct Paying {
    session: String,
    intent: TopupIntentResponse,
    token: String,
}

fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn new_intent(h: &Harness, phone: &str, faults: Faults) -> Paying {
    let session = h.login(phone).await;
    let intent: TopupIntentResponse = h
        .post_ok(
            CREATE_TOPUP.path,
            Some(&session),
            &TopupRequest {
                amount: AMOUNT,
                idempotency_key: format!("key-{phone}"),
            },
        )
        .await;
    assert_eq!(intent.status, TopupStatus::Pending);
    let token = intent.payment_url.rsplit('/').next().unwrap().to_string();
    assert!(h.sandbox_gateway().set_faults(Some(&token), faults));
    Paying {
        session,
        intent,
        token,
    }
}

/// The rider presses Pay; the browser follows the redirect to the callback if there is one.
async fn pay(h: &Harness, p: &Paying) {
    let r = no_redirect()
        .post(&p.intent.payment_url)
        .form(&[("pan", "6037991234561234")])
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::SEE_OTHER {
        let callback = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            callback.starts_with(&h.u(TOPUP_CALLBACK.path)),
            "{callback}"
        );
        let page = h.http.get(&callback).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
    } else {
        assert_eq!(r.status(), StatusCode::OK, "the page keeps the rider");
    }
}

async fn status(h: &Harness, p: &Paying) -> TopupIntentResponse {
    h.get_ok(
        &TOPUP_STATUS.path_with(&p.intent.intent_id),
        Some(&p.session),
    )
    .await
}

/// Credited exactly when the gateway settled; the balance is the credit; audit clean.
async fn assert_once_or_none(h: &Harness, p: &Paying, expect_credit: bool) {
    let st = status(h, p).await;
    let gw = h.sandbox_gateway().payment(&p.token).unwrap();
    let credited = st.status == TopupStatus::Credited;
    assert_eq!(credited, expect_credit, "{st:?} / {gw:?}");
    assert_eq!(
        credited,
        gw.state == GatewayState::Settled,
        "{st:?} / {gw:?}"
    );
    if !credited {
        assert!(
            !gw.state.is_paid(),
            "money taken but neither credited nor returned: {gw:?}"
        );
    }
    let balance = h.balance(&p.session).await;
    assert_eq!(balance, if credited { AMOUNT } else { 0 });
    h.audit().await;
}

#[tokio::test]
async fn every_gateway_failure_credits_once_or_not_at_all() {
    let h = Harness::start().await;
    let g = h.sandbox_gateway();

    // verify times out: nothing credited while it does; credited once when it answers again
    let p = new_intent(
        &h,
        "+989121110001",
        Faults {
            verify_timeout: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    assert_eq!(status(&h, &p).await.status, TopupStatus::Pending);
    assert_eq!(g.payment(&p.token).unwrap().state, GatewayState::Paid);
    assert_eq!(h.reconcile().await, 0);
    g.set_faults(Some(&p.token), Faults::default());
    assert_eq!(h.reconcile().await, 1);
    assert_eq!(h.reconcile().await, 0);
    assert_once_or_none(&h, &p, true).await;

    // verify succeeds but its answer is lost: verified at the gateway, not here; the retry
    // gets the same record and settles once
    let p = new_intent(
        &h,
        "+989121110002",
        Faults {
            verify_answer_lost: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    assert_eq!(g.payment(&p.token).unwrap().state, GatewayState::Verified);
    assert_eq!(status(&h, &p).await.status, TopupStatus::Pending);
    g.set_faults(Some(&p.token), Faults::default());
    assert_eq!(status(&h, &p).await.status, TopupStatus::Credited);
    assert_eq!(h.reconcile().await, 0);
    assert_once_or_none(&h, &p, true).await;

    // settle fails: the payment is reversed, nothing credited
    let p = new_intent(
        &h,
        "+989121110003",
        Faults {
            settle_fails: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    let st = status(&h, &p).await;
    assert_eq!(st.status, TopupStatus::Cancelled);
    assert!(st.reason.is_some());
    assert_eq!(g.payment(&p.token).unwrap().state, GatewayState::Reversed);
    assert_eq!(h.reconcile().await, 0);
    assert_once_or_none(&h, &p, false).await;

    // the bank reverses the payment: nothing credited
    let p = new_intent(
        &h,
        "+989121110004",
        Faults {
            reversed: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    assert_eq!(status(&h, &p).await.status, TopupStatus::Cancelled);
    assert_once_or_none(&h, &p, false).await;

    // the callback never comes and the wallet never polls: reconciliation credits once
    let p = new_intent(
        &h,
        "+989121110005",
        Faults {
            callback_never_comes: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    assert_eq!(h.balance(&p.session).await, 0);
    assert_eq!(h.reconcile().await, 1);
    assert_eq!(h.reconcile().await, 0);
    assert_once_or_none(&h, &p, true).await;

    // the answer is lost for good: the gateway reverses the unsettled payment at its
    // deadline; the backend then records the reversal and credits nothing
    let p = new_intent(
        &h,
        "+989121110006",
        Faults {
            verify_answer_lost: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &p).await;
    g.advance_clock(g.settle_window_secs + 1);
    g.set_faults(Some(&p.token), Faults::default());
    assert_eq!(h.reconcile().await, 0);
    assert_eq!(status(&h, &p).await.status, TopupStatus::Cancelled);
    assert_once_or_none(&h, &p, false).await;
}

#[tokio::test]
async fn mismatches_are_reversed_and_credit_nothing() {
    let h = Harness::start().await;
    let g = h.sandbox_gateway();
    for (i, faults) in [
        Faults {
            amount_mismatch: true,
            ..Faults::default()
        },
        Faults {
            merchant_mismatch: true,
            ..Faults::default()
        },
    ]
    .into_iter()
    .enumerate()
    {
        let p = new_intent(&h, &format!("+98912222000{i}"), faults).await;
        pay(&h, &p).await;
        let st = status(&h, &p).await;
        assert_eq!(st.status, TopupStatus::Cancelled, "{faults:?}");
        assert!(st.reason.is_some());
        assert_eq!(g.payment(&p.token).unwrap().state, GatewayState::Reversed);
        assert_once_or_none(&h, &p, false).await;
    }

    // a reference number the gateway gives twice: the first payment is credited, the second
    // reversed
    let first = new_intent(&h, "+989122220010", Faults::default()).await;
    pay(&h, &first).await;
    assert_once_or_none(&h, &first, true).await;
    let second = new_intent(
        &h,
        "+989122220011",
        Faults {
            duplicate_ref: true,
            ..Faults::default()
        },
    )
    .await;
    pay(&h, &second).await;
    assert_eq!(
        g.payment(&second.token).unwrap().ref_num,
        g.payment(&first.token).unwrap().ref_num
    );
    assert_eq!(status(&h, &second).await.status, TopupStatus::Cancelled);
    assert_once_or_none(&h, &second, false).await;
    assert_once_or_none(&h, &first, true).await;
}

#[tokio::test]
async fn a_forged_callback_credits_nothing() {
    let h = Harness::start().await;
    // a real payment of another rider, whose reference number the attacker copies
    let honest = new_intent(&h, "+989123330001", Faults::default()).await;
    pay(&h, &honest).await;
    let real_ref = h
        .sandbox_gateway()
        .payment(&honest.token)
        .unwrap()
        .ref_num
        .unwrap();

    // the attacker's modified app calls the callback for its own unpaid intent
    let attacker = new_intent(&h, "+989123330002", Faults::default()).await;
    let q = [
        ("token", attacker.token.as_str()),
        ("order_id", attacker.intent.intent_id.as_str()),
        ("state", "OK"),
        ("status", "OK"),
        ("ref_num", real_ref.as_str()),
        ("trace_no", "123456"),
        ("masked_pan", "603799******1234"),
    ];
    for _ in 0..3 {
        let r = h
            .http
            .get(h.u(TOPUP_CALLBACK.path))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("pending"));
        let r = h
            .http
            .post(h.u(TOPUP_CALLBACK.path))
            .form(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // a made-up token, and a token of the right shape nobody issued
    for token in ["../../etc", "ab".repeat(16).as_str()] {
        let r = h
            .http
            .get(h.u(TOPUP_CALLBACK.path))
            .query(&[("token", token), ("state", "OK")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(h.reconcile().await, 0);
    assert_once_or_none(&h, &attacker, false).await;
    assert_eq!(
        h.sandbox_gateway().payment(&attacker.token).unwrap().state,
        GatewayState::Pending
    );
    assert_once_or_none(&h, &honest, true).await;
}

/// A Kavenegar-style SMS web service on loopback: records what it was asked to send; refuses
/// (status 411, "invalid receptor") numbers ending in 9.
async fn sms_service() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>,
) {
    use axum::extract::{Path, Query, State};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Sent = Arc<Mutex<Vec<(String, String, String, String)>>>;
    let sent: Sent = Arc::default();
    async fn lookup(
        State(sent): State<Sent>,
        Path(key): Path<String>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        let receptor = q.get("receptor").cloned().unwrap_or_default();
        let status = if receptor.ends_with('9') { 411 } else { 200 };
        sent.lock().unwrap().push((
            key,
            receptor,
            q.get("token").cloned().unwrap_or_default(),
            q.get("template").cloned().unwrap_or_default(),
        ));
        axum::Json(serde_json::json!({"return": {"status": status, "message": "-"}, "entries": []}))
    }
    let app = axum::Router::new()
        .route("/v1/{key}/verify/lookup.json", axum::routing::get(lookup))
        .with_state(Arc::clone(&sent));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, sent)
}

#[tokio::test]
async fn production_mode_needs_real_providers_and_uses_them() {
    use mancard_api::endpoints::{CREATE_SESSION, REQUEST_OTP, SANDBOX_OTP};
    use mancard_api::{OtpRequest, SessionRequest, SessionResponse};
    use mancard_backend::gateway_sandbox::{start, SandboxGatewayConfig};
    use mancard_backend::providers::{GatewayConfig, SmsConfig};
    use mancard_backend::{Backend, ServerError};
    use mancard_testkit::backend::backend_config;
    let dir = tempfile::tempdir().unwrap();

    // no providers: refused with a message that says what is missing
    let mut cfg = backend_config(&dir);
    cfg.sandbox = false;
    match Backend::start(cfg.clone()).await {
        Err(ServerError::Config(m)) => assert!(m.contains("SMS"), "{m}"),
        other => panic!("a production backend started without providers: {other:?}"),
    }
    let (sms_url, sent) = sms_service().await;
    cfg.providers.sms = SmsConfig::Http {
        url: sms_url,
        api_key: "k-0123456789".into(),
        template: "mancard-otp".into(),
    };
    match Backend::start(cfg.clone()).await {
        Err(ServerError::Config(m)) => assert!(m.contains("payment gateway"), "{m}"),
        other => panic!("a production backend started without a gateway: {other:?}"),
    }
    // the "bank": the sandbox gateway's HTTP protocol, as a Shaparak gateway
    let bank = start(SandboxGatewayConfig::loopback()).await.unwrap();
    cfg.providers.gateway = GatewayConfig::Shaparak {
        url: bank.url().to_string(),
        terminal_id: "T-1001".into(),
        api_key: "gateway-key-0123".into(),
    };
    let handle = Backend::start(cfg).await.unwrap();
    let http = mancard_testkit::backend::client();
    let u = |p: &str| format!("{}{p}", handle.url());

    let r = http
        .post(u(REQUEST_OTP.path))
        .json(&OtpRequest {
            phone: "09121234567".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let sent_otp: mancard_api::OtpResponse = r.json().await.unwrap();
    let (key, receptor, code, template) = sent.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (key.as_str(), receptor.as_str(), template.as_str()),
        ("k-0123456789", "+989121234567", "mancard-otp")
    );
    assert_eq!(code.len(), 8);
    // no sandbox endpoint reads the code in production
    let r = http
        .get(u(&format!("{}?phone=09121234567", SANDBOX_OTP.path)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let s: SessionResponse = http
        .post(u(CREATE_SESSION.path))
        .json(&SessionRequest {
            phone: "09121234567".into(),
            code,
            request_id: sent_otp.request_id,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // the SMS service refuses a number: 503 with a problem document, not a 500
    let r = http
        .post(u(REQUEST_OTP.path))
        .json(&OtpRequest {
            phone: "09121234569".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // a top-up through the gateway under the merchant's terminal id, credited once
    let intent: TopupIntentResponse = http
        .post(u(CREATE_TOPUP.path))
        .bearer_auth(&s.token)
        .json(&TopupRequest {
            amount: AMOUNT,
            idempotency_key: "prod-1".into(),
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(intent.payment_url.starts_with(bank.url()));
    let token = intent.payment_url.rsplit('/').next().unwrap();
    assert_eq!(bank.gateway().payment(token).unwrap().terminal_id, "T-1001");
    let page = http.post(&intent.payment_url).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("credited"));
    assert_eq!(
        bank.gateway().payment(token).unwrap().state,
        GatewayState::Settled
    );
    assert!(handle.engine().audit().unwrap().ok);

    // the gateway stops answering: a new top-up is refused with 503, nothing stored
    bank.stop();
    let r = http
        .post(u(CREATE_TOPUP.path))
        .bearer_auth(&s.token)
        .json(&TopupRequest {
            amount: AMOUNT,
            idempotency_key: "prod-2".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    handle.shutdown().await.unwrap();
}
