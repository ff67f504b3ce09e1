//! The adapter's contract (`tests.rs`) on PostgreSQL, the `:name` rewrite, the error mapping
//! and the schema runner. Runs when `MANCARD_TEST_PG_URL` names a server (each test makes a
//! fresh database); without it each test says it was skipped.

use super::pg::{PgPool, PgTx, ACCOUNT_LOCKS, PROBE_AFTER, WRITERS_LOCK};
use super::{Conn, Dialect, FromValue};
use crate::error::StoreError;
use crate::ids::{AccountId, PseudonymBytes};

/// A pool on a fresh database, or `None` (printed) without a server.
pub(crate) fn fresh_pool() -> Option<PgPool> {
    fresh_url().map(|url| PgPool::connect(&url, 4).unwrap())
}

/// The URL of a fresh database (C collation), or `None` (printed) without a server.
pub(crate) fn fresh_url() -> Option<String> {
    let Ok(base) = std::env::var("MANCARD_TEST_PG_URL") else {
        // The test command requires the server: there, a missing one is a failure.
        assert!(
            std::env::var("MANCARD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MANCARD_REQUIRE_POSTGRES=1 but MANCARD_TEST_PG_URL is not set"
        );
        eprintln!("skipped: MANCARD_TEST_PG_URL is not set");
        return None;
    };
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "u_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = PgPool::connect(&base, 1).unwrap();
    admin
        .execute_alone(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ))
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(format!("{head}/{name}"))
}

/// The rows of test table `t`, read in a transaction of its own.
fn rows_in_t(pool: &PgPool) -> i64 {
    let tx = PgTx::begin(pool, "BEGIN").unwrap();
    let n = Conn::Pg(&tx)
        .query_one("SELECT COUNT(*) AS n FROM t", named_params! {}, |r| {
            r.get::<i64>("n")
        })
        .unwrap();
    tx.rollback().unwrap();
    n
}

pub(super) fn with_table(pool: &PgPool) -> PgTx<'_> {
    let tx = PgTx::begin(pool, "BEGIN").unwrap();
    Conn::Pg(&tx)
        .execute_batch(
            "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                k TEXT NOT NULL UNIQUE, n BIGINT, b BYTEA);",
        )
        .unwrap();
    tx
}

#[test]
fn binds_by_name_and_reads_by_name() {
    let Some(pool) = fresh_pool() else { return };
    let tx = with_table(&pool);
    let conn = Conn::Pg(&tx);
    assert_eq!(conn.dialect(), Dialect::Postgres);
    let p = PseudonymBytes([7; 16]);
    let id: AccountId = conn
        .query_one(
            "INSERT INTO t (k, n, b) VALUES (:k, :n, :b) RETURNING id",
            named_params! {":b": p, ":k": "a", ":n": 300u32},
            |r| r.get("id"),
        )
        .unwrap();
    assert_eq!(id, AccountId(1));
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
    let exists: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM t WHERE k = :k) AS e",
            named_params! {":k": "b"},
            |r| r.get("e"),
        )
        .unwrap();
    assert!(exists);
    // a numeric sum must be cast; the cast one reads
    assert!(conn
        .query_one("SELECT SUM(n) AS s FROM t", named_params! {}, |r| r
            .get::<i64>("s"))
        .is_err());
}

/// Column `col` of the one row of `t`.
fn get<T: FromValue>(conn: Conn<'_>, col: &str) -> Result<T, StoreError> {
    conn.query_one("SELECT k, n, b FROM t", named_params! {}, |r| r.get(col))
}

