//! The wallet schema: the newest SQL, every upgrade step and the pragmas, as a
//! [`mancard_sql::ConnectionInitializer`]. Opening, the header precheck, `quick_check`, the
//! version in `PRAGMA user_version` and the "too new" refusal are `mancard_sql`'s.

use crate::error::WalletError;
use mancard_sql::ConnectionInitializer;
use rusqlite::{Connection, Transaction};

/// The wallet schema.
pub(crate) struct WalletSchema;

/// Current wallet schema version.
pub const SCHEMA_VERSION: u32 = 4;

/// Schema v1 (the first released one). A fresh database is created as v1 followed by every
/// upgrade step, so a fresh and an upgraded database cannot drift apart.
pub(crate) const SCHEMA_V1_SQL: &str = "
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

/// v1 → v2: the online layer (`docs/adr/0005-wallet-online.md`). Only new tables: the tap path
/// and every v1 table are unchanged.
/// - `idempotency_keys`: one open state-changing request per scope, stored before sending.
/// - `topups`: top-ups started on this phone, keyed by the idempotency key.
/// - `tap_settlements`: the backend's verdict on each tap-log entry (actual fare or reason).
/// - `recovered_taps`: tap-log entries the wallet had lost and learned back from the backend.
/// - `server_ledger`: backend ledger entries seen at sync (top-ups, fares, adjustments).
pub(crate) const SCHEMA_V2_SQL: &str = "
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

CREATE TABLE tap_settlements (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 0),
    status     TEXT NOT NULL CHECK (status IN ('settled', 'duplicate', 'fraud', 'rejected')),
    fare       INTEGER,
    reason     TEXT,
    detail     TEXT,
    updated_at INTEGER NOT NULL
);

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

/// v2 → v3: settlement v2's verdict feed (issue #13).
/// - `credentials.pseudonym`: the certificate's pseudonym (16 bytes), the key verdicts name a
///   tap by; filled from the stored certificates by the upgrade, and at install.
/// - `tap_settlements` takes the upload answers `pending` (a pass only the wallet reported)
///   and `not_charged` (a torn tap): rebuilt with the wider check, rows kept.
/// - `tap_verdicts`: the newest verdict of the backend per tap (pseudonym, counter): what it
///   charges and why. Kept by (pseudonym, counter), not by log position, so a verdict on an
///   entry the wallet lost and learns back later still finds it.
pub(crate) const SCHEMA_V3_SQL: &str = "
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

/// v3 → v4: a lean tap path and a bounded refusal log (issue #14). Only additions: the tap
/// path's table is unchanged.
/// - `events_refusals`: the refusals in order, so that dropping those beyond the newest
///   `keep` walks `keep` index entries rather than the events table
///   (`Write::insert_refusal`).
/// - `wal_restarts`: one row the maintenance connection rewrites after a checkpoint that
///   copied the whole WAL (`Spare::checkpoint`): that write starts the WAL over and pays the
///   fsync of its new header, which would otherwise fall on the next tap.
pub(crate) const SCHEMA_V4_SQL: &str = "
CREATE INDEX events_refusals ON events(id) WHERE kind = 'refusal';

CREATE TABLE wal_restarts (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    restarts INTEGER NOT NULL CHECK (restarts > 0)
);
";

