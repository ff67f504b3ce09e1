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
