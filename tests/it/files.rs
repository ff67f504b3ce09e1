//! The wallet's files: a missing or empty database next to what shows that a wallet lived there
//! (its counter file, its write-ahead log, a keystore that already held keys) is a typed error
//! that creates and changes nothing; a fresh place still makes a new wallet; the directory is
//! 0700 and every file in it, and the file keystore's, 0600 (older, looser ones are tightened).
//! The layout is the CLI's and the testkit's: `DIR/wallet` beside `DIR/keystore`.

use mancard::{CredentialState, FileKeystore, Wallet, WalletError, COUNTER_FILE, DB_FILE};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A wallet in `d` that has been provisioned and has tapped once, closed again.
fn used_wallet(d: &Path) {
    let w = open(d);
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    Reader::new(&issuer, READER_ID)
        .tap_with(&w, &Quote::fare_at(10, T0))
        .unwrap();
}

fn wallet_dir(d: &Path) -> PathBuf {
    d.join("wallet")
}

fn db(d: &Path) -> PathBuf {
    wallet_dir(d).join(DB_FILE)
}

fn sibling(d: &Path, suffix: &str) -> PathBuf {
    wallet_dir(d).join(format!("{DB_FILE}{suffix}"))
}

/// Every file under `dir` with its length and content hash (to show nothing changed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, [u8; 32])> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), (0, [0; 32]));
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, (bytes.len() as u64, mancard_protocol::sha256(&[&bytes])));
            }
        }
    }
    out
}

/// A keystore that has never been seen before (so only the data directory's own files can
/// show that a wallet lived there).
fn new_keystore() -> (tempfile::TempDir, Arc<FileKeystore>) {
    let k = tempfile::tempdir().unwrap();
    let ks = Arc::new(FileKeystore::open_or_create(k.path().join("keystore")).unwrap());
    (k, ks)
}

/// Opening must fail with `DataMissing`, naming the database, what it found and what to do.
fn assert_data_missing(err: WalletError, state: &str, evidence: &str) {
    let msg = err.to_string();
    assert!(matches!(err, WalletError::DataMissing { .. }), "{msg}");
    for part in [DB_FILE, state, evidence, "Restore", "sign in and sync"] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
    assert!(!msg.contains("new wallet"), "{msg}");
}

#[test]
fn a_missing_database_next_to_the_counter_file_is_an_error_and_nothing_is_created() {
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    for f in [
        db(d.path()),
        sibling(d.path(), "-wal"),
        sibling(d.path(), "-shm"),
    ] {
        let _ = std::fs::remove_file(f);
    }
    assert!(wallet_dir(d.path()).join(COUNTER_FILE).exists());
    let before = snapshot(d.path());
    let (_k, ks) = new_keystore();
    let err =
        Wallet::open(wallet_dir(d.path()), ks, mancard_testkit::wallet::english()).unwrap_err();
    assert_data_missing(err, "is missing", COUNTER_FILE);
    assert_eq!(snapshot(d.path()), before, "nothing created or changed");
    // ... and the same through the testkit's usual opening (the keystore of the wallet itself)
    assert!(matches!(
        try_open_with(d.path(), test_config()),
        Err(e) if e.to_string().contains("the wallet's files are incomplete")
    ));
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn an_empty_database_next_to_the_counter_file_is_an_error_and_left_as_is() {
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    for f in [sibling(d.path(), "-wal"), sibling(d.path(), "-shm")] {
        let _ = std::fs::remove_file(f);
    }
    std::fs::write(db(d.path()), b"").unwrap();
    let before = snapshot(d.path());
    let (_k, ks) = new_keystore();
    let err =
        Wallet::open(wallet_dir(d.path()), ks, mancard_testkit::wallet::english()).unwrap_err();
    assert_data_missing(err, "is empty (0 bytes)", COUNTER_FILE);
    assert_eq!(
        snapshot(d.path()),
        before,
        "the empty file is left as it is"
    );
    assert_eq!(std::fs::metadata(db(d.path())).unwrap().len(), 0);
}

#[test]
fn a_missing_database_next_to_its_write_ahead_log_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let wal_copy = d.path().join("wal-copy");
    {
        let w = open(d.path());
        let issuer = Issuer::new(1);
        provision(&w, &issuer, CertSpec::default());
        // while the wallet is open its recent commits are in the write-ahead log
        std::fs::copy(sibling(d.path(), "-wal"), &wal_copy).unwrap();
    }
    std::fs::remove_dir_all(wallet_dir(d.path())).unwrap();
    std::fs::create_dir(wallet_dir(d.path())).unwrap();
    std::fs::rename(&wal_copy, sibling(d.path(), "-wal")).unwrap();
    assert!(std::fs::metadata(sibling(d.path(), "-wal")).unwrap().len() > 0);
    let (_k, ks) = new_keystore();
    let err =
        Wallet::open(wallet_dir(d.path()), ks, mancard_testkit::wallet::english()).unwrap_err();
    assert_data_missing(err, "is missing", "-wal");
    assert!(!db(d.path()).exists());
}

