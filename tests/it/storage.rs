//! Storage: schema migrations, refusal to touch damaged or too-new files, counters across
//! restarts, history pagination, and readers running beside taps.

use mancard::{
    HistoryKind, HistoryStatus, Wallet, WalletConfig, WalletError, DB_FILE, SCHEMA_VERSION,
};
use mancard_protocol::{StatusWord, TapAuthorization};
use mancard_sql::schema_of;
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use rusqlite::Connection;
use std::sync::Arc;

/// Frozen snapshots of every released schema older than `SCHEMA_VERSION`: (version, the SQL
/// that builds it). Each is built, upgraded by `Wallet::open`, and compared with a fresh
/// database. When the schema moves on, the older one is frozen here (the check below fails
/// until it is).
const OLD_SCHEMAS: &[(u32, &[&str])] = &[
    (1, &[SCHEMA_V1]),
    (2, &[SCHEMA_V1, SCHEMA_V2_STEP, SCHEMA_V2_TAP_SETTLEMENTS]),
    (
        3,
        &[
            SCHEMA_V1,
            SCHEMA_V2_STEP,
            SCHEMA_V2_TAP_SETTLEMENTS,
            SCHEMA_V3_STEP,
        ],
    ),
];

/// Schema v1, frozen (released with the wallet core, before the online layer).
const SCHEMA_V1: &str = "
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value ANY NOT NULL
) WITHOUT ROWID;

CREATE TABLE tap_keys (
    id          INTEGER PRIMARY KEY,
    public_key  BLOB NOT NULL UNIQUE CHECK (length(public_key) = 65),
    sealed_key  BLOB,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'installed', 'retired')),
    created_at  INTEGER NOT NULL
);

CREATE TABLE credentials (
    id             INTEGER PRIMARY KEY,
    tap_key_id     INTEGER NOT NULL REFERENCES tap_keys(id),
    certificate    BLOB NOT NULL,
    cert_hash      BLOB NOT NULL UNIQUE CHECK (length(cert_hash) = 32),
    status         TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
    installed_at   INTEGER NOT NULL,
    first_seq      INTEGER NOT NULL CHECK (first_seq >= 0),
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE UNIQUE INDEX credentials_one_active ON credentials(status) WHERE status = 'active';

CREATE TABLE tap_log (
    seq           INTEGER PRIMARY KEY CHECK (seq >= 0),
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    counter       INTEGER NOT NULL UNIQUE,
    kind          INTEGER NOT NULL CHECK (kind IN (1, 2)),
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    time          INTEGER NOT NULL,
    line_id       INTEGER,
    validator_id  INTEGER,
    entry         BLOB NOT NULL,
    hash          BLOB NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    after_seq    INTEGER NOT NULL CHECK (after_seq >= 0),
    time         INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('refusal', 'top_up')),
    amount       INTEGER NOT NULL DEFAULT 0,
    line_id      INTEGER,
    validator_id INTEGER,
    status_word  INTEGER,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_position ON events(after_seq, id);
";

/// v2's `tap_settlements`, frozen (v3 rebuilt it with a wider status check).
const SCHEMA_V2_TAP_SETTLEMENTS: &str = "
CREATE TABLE tap_settlements (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 0),
    status     TEXT NOT NULL CHECK (status IN ('settled', 'duplicate', 'fraud', 'rejected')),
    fare       INTEGER,
    reason     TEXT,
    detail     TEXT,
    updated_at INTEGER NOT NULL
);
";

