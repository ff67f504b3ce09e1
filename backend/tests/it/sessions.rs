//! Sessions, phone numbers and code lockout (issue #15), each tried as the attacker would:
//! a lost phone's token, a stolen bound token without the binding key, a stranger burning a
//! rider's codes, one number in many spellings. Real backend over HTTP on loopback.

use mancard_api::endpoints::{
    ACCOUNT, CREATE_SESSION, CREATE_TOPUP, CREDENTIAL_NONCE, END_SESSION, LOGOUT, PROVISION,
    REPLENISH, REQUEST_OTP, SANDBOX_OTP, SESSIONS,
};
use mancard_api::{
    AccountResponse, CredentialResponse, NonceResponse, OtpRequest, OtpResponse, Problem,
    ProblemCode, SandboxOtp, SessionList, SessionRequest, SessionResponse, TopupRequest,
};
use mancard_protocol::provision::{proof_header, sign_request, ProvisionPurpose};
use mancard_protocol::SigningKey;
use mancard_testkit::backend::*;
use reqwest::StatusCode;
use serde_json::Value;

fn code_of(v: &Value) -> ProblemCode {
    serde_json::from_value::<Problem>(v.clone()).unwrap().code
}

async fn request_code(h: &Harness, phone: &str) -> reqwest::Response {
    request_code_from(h, phone, None).await
}

/// A code request from client address `from` (sent as `X-Forwarded-For`: the harness must
/// trust loopback as a proxy for it to count).
async fn request_code_from(h: &Harness, phone: &str, from: Option<&str>) -> reqwest::Response {
    let mut r = h.http.post(h.u(REQUEST_OTP.path)).json(&OtpRequest {
        phone: phone.into(),
    });
    if let Some(f) = from {
        r = r.header("x-forwarded-for", f);
    }
    r.send().await.unwrap()
}

/// A code request that must be accepted: its request id.
async fn sent_code(h: &Harness, phone: &str, from: Option<&str>) -> String {
    let r = request_code_from(h, phone, from).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{phone} from {from:?}");
    r.json::<OtpResponse>().await.unwrap().request_id
}

/// The live code of one request (the sandbox reads it back).
async fn live_code(h: &Harness, phone: &str, request_id: &str) -> String {
    let otp: SandboxOtp = h
        .get_ok(
            &format!(
                "{}?phone={}&request_id={request_id}",
                SANDBOX_OTP.path,
                urlenc(phone)
            ),
            None,
        )
        .await;
    otp.code
}

async fn try_login(h: &Harness, phone: &str, code: &str, request_id: &str) -> (StatusCode, Value) {
    h.post(
        CREATE_SESSION.path,
        None,
        &SessionRequest {
            phone: phone.into(),
            code: code.into(),
            request_id: request_id.into(),
        },
    )
    .await
}

/// A code that is not `code`.
fn wrong(code: &str, i: u32) -> String {
    let c: u32 = code.parse().unwrap();
    format!("{:08}", (c + 1 + i) % 100_000_000)
}

fn advance(h: &Harness, secs: i64) {
    h.handle().engine().advance_clock(secs).unwrap();
}

async fn account_id(h: &Harness, token: &str) -> (StatusCode, Option<i64>) {
    let (s, v) = h.get(ACCOUNT.path, Some(token)).await;
    let id = serde_json::from_value::<AccountResponse>(v)
        .ok()
        .map(|a| a.account_id);
    (s, id)
}