#[test]
fn a_missing_database_next_to_the_keys_is_an_error() {
    // The CLI's layout: DIR/wallet and DIR/keystore. The wallet's directory is lost entirely
    // (or only its database), the keystore survives: its keys existed before this open.
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    std::fs::remove_dir_all(wallet_dir(d.path())).unwrap();
    let before = snapshot(d.path());
    let ks = Arc::new(FileKeystore::open_or_create(d.path().join("keystore")).unwrap());
    let err =
        Wallet::open(wallet_dir(d.path()), ks, mancard_testkit::wallet::english()).unwrap_err();
    assert_data_missing(err, "is missing", "keystore already held");
    assert!(!wallet_dir(d.path()).exists(), "no directory created");
    assert_eq!(snapshot(d.path()), before);

    // an empty database and nothing else, next to those keys: also refused
    std::fs::create_dir(wallet_dir(d.path())).unwrap();
    std::fs::write(db(d.path()), b"").unwrap();
    let ks = Arc::new(FileKeystore::open(d.path().join("keystore")).unwrap());
    let err =
        Wallet::open(wallet_dir(d.path()), ks, mancard_testkit::wallet::english()).unwrap_err();
    assert_data_missing(err, "is empty (0 bytes)", "keystore already held");
}

#[test]
fn a_fresh_place_or_an_empty_database_alone_makes_a_new_wallet() {
    // nothing there at all (not even the directory)
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    assert_eq!(w.status(T0).unwrap().state, CredentialState::NoCredential);
    drop(w);
    let w = open(d.path());
    assert_eq!(w.status(T0).unwrap().state, CredentialState::NoCredential);
    drop(w);

    // an empty database alone, as a crash during the very first open leaves it
    let e = tempfile::tempdir().unwrap();
    std::fs::create_dir(wallet_dir(e.path())).unwrap();
    std::fs::write(db(e.path()), b"").unwrap();
    let w = open(e.path());
    assert_eq!(w.status(T0).unwrap().state, CredentialState::NoCredential);
    assert!(std::fs::metadata(db(e.path())).unwrap().len() > 0);
    assert!(wallet_dir(e.path()).join(COUNTER_FILE).exists());
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn a_fresh_wallet_that_taps_keeps_every_file_private() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    Reader::new(&issuer, READER_ID)
        .tap_with(&w, &Quote::fare_at(10, T0))
        .unwrap();
    // while the wallet is open: -wal and -shm exist
    let files = [
        db(d.path()),
        sibling(d.path(), "-wal"),
        sibling(d.path(), "-shm"),
        wallet_dir(d.path()).join(COUNTER_FILE),
        d.path().join("keystore").join("binding-key.pk8"),
        d.path().join("keystore").join("sealing-key.aes256"),
    ];
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    for dir in [wallet_dir(d.path()), d.path().join("keystore")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    // and whatever else is in the wallet's directory
    for e in std::fs::read_dir(wallet_dir(d.path())).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

/// A `tracing` writer that keeps what the wallet logs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
#[test]
fn files_an_older_version_left_readable_are_tightened_with_a_log_line() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    used_wallet(d.path());
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    // what an older version left: the directory 0755, the database and counter file 0644
    set(&wallet_dir(d.path()), 0o755);
    set(&db(d.path()), 0o644);
    set(&wallet_dir(d.path()).join(COUNTER_FILE), 0o644);
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let w = tracing::subscriber::with_default(subscriber, || open(d.path()));
    assert_eq!(mode(&wallet_dir(d.path())), 0o700);
    assert_eq!(mode(&db(d.path())), 0o600);
    assert_eq!(mode(&wallet_dir(d.path()).join(COUNTER_FILE)), 0o600);
    assert_eq!(
        w.verify_tap_log().unwrap(),
        1,
        "the wallet's data is all there"
    );
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(DB_FILE) && l.contains("made it private"))
        .unwrap_or_else(|| panic!("no log line about {DB_FILE}: {text}"));
    assert!(line.contains("WARN") && line.contains("644"), "{line}");
    assert!(text.contains(COUNTER_FILE), "{text}");
}

