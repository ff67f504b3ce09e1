//! Migration tests of the journal's schema: the unversioned journals in the field are
//! adopted as version 1; a newer or someone else's file is refused and left alone.

use super::{Journal, JournalError};
use mancard_sql::{schema_of, OpenError};
use rusqlite::Connection;
use std::path::Path;

/// A frozen copy of the journal schema as validators in the field wrote it before the
/// journal had a version (`user_version = 0`). Never edit: it is the past.
const UNVERSIONED_JOURNAL: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS taps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    line_id INTEGER NOT NULL,
    pseudonym BLOB NOT NULL,
    counter INTEGER NOT NULL,
    fare INTEGER NOT NULL,
    record BLOB,
    batch_id BLOB,
    uploaded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS taps_batch ON taps(batch_id);
CREATE TABLE IF NOT EXISTS refusals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    code TEXT NOT NULL,
    text TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    records INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    acked_at INTEGER
);
";

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn user_version(path: &Path) -> u32 {
    raw(path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_unversioned_journal_is_adopted_as_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        let c = raw(&old);
        c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        c.execute_batch(UNVERSIONED_JOURNAL).unwrap();
        c.execute_batch(
            "INSERT INTO meta(key, value) VALUES ('line_id', X'0000000000000007');
             INSERT INTO taps(time, medium, line_id, pseudonym, counter, fare, record)
               VALUES (1795840200, 'nfc', 7, X'000102030405060708090a0b0c0d0e0f', 3, 20000, NULL);
             INSERT INTO refusals(time, medium, code, text, detail)
               VALUES (1795840260, 'qr', 'already_used', 'Already used', 'AlreadyUsed');",
        )
        .unwrap();
    }
    assert_eq!(user_version(&old), 0);

    let adopted = Journal::open(&old).unwrap();
    let fresh = Journal::open(&dir.path().join("fresh.db")).unwrap();
    assert_eq!(
        schema_of(&adopted.conn).unwrap(),
        schema_of(&fresh.conn).unwrap()
    );
    assert!(schema_of(&fresh.conn)
        .unwrap()
        .starts_with("user_version 1\n"));

    let rides = adopted.rides().unwrap();
    assert_eq!(rides.len(), 1);
    assert_eq!(
        (rides[0].line_id, rides[0].counter, rides[0].fare),
        (7, 3, 20_000)
    );
    assert_eq!(adopted.get_meta_i64("line_id").unwrap(), Some(7));
    let counts = adopted.counts().unwrap();
    assert_eq!((counts.accepted_total, counts.refusals_total), (1, 1));
    drop(adopted);
    assert_eq!(user_version(&old), 1);
    // And it opens again as an ordinary version 1 journal.
    Journal::open(&old).unwrap();
}

#[test]
fn a_fresh_journal_equals_an_in_memory_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = Journal::open(&dir.path().join("j.db")).unwrap();
    let mem = Journal::in_memory().unwrap();
    assert_eq!(
        schema_of(&file.conn).unwrap(),
        schema_of(&mem.conn).unwrap()
    );
}

#[test]
fn a_journal_too_new_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.db");
    drop(Journal::open(&p).unwrap());
    raw(&p).pragma_update(None, "user_version", 2).unwrap();
    let err = Journal::open(&p).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Open(OpenError::TooNew {
                found: 2,
                supported: 1
            })
        ),
        "{err:?}"
    );
    assert_eq!(user_version(&p), 2);
}

#[test]
fn a_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Someone else's database, unversioned.
    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    let err = Journal::open(&foreign).unwrap_err();
    assert!(
        matches!(err, JournalError::Open(OpenError::Corrupt(_))),
        "{err:?}"
    );
    assert_eq!(user_version(&foreign), 0);
    // A journal look-alike: the legacy tables plus one more.
    let alike = dir.path().join("alike.db");
    raw(&alike)
        .execute_batch(&format!("{UNVERSIONED_JOURNAL} CREATE TABLE extra (x);"))
        .unwrap();
    let err = Journal::open(&alike).unwrap_err();
    assert!(
        matches!(err, JournalError::Open(OpenError::Corrupt(_))),
        "{err:?}"
    );
    assert_eq!(user_version(&alike), 0);
    // Not SQLite at all.
    let text = dir.path().join("text.db");
    std::fs::write(&text, vec![b'x'; 4096]).unwrap();
    let err = Journal::open(&text).unwrap_err();
    assert!(
        matches!(err, JournalError::Open(OpenError::Corrupt(_))),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&text).unwrap(), vec![b'x'; 4096]);
}
