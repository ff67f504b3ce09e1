//! A fault-injecting proxy between the wallet and the real backend: answers dropped after the
//! request was applied, answers later than the client waits, 5xx (before and after applying),
//! truncated and malformed bodies. After every scenario the wallet converges: its balance is
//! the backend's, every tap is settled exactly once and no top-up is credited twice.

use mancard::{now_utc, HistoryKind, OnlineError, OnlineWallet, TopUpStatus, Wallet};
use mancard_testkit::online::*;
use mancard_testkit::proxy::*;
use std::sync::Arc;
use std::time::Duration;

fn key_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["idempotency_key"].as_str().unwrap().to_string()
}

fn top_ups_in_history(w: &Wallet) -> usize {
    w.history(None, 500)
        .unwrap()
        .items
        .iter()
        .filter(|i| i.kind == HistoryKind::TopUp)
        .count()
}

struct Setup {
    env: Env,
    proxy: Proxy,
    w: Arc<Wallet>,
    o: OnlineWallet,
    account: i64,
    v: Validator,
    t: i64,
}

fn setup() -> Setup {
    let env = Env::start();
    let proxy = Proxy::start(&env);
    let root = data_dir(env.path(), "phone");
    let w = open_wallet(&root);
    let o = online(&w, &proxy.url);
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    let v = Validator::new(&env, 9);
    Setup {
        env,
        proxy,
        w,
        o,
        account,
        v,
        t: now_utc(),
    }
}

impl Setup {
    fn taps(&mut self, n: usize) {
        crate::support::clocked_taps(&self.w, &mut self.v, n, self.t, 1_000);
        self.t += n as i64 * 1_000;
    }
}

