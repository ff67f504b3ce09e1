//! Opening the wallet database: pragmas, forward-only migrations, corruption checks.
//!
//! Modelled on mozilla application-services `open_database.rs`: a [`ConnectionInitializer`]
//! prepares pragmas, initialises a fresh database straight to the newest schema, or upgrades an
//! older one a step at a time (`upgrade_from(v)` takes v to v + 1), all inside one IMMEDIATE
//! transaction, with the version in `PRAGMA user_version`. A database newer than the code, or a
//! damaged or foreign file, is an error and is never reset.

use crate::error::WalletError;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::Path;

/// How to bring a connection to a usable state.
pub(crate) trait ConnectionInitializer {
    /// The schema version this code writes.
    const END_VERSION: u32;
    /// Pragmas and per-connection settings, run on every connection before anything else.
    fn prepare(&self, conn: &Connection) -> Result<(), WalletError>;
    /// Creates the newest schema in an empty database.
    fn init(&self, tx: &Transaction<'_>) -> Result<(), WalletError>;
    /// Upgrades the schema from `version` to `version + 1`.
    fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), WalletError>;
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks the file before SQLite sees it: a file that exists must at least look like a
/// SQLite database; SQLite would otherwise report some errors only on first use.
fn precheck(path: &Path) -> Result<(), WalletError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(WalletError::storage(format!("{}: {e}", path.display()))),
    };
    let len = meta.len();
    if len == 0 {
        return Ok(());
    }
    if len < 100 {
        return Err(WalletError::DatabaseCorrupt {
            message: format!(
                "{} is truncated ({len} bytes, shorter than a SQLite header)",
                path.display()
            ),
        });
    }
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        f.read_exact(&mut head)?;
    }
    if &head != SQLITE_MAGIC {
        return Err(WalletError::DatabaseCorrupt {
            message: format!("{} is not a SQLite database", path.display()),
        });
    }
    Ok(())
}

fn corrupt(e: rusqlite::Error) -> WalletError {
    WalletError::DatabaseCorrupt {
        message: e.to_string(),
    }
}

/// Opens (creating if needed) and migrates the database at `path`.
pub(crate) fn open_database<I: ConnectionInitializer>(
    path: &Path,
    initializer: &I,
) -> Result<Connection, WalletError> {
    precheck(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags)?;
    initializer.prepare(&conn)?;
    // A quick structural check: catches truncated and damaged files before any write.
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(corrupt)?;
    if check != "ok" {
        return Err(WalletError::DatabaseCorrupt { message: check });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let objects: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )?;
        if objects != 0 {
            return Err(WalletError::DatabaseCorrupt {
                message: "the file holds tables but no wallet schema version".into(),
            });
        }
        initializer.init(&tx)?;
    } else if version > I::END_VERSION {
        return Err(WalletError::DatabaseTooNew {
            found: version,
            supported: I::END_VERSION,
        });
    } else {
        for v in version..I::END_VERSION {
            initializer.upgrade_from(&tx, v)?;
        }
    }
    if version != I::END_VERSION {
        tx.pragma_update(None, "user_version", I::END_VERSION)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// Opens another connection to an already initialised database (readers, the background
/// reserver). Checks the schema version again so a concurrent upgrade cannot surprise it.
pub(crate) fn open_secondary<I: ConnectionInitializer>(
    path: &Path,
    initializer: &I,
) -> Result<Connection, WalletError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    initializer.prepare(&conn)?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != I::END_VERSION {
        return Err(WalletError::internal(format!(
            "secondary connection sees schema version {version}, expected {}",
            I::END_VERSION
        )));
    }
    Ok(conn)
}

/// The wallet schema.
pub(crate) struct WalletSchema;

/// Current wallet schema version.
pub const SCHEMA_VERSION: u32 = 2;

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

impl ConnectionInitializer for WalletSchema {
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
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(corrupt)?;
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
            _ => Err(WalletError::internal(format!(
                "no upgrade path from wallet schema version {version}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy three-version schema: exercises the machinery (one-step upgrades, comparison with a
    /// fresh database, rollback of a failed upgrade) independently of the wallet's own history.
    struct Toy {
        fail_at: Option<u32>,
    }
    const TOY_V1: &str = "CREATE TABLE a (x INTEGER);";
    impl ConnectionInitializer for Toy {
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

    pub(crate) fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut st = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
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
            assert_eq!(schema_of(&up), schema_of(&fresh));
            let x: i64 = up.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
            assert_eq!(x, 7);
        }
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
        assert_eq!(
            open_database(&p, &WalletSchema).err(),
            Some(WalletError::DatabaseTooNew {
                found: SCHEMA_VERSION + 1,
                supported: SCHEMA_VERSION
            })
        );
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
        std::fs::write(&short, &SQLITE_MAGIC[..]).unwrap();
        assert!(matches!(
            open_database(&short, &WalletSchema),
            Err(WalletError::DatabaseCorrupt { .. })
        ));
    }
}