#[cfg(unix)]
#[test]
fn a_link_planted_in_the_directory_is_refused_and_its_target_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    drop(open(d.path()));
    let outside = d.path().join("outside.txt");
    std::fs::write(&outside, b"not the wallet's").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
    for name in [mancard::COUNTER_FILE, mancard::DB_FILE] {
        let path = d.path().join("wallet").join(name);
        let kept = d.path().join("kept");
        std::fs::rename(&path, &kept).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let err = try_open_with(d.path(), test_config()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{name}: {err}");
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}: the link's target was changed");
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&kept, &path).unwrap();
    }
    drop(open(d.path()));
}

#[test]
fn the_lock_is_on_the_directory_so_no_file_in_it_can_be_swapped_to_get_a_second_instance_in() {
    let d = tempfile::tempdir().unwrap();
    let first = open(d.path());
    // whatever is removed or made in the directory, it is still the locked directory
    let _ = std::fs::remove_file(d.path().join("wallet").join("wallet.lock"));
    std::fs::write(d.path().join("wallet").join("wallet.lock"), b"").unwrap();
    let err = try_open_with(d.path(), test_config()).unwrap_err();
    let err = err.downcast::<mancard::WalletError>().unwrap();
    assert!(matches!(*err, mancard::WalletError::InUse { .. }), "{err}");
    drop(first);
    drop(open(d.path()));
}

#[test]
fn a_flood_of_refusals_does_not_grow_the_write_ahead_log_without_bound() {
    // a rogue reader needs no authentication to be refused: AUTHORIZE TAP without SELECT
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let mut apdu = vec![0x80, 0x20, 0x00, 0x00, 123];
    apdu.extend([0u8; 123]);
    let wal = d
        .path()
        .join("wallet")
        .join(format!("{}-wal", mancard::DB_FILE));
    let mut largest = 0u64;
    // 125 a second, more than NFC carries (a loaded CI machine's checkpoint thread must still
    // keep up)
    for i in 0..2_400 {
        if i % 10 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(80));
        }
        let r = w.process_apdu(apdu.clone());
        assert_eq!(r.len(), 2, "refusal {i}: {r:02X?}");
        if i % 200 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    // Each refusal writes ~25 KiB of pages: without checkpoints the log only grows, to ~60 MB
    // here whatever the pace; with them it stays far below (its peak depends on the
    // machine's load: ~20 MB seen on a loaded 2-core machine at twice this pace).
    assert!(
        largest < 32 << 20,
        "the write-ahead log reached {largest} bytes"
    );
}