#[tokio::test]
async fn a_lost_phones_session_cannot_provision() {
    let h = Harness::start().await;
    let phone = "09121110001";
    let old_token = h.login(phone).await;
    let (old_phone, _) = Wallet::provision(&h, &old_token).await;

    // The phone is lost; the rider logs in on a new phone and provisions it.
    let new_token = h.login(phone).await;
    let (mut new_phone, c) = Wallet::provision(&h, &new_token).await;
    assert_eq!(
        c.revoked_pseudonyms.len(),
        1,
        "the old phone's card is revoked"
    );

    // Whoever holds the old phone: its token is dead, whatever key it signs with.
    let (thief_binding, _) = SigningKey::generate().unwrap();
    let (thief_tap, _) = SigningKey::generate().unwrap();
    let (s, v) = h
        .http
        .post(h.u(CREDENTIAL_NONCE.path))
        .bearer_auth(&old_token)
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{:?}", v.text().await);
    let req = Wallet::credential_request(
        &h,
        &new_token,
        &thief_binding,
        &thief_tap,
        ProvisionPurpose::Provision,
    )
    .await; // a nonce of the account, even: the old token still cannot use it
    let (s, v) = h.post(PROVISION.path, Some(&old_token), &req).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized)
    );
    let (s, _) = h.get(ACCOUNT.path, Some(&old_token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .post(
            CREATE_TOPUP.path,
            Some(&old_token),
            &TopupRequest {
                amount: 50_000,
                idempotency_key: "thief".into(),
            },
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    drop(old_phone);

    // It got nothing: the new phone is still the account's device and keeps working.
    let again = new_phone.replenish(&h).await;
    assert!(again.revoked_pseudonyms.is_empty());
    let list: SessionList = h.get_ok(SESSIONS.path, Some(&new_token)).await;
    assert_eq!(
        list.sessions.len(),
        1,
        "only the new phone's session is live"
    );
    assert!(list.sessions[0].current && list.sessions[0].bound);
    assert!(h.audit().await.ok);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let h = Harness::start().await;
    let a = h.login("09121110002").await;
    let b = h.login("+989121110002").await;
    assert_eq!(account_id(&h, &a).await.0, StatusCode::OK);
    let (s, _) = h.post_with_proof(LOGOUT.path, &a, None, b"").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(account_id(&h, &a).await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = h.post_with_proof(LOGOUT.path, &a, None, b"").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized)
    );
    // the account's other session is untouched
    assert_eq!(account_id(&h, &b).await.0, StatusCode::OK);
    // a bound session logs out the same way (ending one's own session moves nothing)
    let (_w, _) = Wallet::provision(&h, &b).await;
    let (s, _) = h.post_with_proof(LOGOUT.path, &b, None, b"").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(account_id(&h, &b).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn one_number_in_three_spellings_is_one_account() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for spelling in [
        "09121110003",
        "+98 912 111 0003",
        "0098-912-111-0003",
        "۰۹۱۲۱۱۱۰۰۰۳",
        "989121110003",
    ] {
        advance(&h, 121); // one code per two minutes to one number from one address
        let request_id = sent_code(&h, spelling, None).await;
        let code = live_code(&h, spelling, &request_id).await;
        let sess: SessionResponse = h
            .post_ok(
                CREATE_SESSION.path,
                None,
                &SessionRequest {
                    phone: spelling.into(),
                    code,
                    request_id,
                },
            )
            .await;
        let a: AccountResponse = h.get_ok(ACCOUNT.path, Some(&sess.token)).await;
        assert_eq!(a.phone, "+989121110003", "{spelling}");
        ids.push(a.account_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one account: {ids:?}");

    for (bad, words) in [
        ("+14155550100", "Iranian"),
        ("+447911123456", "Iranian"),
        ("02188776655", "mobile"),
        ("0912111000", "valid"),
        ("0912abc0003", "digits"),
        ("", "empty"),
    ] {
        let r = request_code(&h, bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(code_of(&v), ProblemCode::InvalidPhone, "{bad}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{bad}: {detail}");
    }
}

/// Seconds in a 429's `Retry-After`.
fn retry_after(r: &reqwest::Response) -> i64 {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_stranger_cannot_lock_a_rider_out() {
    // Loopback is trusted as a proxy, so `X-Forwarded-For` names each client's address.
    let h = Harness::start_with_config(|cfg| {
        cfg.edge.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let phone = "+989121110004";
    let (stranger, rider) = (Some("203.0.113.9"), Some("198.51.100.7"));

    // The stranger asks for codes until refused, then keeps hammering: a burst of 3 from one
    // address, then one per two minutes; refusals do not push the next send further away.
    let mut theirs = Vec::new();
    let mut waits = Vec::new();
    for _ in 0..20 {
        let r = request_code_from(&h, phone, stranger).await;
        if r.status() == StatusCode::ACCEPTED {
            theirs.push(r.json::<OtpResponse>().await.unwrap().request_id);
        } else {
            waits.push(retry_after(&r));
            let v: Value = r.json().await.unwrap();
            assert_eq!(code_of(&v), ProblemCode::RateLimited);
        }
    }
    assert_eq!(theirs.len(), 3, "a small burst, then paced");
    assert!(waits.iter().all(|s| (1..=120).contains(s)), "{waits:?}");
    // ... and guesses every one of their codes to death, and guesses with made-up request ids.
    for request_id in &theirs {
        for i in 0..3 {
            let (s, _) = try_login(&h, phone, &wrong("0", i), request_id).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
    }
    for i in 0..20u32 {
        let made_up = format!("{i:032x}");
        let (s, _) = try_login(&h, phone, &wrong("0", i), &made_up).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    // The rider, at another address, is not kept waiting at all, and the stranger's next
    // requests and guesses do not touch the rider's code.
    let mine = sent_code(&h, phone, rider).await;
    let my_code = live_code(&h, phone, &mine).await;
    for round in 0..2 {
        // within the code's 5 minutes
        advance(&h, 120);
        let request_id = sent_code(&h, phone, stranger).await;
        for i in 0..3 {
            let (s, _) = try_login(&h, phone, &wrong(&my_code, round * 3 + i), &request_id).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
    }
    let (s, v) = try_login(&h, phone, &my_code, &mine).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sess: SessionResponse = serde_json::from_value(v).unwrap();
    assert_eq!(account_id(&h, &sess.token).await.0, StatusCode::OK);

    // A persistent stranger, flat out at one address for two hours: at every moment the
    // rider still gets a fresh code at once and logs in with it.
    for _ in 0..60 {
        advance(&h, 120);
        let request_id = sent_code(&h, phone, stranger).await;
        let (s, _) = try_login(&h, phone, &wrong("0", 7), &request_id).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let mine = sent_code(&h, phone, rider).await;
    let my_code = live_code(&h, phone, &mine).await;
    let (s, v) = try_login(&h, phone, &my_code, &mine).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The rider's own mistyped code costs only the rider's request, and a fresh one works.
    advance(&h, 120);
    let mine = sent_code(&h, phone, rider).await;
    let my_code = live_code(&h, phone, &mine).await;
    for i in 0..3 {
        let (s, _) = try_login(&h, phone, &wrong(&my_code, i), &mine).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let again = sent_code(&h, phone, rider).await;
    let code = live_code(&h, phone, &again).await;
    assert_eq!(try_login(&h, phone, &code, &again).await.0, StatusCode::OK);
}

/// The SMS does not say which request a code belongs to. A stranger's codes arriving on the
/// rider's phone, typed by the rider into their own login, are not guesses (whoever typed
/// them read an SMS sent to the number): the rider's own code survives them.
#[tokio::test]
async fn the_code_of_another_request_is_not_a_guess() {
    let h = Harness::start_with_config(|cfg| {
        cfg.edge.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let phone = "+989121110024";
    let mine = sent_code(&h, phone, Some("198.51.100.7")).await;
    for _ in 0..3 {
        let theirs = sent_code(&h, phone, Some("203.0.113.9")).await;
        let newest_sms = live_code(&h, phone, &theirs).await;
        let (s, v) = try_login(&h, phone, &newest_sms, &mine).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(code_of(&v), ProblemCode::CodeOfAnotherRequest, "{v}");
    }
    let my_code = live_code(&h, phone, &mine).await;
    let (s, v) = try_login(&h, phone, &my_code, &mine).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn many_addresses_cannot_bomb_one_number_with_codes() {
    let h = Harness::start_with_config(|cfg| {
        cfg.edge.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let phone = "+989121110014";
    // Forty addresses at once: the number's own pace (a burst of 6, then one per 30 s)
    // bounds the texts it gets, and so the guesses anyone gets (3 per code).
    let mut sent = 0;
    for i in 0..40 {
        let from = format!("192.0.2.{i}");
        let r = request_code_from(&h, phone, Some(&from)).await;
        if r.status() == StatusCode::ACCEPTED {
            sent += 1;
        } else {
            assert!((1..=30).contains(&retry_after(&r)));
        }
    }
    assert_eq!(sent, 6);
    // Over an hour of such a flood, one text per 30 s at most.
    for _ in 0..120 {
        advance(&h, 30);
        for i in 0..5 {
            let from = format!("192.0.2.{}", 100 + i);
            let r = request_code_from(&h, phone, Some(&from)).await;
            if r.status() == StatusCode::ACCEPTED {
                sent += 1;
            }
        }
    }
    assert_eq!(sent, 6 + 120);
}

/// Provisions a rider's phone and returns the harness wallet (bound session and binding key).
async fn bound_rider(h: &Harness, phone: &str) -> Wallet {
    let token = h.login(phone).await;
    Wallet::provision(h, &token).await.0
}

#[tokio::test]
async fn a_stolen_bound_token_without_the_binding_key_moves_nothing() {
    let h = Harness::start().await;
    let rider = bound_rider(&h, "09121110005").await;
    let second = h.login("09121110005").await; // e.g. a browser session of the rider
    let token = rider.token.clone();
    let (thief_key, _) = SigningKey::generate().unwrap();
    let body = serde_json::to_vec(&TopupRequest {
        amount: 50_000,
        idempotency_key: "stolen-1".into(),
    })
    .unwrap();

    // top-up: no proof, a proof by another key, a replayed proof, a proof for another body
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, None, &body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::ProofRequired)
    );
    let forged = h.proof(&token, &thief_key, CREATE_TOPUP.path, &body).await;
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, Some(&forged), &body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::BadRequestProof)
    );
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, Some("00.11"), &body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::BadRequestProof)
    );
    let genuine = h
        .proof(&token, &rider.binding, CREATE_TOPUP.path, &body)
        .await;
    let other_body = serde_json::to_vec(&TopupRequest {
        amount: 90_000,
        idempotency_key: "stolen-2".into(),
    })
    .unwrap();
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, Some(&genuine), &other_body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::BadRequestProof)
    );
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, Some(&genuine), &body)
        .await;
    assert_eq!(s, StatusCode::OK, "the rider's own proof: {v}");
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &token, Some(&genuine), &body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidNonce)
    );

    // replenish or provision with the thief's binding key: refused, the rider's device stays
    let (tap, _) = SigningKey::generate().unwrap();
    for purpose in [ProvisionPurpose::Replenish, ProvisionPurpose::Provision] {
        let req = Wallet::credential_request(&h, &token, &thief_key, &tap, purpose).await;
        let path = match purpose {
            ProvisionPurpose::Replenish => REPLENISH.path,
            ProvisionPurpose::Provision => PROVISION.path,
        };
        let (s, v) = h.post(path, Some(&token), &req).await;
        assert_eq!(
            (s, code_of(&v)),
            (StatusCode::FORBIDDEN, ProblemCode::WrongDevice)
        );
    }

    // ending the rider's other session: needs the proof
    let list: SessionList = h.get_ok(SESSIONS.path, Some(&token)).await;
    let other = list
        .sessions
        .iter()
        .find(|s| !s.current)
        .unwrap()
        .id
        .clone();
    let path = END_SESSION.path_with(&other);
    let (s, v) = h.post_with_proof(&path, &token, None, b"").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::ProofRequired)
    );
    let forged = h.proof(&token, &thief_key, &path, b"").await;
    let (s, _) = h.post_with_proof(&path, &token, Some(&forged), b"").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(account_id(&h, &second).await.0, StatusCode::OK);

    // the rider, with the key, does all of it
    let mut rider = rider;
    let c: CredentialResponse = rider.replenish(&h).await;
    assert!(c.revoked_pseudonyms.is_empty());
    // ...but a session never ends one made after it (the newer login holds the SIM's code:
    // a lost phone must not log out the rider's new phone), even with a good proof
    let proof = h.proof(&token, &rider.binding, &path, b"").await;
    let (s, v) = h.post_with_proof(&path, &token, Some(&proof), b"").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::NewerSession)
    );
    assert_eq!(account_id(&h, &second).await.0, StatusCode::OK);
    // the newer one ends the older one (unbound: no proof needed), once; then 404
    let list: SessionList = h.get_ok(SESSIONS.path, Some(&second)).await;
    let mine = &list.sessions.iter().find(|s| !s.current).unwrap().id;
    let path = END_SESSION.path_with(mine);
    let (s, _) = h.post_with_proof(&path, &second, None, b"").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(account_id(&h, &token).await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = h.post_with_proof(&path, &second, None, b"").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, ProblemCode::UnknownSession)
    );
    assert!(h.audit().await.ok);
}

#[tokio::test]
async fn the_session_list_never_shows_tokens() {
    let h = Harness::start().await;
    let rider = bound_rider(&h, "09121110006").await;
    let other = h.login("09121110006").await;
    let (s, raw) = h.get(SESSIONS.path, Some(&rider.token)).await;
    assert_eq!(s, StatusCode::OK);
    let text = raw.to_string();
    for t in [&rider.token, &other] {
        assert!(!text.contains(t.as_str()), "a token in the list");
        let digest = hex::encode(mancard_protocol::sha256(&[
            b"MANCARD-SESSION-v1\0",
            t.as_bytes(),
        ]));
        assert!(!text.contains(&digest), "a token digest in the list");
    }
    let list: SessionList = serde_json::from_value(raw).unwrap();
    assert_eq!(list.sessions.len(), 2);
    let me = list.sessions.iter().find(|s| s.current).unwrap();
    assert!(me.bound && me.device_id.is_some());
    let them = list.sessions.iter().find(|s| !s.current).unwrap();
    assert!(!them.bound && them.device_id.is_none());
    assert_eq!(me.id.len(), 32);
    assert_ne!(me.id, them.id);
    // another account sees only its own
    let stranger = h.login("09121110007").await;
    let theirs: SessionList = h.get_ok(SESSIONS.path, Some(&stranger)).await;
    assert_eq!(theirs.sessions.len(), 1);
    // and cannot end the rider's (unbound sessions need no proof, but the id is not theirs)
    let (s, v) = h
        .post_with_proof(&END_SESSION.path_with(&them.id), &stranger, None, b"")
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, ProblemCode::UnknownSession)
    );
    assert_eq!(account_id(&h, &other).await.0, StatusCode::OK);
}

