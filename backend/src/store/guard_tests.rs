//! The guards of schema version 14 on PostgreSQL (ADR 0012 §8, "Money writes at REPEATABLE
//! READ"): two transactions that write one account's rows, or two cards' taps on one
//! challenge, cannot both commit when neither saw the other; writes of different accounts
//! and challenges do not meet. Each case interleaves two transactions on one thread: the
//! older one takes its snapshot, the newer one writes and commits, then the older one writes.

use super::db::pg::{PgPool, PgTx};
use super::db::{named_params, Conn};
use super::{Db, Store};
use crate::error::StoreError;
use crate::ids::AccountId;

/// Accounts 1 and 2, device 1 and 2 (one each), a certificate of each device, a fare-day
/// state of each account; a store on a fresh database.
fn guarded_store() -> Option<Store> {
    let url = super::db::pg_tests::fresh_url()?;
    let store = Store::open_url(&url, 4).unwrap();
    let mut setup = String::new();
    for n in 1..=2 {
        setup.push_str(&format!(
            "INSERT INTO accounts (id, phone, created_at) OVERRIDING SYSTEM VALUE
                 VALUES ({n}, '+98912000000{n}', 1);
             INSERT INTO devices (id, account_id, binding_key, pseudonym, created_at)
                 OVERRIDING SYSTEM VALUE
                 VALUES ({n}, {n}, '\\x0{n}', '\\x{p}', 1);
             INSERT INTO certificates (hash, device_id, encoded, counter_first, counter_last,
                     valid_until, issued_at, pseudonym)
                 VALUES ('\\x0{n}', {n}, '\\x00', 0, 100, 99, 1, '\\x{p}');
             INSERT INTO fare_days VALUES ({n}, 7, 0, '\\x{p}', 0, 0, NULL, NULL, 1);",
            p = format!("{n:032x}"),
        ));
    }
    run(pool(&store), &setup).unwrap();
    Some(store)
}

fn pool(store: &Store) -> &PgPool {
    match &store.db {
        Db::Postgres(p) => p,
        Db::Sqlite(_) => unreachable!("a PostgreSQL store"),
    }
}

/// Runs `sql` in a transaction of its own and commits.
fn run(pool: &PgPool, sql: &str) -> Result<(), StoreError> {
    let tx = PgTx::begin(pool, "BEGIN")?;
    Conn::Pg(&tx).execute_batch(sql)?;
    tx.commit()
}

static KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A fresh ledger entry of `account` (any write of its rows would do).
fn ledger_entry(account: i64) -> String {
    let k = KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "INSERT INTO ledger (account_id, kind, amount, idempotency_key, created_at)
         VALUES ({account}, 'adjustment', 1, 'k{k}', 1)"
    )
}

/// A tap of card `n` (account and device `n`) on `challenge`.
fn tap(n: i64, counter: i64, challenge: &str) -> String {
    format!(
        "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash, fare_class,
                 time, fare_day, authorized, proof, source, reported_at, challenge_id, stored_by)
         VALUES ('\\x{:032x}', {counter}, {n}, {n}, '\\x0{n}', 0, 5, 7, 0, '\\x00', 'nfc', 5,
                 {challenge}, 14)",
        n
    )
}

