//! # mancard-sql: one way to open a SQLite database
//!
//! Modelled on mozilla application-services' `open_database.rs`. A [`ConnectionInitializer`]
//! says how to bring a connection to a usable state: [`prepare`](ConnectionInitializer::prepare)
//! sets pragmas on every connection; [`init`](ConnectionInitializer::init) creates the newest
//! schema in an empty database; [`upgrade_from`](ConnectionInitializer::upgrade_from) takes
//! version `v` to `v + 1`. [`open_database`] runs them inside one IMMEDIATE transaction with
//! the version in `PRAGMA user_version`.
//!
//! What it refuses, with a typed [`OpenError`] and never by resetting the file: a file that
//! is not a SQLite database or is shorter than its header, a damaged file (`quick_check`), a
//! file that holds tables but no schema version (someone else's database), and a schema newer
//! than the code ("too new": an app downgrade must not eat the rider's data).
//!
//! The wallet, the validator journal and the backend each implement the trait once, in the one
//! module of their crate that speaks SQL, and each keeps a migration test: a frozen old schema
//! upgraded step by step must equal a fresh database ([`schema_of`] compares them).

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::Path;
use thiserror::Error;

/// Why a database could not be opened. Nothing was changed on disk when this is returned.
#[derive(Debug, Error)]
pub enum OpenError {
    /// SQLite itself failed (I/O, locking, a statement of a migration).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a (whole) SQLite database, is damaged, or holds someone else's tables.
    #[error("{0}")]
    Corrupt(String),
    /// The schema is newer than this build understands.
    #[error("database schema version {found} is newer than this build understands ({supported}); update the app")]
    TooNew { found: u32, supported: u32 },
    /// A secondary connection found a schema version other than the code's.
    #[error("the database has schema version {found}, expected {expected}")]
    VersionMismatch { found: u32, expected: u32 },
}

/// How to bring a connection to a usable state. `Error` is the caller's own error type, so a
/// migration can fail with whatever the crate uses.
pub trait ConnectionInitializer {
    /// The error of `prepare`, `init` and `upgrade_from`.
    type Error: From<OpenError> + From<rusqlite::Error>;
    /// A name for messages ("wallet", "journal", "backend").
    const NAME: &'static str;
    /// The schema version this code writes.
    const END_VERSION: u32;
    /// Pragmas and per-connection settings, run on every connection before anything else.
    fn prepare(&self, conn: &Connection) -> Result<(), Self::Error>;
    /// Creates the newest schema in an empty database.
    fn init(&self, tx: &Transaction<'_>) -> Result<(), Self::Error>;
    /// Upgrades the schema from `version` to `version + 1`.
    fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), Self::Error>;
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const SQLITE_HEADER_LEN: u64 = 100;

/// Checks the file before SQLite sees it: a file that exists and is not empty must at least
/// look like a SQLite database; SQLite would otherwise report some errors only on first use.
pub fn precheck(path: &Path) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let len = meta.len();
    if len == 0 {
        return Ok(());
    }
    if len < SQLITE_HEADER_LEN {
        return Err(OpenError::Corrupt(format!(
            "{} is truncated ({len} bytes, shorter than a SQLite header)",
            path.display()
        )));
    }
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.read_exact(&mut head).map_err(io)?;
    }
    if &head != SQLITE_MAGIC {
        return Err(OpenError::Corrupt(format!(
            "{} is not a SQLite database",
            path.display()
        )));
    }
    Ok(())
}

/// Opens (creating if needed) and migrates the database at `path`.
pub fn open_database<I: ConnectionInitializer>(
    path: &Path,
    initializer: &I,
) -> Result<Connection, I::Error> {
    precheck(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags)?;
    initializer.prepare(&conn)?;
    check_structure(&conn)?;
    migrate(&mut conn, initializer)?;
    Ok(conn)
}

/// Migrates an already open connection (an in-memory database in tests, or one opened with
/// other flags) the same way [`open_database`] does.
pub fn migrate<I: ConnectionInitializer>(
    conn: &mut Connection,
    initializer: &I,
) -> Result<(), I::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let objects: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )?;
        if objects != 0 {
            return Err(OpenError::Corrupt(format!(
                "the file holds tables but no {} schema version",
                I::NAME
            ))
            .into());
        }
        initializer.init(&tx)?;
    } else if version > I::END_VERSION {
        return Err(OpenError::TooNew {
            found: version,
            supported: I::END_VERSION,
        }
        .into());
    } else {
        for v in version..I::END_VERSION {
            initializer.upgrade_from(&tx, v)?;
        }
    }
    if version != I::END_VERSION {
        tx.pragma_update(None, "user_version", I::END_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// Opens another connection to an already initialised database (readers, background
/// workers). Checks the schema version again so a concurrent upgrade cannot surprise it.
pub fn open_secondary<I: ConnectionInitializer>(
    path: &Path,
    initializer: &I,
) -> Result<Connection, I::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    initializer.prepare(&conn)?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != I::END_VERSION {
        return Err(OpenError::VersionMismatch {
            found: version,
            expected: I::END_VERSION,
        }
        .into());
    }
    Ok(conn)
}

/// A quick structural check: catches truncated and damaged files before any write.
fn check_structure(conn: &Connection) -> Result<(), OpenError> {
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| OpenError::Corrupt(e.to_string()))?;
    if check != "ok" {
        return Err(OpenError::Corrupt(check));
    }
    Ok(())
}