#[test]
fn conversions_and_errors_are_checked() {
    let Some(pool) = fresh_pool() else { return };
    let tx = with_table(&pool);
    let conn = Conn::Pg(&tx);
    conn.execute(
        "INSERT INTO t (k, n, b) VALUES ('a', 300, '\\x0102')",
        named_params! {},
    )
    .unwrap();
    assert!(get::<u8>(conn, "n").is_err());
    assert_eq!(get::<u32>(conn, "n").ok(), Some(300));
    assert_eq!(get::<[u8; 2]>(conn, "b").ok(), Some([1, 2]));
    assert!(conn
        .query_one("SELECT b FROM t", named_params! {}, |r| r
            .get::<[u8; 3]>("b"))
        .is_err());
    assert!(conn
        .query_one("SELECT k FROM t", named_params! {}, |r| r.get::<i64>("k"))
        .is_err());
    assert!(conn
        .query_one("SELECT k FROM t", named_params! {}, |r| r
            .get::<i64>("nope"))
        .is_err());
    assert!(conn
        .execute("UPDATE t SET n = :n", named_params! {":m": 1i64})
        .is_err());
    tx.rollback().unwrap();
    // a duplicate key is `Unique`, with the constraint's name
    let tx = with_table(&pool);
    let conn = Conn::Pg(&tx);
    conn.execute("INSERT INTO t (k) VALUES ('a')", named_params! {})
        .unwrap();
    let e = conn
        .execute("INSERT INTO t (k) VALUES ('a')", named_params! {})
        .unwrap_err();
    assert!(e.is_unique_violation(), "{e}");
}

#[test]
fn the_schema_runner_is_idempotent_and_refuses_a_newer_version() {
    let Some(pool) = fresh_pool() else { return };
    crate::store::schema_pg::migrate(&pool).unwrap();
    crate::store::schema_pg::migrate(&pool).unwrap();
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    // the append-only guards hold
    let conn = Conn::Pg(&tx);
    assert!(conn.execute_batch("TRUNCATE ledger").is_err());
    tx.rollback().unwrap();
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    Conn::Pg(&tx)
        .execute_batch("UPDATE schema_version SET version = 999")
        .unwrap();
    tx.commit().unwrap();
    let e = crate::store::schema_pg::migrate(&pool).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
}

