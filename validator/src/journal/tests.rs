//! Migration tests of the journal's schema: the unversioned journals in the field are
//! adopted as version 1 and upgraded; a version 1 journal is upgraded to version 2 (torn
//! taps) and a version 2 one to version 3 (pending challenges); a newer or someone else's file
//! is refused and left alone. And the torn taps' rows, pending ones included.

use super::{Journal, JournalError, DEFAULT_TORN_WINDOW_SECS};
use crate::decision::Medium;
use mancard_protocol::{
    ChallengeBody, FareClass, FareKind, Pseudonym, SigningKey, TapAuthorization, TapBatch,
    TapChallenge, TapProof, TapRecord,
};
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

/// A frozen copy of the version 1 schema (`user_version = 1`), as validators wrote it before
/// torn taps. Never edit: it is the past.
const JOURNAL_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE taps (
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
CREATE INDEX taps_batch ON taps(batch_id);
CREATE TABLE refusals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    code TEXT NOT NULL,
    text TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    records INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    acked_at INTEGER
);
PRAGMA user_version = 1;
";

/// A frozen copy of the version 2 schema (`user_version = 2`), as validators wrote it before
/// the write-ahead of challenges. Never edit: it is the past.
const JOURNAL_V2: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE taps (
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
CREATE INDEX taps_batch ON taps(batch_id);
CREATE TABLE refusals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    medium TEXT NOT NULL,
    code TEXT NOT NULL,
    text TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    records INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    acked_at INTEGER
);
CREATE TABLE torn (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    challenge_id BLOB NOT NULL UNIQUE,
    challenge BLOB NOT NULL,
    batch_id BLOB
);
CREATE INDEX torn_batch ON torn(batch_id);
ALTER TABLE batches ADD COLUMN torn INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 2;
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
        .starts_with("user_version 3\n"));

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
    assert_eq!(user_version(&old), 3);
    // And it opens again as an ordinary journal of the newest version.
    Journal::open(&old).unwrap();
}

#[test]
fn a_version_1_journal_is_upgraded_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v1.db");
    {
        let c = raw(&old);
        c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        c.execute_batch(JOURNAL_V1).unwrap();
        c.execute_batch(
            "INSERT INTO taps(time, medium, line_id, pseudonym, counter, fare, record, batch_id)
               VALUES (1795840200, 'nfc', 7, X'000102030405060708090a0b0c0d0e0f', 3, 20000,
                       NULL, X'11111111111111111111111111111111');
             INSERT INTO batches(batch_id, created_at, records, bytes)
               VALUES (X'11111111111111111111111111111111', 1795840300, 1, X'4202');",
        )
        .unwrap();
    }
    assert_eq!(user_version(&old), 1);
    let mut upgraded = Journal::open(&old).unwrap();
    let fresh = Journal::open(&dir.path().join("fresh.db")).unwrap();
    assert_eq!(
        schema_of(&upgraded.conn).unwrap(),
        schema_of(&fresh.conn).unwrap()
    );
    // the batch sealed before the upgrade is still pending, with no torn record
    let pending = upgraded.pending_batch().unwrap().unwrap();
    assert_eq!((pending.records, pending.torn), (1, 0));
    assert_eq!(pending.batch_id, [0x11; 16]);
    let counts = upgraded.counts().unwrap();
    assert_eq!((counts.accepted_total, counts.torn_waiting), (1, 0));
    // and the new table takes torn taps
    upgraded
        .record_torn(&challenge(1, 1_795_840_400), 1_795_840_402)
        .unwrap();
    assert_eq!(upgraded.counts().unwrap().torn_waiting, 1);
    drop(upgraded);
    assert_eq!(user_version(&old), 3);
}

#[test]
fn a_version_2_journal_is_upgraded_to_version_3() {
    const T: i64 = 1_795_840_200;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v2.db");
    let waiting = challenge(1, T);
    {
        let c = raw(&old);
        c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
        c.execute_batch(JOURNAL_V2).unwrap();
        c.execute(
            "INSERT INTO torn(time, challenge_id, challenge) VALUES (?1, ?2, ?3)",
            rusqlite::params![T + 1, &waiting.id()[..], waiting.encode()],
        )
        .unwrap();
    }
    assert_eq!(user_version(&old), 2);
    let mut upgraded = Journal::open(&old).unwrap();
    let fresh = Journal::open(&dir.path().join("fresh.db")).unwrap();
    assert_eq!(
        schema_of(&upgraded.conn).unwrap(),
        schema_of(&fresh.conn).unwrap()
    );
    // the torn tap journaled before the upgrade is an ordinary one: it waits for its card
    let torn = upgraded.torn_within(T, 5).unwrap();
    assert_eq!(torn.len(), 1);
    assert_eq!((torn[0].challenge.clone(), torn[0].time), (waiting, T + 1));
    // and the table takes pending challenges
    let seq = upgraded
        .record_pending(&challenge(2, T + 5), T + 5)
        .unwrap();
    assert_eq!(pending_rows(&upgraded), 1);
    upgraded.discard_pending(seq).unwrap();
    assert_eq!(pending_rows(&upgraded), 0);
    drop(upgraded);
    assert_eq!(user_version(&old), 3);
}

