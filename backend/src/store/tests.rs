use super::*;
use crate::ids::{AccountId, CertHash};
use mancard_api::LedgerKind;

/// A store on a SQLite file in `dir` and, with a server, one on a fresh PostgreSQL database:
/// the stores a test of both databases runs on.
pub(super) fn sqlite_and_postgres(dir: &std::path::Path) -> Vec<Store> {
    let mut stores = vec![Store::open(&dir.join("db.sqlite")).unwrap()];
    if let Some(url) = super::db::pg_tests::fresh_url() {
        stores.push(Store::open_url(&url, 2).unwrap());
    }
    stores
}

/// Runs `sql` in a write of its own, as an older build (or a hand fix in `psql`) writes it:
/// none of the store's methods, so nothing they would do beside it.
pub(super) fn raw(store: &Store, sql: &str) {
    store
        .write(|w| w.tx.execute(sql, super::db::named_params! {}))
        .unwrap();
}

#[test]
fn ledger_is_append_only_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            let a = tx.create_account("+989120000000", 1)?;
            let e = NewEntry {
                account_id: a,
                kind: LedgerKind::Adjustment,
                amount: 5,
                idempotency_key: "k1",
                tap: None,
                intent_id: None,
                note: None,
                created_at: 1,
            };
            assert!(tx.insert_ledger(&e)?.is_some());
            assert!(tx.insert_ledger(&e)?.is_none());
            assert_eq!(tx.balance(a)?, 5);
            Ok(())
        })
        .unwrap();
    let upd = store.write(|tx| -> Result<usize, StoreError> {
        tx.tx.execute("UPDATE ledger SET amount = 6", &[])
    });
    assert!(upd.is_err());
    let del =
        store.write(|tx| -> Result<usize, StoreError> { tx.tx.execute("DELETE FROM ledger", &[]) });
    assert!(del.is_err());
    // reopening keeps the schema and data
    drop(store);
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let audit = store.read(|tx| tx.audit()).unwrap();
    assert!(audit.ok);
    assert_eq!(audit.ledger_total, 5);
    assert_eq!(
        store.read(|tx| tx.account_ids()).unwrap(),
        vec![AccountId(1)]
    );
}

/// A version-1 database (before the per-certificate totals) opens, is migrated in place and
/// gets the totals of the taps it already holds.
#[test]
fn version_1_database_is_migrated_with_backfilled_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let (c1, c2) = (CertHash([1u8; 32]), CertHash([2u8; 32]));
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, phone, created_at) VALUES (1, '+989120000000', 1);
             INSERT INTO devices (id, account_id, binding_key, pseudonym, created_at)
                 VALUES (1, 1, x'01', x'00000000000000000000000000000001', 1);",
        )
        .unwrap();
        // (proofs start with their kind: 1 NFC, 2 QR; since schema 4 only NFC counts)
        for (counter, cert, authorized, proof) in [
            (0, c1, 20_000, [1u8]),
            (1, c1, 30_000, [1]),
            (2, c2, 7, [1]),
            (3, c2, 30_000, [2]),
        ] {
            conn.execute(
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source,
                    reported_at)
                 VALUES (x'00000000000000000000000000000001', ?1, 1, 1, ?2, 0, 0, 0, 1, ?3,
                         ?4, 'wallet', 0)",
                rusqlite::params![counter, &cert.0[..], authorized, &proof[..]],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let version: u32 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    store
        .read(|tx| -> Result<(), StoreError> {
            assert_eq!(tx.cert_usage(&c1)?, 50_000);
            assert_eq!(tx.cert_usage(&c2)?, 7);
            assert_eq!(tx.cert_usage(&CertHash([3u8; 32]))?, 0);
            assert_eq!(tx.audit()?.cert_totals_mismatched, 0);
            Ok(())
        })
        .unwrap();
    // the running total keeps counting from the back-filled value, and saturates
    store
        .write(|tx| -> Result<(), StoreError> {
            let c3 = CertHash([3u8; 32]);
            assert_eq!(tx.add_cert_usage(&c1, 10_000)?, 60_000);
            assert_eq!(tx.add_cert_usage(&c3, 5)?, 5);
            assert_eq!(tx.add_cert_usage(&c3, i64::MAX)?, i64::MAX);
            assert_eq!(tx.add_cert_usage(&c3, -9)?, i64::MAX);
            Ok(())
        })
        .unwrap();
    // reopening an up-to-date database changes nothing
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.read(|tx| tx.cert_usage(&c1)).unwrap(), 60_000);
    // a newer schema is refused
    drop(store);
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::Open(mancard_sql::OpenError::TooNew { .. }))
    ));
}

