//! The online flows end to end against the real backend on a loopback port: register, verify,
//! provision, top-up, taps, sync with fare corrections, replenishment, lost phone, taps lost
//! to a power loss learned back, and a cloned wallet caught by the chain check.

use crate::support::{clocked_taps, tap_at};
use mancard::{now_utc, CredentialState, HistoryKind, HistoryStatus, OnlineError, TopUpStatus};
use mancard_testkit::online::*;

#[test]
fn register_provision_top_up_tap_and_sync() {
    let env = Env::start();
    let root = data_dir(env.path(), "phone");
    let w = open_wallet(&root);
    let o = online(&w, &env.url);

    // nothing works before logging in
    assert!(matches!(
        o.block_on(o.provision()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    assert!(!o.state().unwrap().logged_in);
    // a wrong code is a message for the rider, not a session problem
    o.block_on(o.register(PHONE.into())).unwrap().unwrap();
    let wrong = o
        .block_on(o.verify(PHONE.into(), "00000000".into()))
        .unwrap();
    let right = env.otp(PHONE);
    if right != "00000000" {
        assert!(
            matches!(wrong, Err(OnlineError::Validation { .. })),
            "{wrong:?}"
        );
    }
    let account = login(&env, &o, PHONE);
    let st = o.state().unwrap();
    assert!(st.logged_in);
    assert_eq!(st.account_id, Some(account));

    // the session token is stored sealed: no printable 64-hex token in the database
    {
        let c = rusqlite::Connection::open(root.join("wallet").join(mancard::DB_FILE)).unwrap();
        let sealed: Vec<u8> = c
            .query_row(
                "SELECT value FROM settings WHERE key = 'session_sealed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(std::str::from_utf8(&sealed).is_err() || sealed.len() != 64);
        let values: Vec<Vec<u8>> = c
            .prepare("SELECT CAST(value AS BLOB) FROM settings")
            .unwrap()
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let hex_run = |v: &[u8]| {
            v.split(|b| !b.is_ascii_hexdigit())
                .any(|run| run.len() >= 64)
        };
        assert!(!values.iter().any(|v| hex_run(v)));
    }

    // provision with a zero balance: a certificate with no allowance
    let p = o.block_on(o.provision()).unwrap().unwrap();
    assert_eq!(p.max_amount, 0);
    assert!(p.revoked_pseudonyms.is_empty());
    assert_eq!(
        w.status(now_utc()).unwrap().state,
        CredentialState::Exhausted
    );
    // a new certificate could not grant more: not due
    assert_eq!(o.block_on(o.replenish_if_due()).unwrap().unwrap(), None);

    // top-up: intent → pay → complete; the sync it triggers replenishes the allowance
    let t = top_up(&env, &o, 200_000);
    assert!(t.ledger_entry_id.is_some());
    assert_eq!(env.balance_of(account), 200_000);
    let s = w.status(now_utc()).unwrap();
    assert_eq!(s.amount_available, 200_000, "{s:?}");
    assert_eq!(w.ledger().unwrap().confirmed_balance, 200_000);
    // completing again (a repeated redirect) credits nothing more
    let again = o
        .block_on(o.complete_top_up(t.intent_id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(again.status, TopUpStatus::Credited);
    let tops = |w: &mancard::Wallet| {
        w.history(None, 500)
            .unwrap()
            .items
            .into_iter()
            .filter(|i| i.kind == HistoryKind::TopUp)
            .count()
    };
    assert_eq!(tops(&w), 1);
    assert!(o.open_top_ups().unwrap().is_empty());

    // taps at two validators: each charges a full fare from its own point of view; the
    // backend sees the transfer and corrects the second one
    let now = now_utc();
    let mut va = Validator::new(&env, 1);
    let mut vb = Validator::new(&env, 2);
    assert_eq!(
        tap_at(&w, &mut va, 1, now),
        mancard_protocol::StatusWord::Ok
    );
    assert_eq!(
        tap_at(&w, &mut vb, 2, now + 600),
        mancard_protocol::StatusWord::Ok
    );
    assert_eq!(
        tap_at(&w, &mut va, 1, now + 7_200),
        mancard_protocol::StatusWord::Ok
    );
    assert_eq!(w.ledger().unwrap().pending_taps, 3);
    assert_eq!(w.ledger().unwrap().pending_amount, 60_000);

    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.uploaded, 3);
    assert_eq!(r.settled, 3);
    assert_eq!(r.fare_corrections, 1);
    assert_eq!(r.rejected, 0);
    assert!(r.clock_offset_applied);
    // the validators' taps moved the sandbox backend's clock to the last ride
    assert!((r.clock_offset_secs - 7_200).abs() <= 2, "{r:?}");
    assert_eq!(r.balance, 200_000 - 20_000 - 5_000 - 20_000);
    assert_converged(&env, &w, account);
    let h = w.history(None, 10).unwrap().items;
    let second = h.iter().find(|i| i.log_seq == Some(1)).unwrap();
    assert_eq!(second.amount, 5_000);
    assert_eq!(second.status, HistoryStatus::Corrected, "{second:?}");
    assert_eq!(second.authorized, Some(20_000));
    assert_eq!(second.reason.as_deref(), Some("transfer"));

    // a second sync changes nothing (and does not replenish for nothing)
    let r2 = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!((r2.uploaded, r2.settled, r2.ledger_entries), (0, 0, 0));
    assert!(!r2.replenished, "{r2:?}");
    assert_converged(&env, &w, account);

    // explicit replenishment: a new pseudonym (nothing on the wire links two certificates),
    // the next counter range
    let before = o.block_on(o.replenish()).unwrap().unwrap();
    let after = o.block_on(o.replenish()).unwrap().unwrap();
    assert_ne!(before.pseudonym, after.pseudonym);
    assert_ne!(before.certificate_hash, after.certificate_hash);
    assert!(after.counter_first > before.counter_last);
    assert_eq!(after.max_amount, 155_000);
    assert_eq!(
        tap_at(&w, &mut va, 2, now + 9_000),
        mancard_protocol::StatusWord::Ok
    );
    o.block_on(o.sync()).unwrap().unwrap();
    assert_converged(&env, &w, account);

    // logging out ends the session (here and at the backend); the card stays
    o.block_on(o.logout()).unwrap().unwrap();
    assert!(matches!(
        o.block_on(o.sync()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    assert_eq!(w.status(now_utc()).unwrap().state, CredentialState::Active);
}

#[test]
fn lost_phone_new_device_revokes_the_old_one_and_keeps_the_balance() {
    let env = Env::start();
    let old_dir = data_dir(env.path(), "old");
    let old = open_wallet(&old_dir);
    let o_old = online(&old, &env.url);
    let account = login(&env, &o_old, PHONE);
    o_old.block_on(o_old.provision()).unwrap().unwrap();
    top_up(&env, &o_old, 100_000);
    let mut v = Validator::new(&env, 3);
    clocked_taps(&old, &mut v, 2, now_utc(), 3_600);
    let old_pseudonym = o_old.block_on(o_old.sync()).unwrap().unwrap();
    assert_eq!(old_pseudonym.credential_status, "active");
    let balance = env.balance_of(account);
    assert_eq!(balance, 100_000 - 40_000);

    // the phone is lost; a new phone, same number
    let new_dir = data_dir(env.path(), "new");
    let new = open_wallet(&new_dir);
    let o_new = online(&new, &env.url);
    assert_eq!(login(&env, &o_new, PHONE), account);
    let p = o_new.block_on(o_new.provision()).unwrap().unwrap();
    // the old phone's live pseudonyms (a fresh one in each certificate) are revoked
    assert!(!p.revoked_pseudonyms.is_empty(), "{p:?}");
    assert!(!p.revoked_pseudonyms.contains(&p.pseudonym));
    assert_eq!(p.max_amount, balance);
    assert_eq!(p.balance, balance);
    let r = o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_eq!(r.balance, balance);
    assert_eq!(new.status(now_utc()).unwrap().amount_available, balance);

    // the new phone's provisioning ended the old phone's session: whoever holds it can
    // neither sync nor top up nor provision with it
    assert!(matches!(
        o_old.block_on(o_old.sync()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    assert!(matches!(
        o_old.block_on(o_old.start_top_up(50_000)).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    let sessions = o_new.block_on(o_new.sessions()).unwrap().unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current && sessions[0].bound);
    // found again and logged in, the old phone learns it at its next sync and stops tapping
    assert_eq!(login(&env, &o_old, PHONE), account);
    let r = o_old.block_on(o_old.sync()).unwrap().unwrap();
    assert!(r.revoked);
    assert_eq!(r.credential_status, "revoked");
    assert_eq!(
        r.credential_reason.as_deref(),
        Some("replaced_by_new_device")
    );
    assert_eq!(
        old.status(now_utc()).unwrap().state,
        CredentialState::Revoked
    );
    assert_ne!(
        tap_at(&old, &mut v, 1, now_utc() + 10_000),
        mancard_protocol::StatusWord::Ok
    );
    // replenishing a revoked phone is refused locally
    assert!(matches!(
        o_old.block_on(o_old.replenish()).unwrap(),
        Err(OnlineError::CredentialRevoked { .. })
    ));
    // the new phone taps on
    let mut v2 = Validator::new(&env, 4);
    // (registered at the backend's clock, which the old phone's rides moved on)
    clocked_taps(&new, &mut v2, 1, env.engine().now(), 60);
    o_new.block_on(o_new.sync()).unwrap().unwrap();
    assert_converged(&env, &new, account);
}

#[test]
fn taps_lost_to_a_power_loss_are_learned_back_from_the_backend() {
    let env = Env::start();
    let root = data_dir(env.path(), "phone");
    let snapshot = env.path().join("snapshot.sqlite3");
    let account;
    let mut v = Validator::new(&env, 5);
    let t0 = now_utc();
    {
        let w = open_wallet(&root);
        let o = online(&w, &env.url);
        account = login(&env, &o, PHONE);
        o.block_on(o.provision()).unwrap().unwrap();
        top_up(&env, &o, 300_000);
        clocked_taps(&w, &mut v, 2, t0, 3_600);
        o.block_on(o.sync()).unwrap().unwrap();
        // the state the flash holds after the power loss: the database as of now...
        drop(o);
        drop(w);
        let db = root.join("wallet").join(mancard::DB_FILE);
        std::fs::copy(&db, &snapshot).unwrap();
        let wal = format!("{}-wal", db.display());
        if std::path::Path::new(&wal).exists() {
            std::fs::copy(&wal, format!("{}-wal", snapshot.display())).unwrap();
        }
        // ...while these taps reach the validators and, through this sync, the backend
        let w = open_wallet(&root);
        let o = online(&w, &env.url);
        clocked_taps(&w, &mut v, 3, t0 + 2 * 3_600, 3_600);
        o.block_on(o.sync()).unwrap().unwrap();
    }
    // power loss: the last commits are gone (the fsynced counter file is kept)
    let db = root.join("wallet").join(mancard::DB_FILE);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    std::fs::copy(&snapshot, &db).unwrap();
    let swal = format!("{}-wal", snapshot.display());
    if std::path::Path::new(&swal).exists() {
        std::fs::copy(&swal, format!("{}-wal", db.display())).unwrap();
    }
    let w = open_wallet(&root);
    assert_eq!(w.verify_tap_log().unwrap(), 2);
    let o = online(&w, &env.url);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.recovered, 3);
    assert_eq!(w.verify_tap_log().unwrap(), 5);
    assert_converged(&env, &w, account);
    let h = w.history(None, 10).unwrap().items;
    assert_eq!(
        h.iter()
            .filter(|i| i.detail.starts_with("recovered from the backend"))
            .count(),
        3
    );
    // the chain continues: a new tap after the recovery is no fraud
    clocked_taps(&w, &mut v, 1, t0 + 6 * 3_600, 60);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.credential_status, "active", "{r:?}");
    assert_converged(&env, &w, account);
}

#[test]
fn a_cloned_wallet_is_caught_and_its_taps_show_why() {
    let env = Env::start();
    let a_dir = data_dir(env.path(), "a");
    let account;
    {
        let w = open_wallet(&a_dir);
        let o = online(&w, &env.url);
        account = login(&env, &o, PHONE);
        o.block_on(o.provision()).unwrap().unwrap();
        top_up(&env, &o, 100_000);
    }
    // copy the whole data directory (keystore included) while the app is closed
    let b_dir = env.path().join("b");
    copy_dir(&a_dir, &b_dir);
    let a = open_wallet(&a_dir);
    let b = open_wallet(&b_dir);
    let oa = online(&a, &env.url);
    let ob = online(&b, &env.url);
    let t = now_utc();
    assert_eq!(
        tap_at(&a, &mut Validator::new(&env, 6), 1, t),
        mancard_protocol::StatusWord::Ok
    );
    assert_eq!(
        tap_at(&b, &mut Validator::new(&env, 7), 2, t + 60),
        mancard_protocol::StatusWord::Ok
    );
    let ra = oa.block_on(oa.sync()).unwrap().unwrap();
    assert_eq!(ra.settled, 1);
    let rb = ob.block_on(ob.sync()).unwrap().unwrap();
    assert!(rb.revoked, "{rb:?}");
    assert_eq!(rb.rejected, 1);
    let h = b.history(None, 10).unwrap().items;
    assert!(
        h.iter()
            .any(|i| i.kind == HistoryKind::Tap && i.status == HistoryStatus::Fraud),
        "{h:?}"
    );
    assert_eq!(b.status(now_utc()).unwrap().state, CredentialState::Revoked);
    // the original learns it too: one credential, two devices
    let ra = oa.block_on(oa.sync()).unwrap().unwrap();
    assert!(ra.revoked);
    // money: only the first tap is charged
    assert_eq!(env.balance_of(account), 100_000 - 20_000);
    env.assert_audit_ok();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// A platform keystore that signs with the high-S twin of every signature (Android's and JCA's
/// ECDSA pick either S): the core sends the canonical one, so provisioning works.
struct HighSKeystore(std::sync::Arc<mancard::FileKeystore>);

impl mancard::PlatformKeystore for HighSKeystore {
    fn binding_public_key(&self) -> Result<Vec<u8>, mancard::KeystoreError> {
        self.0.binding_public_key()
    }
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, mancard::KeystoreError> {
        let s = self.0.sign_with_binding_key(message)?;
        let sig = mancard_protocol::Signature(s.as_slice().try_into().unwrap());
        assert!(sig.is_low_s());
        Ok(sig.malleated().to_vec())
    }
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, mancard::KeystoreError> {
        self.0.seal(plaintext)
    }
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, mancard::KeystoreError> {
        self.0.unseal(sealed)
    }
}

#[test]
fn a_platform_keystore_that_signs_with_high_s_still_provisions() {
    let env = Env::start();
    let root = data_dir(env.path(), "phone");
    let ks = HighSKeystore(keystore(&root));
    let w = std::sync::Arc::new(
        mancard::Wallet::open(
            root.join("wallet"),
            std::sync::Arc::new(ks),
            mancard_testkit::wallet::test_config(),
        )
        .unwrap(),
    );
    let o = online(&w, &env.url);
    login(&env, &o, PHONE);
    top_up(&env, &o, 100_000);
    o.block_on(o.provision()).unwrap().unwrap();
    assert!(matches!(
        w.status(now_utc()).unwrap().state,
        CredentialState::Active | CredentialState::ReplenishDue
    ));
    o.block_on(o.replenish()).unwrap().unwrap();
    assert!(w.config_version().is_some());
}

#[test]
fn rides_available_offline_is_the_fewer_of_allowance_and_counters() {
    // fewer counters than the allowance pays rides for: the counters say
    let env = Env::start_with(|p| p.counters_per_cert = 3);
    let w = open_wallet(&data_dir(env.path(), "few_counters"));
    let o = online(&w, &env.url);
    login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 1_000_000);
    let s = w.status(now_utc()).unwrap();
    // 500,000 rials pay 16 rides at line 10's 30,000 (the highest adult fare)
    assert_eq!((s.amount_available, s.counters_left), (500_000, 3), "{s:?}");
    assert_eq!(s.rides_available, 3);
    assert!(s.summary.starts_with("3 rides / "), "{}", s.summary);
    assert!(s.summary.contains("(500,000 rials)"), "{}", s.summary);
    taps(&w, &mut Validator::new(&env, 31), 1, now_utc(), 60);
    let s = w.status(now_utc()).unwrap();
    assert_eq!((s.counters_left, s.rides_available), (2, 2), "{s:?}");
    assert!(s.summary.starts_with("2 rides / "), "{}", s.summary);
    assert!(s.summary.contains("(480,000 rials)"), "{}", s.summary);

    // an allowance that pays fewer rides than the counters allow: the allowance says
    let env = Env::start_with(|p| p.max_offline_amount = 60_000);
    let w = open_wallet(&data_dir(env.path(), "small_allowance"));
    let o = online(&w, &env.url);
    login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 1_000_000);
    let s = w.status(now_utc()).unwrap();
    assert_eq!(
        (s.amount_available, s.counters_left),
        (
            60_000,
            u64::from(mancard_backend::DEFAULT_COUNTERS_PER_CERT)
        ),
        "{s:?}"
    );
    assert_eq!(s.rides_available, 2);
    assert!(s.summary.starts_with("2 rides / "), "{}", s.summary);
    assert!(s.summary.contains("(60,000 rials)"), "{}", s.summary);
    taps(&w, &mut Validator::new(&env, 32), 1, now_utc(), 60);
    let s = w.status(now_utc()).unwrap();
    assert_eq!(
        (s.counters_left, s.rides_available),
        (u64::from(mancard_backend::DEFAULT_COUNTERS_PER_CERT) - 1, 1),
        "{s:?}"
    );
    assert!(s.summary.starts_with("1 ride / "), "{}", s.summary);
    assert!(s.summary.contains("(40,000 rials)"), "{}", s.summary);
}

#[test]
fn a_wallet_low_on_counters_gets_a_new_certificate_at_sync_and_keeps_tapping() {
    // 24 counters; an allowance (1,000,000) that pays for more rides than that
    let env = Env::start_with(|p| {
        p.counters_per_cert = 24;
        p.max_offline_amount = 1_000_000;
    });
    let w = open_wallet(&data_dir(env.path(), "phone"));
    let o = online(&w, &env.url);
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 2_000_000);
    let mut v = Validator::new(&env, 33);
    let mut t = now_utc();
    // 18 rides: a quarter (6) left is not low yet, and the sync leaves the certificate be
    taps(&w, &mut v, 18, t, 60);
    t += 18 * 60;
    let s = w.status(now_utc()).unwrap();
    assert_eq!(s.counters_left, 6);
    assert!(!s.replenish_due, "{s:?}");
    assert_eq!(s.state, CredentialState::Active);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert!(!r.replenished, "{r:?}");
    assert_eq!(w.status(now_utc()).unwrap().cert_hash_hex, s.cert_hash_hex);
    // one more: under a quarter left, the wallet says a new certificate is due...
    taps(&w, &mut v, 1, t, 60);
    t += 60;
    let s = w.status(now_utc()).unwrap();
    assert_eq!(s.counters_left, 5);
    assert!(s.replenish_due, "{s:?}");
    assert_eq!(s.state, CredentialState::ReplenishDue);
    // ...and the next sync gets it: a full range again
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert!(r.replenished, "{r:?}");
    let after = w.status(now_utc()).unwrap();
    assert_ne!(after.cert_hash_hex, s.cert_hash_hex);
    assert_eq!(after.counters_left, 24);
    // a rider who syncs now and then rides on, past any one certificate's counters
    for _ in 0..6 {
        taps(&w, &mut v, 6, t, 60);
        t += 6 * 60;
        let r = o.block_on(o.sync()).unwrap().unwrap();
        assert_eq!(r.replenish_error, None, "{r:?}");
        assert!(w.status(now_utc()).unwrap().counters_left >= 6);
    }
    assert_converged(&env, &w, account);
}

#[test]
fn a_rider_whose_balance_covers_the_ride_is_never_stranded_while_online() {
    // the allowance is capped at 60,000 (two full fares); the balance is far more
    let env = Env::start_with(|p| p.max_offline_amount = 60_000);
    let w = open_wallet(&data_dir(env.path(), "phone"));
    let o = online(&w, &env.url);
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 1_000_000);
    let mut v = Validator::new(&env, 34);
    let start = now_utc() + 60;
    // (two rounds: the test's clock moves a day per round, and a wallet applies a server
    // clock offset of up to two days)
    for round in 0..2 {
        // two full fares two hours apart (no transfer; a day apart from the other rounds, so
        // the daily cap never lowers them) use the allowance up offline...
        let t = start + round * 86_400;
        for ride in [t, t + 2 * 3_600] {
            assert_eq!(
                tap_at(&w, &mut v, 1, ride),
                mancard_protocol::StatusWord::Ok,
                "round {round}"
            );
        }
        let s = w.status(now_utc()).unwrap();
        assert_eq!(s.state, CredentialState::Exhausted, "round {round}: {s:?}");
        assert_eq!(s.rides_available, 0);
        // ...and the next sync, online, restores it from the balance
        let r = o.block_on(o.sync()).unwrap().unwrap();
        assert!(r.replenished, "round {round}: {r:?}");
        let s = w.status(now_utc()).unwrap();
        assert_eq!(s.amount_available, 60_000, "round {round}: {s:?}");
        assert_eq!(s.rides_available, 2);
    }
    assert_converged(&env, &w, account);
    assert_eq!(env.balance_of(account), 1_000_000 - 4 * 20_000);
}

#[test]
fn sessions_are_listed_ended_with_the_phones_proof_and_logged_out() {
    let env = Env::start();
    let w = open_wallet(&data_dir(env.path(), "phone"));
    let o = online(&w, &env.url);
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    // a bound session's top-up carries the binding proof, automatically
    top_up(&env, &o, 50_000);
    assert_eq!(env.balance_of(account), 50_000);
    // a second session of the account (another device that never provisioned)
    let w2 = open_wallet(&data_dir(env.path(), "tablet"));
    let o2 = online(&w2, &env.url);
    assert_eq!(login(&env, &o2, PHONE), account);
    let list = o.block_on(o.sessions()).unwrap().unwrap();
    assert_eq!(list.len(), 2);
    let me = list.iter().find(|s| s.current).unwrap();
    assert!(me.bound);
    let other = list.iter().find(|s| !s.current).unwrap();
    assert!(!other.bound);
    assert!(other.idle_expires_at <= other.expires_at);
    // the phone cannot end the tablet's session, made after its own (the newest login wins:
    // a lost phone must not log out the rider's new one), even with its binding proof
    assert!(matches!(
        o.block_on(o.end_session(other.id.clone())).unwrap(),
        Err(OnlineError::AccountBlocked { .. })
    ));
    assert!(o2.block_on(o2.account()).unwrap().is_ok());
    // the tablet (unbound: no proof needed) ends the phone's; the phone logs in again, and
    // its new, newer session ends the tablet's with the phone's binding proof
    o2.block_on(o2.end_session(me.id.clone())).unwrap().unwrap();
    assert!(matches!(
        o.block_on(o.account()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    login(&env, &o, PHONE);
    o.block_on(o.end_session(other.id.clone()))
        .unwrap()
        .unwrap();
    assert!(matches!(
        o2.block_on(o2.account()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    assert!(matches!(
        o.block_on(o.end_session(other.id.clone())).unwrap(),
        Err(OnlineError::Validation { code, .. }) if code == "unknown_session"
    ));
    assert!(matches!(
        o.block_on(o.end_session("not hex".into())).unwrap(),
        Err(OnlineError::Validation { code, .. }) if code == "invalid_session_id"
    ));
    // logout ends this one at the backend too
    o.block_on(o.logout()).unwrap().unwrap();
    assert!(!o.state().unwrap().logged_in);
    assert!(matches!(
        o.block_on(o.account()).unwrap(),
        Err(OnlineError::SessionExpired)
    ));
    // and logging out again (no session) is fine
    o.block_on(o.logout()).unwrap().unwrap();
}

/// The rider asks for a code, the app is killed while they read the SMS, and the restarted
/// app still logs in with it: the code request's id is stored with the wallet, not only in
/// memory (a login must name it). A code typed into another wallet, which never asked for
/// it, is refused without costing the rider's code a guess.
#[test]
fn a_code_request_survives_an_app_restart() {
    let env = Env::start();
    let root = data_dir(env.path(), "phone");
    let phone = "+989121230077";
    {
        let w = open_wallet(&root);
        let o = online(&w, &env.url);
        o.block_on(o.register(phone.into())).unwrap().unwrap();
    }
    let code = env.otp(phone);
    // another wallet, which never asked for a code, cannot use it
    let other_root = data_dir(env.path(), "other");
    let other_w = open_wallet(&other_root);
    let other = online(&other_w, &env.url);
    let refused = other
        .block_on(other.verify(phone.into(), code.clone()))
        .unwrap();
    assert!(
        matches!(&refused, Err(OnlineError::Validation { code, .. }) if code == "no_code_requested"),
        "{refused:?}"
    );
    // the restarted app logs in
    let w = open_wallet(&root);
    let o = online(&w, &env.url);
    let session = o.block_on(o.verify(phone.into(), code)).unwrap().unwrap();
    assert!(o.state().unwrap().logged_in);
    assert_eq!(
        env.engine().account(session.account_id).unwrap().phone,
        phone
    );
}
