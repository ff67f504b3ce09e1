//! The adapter's contract, on SQLite: what the PostgreSQL implementation must match.

use super::{Conn, Dialect, FromValue, Value};
use crate::error::StoreError;
use crate::ids::{AccountId, PseudonymBytes};

fn db() -> rusqlite::Connection {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    Conn::Sqlite(&c)
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, n INTEGER, b BLOB);",
        )
        .unwrap();
    c
}

#[test]
fn binds_by_name_and_reads_by_name() {
    let c = db();
    let conn = Conn::Sqlite(&c);
    assert_eq!(conn.dialect(), Dialect::Sqlite);
    let p = PseudonymBytes([7; 16]);
    let id: AccountId = conn
        .query_one(
            "INSERT INTO t (k, n, b) VALUES (:k, :n, :b) RETURNING id",
            named_params! {":b": p, ":k": "a", ":n": 300u32},
            |r| r.get("id"),
        )
        .unwrap();
    assert_eq!(id, AccountId(1));
    // a repeat of a unique key with ON CONFLICT DO NOTHING returns no row
    let again: Option<i64> = conn
        .query_opt(
            "INSERT INTO t (k) VALUES (:k) ON CONFLICT DO NOTHING RETURNING id",
            named_params! {":k": "a"},
            |r| r.get("id"),
        )
        .unwrap();
    assert_eq!(again, None);
    let n = conn
        .execute(
            "INSERT INTO t (k, n, b) VALUES (:k, :n, :b)",
            named_params! {":k": String::from("b"), ":n": None::<i64>, ":b": &[1u8, 2][..]},
        )
        .unwrap();
    assert_eq!(n, 1);
    let rows = conn
        .query_vec("SELECT k, n, b FROM t ORDER BY id", named_params! {}, |r| {
            Ok((
                r.get::<String>("k")?,
                r.get::<Option<i64>>("n")?,
                r.get::<Vec<u8>>("b")?,
            ))
        })
        .unwrap();
    assert_eq!(
        rows,
        [
            ("a".to_owned(), Some(300), vec![7; 16]),
            ("b".to_owned(), None, vec![1, 2]),
        ]
    );
    let got: PseudonymBytes = conn
        .query_one(
            "SELECT b FROM t WHERE k = :k",
            named_params! {":k": "a"},
            |r| r.get("b"),
        )
        .unwrap();
    assert_eq!(got, p);
    let exists: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM t WHERE k = :k) AS e",
            named_params! {":k": "b"},
            |r| r.get("e"),
        )
        .unwrap();
    assert!(exists);
    assert_eq!(
        conn.query_opt("SELECT k FROM t WHERE k = 'zz'", named_params! {}, |r| {
            r.get::<String>("k")
        })
        .unwrap(),
        None
    );
}

/// Column `col` of the one row of `t`.
fn get<T: FromValue>(conn: Conn<'_>, col: &str) -> Result<T, StoreError> {
    conn.query_one("SELECT k, n, b FROM t", named_params! {}, |r| r.get(col))
}

#[test]
fn conversions_are_checked() {
    let c = db();
    let conn = Conn::Sqlite(&c);
    conn.execute(
        "INSERT INTO t (k, n, b) VALUES ('a', 300, x'0102')",
        named_params! {},
    )
    .unwrap();
    // narrowing out of range, a blob of the wrong length, the wrong kind, no such column
    assert!(get::<u8>(conn, "n").is_err());
    assert_eq!(get::<u32>(conn, "n").ok(), Some(300));
    assert!(get::<[u8; 3]>(conn, "b").is_err());
    assert_eq!(get::<[u8; 2]>(conn, "b").ok(), Some([1, 2]));
    assert!(get::<i64>(conn, "k").is_err());
    assert!(get::<i64>(conn, "nope").is_err());
    // an unknown parameter name is an error, not ignored
    assert!(conn
        .execute("UPDATE t SET n = :n", named_params! {":m": 1i64})
        .is_err());
    // no row where one is required
    assert!(conn
        .query_one("SELECT n FROM t WHERE k = 'zz'", named_params! {}, |r| r
            .get::<i64>("n"))
        .is_err());
}

#[test]
fn values_convert() {
    assert_eq!(u64::from_value(Value::Int(-1)).ok(), None);
    assert_eq!(bool::from_value(Value::Int(0)).ok(), Some(false));
    assert_eq!(bool::from_value(Value::Bool(true)).ok(), Some(true));
    assert_eq!(i64::from_value(Value::Bool(true)).ok(), Some(1));
    assert_eq!(Option::<String>::from_value(Value::Null).ok(), Some(None));
    assert!(String::from_value(Value::Null).is_err());
    assert!(Vec::<u8>::from_value(Value::Text("x")).is_err());
}

/// Arrays are PostgreSQL's (key lists bound as one value): SQLite refuses them with an error,
/// and the statement changes nothing.
#[test]
fn arrays_are_refused_with_an_error() {
    let c = db();
    let conn = Conn::Sqlite(&c);
    let e = conn
        .execute(
            "INSERT INTO t (k, n) VALUES ('a', :n)",
            named_params! {":n": Value::Ints(&[1, 2])},
        )
        .unwrap_err();
    assert!(e.to_string().contains("no arrays"), "{e}");
    let blobs: [&[u8]; 1] = [b"x"];
    let e = conn
        .execute(
            "INSERT INTO t (k, b) VALUES ('b', :b)",
            named_params! {":b": Value::Blobs(&blobs)},
        )
        .unwrap_err();
    assert!(e.to_string().contains("no arrays"), "{e}");
    let n: i64 = conn
        .query_one("SELECT COUNT(*) AS n FROM t", named_params! {}, |r| {
            r.get("n")
        })
        .unwrap();
    assert_eq!(n, 0);
}