/// The rows still pending.
fn pending_rows(j: &Journal) -> i64 {
    j.conn
        .query_row("SELECT COUNT(*) FROM torn WHERE pending = 1", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// Every row of the torn table, pending or not.
fn torn_rows(j: &Journal) -> i64 {
    j.conn
        .query_row("SELECT COUNT(*) FROM torn", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_pending_challenge_is_resolved_by_its_tap() {
    const T: i64 = 1_795_840_200;
    let mut j = Journal::in_memory().unwrap();
    // answered: the tap record and the pending entry's deletion, one transaction
    let answered = challenge(1, T);
    let seq = j.record_pending(&answered, T).unwrap();
    // a pending challenge is neither repeated, nor sealed, nor counted as waiting
    assert!(j.torn_within(T - 1000, 5).unwrap().is_empty());
    assert_eq!(j.counts().unwrap().torn_waiting, 0);
    assert!(j.seal_batch(9, key(), T + 1000).unwrap().is_none());
    j.record_answered(Medium::Nfc, &record(&answered, 0, T), seq)
        .unwrap();
    assert_eq!((torn_rows(&j), j.counts().unwrap().accepted_total), (0, 1));
    // once resolved, the same row answers nothing twice (nothing half-written)
    let err = j
        .record_answered(Medium::Nfc, &record(&answered, 1, T), seq)
        .unwrap_err();
    assert!(matches!(err, JournalError::Corrupt(_)), "{err:?}");
    assert_eq!(j.counts().unwrap().accepted_total, 1);
    // refused by the phone (or re-quoted): deleted
    let seq = j.record_pending(&challenge(2, T + 1), T + 1).unwrap();
    j.discard_pending(seq).unwrap();
    assert_eq!(torn_rows(&j), 0);
    // no valid answer: an ordinary torn tap, timed when the validator gave up
    let torn = challenge(3, T + 2);
    let seq = j.record_pending(&torn, T + 2).unwrap();
    j.tear_pending(seq, T + 3).unwrap();
    let waiting = j.torn_within(T, 5).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].challenge.clone(), waiting[0].time),
        (torn, T + 3)
    );
    // a torn tap is not a pending one: neither answered nor discarded as such
    assert!(j
        .record_answered(Medium::Nfc, &record(&challenge(3, T + 2), 2, T), seq)
        .is_err());
    j.discard_pending(seq).unwrap();
    assert_eq!(j.counts().unwrap().torn_waiting, 1);
}

#[test]
fn a_challenge_left_pending_by_a_crash_is_torn_at_open() {
    const T: i64 = 1_795_840_200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = Journal::open(&path).unwrap();
    let (old, young) = (challenge(1, T), challenge(2, T + 100));
    j.record_pending(&old, T).unwrap();
    // the validator stops before it resolves the challenge
    drop(j);
    let mut j = Journal::open(&path).unwrap();
    assert_eq!(pending_rows(&j), 0);
    let waiting = j.torn_within(T, 5).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].challenge.clone(), waiting[0].time),
        (old.clone(), T)
    );
    // again, a younger one: torn at open, its window counted from when it was journaled
    j.record_pending(&young, T + 100).unwrap();
    drop(j);
    let mut j = Journal::open(&path).unwrap();
    let sealed = j.seal_batch(9, key(), T + 150).unwrap().unwrap();
    let batch = TapBatch::decode(&sealed.bytes).unwrap();
    assert_eq!(batch.body.torn.len(), 1, "only the one past its window");
    assert_eq!(
        (
            batch.body.torn[0].challenge.clone(),
            batch.body.torn[0].time
        ),
        (old, T)
    );
    let waiting = j.torn_within(T, 5).unwrap();
    assert_eq!(waiting.len(), 1);
    // and it is recovered as any torn tap
    j.record_recovered(Medium::Nfc, &record(&young, 0, T + 150), waiting[0].seq)
        .unwrap();
    assert_eq!(j.counts().unwrap().torn_waiting, 0);
}

fn key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap().0)
}

/// A challenge of validator 9 with nonce `n` at `time`.
fn challenge(n: u8, time: i64) -> TapChallenge {
    ChallengeBody {
        validator_id: 9,
        nonce: [n; 16],
        session: [7; 16],
        validator_time: time,
        line_id: 1,
        fare: 20_000,
        fare_class: FareClass::Adult,
    }
    .sign(key())
    .unwrap()
}