/// The frozen version-1 schema, upgraded step by step, is exactly a fresh database's schema.
#[test]
fn upgraded_v1_schema_equals_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let upgraded = mancard_sql::open_database(&old, &BackendSchema).unwrap();
    let fresh =
        mancard_sql::open_database(&dir.path().join("fresh.sqlite"), &BackendSchema).unwrap();
    assert_eq!(
        mancard_sql::schema_of(&upgraded).unwrap(),
        mancard_sql::schema_of(&fresh).unwrap()
    );
}

/// Data stored before protocol v2 gets what v2 looks up: each certificate the pseudonym of its
/// device (so a pseudonym still leads to its device and the deny list still names it), each
/// device with a log its chain head (no v1 link carried over), each validator operator 1 and
/// no certificate.
#[test]
fn pre_v2_data_gets_certificate_pseudonyms_and_chain_heads() {
    use crate::ids::{DeviceId, PseudonymBytes};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let (p1, p2) = (PseudonymBytes([1; 16]), PseudonymBytes([2; 16]));
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, phone, created_at) VALUES (1, '+989120000000', 1);
             INSERT INTO devices (id, account_id, binding_key, pseudonym, created_at)
                 VALUES (1, 1, x'01', x'01010101010101010101010101010101', 1),
                        (2, 1, x'02', x'02020202020202020202020202020202', 1);
             INSERT INTO certificates (hash, device_id, encoded, counter_first, counter_last,
                                       valid_until, issued_at)
                 VALUES (x'0000000000000000000000000000000000000000000000000000000000000011', 1, x'00', 0, 63, 100, 1),
                        (x'0000000000000000000000000000000000000000000000000000000000000012', 1, x'00', 64, 127, 10000, 2),
                        (x'0000000000000000000000000000000000000000000000000000000000000013', 2, x'00', 0, 63, 10000, 3);
             INSERT INTO revocations (pseudonym, device_id, reason, revoked_at)
                 VALUES (x'01010101010101010101010101010101', 1, 'replaced_by_new_device', 5);
             INSERT INTO wallet_log (device_id, seq, hash, counter, encoded)
                 VALUES (1, 0, x'aa', 5, x'00'), (1, 1, x'bb', 6, x'00');
             INSERT INTO validators (id, public_key, registered_at) VALUES (7, x'04', 1);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    store
        .read(|tx| -> Result<(), StoreError> {
            let d1 = tx.device_by_pseudonym(&p1)?.unwrap();
            assert_eq!(d1.id, DeviceId(1));
            assert_eq!(tx.device_by_pseudonym(&p2)?.unwrap().id, DeviceId(2));
            assert!(tx.device_by_pseudonym(&PseudonymBytes([3; 16]))?.is_none());
            assert_eq!(tx.certificate_by_pseudonym(&p1)?.unwrap().counter_last, 127);
            assert_eq!(tx.live_pseudonyms(DeviceId(1), 50)?, vec![p1]);
            assert_eq!(tx.deny_list(50)?, vec![p1]);
            assert_eq!(tx.deny_list(20_000)?, vec![]);
            assert!(tx.revocation(DeviceId(1))?.is_some());
            assert!(tx.revocation(DeviceId(2))?.is_none());
            assert_eq!(tx.active_devices(AccountId(1))?.len(), 1);
            let head = tx.chain_head(DeviceId(1))?;
            assert_eq!(
                head,
                mancard_protocol::ChainHead {
                    next_seq: 2,
                    last: None,
                    last_counter: Some(6),
                }
            );
            assert_eq!(
                tx.chain_head(DeviceId(2))?,
                mancard_protocol::ChainHead::default()
            );
            let v = tx.validator(7)?.unwrap();
            assert_eq!((v.operator_id, v.certificate, v.denied_at), (1, None, None));
            assert!(tx.denied_validators()?.is_empty());
            Ok(())
        })
        .unwrap();
}