#[tokio::test]
async fn idle_and_expired_sessions_codes_and_nonces_are_purged() {
    let h = Harness::start().await;
    let e = h.handle().engine().clone();
    let kept = h.login("09121110008").await;
    let idle = h.login("09121110009").await;
    let _nonce: NonceResponse = h.post_empty_ok(CREDENTIAL_NONCE.path, Some(&kept)).await;
    sent_code(&h, "09121110010", None).await;
    // nothing is expired yet
    let p = e.purge_expired().unwrap();
    assert_eq!((p.sessions, p.nonces, p.codes), (0, 0, 0));

    // used every 6 days, a session lives on; left 7 days, it ends
    for _ in 0..2 {
        advance(&h, 6 * 86_400);
        assert_eq!(account_id(&h, &kept).await.0, StatusCode::OK);
    }
    assert_eq!(account_id(&h, &idle).await.0, StatusCode::UNAUTHORIZED);
    let p = e.purge_expired().unwrap();
    assert_eq!(p.sessions, 1, "the idle one");
    assert!(p.nonces >= 1 && p.codes >= 1, "{p:?}");
    assert!(p.senders >= 1, "{p:?}");
    let p = e.purge_expired().unwrap();
    assert_eq!(
        p,
        mancard_backend::Purged::default(),
        "nothing left to purge"
    );
    // the absolute limit (30 days) holds even for a session in use
    for days in [6, 6, 5] {
        advance(&h, days * 86_400); // 18, 24, 29 days old
        assert_eq!(account_id(&h, &kept).await.0, StatusCode::OK);
    }
    advance(&h, 2 * 86_400); // 31 days old, idle for 2
    assert_eq!(account_id(&h, &kept).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(e.purge_expired().unwrap().sessions, 1);
}

#[tokio::test]
async fn a_proof_is_bound_to_its_path_and_single_use_nonce() {
    let h = Harness::start().await;
    let rider = bound_rider(&h, "09121110011").await;
    let body = serde_json::to_vec(&TopupRequest {
        amount: 50_000,
        idempotency_key: "p-1".into(),
    })
    .unwrap();
    // a nonce of another account does not prove anything here
    let other = bound_rider(&h, "09121110012").await;
    let n: NonceResponse = h
        .post_empty_ok(CREDENTIAL_NONCE.path, Some(&other.token))
        .await;
    let nonce: [u8; 32] = hex::decode(&n.nonce).unwrap().try_into().unwrap();
    let sig = sign_request(&rider.binding, &nonce, "POST", CREATE_TOPUP.path, &body).unwrap();
    let (s, v) = h
        .post_with_proof(
            CREATE_TOPUP.path,
            &rider.token,
            Some(&proof_header(&nonce, &sig)),
            &body,
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, ProblemCode::InvalidNonce)
    );
    // a proof for another path
    let p = h
        .proof(&rider.token, &rider.binding, "/v1/elsewhere", &body)
        .await;
    let (s, v) = h
        .post_with_proof(CREATE_TOPUP.path, &rider.token, Some(&p), &body)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::BadRequestProof)
    );
    // the wallet helper gets through
    let intent = rider.create_topup(&h, 50_000, "p-2").await;
    assert_eq!(intent.amount, 50_000);
}