/// An accepted tap record answering `ch` (the signature is not checked here).
fn record(ch: &TapChallenge, counter: u32, time: i64) -> TapRecord {
    let authorization =
        TapAuthorization::sign(key(), &ch.body, &[1; 32], counter, 20_000, &[2; 32]).unwrap();
    TapRecord {
        validator_id: 9,
        line_id: 1,
        time,
        pseudonym: Pseudonym([5; 16]),
        counter,
        fare: 20_000,
        fare_kind: FareKind::Full,
        proof: TapProof::Nfc {
            challenge: ch.clone(),
            authorization,
        },
    }
}

#[test]
fn torn_taps_wait_newest_first_and_are_recorded_once() {
    const T: i64 = 1_795_840_200;
    let mut j = Journal::in_memory().unwrap();
    assert_eq!(j.torn_window_secs(), DEFAULT_TORN_WINDOW_SECS);
    let (a, b, c) = (challenge(1, T), challenge(2, T + 10), challenge(3, T + 20));
    j.record_torn(&a, T + 1).unwrap();
    j.record_torn(&b, T + 11).unwrap();
    j.record_torn(&c, T + 21).unwrap();
    // the same challenge again is the same entry
    j.record_torn(&c, T + 30).unwrap();
    assert_eq!(j.counts().unwrap().torn_waiting, 3);
    let newest: Vec<TapChallenge> = j
        .torn_within(T, 2)
        .unwrap()
        .into_iter()
        .map(|t| t.challenge)
        .collect();
    assert_eq!(newest, vec![c.clone(), b.clone()]);
    // only those at or after `since`
    let since: Vec<i64> = j
        .torn_within(T + 11, 5)
        .unwrap()
        .iter()
        .map(|t| t.time)
        .collect();
    assert_eq!(since, vec![T + 21, T + 11]);
}

#[test]
fn a_torn_tap_is_recovered_or_sealed_exactly_once() {
    const T: i64 = 1_795_840_200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = Journal::open(&path).unwrap();
    let (old, young) = (challenge(1, T), challenge(2, T + 100));
    j.record_torn(&old, T + 1).unwrap();
    j.record_torn(&young, T + 101).unwrap();
    // a crash: the journal reopens with both torn taps waiting
    drop(j);
    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.torn_within(T, 5).unwrap().len(), 2);

    // at T + 200 the old one (199 s) is past the 120 s window, the young one (99 s) is not:
    // the batch carries the old one only
    let now = T + 200;
    let sealed = j.seal_batch(9, key(), now).unwrap().unwrap();
    assert_eq!((sealed.records, sealed.torn), (0, 1));
    let batch = TapBatch::decode(&sealed.bytes).unwrap();
    assert_eq!(batch.body.torn.len(), 1);
    assert_eq!(batch.body.torn[0].challenge, old);
    assert_eq!(batch.body.torn[0].time, T + 1);
    assert!(batch.verify(&key().public_key()).is_ok());
    // a sealed torn tap waits no more: it cannot be recovered, and is sealed only once
    let waiting = j.torn_within(T, 5).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].challenge, young);
    let old_seq = j
        .conn
        .query_row("SELECT seq FROM torn WHERE time = ?1", [T + 1], |r| {
            r.get(0)
        })
        .unwrap();
    let err = j
        .record_recovered(Medium::Nfc, &record(&old, 5, now), old_seq)
        .unwrap_err();
    assert!(matches!(err, JournalError::Corrupt(_)), "{err:?}");
    assert_eq!(
        j.counts().unwrap().accepted_total,
        0,
        "nothing half-written"
    );
    assert_eq!(
        j.pending_batch().unwrap().unwrap().batch_id,
        sealed.batch_id
    );

    // the young one is recovered: a tap record and no torn entry, in one transaction
    let seq = j
        .record_recovered(Medium::Nfc, &record(&young, 6, now), waiting[0].seq)
        .unwrap();
    assert!(seq > 0);
    assert!(j.torn_within(T, 5).unwrap().is_empty());
    let c = j.counts().unwrap();
    assert_eq!((c.accepted_total, c.unsealed, c.torn_waiting), (1, 1, 0));
    // acknowledging the batch drops its torn rows and counts them
    j.ack_batch(&sealed.batch_id, now).unwrap();
    let c = j.counts().unwrap();
    assert_eq!((c.torn_uploaded, c.pending_batches), (1, 0));
    assert_eq!(
        j.conn
            .query_row("SELECT COUNT(*) FROM torn", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        0
    );
    // the next batch: the recovered tap, no torn record
    let next = j.seal_batch(9, key(), now + 1000).unwrap().unwrap();
    assert_eq!((next.records, next.torn), (1, 0));
    assert!(j.seal_batch(9, key(), now + 2000).unwrap().is_none());
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
    raw(&p).pragma_update(None, "user_version", 4).unwrap();
    let err = Journal::open(&p).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Open(OpenError::TooNew {
                found: 4,
                supported: 3
            })
        ),
        "{err:?}"
    );
    assert_eq!(user_version(&p), 4);
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