/// Version 5: sessions stored before it get a public id and a last use (their creation), and
/// a `+0098…` phone becomes `+98…` unless that spelling already has an account.
#[test]
fn sessions_and_phone_spellings_before_v5_are_carried_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, phone, created_at) VALUES
                 (1, '+00989121110001', 10), (2, '+00989121110002', 10), (3, '+989121110002', 10);
             INSERT INTO sessions (token_hash, account_id, created_at, expires_at)
                 VALUES (x'01', 1, 100, 9999999999);",
        )
        .unwrap();
    }
    let conn = mancard_sql::open_database(&old, &BackendSchema).unwrap();
    let phones: Vec<String> = conn
        .prepare("SELECT phone FROM accounts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        phones,
        ["+989121110001", "+00989121110002", "+989121110002"],
        "normalized unless the +98 spelling is taken"
    );
    let (id, last): (String, i64) = conn
        .query_row("SELECT public_id, last_used_at FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((id.len(), last), (32, 100));
}

/// `--db` is told apart as PostgreSQL (URL or conninfo, paths inside allowed), a SQLite file,
/// or neither: a mistyped URL or user info is refused, and the refusal never repeats it (it
/// may hold a password).
#[test]
fn database_targets_are_told_apart_and_never_echoed() {
    use super::{database_target_problem, is_postgres_url};
    for pg in [
        "postgres://a@h/db",
        "POSTGRESQL://h/db",
        "host=/var/run/postgresql dbname=d password=p/w",
        "host=h dbname=d sslrootcert=/etc/mancard/ca.pem",
    ] {
        assert!(is_postgres_url(pg), "{pg}");
        assert!(database_target_problem(pg).is_none(), "{pg}");
    }
    for bad in [
        "mysql://u:hunter2@h/db",
        "postgres:/app:hunter2@db/mancard",
        "app:hunter2@db.prod:5432/mancard",
        "app:hunter2@db.prod",
    ] {
        assert!(!is_postgres_url(bad), "{bad}");
        let why = database_target_problem(bad).unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(!why.contains("hunter2"), "{why}");
    }
    for file in [
        "/var/lib/mancard/backend.sqlite",
        "backend.sqlite",
        "./a b.sqlite",
    ] {
        assert!(!is_postgres_url(file), "{file}");
        assert!(database_target_problem(file).is_none(), "{file}");
    }
}

/// Verdicts appended together (one statement on PostgreSQL, multi-row statements of 16, 16,
/// 4, 4 and 1 rows on SQLite) are stored in the order given with every field, on SQLite and
/// (with a server) on PostgreSQL.
#[test]
fn verdicts_appended_together_keep_their_order_and_fields() {
    use crate::ids::PseudonymBytes;
    use mancard_api::VerdictStatus;
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite_and_postgres(dir.path());
    let reasons: Vec<String> = (0..41).map(|i| format!("reason {i}")).collect();
    for store in stores {
        let device = store
            .write(|tx| -> Result<_, StoreError> {
                let a = tx.create_account("+989120000000", 1)?;
                let p = PseudonymBytes([7; 16]);
                let d = tx.insert_device(a, b"binding", &p, 1)?;
                let rows: Vec<NewVerdict<'_>> = (0..41u32)
                    .map(|i| NewVerdict {
                        account_id: a,
                        device_id: d,
                        pseudonym: p,
                        counter: i,
                        status: if i % 2 == 0 {
                            VerdictStatus::Charged
                        } else {
                            VerdictStatus::NotCharged
                        },
                        charged: i64::from(i) * 10,
                        reason: (i % 2 == 0).then(|| reasons[i as usize].as_str()),
                        time: 100 + i64::from(i),
                        line_id: (i % 3 == 0).then_some(i),
                        created_at: 5,
                    })
                    .collect();
                tx.insert_verdicts(&rows)?;
                Ok(d)
            })
            .unwrap();
        let got = store.read(|tx| tx.verdicts_since(device, 0, 100)).unwrap();
        assert_eq!(got.len(), 41);
        for (i, v) in got.iter().enumerate() {
            let n = u32::try_from(i).unwrap();
            assert_eq!(v.counter, n);
            assert_eq!(v.charged, i64::from(n) * 10);
            assert_eq!(
                v.reason.as_deref(),
                (n % 2 == 0).then(|| reasons[i].as_str())
            );
            assert_eq!(v.line_id, (n % 3 == 0).then_some(n));
            assert_eq!(v.time, 100 + i64::from(n));
            let want = if n % 2 == 0 {
                VerdictStatus::Charged
            } else {
                VerdictStatus::NotCharged
            };
            assert_eq!(v.status, want);
        }
        assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    }
}