/// What schema v2 added to v1 (the online layer), frozen, but for `tap_settlements` above.
const SCHEMA_V2_STEP: &str = "
CREATE TABLE idempotency_keys (
    scope      TEXT PRIMARY KEY NOT NULL,
    key        TEXT NOT NULL,
    request    BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE topups (
    idempotency_key TEXT PRIMARY KEY NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    intent_id       TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('starting', 'pending', 'credited',
                                                    'cancelled', 'expired', 'abandoned')),
    payment_url     TEXT,
    expires_at      INTEGER,
    ledger_entry_id INTEGER,
    gateway_ref     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE recovered_taps (
    seq          INTEGER PRIMARY KEY CHECK (seq >= 0),
    recovered_at INTEGER NOT NULL
);

CREATE TABLE server_ledger (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    amount          INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    counter         INTEGER,
    intent_id       TEXT,
    note            TEXT,
    created_at      INTEGER NOT NULL
);
";

/// What schema v3 changed (settlement v2's verdict feed, issue #13), frozen.
const SCHEMA_V3_STEP: &str = "
ALTER TABLE credentials ADD COLUMN pseudonym BLOB
    CHECK (pseudonym IS NULL OR length(pseudonym) = 16);

CREATE TABLE tap_settlements_v3 (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 0),
    status     TEXT NOT NULL CHECK (status IN ('settled', 'duplicate', 'fraud', 'rejected',
                                               'pending', 'not_charged')),
    fare       INTEGER,
    reason     TEXT,
    detail     TEXT,
    updated_at INTEGER NOT NULL
);
INSERT INTO tap_settlements_v3 (seq, status, fare, reason, detail, updated_at)
    SELECT seq, status, fare, reason, detail, updated_at FROM tap_settlements;
DROP TABLE tap_settlements;
ALTER TABLE tap_settlements_v3 RENAME TO tap_settlements;

CREATE TABLE tap_verdicts (
    pseudonym   BLOB NOT NULL CHECK (length(pseudonym) = 16),
    counter     INTEGER NOT NULL CHECK (counter >= 0),
    id          INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('charged', 'pending', 'not_charged', 'fraud',
                                                'rejected')),
    charged     INTEGER NOT NULL CHECK (charged >= 0),
    reason      TEXT,
    time        INTEGER NOT NULL,
    line_id     INTEGER,
    created_at  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (pseudonym, counter)
) WITHOUT ROWID;
";

#[test]
fn every_older_schema_upgrades_to_the_fresh_schema() {
    let versions: Vec<u32> = OLD_SCHEMAS.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..SCHEMA_VERSION).collect::<Vec<_>>(),
        "freeze a snapshot of every older schema version in OLD_SCHEMAS"
    );
    let d = tempfile::tempdir().unwrap();
    drop(open(&d.path().join("fresh")));
    let fresh = Connection::open(d.path().join("fresh").join("wallet").join(DB_FILE)).unwrap();
    let v: u32 = fresh
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    for (version, steps) in OLD_SCHEMAS {
        let dir = d.path().join(format!("v{version}"));
        std::fs::create_dir_all(dir.join("wallet")).unwrap();
        let c = Connection::open(dir.join("wallet").join(DB_FILE)).unwrap();
        for sql in *steps {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", version).unwrap();
        drop(c);
        drop(open(&dir));
        let up = Connection::open(dir.join("wallet").join(DB_FILE)).unwrap();
        // as the shared opener compares schemas (with the user version)
        assert_eq!(
            schema_of(&up).unwrap(),
            schema_of(&fresh).unwrap(),
            "from v{version}"
        );
    }
    // reopening a current database changes nothing
    drop(open(&d.path().join("fresh")));
    let again = Connection::open(d.path().join("fresh").join("wallet").join(DB_FILE)).unwrap();
    assert_eq!(schema_of(&again).unwrap(), schema_of(&fresh).unwrap());
}