/// Takes a REPEATABLE READ snapshot, lets `newer` commit, then runs `older`: what `older`
/// got.
fn interleaved(pool: &PgPool, newer: &str, older: &str) -> Result<(), StoreError> {
    let tx = PgTx::begin(pool, "BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    let conn = Conn::Pg(&tx);
    conn.execute_batch("SELECT 1 FROM accounts LIMIT 1")
        .unwrap();
    run(pool, newer).unwrap();
    let out = conn.execute_batch(older);
    match out {
        Ok(()) => tx.commit(),
        Err(e) => {
            tx.rollback().unwrap();
            Err(e)
        }
    }
}

/// Every kind of account row (by `account_id`, by `device_id`, by certificate; inserted,
/// updated, deleted) written by a transaction that did not see another's committed write of
/// the same account fails as a conflict (retried by the store); the same write of the other
/// account commits.
#[test]
fn overlapping_writes_of_one_account_s_rows_cannot_both_commit() {
    let Some(store) = guarded_store() else { return };
    let pool = pool(&store);
    let writes = |n: i64| {
        vec![
            ("ledger", ledger_entry(n)),
            (
                "tap",
                tap(
                    n,
                    1000 + KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as i64,
                    "NULL",
                ),
            ),
            (
                "fare day updated",
                format!("UPDATE fare_days SET spent = spent + 1 WHERE account_id = {n}"),
            ),
            (
                "fare day deleted",
                format!("DELETE FROM fare_days WHERE account_id = {n} AND fare_day = 8"),
            ),
            (
                "fare day inserted",
                format!(
                    "INSERT INTO fare_days VALUES ({n}, {}, 0, '\\x00', 0, 0, NULL, NULL, 1)",
                    100 + KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
            ),
            (
                "wallet log",
                format!(
                    "INSERT INTO wallet_log VALUES ({n}, {}, '\\x00', 0, '\\x00')",
                    KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
            ),
            (
                "certificate usage",
                format!(
                    "INSERT INTO cert_usage VALUES ('\\x0{n}', 1)
                 ON CONFLICT (cert_hash) DO UPDATE SET authorized = cert_usage.authorized + 1"
                ),
            ),
            (
                "certificate superseded",
                format!("UPDATE certificates SET superseded_at = 2 WHERE device_id = {n}"),
            ),
            (
                "fraud case",
                format!(
                    "INSERT INTO fraud_cases (device_id, pseudonym, kind, detail, opened_at)
                 VALUES ({n}, '\\x00', 'k', 'd', 1)"
                ),
            ),
        ]
    };
    for (i, (what, older)) in writes(1).into_iter().enumerate() {
        // the fare day 8 row the delete needs
        run(
            pool,
            "INSERT INTO fare_days VALUES (1, 8, 0, '\\x00', 0, 0, NULL, NULL, 1)
                   ON CONFLICT DO NOTHING",
        )
        .unwrap();
        let e = interleaved(pool, &ledger_entry(1), &older).unwrap_err();
        assert!(matches!(e, StoreError::Retryable(_)), "{what}: {e}");
        // the other account's write does not meet it
        let (_, other) = &writes(2)[i];
        run(
            pool,
            "INSERT INTO fare_days VALUES (2, 8, 0, '\\x00', 0, 0, NULL, NULL, 1)
                   ON CONFLICT DO NOTHING",
        )
        .unwrap();
        interleaved(pool, &ledger_entry(1), other).unwrap_or_else(|e| panic!("{what}: {e}"));
        // and with the newer write seen (committed before the snapshot), it commits
        run(pool, &older).unwrap_or_else(|e| panic!("{what} alone: {e}"));
    }
    // a row moved from account 1 to account 2 (a hand fix) is a write of both
    let moved = "UPDATE fare_days SET account_id = 2, fare_day = 50
                 WHERE account_id = 1 AND fare_day = 7";
    let e = interleaved(pool, &ledger_entry(1), moved).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "moved: {e}");
    let e = interleaved(pool, &ledger_entry(2), moved).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "moved: {e}");
}

/// Two cards' taps on one challenge (the gate opened for one of them), or a tap and the
/// challenge's torn record, never commit side by side unseen; taps on different challenges
/// do.
#[test]
fn taps_on_one_challenge_from_two_cards_cannot_both_commit_unseen() {
    let Some(store) = guarded_store() else { return };
    let pool = pool(&store);
    let c = |b: u8| format!("'\\x{}'", hex::encode([b; 32]));
    let e = interleaved(pool, &tap(1, 1, &c(1)), &tap(2, 1, &c(1))).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "{e}");
    interleaved(pool, &tap(1, 2, &c(2)), &tap(2, 2, &c(3))).unwrap();
    let torn = format!("INSERT INTO torn_challenges VALUES ({}, 1, 5, 5)", c(4));
    let e = interleaved(pool, &torn, &tap(2, 3, &c(4))).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "{e}");
    // seen, it commits (a second card's tap on a challenge is stored, as evidence)
    run(pool, &tap(2, 3, &c(4))).unwrap();
    run(pool, &tap(2, 4, &c(1))).unwrap();
    // a card's wallet-only tap on a challenge, stored before: a validator's report of it
    // (the gate opened for that card) meets another card's tap on the challenge
    run(pool, &tap(1, 5, &c(5))).unwrap();
    let reported = "UPDATE taps SET validator_id = 7
                    WHERE pseudonym = '\\x00000000000000000000000000000001' AND counter = 5";
    let e = interleaved(pool, reported, &tap(2, 5, &c(5))).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "{e}");
    // and so does a tap on it deleted (an older build, a hand fix)
    run(pool, &tap(1, 6, &c(6))).unwrap();
    let deleted = "DELETE FROM taps
                   WHERE pseudonym = '\\x00000000000000000000000000000001' AND counter = 6";
    let e = interleaved(pool, deleted, &tap(2, 6, &c(6))).unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "{e}");
    // a change that decides nothing about the gate (its line) does not
    run(pool, &tap(1, 7, &c(7))).unwrap();
    let line = "UPDATE taps SET line_id = 3
                WHERE pseudonym = '\\x00000000000000000000000000000001' AND counter = 7";
    interleaved(pool, line, &tap(2, 7, &c(7))).unwrap();
}

