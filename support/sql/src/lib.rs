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
//! One opt-in exception to "tables but no version": a crate whose files in the field predate
//! its schema version can recognise its own exact legacy schema in
//! [`adopt_unversioned`](ConnectionInitializer::adopt_unversioned) and name the version it
//! equals; the file is then migrated from there like any other (see [`holds_schema`]).
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
    /// Called when the file holds tables but `user_version = 0`. An initializer whose files
    /// in the field were written before it had a schema version recognises its exact legacy
    /// schema here (for instance with [`holds_schema`]) and returns the version it equals
    /// (`1 ..= END_VERSION`); the file is then upgraded from that version. `None`, the
    /// default, refuses the file as someone else's database ([`OpenError::Corrupt`]).
    fn adopt_unversioned(&self, tx: &Transaction<'_>) -> Result<Option<u32>, Self::Error> {
        let _ = tx;
        Ok(None)
    }
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
    if version == 0 && !has_objects(&tx)? {
        initializer.init(&tx)?;
    } else {
        let from = if version == 0 {
            adopted_version(&tx, initializer)?
        } else {
            version
        };
        if from > I::END_VERSION {
            return Err(OpenError::TooNew {
                found: from,
                supported: I::END_VERSION,
            }
            .into());
        }
        for v in from..I::END_VERSION {
            initializer.upgrade_from(&tx, v)?;
        }
    }
    if version != I::END_VERSION {
        tx.pragma_update(None, "user_version", I::END_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether the database holds any table, index, view or trigger of its own.
fn has_objects(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let objects: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    Ok(objects != 0)
}

/// The version an unversioned file with tables is adopted as, or why it is refused.
fn adopted_version<I: ConnectionInitializer>(
    tx: &Transaction<'_>,
    initializer: &I,
) -> Result<u32, I::Error> {
    match initializer.adopt_unversioned(tx)? {
        Some(v) if (1..=I::END_VERSION).contains(&v) => Ok(v),
        Some(v) => Err(OpenError::Corrupt(format!(
            "the {} initializer adopted an unversioned file as version {v}, outside 1..={}",
            I::NAME,
            I::END_VERSION
        ))
        .into()),
        None => Err(OpenError::Corrupt(format!(
            "the file holds tables but no {} schema version",
            I::NAME
        ))
        .into()),
    }
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
    Ok(format!("user_version {version}\n{}", objects_of(conn)?))
}

/// Whether the database's tables, indexes, views and triggers are exactly those that
/// `create_sql` makes in an empty database (white space folded, `IF NOT EXISTS` ignored as
/// SQLite itself drops it; the user version is not compared). For
/// [`ConnectionInitializer::adopt_unversioned`]: a legacy file is adopted only if it holds
/// precisely the frozen legacy schema, never a look-alike.
pub fn holds_schema(conn: &Connection, create_sql: &str) -> Result<bool, rusqlite::Error> {
    let reference = Connection::open_in_memory()?;
    reference.execute_batch(create_sql)?;
    Ok(objects_of(conn)? == objects_of(&reference)?)
}

/// [`schema_of`] without the user version line.
fn objects_of(conn: &Connection) -> Result<String, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT type, name, coalesce(sql, '') AS sql FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        let ty: String = r.get("type")?;
        let name: String = r.get("name")?;
        let sql: String = r.get("sql")?;
        Ok(format!("{ty} {name}: {}", normalize_sql(&sql)))
    })?;
    let mut out = String::new();
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
    use super::{
        holds_schema, open_database, open_secondary, schema_of, ConnectionInitializer, OpenError,
    };
    use rusqlite::{Connection, Transaction};
    use std::path::Path;
    use thiserror::Error;

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
    /// Like [`Schema`], but its files in the field predate the version: an unversioned file
    /// holding exactly `LEGACY` is version 1 (or whatever `adopt_as` says, to test the bounds).
    struct Adopting {
        adopt_as: u32,
    }
    const LEGACY: &str = "CREATE TABLE IF NOT EXISTS t (a INTEGER);";
    impl ConnectionInitializer for Adopting {
        type Error = TestError;
        const NAME: &'static str = "adopting";
        const END_VERSION: u32 = 2;
        fn prepare(&self, conn: &Connection) -> Result<(), TestError> {
            Schema.prepare(conn)
        }
        fn init(&self, tx: &Transaction<'_>) -> Result<(), TestError> {
            Schema.init(tx)
        }
        fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), TestError> {
            Schema.upgrade_from(tx, version)
        }
        fn adopt_unversioned(&self, tx: &Transaction<'_>) -> Result<Option<u32>, TestError> {
            Ok(holds_schema(tx, LEGACY)?.then_some(self.adopt_as))
        }
    }

    fn user_version(p: &Path) -> Result<u32, rusqlite::Error> {
        Connection::open(p)?.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    #[test]
    fn an_unversioned_legacy_file_is_adopted_and_upgraded() -> Result<(), TestError> {
        let d = dir();
        let old = d.path().join("old");
        {
            let c = Connection::open(&old)?;
            c.execute_batch(LEGACY)?;
            c.execute("INSERT INTO t (a) VALUES (7)", [])?;
        }
        let upgraded = open_database(&old, &Adopting { adopt_as: 1 })?;
        let fresh = open_database(&d.path().join("fresh"), &Adopting { adopt_as: 1 })?;
        assert_eq!(schema_of(&upgraded)?, schema_of(&fresh)?);
        let a: i64 = upgraded.query_row("SELECT a FROM t", [], |r| r.get(0))?;
        assert_eq!(a, 7);
        Ok(())
    }

    #[test]
    fn a_look_alike_unversioned_file_is_refused_and_left_alone() -> Result<(), TestError> {
        let d = dir();
        for (name, sql) in [
            ("extra", "CREATE TABLE t (a INTEGER); CREATE TABLE u (x);"),
            ("column", "CREATE TABLE t (a INTEGER, z TEXT);"),
            ("other", "CREATE TABLE other (a INTEGER);"),
        ] {
            let p = d.path().join(name);
            Connection::open(&p)?.execute_batch(sql)?;
            let before = schema_of(&Connection::open(&p)?)?;
            assert!(
                matches!(
                    open_database(&p, &Adopting { adopt_as: 1 }),
                    Err(TestError::Open(OpenError::Corrupt(_)))
                ),
                "{name}"
            );
            assert_eq!(schema_of(&Connection::open(&p)?)?, before, "{name}");
            assert_eq!(user_version(&p)?, 0, "{name}");
        }
        Ok(())
    }

    #[test]
    fn an_adoption_outside_the_known_versions_is_refused() -> Result<(), TestError> {
        let d = dir();
        for adopt_as in [0, 3] {
            let p = d.path().join(format!("v{adopt_as}"));
            Connection::open(&p)?.execute_batch(LEGACY)?;
            assert!(matches!(
                open_database(&p, &Adopting { adopt_as }),
                Err(TestError::Open(OpenError::Corrupt(_)))
            ));
            assert_eq!(user_version(&p)?, 0);
        }
        Ok(())
    }

    #[test]
    fn without_adoption_an_unversioned_file_stays_refused() -> Result<(), TestError> {
        let d = dir();
        let p = d.path().join("legacy");
        Connection::open(&p)?.execute_batch(LEGACY)?;
        assert!(matches!(
            open_database(&p, &Schema),
            Err(TestError::Open(OpenError::Corrupt(_)))
        ));
        assert_eq!(user_version(&p)?, 0);
        Ok(())
    }

    #[test]
    fn holds_schema_ignores_white_space_and_if_not_exists() -> Result<(), TestError> {
        let c = Connection::open_in_memory()?;
        c.execute_batch("CREATE TABLE t (a INTEGER);")?;
        assert!(holds_schema(
            &c,
            "CREATE TABLE IF NOT EXISTS t (\n    a INTEGER\n);"
        )?);
        assert!(!holds_schema(&c, "CREATE TABLE t (a TEXT);")?);
        assert!(!holds_schema(&c, "")?);
        Ok(())
    }
}