/// PostgreSQL has one schema version so far: instead of "upgraded equals fresh", its tables
/// and columns are SQLite's, by name (plus `sessions.seq`, SQLite's rowid twin, and the
/// account and challenge guards of version 14).
#[test]
fn the_postgres_schema_has_the_sqlite_tables_and_columns() {
    let Some(pool) = fresh_pool() else { return };
    crate::store::schema_pg::migrate(&pool).unwrap();
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    let mut pg: Vec<(String, String)> = Conn::Pg(&tx)
        .query_vec(
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'schema_version'",
            named_params! {},
            |r| Ok((r.get("t")?, r.get("c")?)),
        )
        .unwrap();
    // PostgreSQL's own: `sessions.seq` (SQLite's rowid) and the challenge guards (version 14)
    let own = [("sessions", "seq"), ("accounts", "touched_by")];
    pg.retain(|(t, c)| !own.contains(&(t.as_str(), c.as_str())) && t != "challenge_guard");
    pg.sort();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(crate::store::Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut lite: Vec<(String, String)> = c
        .prepare(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lite.sort();
    assert_eq!(pg, lite);
}

/// Read-modify-write of one row from many threads at SERIALIZABLE: PostgreSQL aborts the
/// losers (40001), `Store::write` runs them again; every write either commits exactly once
/// or fails busy (never another error), and the counter equals the commits.
#[test]
fn conflicting_writes_are_retried_and_never_lost() {
    use crate::store::Store;
    let Some(url) = fresh_url() else { return };
    let store = std::sync::Arc::new(Store::open_url(&url, 8).unwrap());
    store
        .write(|w| {
            w.tx.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES ('c', 'x', 0)",
                named_params! {},
            )
        })
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                let (mut ok, mut busy) = (0i64, 0i64);
                for _ in 0..20 {
                    let r = store.write(|w| {
                        let n: i64 = w.tx.query_one(
                            "SELECT expires_at FROM leases WHERE name = 'c'",
                            named_params! {},
                            |r| r.get("expires_at"),
                        )?;
                        w.tx.execute(
                            "UPDATE leases SET expires_at = :n WHERE name = 'c'",
                            named_params! {":n": n + 1},
                        )
                    });
                    match r {
                        Ok(_) => ok += 1,
                        Err(e) if e.is_busy() => busy += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in threads {
        let (o, b) = t.join().unwrap();
        ok += o;
        busy += b;
    }
    let n: i64 = store
        .read(|r| {
            r.conn.query_one(
                "SELECT expires_at FROM leases WHERE name = 'c'",
                named_params! {},
                |r| r.get("expires_at"),
            )
        })
        .unwrap();
    eprintln!("{ok} committed, {busy} busy");
    assert_eq!(n, ok);
    // a write that kept losing ran alone among writers and committed: none gave up
    assert_eq!((ok, busy), (160, 0));
}

/// A transaction dropped in the middle of a write (a panic unwinding through it) lets go of
/// everything at once: its rows are not committed, the writers' exclusive lock it held is
/// free for another instance, and its connection goes back to the pool clean (the pool
/// checks nothing on checkout).
#[test]
fn a_transaction_dropped_mid_write_lets_go_of_everything() {
    let Some(url) = fresh_url() else { return };
    let pool = PgPool::connect(&url, 1).unwrap();
    let other = PgPool::connect(&url, 1).unwrap();
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    Conn::Pg(&tx)
        .execute_batch("CREATE TABLE t (k TEXT NOT NULL UNIQUE)")
        .unwrap();
    tx.commit().unwrap();

    let accounts = std::collections::BTreeSet::from([7i64, 1 << 40]);
    let tx =
        PgTx::begin_write(&pool, "BEGIN ISOLATION LEVEL SERIALIZABLE", true, &accounts).unwrap();
    Conn::Pg(&tx)
        .execute("INSERT INTO t (k) VALUES ('lost')", named_params! {})
        .unwrap();
    drop(tx);

    let probe = PgTx::begin(&other, "BEGIN").unwrap();
    let free = Conn::Pg(&probe)
        .query_one(
            "SELECT pg_try_advisory_xact_lock(:k) AND pg_try_advisory_xact_lock(CAST(:ns AS INT4), 7) AS free",
            named_params! {":k": WRITERS_LOCK, ":ns": i64::from(ACCOUNT_LOCKS)},
            |r| r.get::<bool>("free"),
        )
        .unwrap();
    assert!(
        free,
        "the dropped transaction still holds the writers' or an account's lock"
    );
    probe.rollback().unwrap();

    // the same (only) connection, checked out again: no transaction left open on it
    let none = std::collections::BTreeSet::new();
    let tx = PgTx::begin_write(&pool, "BEGIN ISOLATION LEVEL SERIALIZABLE", false, &none).unwrap();
    let conn = Conn::Pg(&tx);
    let n = conn
        .query_one("SELECT COUNT(*) AS n FROM t", named_params! {}, |r| {
            r.get::<i64>("n")
        })
        .unwrap();
    assert_eq!(n, 0, "nothing of the dropped transaction was committed");
    conn.execute("INSERT INTO t (k) VALUES ('kept')", named_params! {})
        .unwrap();
    tx.commit().unwrap();
    let n = rows_in_t(&other);
    assert_eq!(
        n, 1,
        "the next transaction on that connection committed on its own"
    );
}

/// A statement error caught by the caller aborts the PostgreSQL transaction, whose COMMIT the
/// server would answer with a silent ROLLBACK: the commit must report it, never success.
#[test]
fn a_caught_statement_error_is_never_reported_as_committed() {
    let Some(pool) = fresh_pool() else { return };
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    Conn::Pg(&tx)
        .execute_batch("CREATE TABLE t (k TEXT NOT NULL UNIQUE); INSERT INTO t VALUES ('a');")
        .unwrap();
    tx.commit().unwrap();

    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    let conn = Conn::Pg(&tx);
    let dup = conn.execute("INSERT INTO t (k) VALUES ('a')", named_params! {});
    assert!(dup.is_err_and(|e| e.is_unique_violation()));
    // the caller swallowed it and carried on; the transaction is aborted
    let _ = conn.execute("INSERT INTO t (k) VALUES ('b')", named_params! {});
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, StoreError::Retryable(_)), "{e}");

    assert_eq!(
        rows_in_t(&pool),
        1,
        "nothing of the aborted transaction is there"
    );
}

/// Every pooled connection bounds its waits, so one stuck lock holder ends in busy answers,
/// not in every writer hanging.
#[test]
fn every_connection_bounds_its_waits() {
    let Some(pool) = fresh_pool() else { return };
    let tx = PgTx::begin(&pool, "BEGIN").unwrap();
    let conn = Conn::Pg(&tx);
    for (setting, want) in [
        ("lock_timeout", "10s"),
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "1min"),
    ] {
        let got = conn
            .query_one(
                "SELECT current_setting(:name) AS v",
                named_params! {":name": setting},
                |r| r.get::<String>("v"),
            )
            .unwrap();
        assert_eq!(got, want, "{setting}");
    }
    // a lock not got in time is busy (503), not a server error
    conn.execute("SET LOCAL lock_timeout = '50ms'", named_params! {})
        .unwrap();
    let holder = PgTx::begin(&pool, "BEGIN").unwrap();
    Conn::Pg(&holder)
        .execute("SELECT pg_advisory_xact_lock(4242)", named_params! {})
        .unwrap();
    let e = conn
        .execute("SELECT pg_advisory_xact_lock(4242)", named_params! {})
        .unwrap_err();
    assert!(e.is_busy(), "{e}");
    holder.rollback().unwrap();
    let _ = tx.rollback();
}