/// Money writes on named accounts run at REPEATABLE READ; every other write at SERIALIZABLE.
#[test]
fn money_writes_run_at_repeatable_read_and_the_others_serializable() {
    let Some(store) = guarded_store() else { return };
    let level = |w: &super::Writer<'_>| {
        w.tx.query_one(
            "SELECT current_setting('transaction_isolation') AS l",
            named_params! {},
            |r| r.get::<String>("l"),
        )
    };
    assert_eq!(
        store.write_for([AccountId(1)], |w| level(w)).unwrap(),
        "repeatable read"
    );
    assert_eq!(store.write(|w| level(w)).unwrap(), "serializable");
    assert_eq!(
        store.write_for(std::iter::empty(), |w| level(w)).unwrap(),
        "serializable"
    );
}

/// At REPEATABLE READ an insert meeting a key committed after the snapshot is a unique
/// violation, not a serialization failure: the store runs the write again, and the next
/// attempt sees the row.
#[test]
fn a_unique_violation_at_repeatable_read_is_run_again() {
    let Some(store) = guarded_store() else { return };
    let pool = pool(&store);
    run(pool, "CREATE TABLE u (k BIGINT PRIMARY KEY)").unwrap();
    let mut attempts = 0;
    let seen = store
        .write_for([AccountId(1)], |w| -> Result<bool, StoreError> {
            attempts += 1;
            let there =
                w.tx.query_opt("SELECT k FROM u WHERE k = 1", named_params! {}, |r| {
                    r.get::<i64>("k")
                })?;
            if there.is_some() {
                return Ok(true);
            }
            // another instance inserts the key meanwhile
            run(pool, "INSERT INTO u VALUES (1)")?;
            w.tx.execute("INSERT INTO u VALUES (1)", named_params! {})?;
            Ok(false)
        })
        .unwrap();
    assert!(seen);
    assert_eq!(attempts, 2);
    // a violation of the write's own making is reported after a bounded number of runs, as
    // a unique violation (not busy, and not a 500 for a write that collided with others)
    let mut attempts = 0;
    let e = store
        .write_for([AccountId(1)], |w| -> Result<(), StoreError> {
            attempts += 1;
            w.tx.execute("INSERT INTO u VALUES (1)", named_params! {})?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Unique { .. }), "{e}");
    // (twice as a conflict, then as lost attempts until it runs alone: no concurrent write
    // can have made it then)
    assert_eq!(
        attempts,
        1 + super::PG_UNIQUE_RETRIES + super::PG_SERIALIZE_AFTER
    );
    // at SERIALIZABLE (no accounts) the same never becomes a retry of a unique violation
    // that is the caller's own: a key inserted twice in one write fails at once
    let e = store
        .write(|w| -> Result<(), StoreError> {
            w.tx.execute("INSERT INTO u VALUES (2)", named_params! {})?;
            w.tx.execute("INSERT INTO u VALUES (2)", named_params! {})?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Unique { .. }), "{e}");
}