/// Fills `credentials.pseudonym` from each stored certificate (the v2 → v3 step). A
/// certificate that does not decode keeps no pseudonym (its taps get no verdicts); opening
/// the wallet reports a damaged current certificate on its own.
fn fill_pseudonyms(tx: &Transaction<'_>) -> Result<(), WalletError> {
    let rows = {
        let mut st = tx.prepare("SELECT id, certificate FROM credentials")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, i64>("id")?, r.get::<_, Vec<u8>>("certificate")?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (id, cert) in rows {
        match mancard_protocol::CredentialCertificate::decode(&cert) {
            Ok(c) => {
                tx.execute(
                    "UPDATE credentials SET pseudonym = ?2 WHERE id = ?1",
                    rusqlite::params![id, c.body.pseudonym.0.to_vec()],
                )?;
            }
            Err(e) => tracing::warn!("credential {id}: stored certificate: {e}"),
        }
    }
    Ok(())
}

impl ConnectionInitializer for WalletSchema {
    type Error = WalletError;
    const NAME: &'static str = "wallet";
    const END_VERSION: u32 = SCHEMA_VERSION;

    fn prepare(&self, conn: &Connection) -> Result<(), WalletError> {
        // WAL: readers never block the writer; synchronous=NORMAL: a commit is durable against
        // a process kill without an fsync (power loss may drop the last commits; counters are
        // protected separately by the fsynced reservation file). Checkpoints are run by the
        // background thread, never by the tap path (wal_autocheckpoint=0).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = 0;
             PRAGMA journal_size_limit = 4194304;",
        )
        .map_err(|e| WalletError::DatabaseCorrupt {
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(())
    }

    fn init(&self, tx: &Transaction<'_>) -> Result<(), WalletError> {
        tx.execute_batch(SCHEMA_V1_SQL)?;
        for v in 1..SCHEMA_VERSION {
            self.upgrade_from(tx, v)?;
        }
        Ok(())
    }

    fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), WalletError> {
        // Each step takes `version` to `version + 1`; the migration test keeps a frozen
        // snapshot of every older schema.
        match version {
            1 => {
                tx.execute_batch(SCHEMA_V2_SQL)?;
                Ok(())
            }
            2 => {
                tx.execute_batch(SCHEMA_V3_SQL)?;
                fill_pseudonyms(tx)
            }
            3 => {
                tx.execute_batch(SCHEMA_V4_SQL)?;
                Ok(())
            }
            _ => Err(WalletError::internal(format!(
                "no upgrade path from wallet schema version {version}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mancard_sql::{open_database, schema_of};

    /// A toy three-version schema: exercises one-step upgrades, comparison with a fresh
    /// database and rollback of a failed upgrade, with the wallet's own error type.
    struct Toy {
        fail_at: Option<u32>,
    }
    const TOY_V1: &str = "CREATE TABLE a (x INTEGER);";
    impl ConnectionInitializer for Toy {
        type Error = WalletError;
        const NAME: &'static str = "toy";
        const END_VERSION: u32 = 3;
        fn prepare(&self, conn: &Connection) -> Result<(), WalletError> {
            WalletSchema.prepare(conn)
        }
        fn init(&self, tx: &Transaction<'_>) -> Result<(), WalletError> {
            tx.execute_batch(
                "CREATE TABLE a (x INTEGER, y TEXT NOT NULL DEFAULT '');
                 CREATE TABLE b (z BLOB);",
            )?;
            Ok(())
        }
        fn upgrade_from(&self, tx: &Transaction<'_>, v: u32) -> Result<(), WalletError> {
            if self.fail_at == Some(v) {
                return Err(WalletError::internal("injected failure"));
            }
            match v {
                1 => tx.execute_batch("ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT '';")?,
                2 => tx.execute_batch("CREATE TABLE b (z BLOB);")?,
                _ => return Err(WalletError::internal("unknown version")),
            }
            Ok(())
        }
    }

    fn user_version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn toy_upgrade_equals_fresh_and_failed_upgrade_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let fresh = open_database(&d.path().join("fresh.db"), &Toy { fail_at: None }).unwrap();
        for start in 1..Toy::END_VERSION {
            let p = d.path().join(format!("v{start}.db"));
            {
                let c = Connection::open(&p).unwrap();
                c.execute_batch(TOY_V1).unwrap();
                for v in 1..start {
                    let tx = c.unchecked_transaction().unwrap();
                    Toy { fail_at: None }.upgrade_from(&tx, v).unwrap();
                    tx.commit().unwrap();
                }
                c.pragma_update(None, "user_version", start).unwrap();
                c.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();
            }
            // a failing step leaves the old version and data untouched
            let err = open_database(&p, &Toy { fail_at: Some(2) });
            assert!(err.is_err());
            let c = Connection::open(&p).unwrap();
            assert_eq!(user_version(&c), start);
            drop(c);
            let up = open_database(&p, &Toy { fail_at: None }).unwrap();
            assert_eq!(user_version(&up), 3);
            assert_eq!(schema_of(&up).unwrap(), schema_of(&fresh).unwrap());
            let x: i64 = up.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
            assert_eq!(x, 7);
        }
    }

    /// A v3 database with events upgrades to v4 equal to a fresh one, its rows kept (the
    /// frozen older snapshots are in `tests/it/storage.rs`; v3 is v1 and the v2 and v3 steps
    /// as they shipped).
    #[test]
    fn v3_upgrades_to_v4_equal_to_fresh_with_its_rows() {
        let d = tempfile::tempdir().unwrap();
        let fresh = open_database(&d.path().join("fresh.db"), &WalletSchema).unwrap();
        let p = d.path().join("v3.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(SCHEMA_V1_SQL).unwrap();
            c.execute_batch(SCHEMA_V2_SQL).unwrap();
            c.execute_batch(SCHEMA_V3_SQL).unwrap();
            c.pragma_update(None, "user_version", 3).unwrap();
            c.execute_batch(
                "INSERT INTO events (after_seq, time, kind, detail) VALUES
                     (0, 1, 'refusal', 'a'), (0, 2, 'top_up', 'b'), (1, 3, 'refusal', 'c');",
            )
            .unwrap();
        }
        let up = open_database(&p, &WalletSchema).unwrap();
        assert_eq!(user_version(&up), SCHEMA_VERSION);
        assert_eq!(schema_of(&up).unwrap(), schema_of(&fresh).unwrap());
        let refusals: i64 = up
            .query_row(
                "SELECT count(*) FROM events INDEXED BY events_refusals WHERE kind = 'refusal'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(refusals, 2);
        let all: i64 = up
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(all, 3);
    }

    #[test]
    fn too_new_foreign_and_damaged_files_are_errors_and_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.db");
        drop(open_database(&p, &WalletSchema).unwrap());
        {
            let c = Connection::open(&p).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        assert!(matches!(
            open_database(&p, &WalletSchema).err(),
            Some(WalletError::DatabaseTooNew {
                found,
                supported: SCHEMA_VERSION
            }) if found == SCHEMA_VERSION + 1
        ));
        let c = Connection::open(&p).unwrap();
        assert_eq!(user_version(&c), SCHEMA_VERSION + 1);
        drop(c);

        // a database of some other app (tables, no version)
        let other = d.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        assert!(matches!(
            open_database(&other, &WalletSchema),
            Err(WalletError::DatabaseCorrupt { .. })
        ));

        // not a database at all
        let junk = d.path().join("junk.db");
        std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
        assert!(matches!(
            open_database(&junk, &WalletSchema),
            Err(WalletError::DatabaseCorrupt { .. })
        ));
        assert_eq!(std::fs::read(&junk).unwrap(), vec![0x42u8; 4096]);

        // truncated below the header
        let short = d.path().join("short.db");
        std::fs::write(&short, b"SQLite format 3\0").unwrap();
        assert!(matches!(
            open_database(&short, &WalletSchema),
            Err(WalletError::DatabaseCorrupt { .. })
        ));
    }
}