/// The schema of a database as comparable text: every table, index, view and trigger's SQL
/// (sorted by name) and the user version. Migration tests assert that a frozen old schema
/// upgraded step by step gives the same text as a fresh database.
pub fn schema_of(conn: &Connection) -> Result<String, rusqlite::Error> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        let ty: String = r.get("type")?;
        let name: String = r.get("name")?;
        let sql: String = r.get(2)?;
        Ok(format!("{ty} {name}: {}", normalize_sql(&sql)))
    })?;
    let mut out = format!("user_version {version}\n");
    for row in rows {
        out.push_str(&row?);
        out.push('\n');
    }
    Ok(out)
}

/// Folds white space so that `ALTER TABLE … ADD COLUMN` and a fresh `CREATE TABLE` written
/// with other line breaks compare equal.
fn normalize_sql(sql: &str) -> String {
    let folded: Vec<&str> = sql.split_whitespace().collect();
    folded
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    enum TestError {
        #[error(transparent)]
        Open(#[from] OpenError),
        #[error(transparent)]
        Sqlite(#[from] rusqlite::Error),
    }

    struct Schema;
    impl ConnectionInitializer for Schema {
        type Error = TestError;
        const NAME: &'static str = "test";
        const END_VERSION: u32 = 2;
        fn prepare(&self, conn: &Connection) -> Result<(), TestError> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Ok(())
        }
        fn init(&self, tx: &Transaction<'_>) -> Result<(), TestError> {
            tx.execute_batch("CREATE TABLE t (a INTEGER, b TEXT);")?;
            Ok(())
        }
        fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), TestError> {
            match version {
                1 => tx.execute_batch("ALTER TABLE t ADD COLUMN b TEXT;")?,
                _ => return Err(OpenError::Corrupt(format!("no step from {version}")).into()),
            }
            Ok(())
        }
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| unreachable!("tempdir: {e}"))
    }

    #[test]
    fn a_fresh_database_gets_the_newest_version() -> Result<(), TestError> {
        let d = dir();
        let conn = open_database(&d.path().join("db"), &Schema)?;
        let v: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(v, 2);
        Ok(())
    }

    #[test]
    fn an_upgraded_database_equals_a_fresh_one() -> Result<(), TestError> {
        let d = dir();
        let old = d.path().join("old");
        {
            let c = Connection::open(&old)?;
            c.execute_batch("CREATE TABLE t (a INTEGER); PRAGMA user_version = 1;")?;
        }
        let upgraded = open_database(&old, &Schema)?;
        let fresh = open_database(&d.path().join("fresh"), &Schema)?;
        assert_eq!(schema_of(&upgraded)?, schema_of(&fresh)?);
        Ok(())
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() -> Result<(), TestError> {
        let d = dir();
        let p = d.path().join("db");
        {
            let c = Connection::open(&p)?;
            c.execute_batch("CREATE TABLE t (a INTEGER); PRAGMA user_version = 9;")?;
        }
        let err = open_database(&p, &Schema).err();
        assert!(matches!(
            err,
            Some(TestError::Open(OpenError::TooNew {
                found: 9,
                supported: 2
            }))
        ));
        let c = Connection::open(&p)?;
        let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(v, 9);
        Ok(())
    }

    #[test]
    fn foreign_and_damaged_files_are_refused() -> Result<(), TestError> {
        let d = dir();
        let text = d.path().join("text");
        std::fs::write(&text, vec![b'x'; 4096]).map_err(|e| OpenError::Io {
            path: "text".into(),
            source: e,
        })?;
        assert!(matches!(
            open_database(&text, &Schema),
            Err(TestError::Open(OpenError::Corrupt(_)))
        ));
        let short = d.path().join("short");
        std::fs::write(&short, b"SQLite format 3\0").map_err(|e| OpenError::Io {
            path: "short".into(),
            source: e,
        })?;
        assert!(matches!(
            open_database(&short, &Schema),
            Err(TestError::Open(OpenError::Corrupt(_)))
        ));
        let foreign = d.path().join("foreign");
        Connection::open(&foreign)?.execute_batch("CREATE TABLE other (x);")?;
        assert!(matches!(
            open_database(&foreign, &Schema),
            Err(TestError::Open(OpenError::Corrupt(_)))
        ));
        Ok(())
    }

    #[test]
    fn a_secondary_connection_checks_the_version() -> Result<(), TestError> {
        let d = dir();
        let p = d.path().join("db");
        drop(open_database(&p, &Schema)?);
        open_secondary(&p, &Schema)?;
        Connection::open(&p)?.pragma_update(None, "user_version", 1)?;
        assert!(matches!(
            open_secondary(&p, &Schema),
            Err(TestError::Open(OpenError::VersionMismatch { .. }))
        ));
        Ok(())
    }
}
