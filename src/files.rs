//! The wallet's data directory on disk: private, and never silently reset.
//!
//! - **Private.** The directory is 0700 and every file the wallet keeps in it (the database,
//!   its `-wal` and `-shm`, the counter file) is 0600. SQLite creates `-wal` and `-shm` with the
//!   database file's mode, so the database file is created here, empty and 0600, before SQLite
//!   opens it; the counter file is created 0600 by `counters.rs`. A directory or file that
//!   other users could read (left by an older version, or a directory the app made) is
//!   tightened, with a log line.
//! - **Never silently reset.** A database that is missing or empty (0 bytes) while something
//!   shows that a wallet lived here — its counter file, a non-empty write-ahead log, or a
//!   keystore whose keys existed before this open — is [`WalletError::DataMissing`]: nothing is
//!   created or changed, and the message says what to do (restore the files, or start again
//!   and sync). Opening a new, empty wallet there would hide the balance, the credential and
//!   the rides not yet synced, and would restart the tap chain and the counters.
//! - **An empty database alone** is what a crash during the very first open leaves (the file
//!   is made here before SQLite writes its first page; the counter file comes after the schema):
//!   it is initialised as a new wallet, with an info log line. Nothing else was ever in it.
//!   Next to a file keystore whose keys already existed it is refused like a missing one: a crash
//!   between making the keystore and the database cannot be told from lost files (docs/keys.md).

use crate::error::WalletError;
use crate::keystore::PlatformKeystore;
use crate::wallet::{COUNTER_FILE, DB_FILE};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Mode of the data directory (and of the file keystore's directory).
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file the wallet writes.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Checks and prepares `dir` before [`crate::Wallet::open`] touches anything in it (see the
/// module documentation). `keystore` tells whether its keys existed before this open. Returns
/// the directory's lock, held for the wallet's whole life.
pub(crate) fn prepare_data_dir_for(
    dir: &Path,
    keystore: &dyn PlatformKeystore,
) -> Result<fs::File, WalletError> {
    refuse_symlinks(dir)?;
    let early = if dir.try_exists()? {
        Some(lock_data_dir(dir)?)
    } else {
        None
    };
    prepare(dir, keystore.keys_existed_before_open())?;
    match early {
        Some(lock) => Ok(lock),
        None => lock_data_dir(dir),
    }
}

/// How long an open waits for another instance to let the directory go (an app's previous
/// wallet object still closing) before it reports [`WalletError::InUse`].
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One wallet instance per directory: an exclusive lock on the directory itself (released by
/// the OS when the process dies). Two instances would each keep their own counter mark in
/// memory, and one's park could lower the durable mark below counters the other has handed
/// out. The directory, not a lock file in it: a file can be unlinked and made again under a
/// lock, a directory holding the wallet's files cannot.
fn lock_data_dir(dir: &Path) -> Result<fs::File, WalletError> {
    let handle = fs::File::open(dir)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(handle),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(WalletError::InUse {
                    message: format!(
                        "{} is open in another process or wallet object; close that one first",
                        dir.display()
                    ),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// The wallet never follows a link planted in its directory: it would chmod, lock, read and
/// write the file the link points to, outside the directory.
fn refuse_symlinks(dir: &Path) -> Result<(), WalletError> {
    let db = dir.join(DB_FILE);
    for path in [
        db.clone(),
        wal_path(&db),
        shm_path(&db),
        dir.join(COUNTER_FILE),
    ] {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(WalletError::storage(format!(
                    "{} is a symbolic link; the wallet only uses its own files (remove the link)",
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn prepare(dir: &Path, keys_existed: bool) -> Result<(), WalletError> {
    let db = dir.join(DB_FILE);
    let db_len = file_len(&db)?;
    if db_len.unwrap_or(0) == 0 {
        if let Some(evidence) = evidence_of_a_wallet(dir, keys_existed)? {
            return Err(data_missing(&db, db_len.is_some(), &evidence));
        }
    }
    create_private_dir(dir)?;
    match db_len {
        None => create_private_file(&db)?,
        Some(0) => {
            tracing::info!(
                "{} is empty and nothing else of a wallet is here (a first open that did not \
                 finish): it becomes a new wallet",
                db.display()
            );
            make_private(&db, FILE_MODE)?;
        }
        Some(_) => {
            make_private(&db, FILE_MODE)?;
        }
    }
    for path in [wal_path(&db), shm_path(&db), dir.join(COUNTER_FILE)] {
        if path.try_exists()? {
            make_private(&path, FILE_MODE)?;
        }
    }
    Ok(())
}

fn wal_path(db: &Path) -> PathBuf {
    sibling(db, "-wal")
}

fn shm_path(db: &Path) -> PathBuf {
    sibling(db, "-shm")
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The file's length, `None` if it does not exist.
fn file_len(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What shows that a wallet lived in `dir`, as the end of a sentence; `None` for a fresh place.
fn evidence_of_a_wallet(dir: &Path, keys_existed: bool) -> io::Result<Option<String>> {
    if dir.join(COUNTER_FILE).try_exists()? {
        return Ok(Some(format!(
            "its counter file {COUNTER_FILE} is still there"
        )));
    }
    let wal = wal_path(&dir.join(DB_FILE));
    if file_len(&wal)?.unwrap_or(0) > 0 {
        return Ok(Some(format!(
            "its write-ahead log {} is still there",
            wal.file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    if keys_existed {
        return Ok(Some(
            "the keystore already held this installation's keys before this open".into(),
        ));
    }
    Ok(None)
}

fn data_missing(db: &Path, empty: bool, evidence: &str) -> WalletError {
    let state = if empty { "empty (0 bytes)" } else { "missing" };
    WalletError::DataMissing {
        message: format!(
            "{} is {state}, but {evidence}: the wallet's data was lost or only partly \
             restored; nothing was created or changed. Restore the wallet's files from a \
             backup, or start again: remove the wallet's data (on a phone, reinstall the app or \
             clear its storage; with the desktop file keystore, its key directory too), then \
             sign in and sync, which brings back the confirmed balance from the backend",
            db.display()
        ),
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing one is tightened.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    make_private(dir, DIR_MODE).map(|_| ())
}

/// Creates an empty file with mode 0600 unless it already exists.
fn create_private_file(path: &Path) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            make_private(path, FILE_MODE).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Sets `path` to `mode` if group or others have any access to it, with a log line (a file at
/// warn: it was readable; a directory at info). Returns the old mode when it changed it. The
/// owner's own bits are left alone otherwise. No-op off Unix.
pub(crate) fn make_private(path: &Path, mode: u32) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path)?;
        let old = meta.permissions().mode() & 0o7777;
        if old & 0o077 == 0 {
            return Ok(None);
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        if meta.is_dir() {
            tracing::info!(
                "{} was open to other users (mode {old:o}); made it private ({mode:o})",
                path.display()
            );
        } else {
            tracing::warn!(
                "{} was readable by other users (mode {old:o}, as older versions left it); \
                 made it private ({mode:o})",
                path.display()
            );
        }
        Ok(Some(old))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(None)
    }
}
