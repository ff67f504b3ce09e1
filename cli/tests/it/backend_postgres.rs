//! The offline `mancard backend` subcommands on a PostgreSQL database (`--db postgres://…
//! --keys FILE`), as the operators of a deployment of several instances run them.

use super::load::{mancard, postgres_database};

/// Runs `mancard ARGS`: (success, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = mancard()
        .args(args)
        .env_remove("MANCARD_DB")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The issuer keys `keys list` prints.
fn key_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("key ")).collect()
}

#[test]
fn offline_backend_subcommands_work_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = postgres_database(dir.path()) else {
        return;
    };
    let keys = dir.path().join("issuer-keys.json");
    let keys = keys.to_str().unwrap();

    // a PostgreSQL database without the key file is refused, saying why, and changes nothing
    let (ok, _, err) = run(&["backend", "keys", "list", "--db", &db], &[]);
    assert!(!ok);
    assert!(err.contains("--keys"), "{err}");
    assert!(!std::path::Path::new(keys).exists());

    let (ok, out, err) = run(
        &["backend", "keys", "list", "--db", &db, "--keys", keys],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(key_lines(&out).len(), 1, "{out}");
    assert!(out.contains("trust anchor"), "{out}");

    let (ok, out, err) = run(
        &["backend", "keys", "rotate", "--db", &db, "--keys", keys],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.contains("new current issuer key: 2"), "{out}");

    // the same database named by MANCARD_DB, as `serve` reads it
    let (ok, out, err) = run(
        &["backend", "keys", "list", "--keys", keys],
        &[("MANCARD_DB", db.as_str())],
    );
    assert!(ok, "{err}");
    let lines = key_lines(&out);
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().any(|l| l.contains("current")), "{out}");

    let (ok, out, err) = run(&["backend", "audit", "--db", &db, "--keys", keys], &[]);
    assert!(ok, "{err}");
    let audit: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(audit["ok"], true, "{out}");

    let (ok, _, err) = run(
        &["backend", "fraud", "list", "--db", &db, "--keys", keys],
        &[],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["backend", "audit-log", "--db", &db, "--keys", keys], &[]);
    assert!(ok, "{err}");

    // a SQLite path that does not exist is still refused by audit-log, not created
    let missing = dir.path().join("missing.sqlite");
    let (ok, _, err) = run(
        &["backend", "audit-log", "--db", missing.to_str().unwrap()],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("no database at"), "{err}");
    assert!(!missing.exists());
}

/// A mistyped database target is refused by every offline subcommand without repeating it
/// (it may hold a password), and without making a file named after it.
#[test]
fn a_mistyped_database_target_is_refused_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let keys = keys.to_str().unwrap();
    for db in [
        "app:hunter2@db.prod",
        "postgres:/app:hunter2@db/mancard",
        "host=db.prod password=hunter2 sslmode = require",
        "postgres://app:hunter2@db.prod/mancard?sslmode=prefer",
    ] {
        for cmd in [
            ["backend", "keys", "list"],
            ["backend", "audit-log", "--json"],
        ] {
            let args: Vec<&str> = cmd
                .iter()
                .copied()
                .chain(["--db", db, "--keys", keys])
                .collect();
            let (ok, out, err) = run(&args, &[]);
            assert!(!ok, "{db}: accepted");
            assert!(
                !out.contains("hunter2") && !err.contains("hunter2"),
                "{db}: {err}"
            );
        }
    }
    assert!(!std::path::Path::new("app:hunter2@db.prod").exists());
}

/// An offline command run without `--db` names the database `MANCARD_DB` gave it on stderr
/// (never a password), and acts on no database that does not exist: a mistyped path was
/// created empty, with a new issuer key, and its audit passed.
#[test]
fn the_environments_database_is_named_and_a_missing_one_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("prod.sqllite");
    let missing_s = missing.to_str().unwrap();
    for cmd in [
        &["backend", "audit"][..],
        &["backend", "keys", "list"],
        &["backend", "keys", "rotate"],
        &["backend", "fraud", "list"],
    ] {
        let (ok, out, err) = run(cmd, &[("MANCARD_DB", missing_s)]);
        assert!(!ok, "{cmd:?} ran on a database that does not exist: {out}");
        assert!(
            err.contains(&format!("database from MANCARD_DB: {missing_s}")),
            "{cmd:?}: {err}"
        );
        assert!(err.contains("no database at"), "{cmd:?}: {err}");
        assert!(!missing.exists(), "{cmd:?} created {missing_s}");
    }
    // named on the command line: nothing to say about the environment
    let (ok, _, err) = run(
        &["backend", "audit", "--db", missing_s],
        &[("MANCARD_DB", "/elsewhere.sqlite")],
    );
    assert!(!ok);
    assert!(!err.contains("MANCARD_DB"), "{err}");
    // a URL or conninfo: where, never the password
    let keys = dir.path().join("keys.json");
    for (db, shown) in [
        (
            "postgres://app:hunter2@127.0.0.1:1/mancard",
            "database from MANCARD_DB: postgres://app@127.0.0.1:1/mancard",
        ),
        (
            "host=127.0.0.1 port=1 dbname=mancard password=hunter2",
            "database from MANCARD_DB: PostgreSQL host=127.0.0.1 port=1 dbname=mancard",
        ),
        (
            "host=127.0.0.1 port=1 password='hunter2 host=x'",
            "database from MANCARD_DB: a PostgreSQL conninfo (not shown)",
        ),
    ] {
        let (ok, out, err) = run(
            &["backend", "keys", "list", "--keys", keys.to_str().unwrap()],
            &[("MANCARD_DB", db)],
        );
        assert!(!ok, "nothing listens on port 1");
        assert!(err.contains(shown), "{db}: {err}");
        assert!(
            !err.contains("hunter2") && !out.contains("hunter2"),
            "{db}: {err}"
        );
    }
}