/// Provisions `w` (a certificate and the bundle of a new issuer) and sets its clock to
/// [`T0`]: a reader certified by that issuer.
fn ready(w: &Wallet, spec: CertSpec) -> (Issuer, Reader) {
    let issuer = Issuer::new(1);
    provision(w, &issuer, spec);
    set_clock(w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    (issuer, reader)
}

/// One tap of `fare` at [`T0`]: the authorization, or the status word of the refusal.
fn tap_fare(w: &Wallet, r: &Reader, fare: i64) -> Result<TapAuthorization, StatusWord> {
    r.tap_with(w, &Quote::fare_at(fare, T0))
        .map(|t| t.authorization)
}

fn used_wallet(d: &std::path::Path) -> (Vec<u32>, Reader) {
    let w = open(d);
    let (_, reader) = ready(&w, CertSpec::default());
    let counters = (0..20)
        .map(|_| tap_fare(&w, &reader, 10).unwrap().counter)
        .collect();
    (counters, reader)
}

#[test]
fn a_used_v1_wallet_upgrades_with_its_data() {
    let d = tempfile::tempdir().unwrap();
    let (counters, reader) = used_wallet(d.path());
    let db = d.path().join("wallet").join(DB_FILE);
    let before_history = open(d.path()).history(None, 100).unwrap();
    // turn it back into what the v1 code wrote: same v1 tables and rows, no later tables
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP TABLE idempotency_keys; DROP TABLE topups; DROP TABLE tap_settlements;
             DROP TABLE recovered_taps; DROP TABLE server_ledger; DROP TABLE tap_verdicts;
             ALTER TABLE credentials DROP COLUMN pseudonym;
             DROP INDEX events_refusals; DROP TABLE wal_restarts;",
        )
        .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        let v1 = Connection::open_in_memory().unwrap();
        v1.execute_batch(SCHEMA_V1).unwrap();
        v1.pragma_update(None, "user_version", 1).unwrap();
        assert_eq!(schema_of(&c).unwrap(), schema_of(&v1).unwrap());
    }
    let w = open(d.path());
    assert_eq!(w.verify_tap_log().unwrap(), counters.len() as u64);
    assert_eq!(w.history(None, 100).unwrap(), before_history);
    assert!(w.tap_settlements().unwrap().is_empty());
    let c = Connection::open(&db).unwrap();
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
    // it still taps, after every counter it used
    let a = tap_fare(&w, &reader, 10).unwrap();
    assert!(a.counter > *counters.iter().max().unwrap());
}

/// A v2 wallet (synced: answers to its uploads) upgrades to v3: its answers kept, its
/// credentials given the pseudonym the verdict feed names their taps by.
#[test]
fn a_used_v2_wallet_upgrades_with_its_answers_and_pseudonyms() {
    let d = tempfile::tempdir().unwrap();
    let (counters, _reader) = used_wallet(d.path());
    let db = d.path().join("wallet").join(DB_FILE);
    let pseudonym: Vec<u8> = Connection::open(&db)
        .unwrap()
        .query_row("SELECT pseudonym FROM credentials", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pseudonym.len(), 16, "filled at install");
    // turn it back into what the v2 code wrote, with the answer to the first tap's upload
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP TABLE tap_verdicts; DROP TABLE tap_settlements;
             ALTER TABLE credentials DROP COLUMN pseudonym;
             DROP INDEX events_refusals; DROP TABLE wal_restarts;",
        )
        .unwrap();
        c.execute_batch(SCHEMA_V2_TAP_SETTLEMENTS).unwrap();
        c.execute(
            "INSERT INTO tap_settlements (seq, status, fare, reason, detail, updated_at)
             VALUES (0, 'settled', 8, NULL, 're-rated', 1)",
            [],
        )
        .unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        let v2 = Connection::open_in_memory().unwrap();
        for sql in [SCHEMA_V1, SCHEMA_V2_STEP, SCHEMA_V2_TAP_SETTLEMENTS] {
            v2.execute_batch(sql).unwrap();
        }
        v2.pragma_update(None, "user_version", 2).unwrap();
        assert_eq!(schema_of(&c).unwrap(), schema_of(&v2).unwrap());
    }
    let w = open(d.path());
    assert_eq!(w.verify_tap_log().unwrap(), counters.len() as u64);
    let c = Connection::open(&db).unwrap();
    let filled: Vec<u8> = c
        .query_row("SELECT pseudonym FROM credentials", [], |r| r.get(0))
        .unwrap();
    assert_eq!(filled, pseudonym, "the certificate's pseudonym");
    // the answer is kept: the first tap was charged 8 rials, re-rated
    let h = w.history(None, 100).unwrap().items;
    let first = h.iter().find(|i| i.log_seq == Some(0)).unwrap();
    assert_eq!(first.status, HistoryStatus::Corrected, "{first:?}");
    assert_eq!((first.amount, first.authorized), (8, Some(10)));
    assert_eq!(first.reason.as_deref(), Some("re-rated"));
    // and a verdict of the feed finds its tap through the filled pseudonym
    c.execute(
        "INSERT INTO tap_verdicts (pseudonym, counter, id, status, charged, reason, time,
                                   line_id, created_at, received_at)
         VALUES (?1, ?2, 1, 'fraud', 10, 'duplicate_counter', 0, NULL, 0, 0)",
        rusqlite::params![pseudonym, counters[1]],
    )
    .unwrap();
    let second = w
        .history(None, 100)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.log_seq == Some(1))
        .unwrap();
    assert_eq!(second.status, HistoryStatus::Fraud, "{second:?}");
    assert_eq!((second.amount, second.charged), (10, Some(10)));
}