/// The thief's race (attack review of #15): a lost phone's bound session watches the session
/// list and, the moment the rider logs in on a new phone, tries to end that session or to
/// re-provision itself to evict it. Neither touches the newer session; the new phone then
/// provisions and ends the lost phone's session.
#[tokio::test]
async fn a_lost_phone_cannot_log_out_the_riders_new_phone() {
    let h = Harness::start().await;
    let phone = "09121110009";
    let old = bound_rider(&h, phone).await;
    let new_token = h.login(phone).await;
    let list: SessionList = h.get_ok(SESSIONS.path, Some(&old.token)).await;
    let newer = &list.sessions.iter().find(|s| !s.current).unwrap().id;
    let path = END_SESSION.path_with(newer);
    let proof = h.proof(&old.token, &old.binding, &path, b"").await;
    let (s, v) = h
        .post_with_proof(&path, &old.token, Some(&proof), b"")
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::FORBIDDEN, ProblemCode::NewerSession)
    );
    // re-provisioning the old device with its own key ends only sessions older than its own
    let mut old = old;
    old.replenish(&h).await;
    let req = Wallet::credential_request(
        &h,
        &old.token,
        &old.binding,
        &SigningKey::generate().unwrap().0,
        ProvisionPurpose::Provision,
    )
    .await;
    let (s, v) = h.post(PROVISION.path, Some(&old.token), &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(account_id(&h, &new_token).await.0, StatusCode::OK);
    // the new phone provisions: the lost phone's session is over
    let (_new_phone, c) = Wallet::provision(&h, &new_token).await;
    assert!(
        !c.revoked_pseudonyms.is_empty(),
        "the lost phone's card is revoked"
    );
    assert_eq!(account_id(&h, &old.token).await.0, StatusCode::UNAUTHORIZED);
}

/// A provisioning body captured (a proxy, a log) and replayed from another session of the
/// account: the retry path hands back the same certificate, but must not bind the replaying
/// session to the rider's device nor end the rider's sessions.
#[tokio::test]
async fn a_replayed_provisioning_body_changes_no_session() {
    let h = Harness::start().await;
    let phone = "09121110010";
    let token = h.login(phone).await;
    let (binding, _) = SigningKey::generate().unwrap();
    let (tap, _) = SigningKey::generate().unwrap();
    let req =
        Wallet::credential_request(&h, &token, &binding, &tap, ProvisionPurpose::Provision).await;
    let (s, first) = h.post(PROVISION.path, Some(&token), &req).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let other = h.login(phone).await; // newer than the rider's, unbound
    let (s, again) = h.post(PROVISION.path, Some(&other), &req).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(
        again["certificate"], first["certificate"],
        "the same certificate"
    );
    assert_eq!(
        account_id(&h, &token).await.0,
        StatusCode::OK,
        "the rider's session lives"
    );
    let list: SessionList = h.get_ok(SESSIONS.path, Some(&other)).await;
    let me = list.sessions.iter().find(|s| s.current).unwrap();
    assert!(
        !me.bound,
        "the replaying session is not bound to the rider's device"
    );
}
