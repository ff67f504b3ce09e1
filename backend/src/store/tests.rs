use super::*;
use crate::ids::{AccountId, CertHash};
use mancard_api::LedgerKind;

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
        Ok(tx.tx.execute("UPDATE ledger SET amount = 6", [])?)
    });
    assert!(upd.is_err());
    let del = store
        .write(|tx| -> Result<usize, StoreError> { Ok(tx.tx.execute("DELETE FROM ledger", [])?) });
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
        for (counter, cert, authorized) in [(0, c1, 20_000), (1, c1, 30_000), (2, c2, 7)] {
            conn.execute(
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source,
                    reported_at)
                 VALUES (x'00000000000000000000000000000001', ?1, 1, 1, ?2, 0, 0, 0, 1, ?3,
                         x'00', 'wallet', 0)",
                rusqlite::params![counter, cert, authorized],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let version: u32 = store
        .lock()
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