#[test]
fn too_new_database_is_refused_and_kept() {
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    let p = d.path().join("wallet").join(DB_FILE);
    Connection::open(&p)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 5)
        .unwrap();
    let err = Wallet::open(
        d.path().join("wallet"),
        keystore(d.path()),
        WalletConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        WalletError::DatabaseTooNew { found, supported }
            if found == SCHEMA_VERSION + 5 && supported == SCHEMA_VERSION
    ));
    assert!(err.to_string().contains("newer than this app supports"));
    let n: i64 = Connection::open(&p)
        .unwrap()
        .query_row("SELECT count(*) FROM tap_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 20);
}

#[test]
fn truncated_or_garbage_database_is_refused_and_kept() {
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    let p = d.path().join("wallet").join(DB_FILE);
    let full = std::fs::read(&p).unwrap();
    assert!(full.len() > 8192, "{} bytes", full.len());
    for cut in [50, 4096, full.len() / 2] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let err = Wallet::open(
            d.path().join("wallet"),
            keystore(d.path()),
            WalletConfig::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, WalletError::DatabaseCorrupt { .. }),
            "cut at {cut}: {err}"
        );
        assert_eq!(
            std::fs::read(&p).unwrap(),
            &full[..cut],
            "file left as it was"
        );
    }
    let mut garbage = full.clone();
    for b in garbage.iter_mut().skip(100).step_by(7) {
        *b ^= 0x5A;
    }
    std::fs::write(&p, &garbage).unwrap();
    let err = Wallet::open(
        d.path().join("wallet"),
        keystore(d.path()),
        WalletConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, WalletError::DatabaseCorrupt { .. }), "{err}");
}

#[test]
fn history_pages_newest_first_with_top_ups() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let (_, reader) = ready(&w, CertSpec::default());
    for i in 0..25 {
        tap_fare(&w, &reader, 10 + i).unwrap();
    }
    w.record_top_up(1_000_000, T0, "IPG ref 42".into()).unwrap();
    assert!(w.record_top_up(0, T0, "x".into()).is_err());
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.history(cursor, 10).unwrap();
        assert!(page.items.len() <= 10);
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 26);
    assert_eq!(all[0].kind, HistoryKind::TopUp);
    assert_eq!(all[0].detail, "IPG ref 42");
    let seqs: Vec<u64> = all[1..].iter().map(|i| i.log_seq.unwrap()).collect();
    assert_eq!(seqs, (0..25).rev().collect::<Vec<u64>>());
    assert_eq!(all[1].amount, 34);
    assert_eq!(all[25].amount, 10);
    let ids: std::collections::HashSet<_> = all.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), 26);
    // an item id is a cursor: the page after item 5 starts with item 6
    let after = w.history(Some(all[5].id.clone()), 3).unwrap();
    assert_eq!(after.items, all[6..9].to_vec());
    assert!(w.history(Some("nonsense".into()), 3).is_err());
}

