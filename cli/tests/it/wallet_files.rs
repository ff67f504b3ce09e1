//! The wallet's files through the real binary: a lost database is an error that says what to
//! do, never a new wallet.

use std::process::Command;

#[test]
fn a_wallet_whose_database_is_lost_fails_with_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mancard"))
            .args(["wallet", "--data-dir"])
            .arg(d.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    assert!(run(&["status"]).status.success());
    let db = d.path().join("wallet").join(mancard::DB_FILE);
    std::fs::remove_file(&db).unwrap();
    for args in [&["status"][..], &["init"][..]] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for part in [
            "the wallet's files are incomplete",
            "counters.bin",
            "Restore",
        ] {
            assert!(err.contains(part), "{args:?}: {part:?} not in {err}");
        }
    }
    assert!(!db.exists(), "no new wallet was made");
}