/// Runs `check` while one write holds account 7 open and `waiting` more writes on account 7
/// wait for it; gives back what `check` gave and whether the holder still held on when it
/// was done. The holder lets go right after (or after an 8 s guard), and every write is
/// joined and must have succeeded.
fn while_account_7_is_held<T>(
    store: &std::sync::Arc<crate::store::Store>,
    waiting: usize,
    check: impl FnOnce() -> T,
) -> (T, bool) {
    use crate::ids::AccountId;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    let (held, held_rx) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let released = Arc::new(AtomicBool::new(false));
    let holder = {
        let (store, released) = (Arc::clone(store), Arc::clone(&released));
        std::thread::spawn(move || {
            let mut first = true;
            store
                .write_for([AccountId(7)], |_| {
                    if first {
                        first = false;
                        let _ = held.send(());
                        // held until the check is done (or a guard runs out)
                        let _ = release_rx.recv_timeout(std::time::Duration::from_secs(8));
                        released.store(true, Ordering::SeqCst);
                    }
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        })
    };
    held_rx.recv().unwrap();
    let waiters: Vec<_> = (0..waiting)
        .map(|_| {
            let store = Arc::clone(store);
            std::thread::spawn(move || store.write_for([AccountId(7)], |_| Ok::<_, StoreError>(())))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = check();
    let in_time = !released.load(Ordering::SeqCst);
    let _ = release.send(());
    holder.join().unwrap();
    for w in waiters {
        w.join().unwrap().unwrap();
    }
    (out, in_time)
}

/// Writes waiting for a busy account take at most half the pool (the others wait for a turn
/// holding no connection): a burst on one account cannot starve every other request of the
/// pool. Pool of 4; one write holds account 7 open; six more writes on account 7 wait; a
/// read still gets a connection while the holder holds on.
#[test]
fn writes_waiting_for_an_account_leave_the_pool_to_others() {
    let Some(url) = fresh_url() else { return };
    let store = std::sync::Arc::new(crate::store::Store::open_url(&url, 4).unwrap());
    let (read, in_time) = while_account_7_is_held(&store, 6, || {
        store.read(|r| {
            r.conn
                .query_one("SELECT 1 AS one", named_params! {}, |row| {
                    row.get::<i64>("one")
                })
        })
    });
    assert_eq!(read.unwrap(), 1);
    assert!(
        in_time,
        "the read got a connection only once the holder let go"
    );
}

/// A write waiting for a busy account holds no money-write turn: while one write holds
/// account 7 open and more writes than there are turns wait for it, a write on account 8
/// still runs at once (a rider's burst of syncs cannot stall everyone's settlement).
#[test]
fn writes_waiting_for_a_busy_account_hold_no_money_turn() {
    use crate::ids::AccountId;
    let Some(url) = fresh_url() else { return };
    let store = std::sync::Arc::new(crate::store::Store::open_url(&url, 16).unwrap());
    let turns = std::thread::available_parallelism().map_or(2, usize::from);
    let (other, in_time) = while_account_7_is_held(&store, turns + 2, || {
        store.write_for([AccountId(8)], |_| Ok::<_, StoreError>(()))
    });
    other.unwrap();
    assert!(
        in_time,
        "the write on another account waited for the busy one"
    );
}

/// Money writes at once: the cores this process may run on, or what `--db-money-writes`
/// says, at least one and at most the pool's connections.
#[test]
fn money_writes_at_once_are_the_cores_or_as_configured_within_the_pool() {
    let Some(url) = fresh_url() else { return };
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    assert_eq!(PgPool::connect(&url, 64).unwrap().money_turns_free(), cores);
    let pool = PgPool::connect(&url, 8).unwrap().with_money_writes(3);
    assert_eq!(pool.money_turns_free(), 3);
    let turns: Vec<_> = (0..3).map(|_| pool.money_write_turn().unwrap()).collect();
    assert_eq!(pool.money_turns_free(), 0);
    drop(turns);
    assert_eq!(pool.money_turns_free(), 3);
    let pool = PgPool::connect(&url, 8).unwrap();
    assert_eq!(pool.with_money_writes(100).money_turns_free(), 8);
    let pool = PgPool::connect(&url, 8).unwrap();
    assert_eq!(pool.with_money_writes(0).money_turns_free(), 1);
    // as `backend serve --db-pool 8 --db-money-writes 3` opens it
    let store = crate::store::Store::open_url_with(&url, 8, Some(3)).unwrap();
    let crate::store::Db::Postgres(pool) = &store.db else {
        panic!("a PostgreSQL store")
    };
    assert_eq!(pool.money_turns_free(), 3);
}

/// A write naming more accounts than the server's `max_locks_per_transaction` takes no
/// account lock (SERIALIZABLE alone decides): the server's shared lock table stays bounded
/// whatever a batch names.
#[test]
fn a_write_naming_too_many_accounts_takes_no_account_locks() {
    let Some(url) = fresh_url() else { return };
    let pool = PgPool::connect(&url, 1).unwrap();
    let other = PgPool::connect(&url, 1).unwrap();
    let probe = |n: i64| {
        let tx = PgTx::begin(&other, "BEGIN").unwrap();
        let free = Conn::Pg(&tx)
            .query_one(
                "SELECT pg_try_advisory_xact_lock(CAST(:ns AS INT4), CAST(:k AS INT4)) AS free",
                named_params! {":ns": i64::from(ACCOUNT_LOCKS), ":k": n},
                |r| r.get::<bool>("free"),
            )
            .unwrap();
        tx.rollback().unwrap();
        free
    };
    let some: std::collections::BTreeSet<i64> = (1..=3).collect();
    let tx = PgTx::begin_write(&pool, "BEGIN ISOLATION LEVEL SERIALIZABLE", false, &some).unwrap();
    assert!(!probe(2), "a write naming 3 accounts holds their locks");
    tx.commit().unwrap();
    assert!(probe(2), "and lets go of them at commit");
    let cap = pool.max_account_locks() as i64;
    assert!(cap >= 64, "{cap}");
    let many: std::collections::BTreeSet<i64> = (1..=cap + 1).collect();
    let tx = PgTx::begin_write(&pool, "BEGIN ISOLATION LEVEL SERIALIZABLE", false, &many).unwrap();
    assert!(probe(2), "a write naming too many accounts holds none");
    tx.commit().unwrap();
}

/// A pooled connection the server closed while it sat idle (a restart, a failover, a killed
/// session) is found dead before use and replaced: the next request does not fail on it.
#[test]
fn a_connection_the_server_closed_while_idle_is_replaced() {
    let Some(url) = fresh_url() else { return };
    let pool = PgPool::connect(&url, 1).unwrap();
    let other = PgPool::connect(&url, 1).unwrap();
    let pid = |p: &PgPool| {
        let tx = PgTx::begin(p, "BEGIN").unwrap();
        let pid = Conn::Pg(&tx)
            .query_one(
                "SELECT CAST(pg_backend_pid() AS INT8) AS pid",
                named_params! {},
                |r| r.get::<i64>("pid"),
            )
            .unwrap();
        tx.commit().unwrap();
        pid
    };
    let first = pid(&pool);
    let tx = PgTx::begin(&other, "BEGIN").unwrap();
    let killed = Conn::Pg(&tx)
        .query_one(
            "SELECT pg_terminate_backend(CAST(:pid AS INT4)) AS killed",
            named_params! {":pid": first},
            |r| r.get::<bool>("killed"),
        )
        .unwrap();
    tx.commit().unwrap();
    assert!(killed);
    std::thread::sleep(PROBE_AFTER + std::time::Duration::from_millis(200));
    let second = pid(&pool);
    assert_ne!(
        first, second,
        "a new connection serves the next transaction"
    );
}

/// TLS to the server is what the URL asks for, and verified: with the server's CA
/// (`sslrootcert`) the session is encrypted; without it (the web PKI roots) the server's
/// certificate is not trusted and nothing connects; a mode that could fall back to plain text
/// is refused.
#[test]
fn tls_to_the_server_is_verified_or_refused() {
    let Some(url) = fresh_url() else { return };
    let Ok(ca) = std::env::var("MANCARD_TEST_PG_CA") else {
        assert!(
            std::env::var("MANCARD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MANCARD_REQUIRE_POSTGRES=1 but MANCARD_TEST_PG_CA is not set"
        );
        eprintln!("skipped: MANCARD_TEST_PG_CA is not set");
        return;
    };
    let encrypted = |pool: &PgPool| {
        let tx = PgTx::begin(pool, "BEGIN").unwrap();
        let ssl = Conn::Pg(&tx)
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                named_params! {},
                |r| r.get::<bool>("ssl"),
            )
            .unwrap();
        tx.commit().unwrap();
        ssl
    };
    let tls = PgPool::connect(&format!("{url}?sslmode=verify-full&sslrootcert={ca}"), 1).unwrap();
    assert!(encrypted(&tls), "verify-full with the CA: encrypted");
    let plain = PgPool::connect(&url, 1).unwrap();
    assert!(
        !encrypted(&plain),
        "no sslmode: a plain connection, as asked"
    );

    let untrusted = PgPool::connect(&format!("{url}?sslmode=require"), 1).unwrap_err();
    assert!(
        untrusted.to_string().to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    let fallback = PgPool::connect(&format!("{url}?sslmode=prefer"), 1).unwrap_err();
    assert!(
        fallback.to_string().contains("sslmode=prefer"),
        "{fallback}"
    );
}

/// Connections go out in the order they were asked for: r2d2 hands a freed one to any
/// waiter, and one who just came could take it from one who had waited (under saturation:
/// a 503 after the whole wait for one request while later ones passed).
#[test]
fn connections_go_out_in_the_order_they_were_asked_for() {
    let Some(url) = fresh_url() else { return };
    let pool = PgPool::connect(&url, 1).unwrap();
    let held = PgTx::begin(&pool, "BEGIN").unwrap();
    let order = std::sync::Mutex::new(Vec::new());
    let (pool, order) = (&pool, &order);
    std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let tx = PgTx::begin(pool, "BEGIN").unwrap();
            order.lock().unwrap().push("first in line");
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.rollback().unwrap();
        });
        let t0 = std::time::Instant::now();
        while pool.waiting_for_a_connection() == 0 {
            assert!(t0.elapsed().as_secs() < 30, "the waiter never got in line");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // the connection is free, and someone has waited for it: this newcomer gets in line
        held.rollback().unwrap();
        let tx = PgTx::begin(pool, "BEGIN").unwrap();
        order.lock().unwrap().push("newcomer");
        tx.rollback().unwrap();
        waiter.join().unwrap();
    });
    assert_eq!(*order.lock().unwrap(), ["first in line", "newcomer"]);
}
