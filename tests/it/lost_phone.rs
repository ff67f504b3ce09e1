//! Lost phone, end to end (issue #14): the rider moves the card to a new phone, the new phone
//! gets the confirmed balance, the old phone's pseudonyms reach a real validator with the next
//! bundle it fetches, a tap the old phone made before that is still charged (the backend is
//! authoritative), and the old phone, found again, says "this card was moved to another phone"
//! and refuses to tap for that reason. One test drives all of it, against the real backend
//! over HTTP and a real validator (`mancard-validator`, journal on disk).

use mancard::{now_utc, CredentialState, HistoryKind, OnlineError};
use mancard_testkit::online::*;

const MOVED: &str = "this card was moved to another phone";
const FARE: i64 = 20_000;

/// The pseudonym (hex) the validator saw on an accepted tap.
fn accepted(o: &TapOutcome, what: &str) -> String {
    let a = o
        .decision
        .acceptance()
        .unwrap_or_else(|| panic!("{what}: {:?}", o.decision));
    assert_eq!(a.fare, FARE, "{what}");
    hex::encode(a.pseudonym.0)
}

#[test]
fn a_lost_phone_moves_to_a_new_one_and_the_old_one_says_so() {
    let env = Env::start();
    let t0 = now_utc();
    let mut gate = Gate::new(&env, &env.path().join("gate"), (21, 1), t0).unwrap();

    // phone A: provisioned, topped up, two rides two hours apart (no transfer), synced
    let a = open_wallet(&data_dir(env.path(), "a"));
    let oa = online(&a, &env.url);
    let account = login(&env, &oa, PHONE);
    oa.block_on(oa.provision()).unwrap().unwrap();
    top_up(&env, &oa, 200_000);
    accepted(&gate.tap(&a, t0 + 60).unwrap(), "A's first ride");
    let a_pseudonym = accepted(&gate.tap(&a, t0 + 2 * 3_600).unwrap(), "A's second ride");
    let r = oa.block_on(oa.sync()).unwrap().unwrap();
    assert_eq!((r.uploaded, r.credential_status.as_str()), (2, "active"));
    assert_eq!(env.balance_of(account), 200_000 - 2 * FARE);
    let bundle_before = gate.fetch_bundle().unwrap();
    assert!(!gate.denies(&a_pseudonym).unwrap());

    // phone A is lost; the rider signs in on phone B and provisions it
    let b = open_wallet(&data_dir(env.path(), "b"));
    let ob = online(&b, &env.url);
    assert_eq!(login(&env, &ob, PHONE), account);
    let p = ob.block_on(ob.provision()).unwrap().unwrap();
    assert!(p.revoked_pseudonyms.contains(&a_pseudonym), "{p:?}");
    assert!(!p.revoked_pseudonyms.contains(&p.pseudonym));
    // B's confirmed balance is the backend's: A's uploaded rides are deducted
    let r = ob.block_on(ob.sync()).unwrap().unwrap();
    assert_eq!(r.balance, 200_000 - 2 * FARE);
    assert_eq!(
        b.ledger().unwrap().confirmed_balance,
        env.balance_of(account)
    );
    assert_eq!(p.max_amount, 200_000 - 2 * FARE);
    assert_eq!(
        b.status(now_utc()).unwrap().amount_available,
        200_000 - 2 * FARE
    );

    // A bus that has not fetched the new bundle yet still takes A (the deny list has not
    // reached it): the ride is charged to the account all the same
    let stale = accepted(
        &gate.tap(&a, t0 + 4 * 3_600).unwrap(),
        "A at a stale validator",
    );
    assert_eq!(stale, a_pseudonym);

    // the next bundle the validator fetches denies every pseudonym of A's certificates
    let bundle_after = gate.fetch_bundle().unwrap();
    assert!(
        bundle_after > bundle_before,
        "{bundle_after} > {bundle_before}"
    );
    for revoked in &p.revoked_pseudonyms {
        assert!(
            gate.denies(revoked).unwrap(),
            "{revoked} not on the deny list"
        );
    }
    assert!(!gate.denies(&p.pseudonym).unwrap());
    // ...and refuses A's tap (A has not synced: it signs, the validator says no, the gate
    // stays closed and the challenge is journaled torn)
    let refused = gate.tap(&a, t0 + 5 * 3_600).unwrap();
    assert!(
        matches!(refused.decision.refusal(), Some(Refusal::Blocked)),
        "{:?}",
        refused.decision
    );
    gate.set_time(t0 + 5 * 3_600 + 600).unwrap();
    let up = gate.upload().unwrap();
    assert!(up.complete, "{up:?}");
    assert_eq!(up.torn, 1, "{up:?}");
    // the backend is authoritative: the stale validator's ride is charged
    assert_eq!(env.balance_of(account), 200_000 - 3 * FARE);

    // phone A is found again: its session ended when phone B provisioned, so it logs in
    // again and syncs: the backend says its card moved; the wallet says so in the rider's
    // words instead of failing obscurely
    assert!(matches!(
        oa.block_on(oa.sync()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    assert_eq!(login(&env, &oa, PHONE), account);
    let r = oa.block_on(oa.sync()).unwrap().unwrap();
    assert!(r.revoked, "{r:?}");
    assert_eq!(r.credential_status, "revoked");
    assert_eq!(
        r.credential_reason.as_deref(),
        Some(mancard_api::RevocationReason::ReplacedByNewDevice.as_str())
    );
    let st = a.status(now_utc()).unwrap();
    assert_eq!(st.state, CredentialState::Revoked);
    assert_eq!(st.problem.as_deref(), Some(MOVED));
    assert_eq!(st.summary, format!("Ticket not usable: {MOVED}"));
    assert_eq!((st.rides_available, st.amount_available), (0, 0));
    // it refuses to tap, with that reason
    let refused = gate.tap(&a, t0 + 6 * 3_600).unwrap();
    assert!(
        matches!(
            refused.decision.refusal(),
            Some(Refusal::CredentialNotValidOnPhone)
        ),
        "{:?}",
        refused.decision
    );
    let why = a
        .history(None, 10)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.kind == HistoryKind::Refusal)
        .expect("the refusal is in A's history");
    assert!(why.detail.contains(MOVED), "{why:?}");
    // asking for a new certificate on A says the same, locally and at the backend
    match oa.block_on(oa.replenish()).unwrap() {
        Err(OnlineError::CredentialRevoked { reason }) => assert_eq!(reason, MOVED),
        other => panic!("replenishing A: {other:?}"),
    }
    match oa.block_on(oa.provision()).unwrap() {
        Err(e @ OnlineError::CredentialRevoked { .. }) => {
            assert!(e.to_string().contains(MOVED), "{e}");
        }
        other => panic!("provisioning A again: {other:?}"),
    }

    // A's own report of the ride the deny list stopped (uploaded by that sync) is not
    // charged: the validator's torn record says the gate stayed closed
    assert_eq!(env.balance_of(account), 200_000 - 3 * FARE);

    // phone B: confirmed balance = the backend's, the stale ride included; it rides on (a
    // later fare day: the daily cap does not touch its fare)
    let r = ob.block_on(ob.sync()).unwrap().unwrap();
    assert_eq!(r.balance, 200_000 - 3 * FARE);
    assert_eq!(
        b.ledger().unwrap().confirmed_balance,
        env.balance_of(account)
    );
    accepted(&gate.tap(&b, t0 + 30 * 3_600).unwrap(), "B's ride");
    ob.block_on(ob.sync()).unwrap().unwrap();
    assert_converged(&env, &b, account);
    assert_eq!(env.balance_of(account), 200_000 - 4 * FARE);
}