#[test]
fn top_ups_are_never_credited_twice_whatever_the_network_does() {
    let s = setup();
    let (env, proxy, w, o) = (&s.env, &s.proxy, &s.w, &s.o);

    // the intent is created but its answer is lost: the retry carries the same key and gets
    // the same intent back
    proxy.add("POST", "/v1/topups", Fault::DropAfterForward, 1);
    let i = o.block_on(o.start_top_up(50_000)).unwrap().unwrap();
    let posts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/topups")
        .collect();
    // (the bound session's proof is single-use: the resent request's nonce was consumed by
    // the first, so a third one goes with a fresh proof)
    assert_eq!(posts.len(), 3);
    for p in &posts {
        assert_eq!(key_of(&p.body), i.idempotency_key);
    }
    env.pay(&i.payment_url);
    // polling: the answer is lost once, then cut in half, then arrives
    proxy.add("GET", "/v1/topups/", Fault::DropAfterForward, 1);
    proxy.add("GET", "/v1/topups/", Fault::Truncate, 1);
    let done = o
        .block_on(o.complete_top_up(i.intent_id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(done.status, TopUpStatus::Credited);
    assert_eq!(proxy.pending_rules(), 0);
    // a repeated redirect / poll
    o.block_on(o.complete_top_up(i.intent_id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(env.balance_of(s.account), 50_000);
    assert_eq!(top_ups_in_history(w), 1);

    // every attempt of the call fails: Offline; the app retries later with the same amount and
    // the stored key is reused, so the intent created by the lost attempts is the one returned
    proxy.clear();
    proxy.add("POST", "/v1/topups", Fault::DropAfterForward, 4);
    let r = o.block_on(o.start_top_up(70_000)).unwrap();
    assert!(matches!(r, Err(OnlineError::Offline { .. })), "{r:?}");
    let i2 = o.block_on(o.start_top_up(70_000)).unwrap().unwrap();
    let keys: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|r| r.path == "/v1/topups")
        .map(|r| key_of(&r.body))
        .collect();
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|k| *k == i2.idempotency_key));
    env.pay(&i2.payment_url);
    env.pay(&i2.payment_url); // the rider presses Pay twice
    proxy.add("GET", "/v1/topups/", Fault::ForwardThen503, 2);
    let d2 = o
        .block_on(o.complete_top_up(i2.intent_id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(d2.status, TopUpStatus::Credited);
    assert_eq!(env.balance_of(s.account), 120_000);
    assert_eq!(top_ups_in_history(w), 2);

    // a refusal (4xx) is not retried and burns nothing
    proxy.clear();
    proxy.add("POST", "/v1/topups", Fault::Problem400, 1);
    let r = o.block_on(o.start_top_up(30_000)).unwrap();
    assert!(
        matches!(&r, Err(OnlineError::Validation { code, .. }) if code == "injected_bad_request"),
        "{r:?}"
    );
    assert_eq!(
        proxy
            .seen()
            .iter()
            .filter(|r| r.path == "/v1/topups")
            .count(),
        1
    );
    // a real validation error from the backend
    let r = o.block_on(o.start_top_up(5)).unwrap();
    assert!(matches!(r, Err(OnlineError::Validation { .. })), "{r:?}");

    o.block_on(o.sync()).unwrap().unwrap();
    assert_converged(env, w, s.account);
    assert_eq!(top_ups_in_history(w), 2);
}

#[test]
fn sync_converges_after_every_kind_of_fault() {
    let mut s = setup();
    top_up(&s.env, &s.o, 1_000_000);
    let faults = [
        Fault::DropAfterForward,
        Fault::DelayAfterForward(Duration::from_millis(4_000)), // client timeout: 3 s
        Fault::Reject500,
        Fault::ForwardThen503,
        Fault::Truncate,
        Fault::Malformed,
    ];
    for f in faults {
        s.taps(3);
        s.proxy.clear();
        s.proxy.add("POST", "/v1/wallet/sync", f.clone(), 1);
        let r =
            s.o.block_on(s.o.sync())
                .unwrap()
                .unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert_eq!(s.proxy.pending_rules(), 0, "{f:?}");
        assert_eq!(r.pending_taps, 0, "{f:?}");
        assert_converged(&s.env, &s.w, s.account);
    }

    // every attempt fails: the sync reports it, the wallet is untouched and consistent, and
    // the next sync completes
    for (f, offline) in [
        (Fault::DropAfterForward, true),
        (Fault::ForwardThen503, false),
        (Fault::Malformed, false),
    ] {
        s.taps(2);
        s.proxy.clear();
        s.proxy.add("POST", "/v1/wallet/sync", f.clone(), 4);
        let r = s.o.block_on(s.o.sync()).unwrap();
        match (&r, offline) {
            (Err(OnlineError::Offline { .. }), true) | (Err(OnlineError::Server { .. }), false) => {
            }
            _ => panic!("{f:?}: {r:?}"),
        }
        assert_eq!(s.w.ledger().unwrap().pending_taps, 2, "{f:?}");
        s.w.verify_tap_log().unwrap();
        s.o.block_on(s.o.sync()).unwrap().unwrap();
        assert_converged(&s.env, &s.w, s.account);
    }
}

#[test]
fn a_lost_credential_answer_never_makes_a_second_device() {
    let mut s = setup();
    top_up(&s.env, &s.o, 300_000);
    let first = s.w.status(now_utc()).unwrap().cert_hash_hex;
    // replenishment applied, answer lost; the retry's nonce is spent → a fresh proof
    s.proxy.add(
        "POST",
        "/v1/credential/replenish",
        Fault::DropAfterForward,
        1,
    );
    let r = s.o.block_on(s.o.replenish()).unwrap().unwrap();
    assert_eq!(s.proxy.pending_rules(), 0);
    assert_ne!(s.w.status(now_utc()).unwrap().cert_hash_hex, first);
    assert_eq!(r.max_amount, 300_000);
    s.taps(2);
    let rep = s.o.block_on(s.o.sync()).unwrap().unwrap();
    assert_eq!(rep.credential_status, "active", "{rep:?}");
    assert_converged(&s.env, &s.w, s.account);

    // a new phone whose provisioning answer is lost (every attempt of the first call)
    let root = data_dir(s.env.path(), "new-phone");
    let w2 = open_wallet(&root);
    let o2 = online(&w2, &s.proxy.url);
    login(&s.env, &o2, PHONE);
    s.proxy.clear();
    s.proxy
        .add("POST", "/v1/credential/provision", Fault::ForwardThen503, 4);
    let e = o2.block_on(o2.provision()).unwrap();
    assert!(matches!(e, Err(OnlineError::Server { .. })), "{e:?}");
    // the app tries again later: one device, the old phone revoked, nothing doubled
    let p = o2.block_on(o2.provision()).unwrap().unwrap();
    let r2 = o2.block_on(o2.sync()).unwrap().unwrap();
    assert_eq!(r2.credential_status, "active", "{r2:?}");
    assert_eq!(p.balance, s.env.balance_of(s.account));
    // the old phone's session ended with the new phone's provisioning; logged in again, it
    // learns it was replaced
    assert!(matches!(
        s.o.block_on(s.o.sync()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    login(&s.env, &s.o, PHONE);
    let old = s.o.block_on(s.o.sync()).unwrap().unwrap();
    assert!(old.revoked);
    s.env.assert_audit_ok();
}