/// The jobs' purge deletes challenge guards older than an hour and keeps the others.
#[test]
fn old_challenge_guards_are_purged() {
    let Some(store) = guarded_store() else { return };
    run(
        pool(&store),
        "INSERT INTO challenge_guard VALUES
             ('\\x01', extract(epoch FROM now())::bigint - 3700),
             ('\\x02', extract(epoch FROM now())::bigint - 60)",
    )
    .unwrap();
    let purged = store.write(|w| w.purge_expired(0, 1)).unwrap();
    assert_eq!(purged.challenge_guards, 1);
    let left = store
        .read(|r| {
            r.conn.query_one(
                "SELECT count(*) AS n FROM challenge_guard",
                named_params! {},
                |r| r.get::<i64>("n"),
            )
        })
        .unwrap();
    assert_eq!(left, 1);
}

/// Every table with an account's rows (an `account_id`, `device_id` or `cert_hash` column)
/// carries the three touch triggers, but for the exempt ones, which no money write reads: a
/// table added later gets them or is named here.
#[test]
fn every_table_of_an_account_s_rows_touches_the_account() {
    let Some(store) = guarded_store() else { return };
    // sessions and nonces: sign-in state, written on every request; no money write reads them
    let exempt = ["sessions", "nonces"];
    let rows = store
        .read(|r| {
            r.conn.query_vec(
                "SELECT DISTINCT c.table_name::text AS t,
                        (SELECT count(*) FROM pg_trigger g
                          WHERE g.tgrelid = c.table_name::regclass AND g.tgenabled = 'O'
                            AND g.tgname::text IN (c.table_name || '_touch_inserted',
                                c.table_name || '_touch_updated',
                                c.table_name || '_touch_deleted')) AS n
                   FROM information_schema.columns c
                  WHERE c.table_schema = 'public'
                    AND c.column_name IN ('account_id', 'device_id', 'cert_hash')",
                named_params! {},
                |r| Ok((r.get::<String>("t")?, r.get::<i64>("n")?)),
            )
        })
        .unwrap();
    assert!(rows.len() > 10, "{rows:?}");
    for (t, n) in rows {
        let want = if exempt.contains(&t.as_str()) { 0 } else { 3 };
        assert_eq!(n, want, "{t}");
    }
}

/// A row moved to another account through its device (a wallet log entry) or through its
/// certificate (a certificate's running total) is a write of both accounts: the touch reads
/// the rows before the update as well as after.
#[test]
fn a_row_moved_by_device_or_by_certificate_is_a_write_of_both_accounts() {
    let Some(store) = guarded_store() else { return };
    let pool = pool(&store);
    run(
        pool,
        "INSERT INTO wallet_log VALUES (1, 900, '\\x00', 0, '\\x00');
         INSERT INTO cert_usage VALUES ('\\x01', 1);",
    )
    .unwrap();
    for moved in [
        "UPDATE wallet_log SET device_id = 2 WHERE device_id = 1 AND seq = 900",
        "UPDATE cert_usage SET cert_hash = '\\x02' WHERE cert_hash = '\\x01'",
    ] {
        for n in [1, 2] {
            let e = interleaved(pool, &ledger_entry(n), moved).unwrap_err();
            assert!(
                matches!(e, StoreError::Retryable(_)),
                "{moved}, against account {n}: {e}"
            );
        }
        // seen, it commits
        run(pool, moved).unwrap();
    }
}