/// However a batch mixes rows with and without a reason or a line, and however many rows it
/// has, PostgreSQL prepares the verdict statement once per connection: the columns are bound
/// as arrays of values never null, so neither the text nor the parameter types vary (one
/// prepared statement per null pattern or row count would let a validator grow every
/// connection's statement cache).
#[test]
fn mixed_verdict_rows_prepare_each_statement_once() {
    use crate::ids::PseudonymBytes;
    use mancard_api::VerdictStatus;
    let Some(url) = super::db::pg_tests::fresh_url() else {
        return;
    };
    let store = Store::open_url(&url, 1).unwrap();
    let prepared = store
        .write(|tx| -> Result<i64, StoreError> {
            let a = tx.create_account("+989120000000", 1)?;
            let p = PseudonymBytes([9; 16]);
            let d = tx.insert_device(a, b"binding", &p, 1)?;
            for (round, n) in [41u32, 1, 100, 41, 7, 64].into_iter().enumerate() {
                let round = u32::try_from(round).unwrap();
                let rows: Vec<NewVerdict<'_>> = (0..n)
                    .map(|i| NewVerdict {
                        account_id: a,
                        device_id: d,
                        pseudonym: p,
                        counter: round * 100 + i,
                        status: VerdictStatus::Charged,
                        charged: 1,
                        reason: ((i * (round + 1)) % 3 == 0).then_some("transfer"),
                        time: 1,
                        line_id: ((i + round) % 2 == 0).then_some(i),
                        created_at: 1,
                    })
                    .collect();
                tx.insert_verdicts(&rows)?;
            }
            tx.tx.query_one(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_prepared_statements
                 WHERE statement LIKE 'INSERT INTO tap_verdicts%'",
                super::db::named_params! {},
                |r| r.get::<i64>("n"),
            )
        })
        .unwrap();
    assert_eq!(prepared, 1, "one statement text for any number of rows");
}