#[test]
fn refusals_and_top_ups_interleave_with_taps_in_order() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    w.record_top_up(500, T0, "first".into()).unwrap();
    let (_, reader) = ready(
        &w,
        CertSpec {
            max_amount: 1_000,
            ..CertSpec::default()
        },
    );
    let mut expected = vec!["top_up first"];
    for i in 0..4 {
        tap_fare(&w, &reader, 100).unwrap();
        expected.push("tap");
        tap_fare(&w, &reader, 5_000).unwrap_err();
        tap_fare(&w, &reader, 5_000).unwrap_err();
        expected.push("refusal");
        expected.push("refusal");
        w.record_top_up(700, T0, format!("t{i}")).unwrap();
        expected.push("top_up");
    }
    expected.reverse();
    for page_size in [1, 2, 3, 7, 100] {
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let p = w.history(cursor, page_size).unwrap();
            got.extend(p.items);
            cursor = p.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let kinds: Vec<String> = got
            .iter()
            .map(|i| match i.kind {
                HistoryKind::Tap => "tap".to_string(),
                HistoryKind::Pass => "pass".to_string(),
                HistoryKind::Refusal => "refusal".to_string(),
                HistoryKind::TopUp if i.detail == "first" => "top_up first".to_string(),
                HistoryKind::TopUp => "top_up".to_string(),
            })
            .collect();
        assert_eq!(kinds, expected, "page size {page_size}");
        assert_eq!(got[0].detail, "t3");
        assert_eq!(got[1].status_word, Some(0x6A84));
    }
}

#[test]
fn readers_and_taps_run_concurrently() {
    let d = tempfile::tempdir().unwrap();
    let w = Arc::new(open(d.path()));
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let w = Arc::clone(&w);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    w.status(device_time(&w, T0)).unwrap();
                    w.ledger().unwrap();
                    w.history(None, 20).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let tapper = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || {
            (0..200)
                .map(|_| {
                    let t = reader.tap_with(&w, &Quote::fare_at(10, T0)).unwrap();
                    (t.challenge, t.authorization)
                })
                .collect::<Vec<_>>()
        })
    };
    let passes: Vec<u32> = (0..3)
        .map(|k| {
            w.boarding_pass(device_time(&w, T0 + k * 100))
                .unwrap()
                .counter
        })
        .collect();
    let taps = tapper.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let mut counters: Vec<u32> = taps.iter().map(|(_, a)| a.counter).collect();
    for (ch, a) in &taps {
        verify(&issuer, &cert, ch, a);
    }
    counters.extend(passes);
    counters.sort_unstable();
    counters.dedup();
    assert_eq!(counters.len(), 203);
    assert_eq!(w.verify_tap_log().unwrap(), 203);
    assert_eq!(w.ledger().unwrap().pending_taps, 203);
}

#[test]
fn settings_survive_a_restart() {
    let d = tempfile::tempdir().unwrap();
    {
        let w = open(d.path());
        provision(&w, &Issuer::new(1), CertSpec::default());
        w.set_server_time_offset(-120).unwrap();
        w.set_locked(true).unwrap();
        let mut t = mancard_protocol::Tariff::urmia_default();
        t.lines[2].fares[0] = 45_000;
        w.set_tariff(t.encode()).unwrap();
        assert!(w.set_tariff(vec![1, 2, 3]).is_err());
        w.set_confirmed_balance(123_450, None, T0).unwrap();
    }
    let w = open(d.path());
    assert_eq!(w.server_time_offset(), -120);
    assert!(w.is_locked());
    assert!(w.status(T0).unwrap().locked);
    assert!(matches!(w.boarding_pass(T0), Err(WalletError::Locked)));
    w.set_locked(false).unwrap();
    let p = w.boarding_pass(T0 + 120).unwrap();
    assert_eq!(
        p.max_amount, 45_000,
        "the stored tariff's highest adult fare"
    );
    assert_eq!(p.issued_at, T0);
    let l = w.ledger().unwrap();
    assert_eq!((l.confirmed_balance, l.confirmed_at), (123_450, Some(T0)));
    assert_eq!(l.available_balance, 123_450 - 45_000);
}