/// What a write asks to do after its commit runs once it committed, never when it failed.
#[test]
fn after_commit_runs_only_once_the_write_committed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let failed = store.write(|tx| -> Result<(), StoreError> {
        tx.create_account("+989120000001", 1)?;
        let ran = Arc::clone(&ran);
        tx.after_commit(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        Err(StoreError::Conflict("rolled back"))
    });
    assert!(failed.is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a rolled-back write ran it");
    let seen = Arc::new(AtomicUsize::new(0));
    store
        .write(|tx| -> Result<(), StoreError> {
            let account = tx.create_account("+989120000002", 1)?;
            let (later, seen) = (Arc::clone(&ran), Arc::clone(&seen));
            tx.after_commit(move || {
                // not yet: it runs only after the function returns and commits
                later.fetch_add(1, Ordering::SeqCst);
                seen.store(usize::try_from(account.0).unwrap(), Ordering::SeqCst);
            });
            assert_eq!(ran.load(Ordering::SeqCst), 0, "it ran before the commit");
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // what it names was committed
    let account = AccountId(i64::try_from(seen.load(Ordering::SeqCst)).unwrap());
    assert!(store.read(|r| r.account(account)).unwrap().is_some());
}

/// A write that loses a conflict and runs again logs what it did once: the lost attempt's
/// `after_commit` is dropped with it. The conflict is forced: the write reads a row, another
/// write changes it and commits, then the first writes it (40001).
#[test]
fn a_retried_write_runs_after_commit_once() {
    use crate::store::Store;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    let Some(url) = crate::store::db::pg_tests::fresh_url() else {
        return;
    };
    let store = Arc::new(Store::open_url(&url, 4).unwrap());
    store
        .write(|w| {
            w.tx.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES ('c', 'x', 0)",
                super::db::named_params! {},
            )
        })
        .unwrap();
    let (read_tx, read_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let other = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            read_rx.recv().unwrap();
            store
                .write(|w| {
                    w.tx.execute(
                        "UPDATE leases SET expires_at = expires_at + 100 WHERE name = 'c'",
                        super::db::named_params! {},
                    )
                })
                .unwrap();
            done_tx.send(()).unwrap();
        })
    };
    let (attempts, logged) = (AtomicUsize::new(0), Arc::new(AtomicUsize::new(0)));
    store
        .write(|w| {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            let n: i64 = w.tx.query_one(
                "SELECT expires_at FROM leases WHERE name = 'c'",
                super::db::named_params! {},
                |r| r.get("expires_at"),
            )?;
            if attempt == 0 {
                read_tx.send(()).unwrap();
                done_rx.recv().unwrap();
            }
            let logged = Arc::clone(&logged);
            w.after_commit(move || {
                logged.fetch_add(1, Ordering::SeqCst);
            });
            w.tx.execute(
                "UPDATE leases SET expires_at = :n WHERE name = 'c'",
                super::db::named_params! {":n": n + 1},
            )
        })
        .unwrap();
    other.join().unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "the first attempt lost");
    assert_eq!(logged.load(Ordering::SeqCst), 1);
    let n: i64 = store
        .read(|r| {
            r.conn.query_one(
                "SELECT expires_at FROM leases WHERE name = 'c'",
                super::db::named_params! {},
                |r| r.get("expires_at"),
            )
        })
        .unwrap();
    assert_eq!(n, 101);
}

/// A sync's new log entries are appended in one statement on PostgreSQL and a few multi-row
/// statements on SQLite (64, 4, 1, 1 for 70), in order and byte for byte, on both stores; an
/// entry stored already is refused whole.
#[test]
fn log_entries_appended_together_keep_their_order_and_bytes() {
    use crate::ids::PseudonymBytes;
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite_and_postgres(dir.path());
    let hashes: Vec<[u8; 32]> = (0..70u8).map(|i| [i; 32]).collect();
    let bodies: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; usize::from(i) + 1]).collect();
    let entries: Vec<NewLogEntry<'_>> = (0..70u32)
        .map(|i| NewLogEntry {
            seq: u64::from(i) + 1,
            hash: hashes[i as usize],
            counter: i * 2,
            encoded: &bodies[i as usize],
        })
        .collect();
    for store in stores {
        let (device, cost) = store
            .write(|tx| -> Result<_, StoreError> {
                let a = tx.create_account("+989120000000", 1)?;
                let d = tx.insert_device(a, b"binding", &PseudonymBytes([7; 16]), 1)?;
                let before = super::db::statements_on_this_thread();
                tx.insert_log(d, &entries)?;
                Ok((d, super::db::statements_on_this_thread() - before))
            })
            .unwrap();
        let want = match store.dialect() {
            super::db::Dialect::Sqlite => 4,
            super::db::Dialect::Postgres => 1,
        };
        assert_eq!(cost, want, "{:?}", store.dialect());
        let got = store.read(|tx| tx.log_from(device, 1, 100)).unwrap();
        assert_eq!(got.len(), 70);
        for (row, e) in got.iter().zip(&entries) {
            assert_eq!(row.seq, e.seq);
            assert_eq!(row.encoded, e.encoded);
        }
        for e in [&entries[0], &entries[69]] {
            let h = store.read(|tx| tx.log_hash_at(device, e.seq)).unwrap();
            assert_eq!(h, Some(e.hash));
        }
        // a stored sequence number again: the whole append is refused, nothing added
        let again = store.write(|tx| tx.insert_log(device, &entries[68..]));
        assert!(again.is_err());
        assert_eq!(
            store.read(|tx| tx.log_from(device, 1, 100)).unwrap().len(),
            70
        );
    }
}
