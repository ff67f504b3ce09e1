//! `mancard backend audit-log`: prints the operator log and checks its chain (exit 1 when an
//! edit, a deleted row or a truncation behind an anchored head is found), and `mancard
//! backend operator-token`: a token shown once, its digest in the operators file.

use mancard_api::{AdjustmentRequest, Scope};
use mancard_backend::operators::{Operator, Operators};
use mancard_backend::{BackendConfig, Engine};
use mancard_testkit::backend::EngineRider;
use std::path::Path;
use std::process::Command;

fn mancard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mancard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const SARA: &str = "mco_sara-0123456789abcdef0123456789abcdef0123";
const REZA: &str = "mco_reza-0123456789abcdef0123456789abcdef0123";

/// A database whose operator log holds a request, an approval and a local adjustment.
fn database_with_a_log(db: &Path) {
    let sara = Operator::with_token("sara", &[Scope::Adjust], SARA).unwrap();
    let reza = Operator::with_token("reza", &[Scope::Adjust], REZA).unwrap();
    let mut cfg = BackendConfig::sandbox(db);
    cfg.operators = Operators::new(vec![sara.clone(), reza.clone()]).unwrap();
    let e = Engine::open(cfg, "http://127.0.0.1".into()).unwrap();
    let r = EngineRider::setup(&e, "+989127770401", 0);
    let req = AdjustmentRequest {
        account_id: r.account_id,
        amount: 20_000_000,
        idempotency_key: "refund-1".into(),
        note: "refund of a double charge".into(),
    };
    let pending = match e.request_adjustment(&sara, &req).unwrap() {
        mancard_backend::features::operators::AdjustOutcome::Pending(a) => a,
        other => panic!("{other:?}"),
    };
    e.approve_adjustment(&reza, pending.id, &Default::default())
        .unwrap();
    e.adjust(&AdjustmentRequest {
        idempotency_key: "local-1".into(),
        amount: 5,
        ..req
    })
    .unwrap();
}

fn sql(db: &Path, batch: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(batch).unwrap();
}

#[test]
fn the_audit_log_command_prints_the_log_and_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backend.sqlite");
    database_with_a_log(&db);
    let d = db.to_str().unwrap();

    let (code, out, err) = mancard(&["backend", "audit-log", "--db", d]);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("sara") && lines[0].contains("adjustment.requested"));
    assert!(lines[1].contains("reza") && lines[1].contains("adjustment.approved"));
    assert!(lines[1].contains("amount 20000000"), "{out}");
    assert!(lines[2].contains("local") && lines[2].contains("adjustment.applied"));
    assert!(err.contains("chain ok: 3 rows"), "{err}");
    let head = err.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(head.len(), 64, "{err}");
    let (code, out, _) = mancard(&["backend", "audit-log", "--db", d, "--json"]);
    assert_eq!(code, 0);
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["operator"], "sara");

    // the anchored head is there; a truncated log (the newest row deleted behind SQLite's
    // back) still chains, but the anchor finds it
    let (code, _, err) = mancard(&["backend", "audit-log", "--db", d, "--expect-head", &head]);
    assert_eq!(code, 0, "{err}");
    sql(
        &db,
        "DROP TRIGGER operator_log_no_delete; DELETE FROM operator_log WHERE id = 3;",
    );
    let (code, _, err) = mancard(&["backend", "audit-log", "--db", d]);
    assert_eq!(code, 0, "a truncation alone keeps the chain: {err}");
    let (code, _, err) = mancard(&["backend", "audit-log", "--db", d, "--expect-head", &head]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("MISSING"), "{err}");

    // an edited amount breaks the chain at that row
    sql(
        &db,
        "DROP TRIGGER operator_log_no_update;
         UPDATE operator_log SET detail = replace(detail, '20000000', '2000') WHERE id = 2;",
    );
    let (code, out, err) = mancard(&["backend", "audit-log", "--db", d]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("chain BROKEN at row 2"), "{err}");

    // a row deleted in the middle breaks it too
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = dir2.path().join("backend.sqlite");
    database_with_a_log(&db2);
    sql(
        &db2,
        "DROP TRIGGER operator_log_no_delete; DELETE FROM operator_log WHERE id = 2;",
    );
    let (code, _, err) = mancard(&["backend", "audit-log", "--db", db2.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("chain BROKEN at row 3"), "{err}");

    // no database: an error, and none is created
    let missing = dir.path().join("none.sqlite");
    let (code, _, err) = mancard(&["backend", "audit-log", "--db", missing.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(!missing.exists());
}

#[test]
fn an_operator_token_is_shown_once_and_only_its_digest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operators.json");
    let f = file.to_str().unwrap();
    let (code, token, err) = mancard(&[
        "backend",
        "operator-token",
        "--name",
        "sara",
        "--scope",
        "read",
        "--scope",
        "adjust",
        "--add-to",
        f,
    ]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim();
    assert!(token.starts_with("mco_") && token.len() == 68, "{token}");
    let (code, token2, err) = mancard(&[
        "backend",
        "operator-token",
        "--name",
        "reza",
        "--scope",
        "keys",
        "--add-to",
        f,
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(token) && !text.contains(token2.trim()),
        "{text}"
    );
    let ops = Operators::load(&file).unwrap();
    let sara = ops.authenticate(token).unwrap();
    assert_eq!(sara.name(), "sara");
    assert!(sara.allows(&[Scope::Adjust]) && !sara.allows(&[Scope::Keys]));
    assert_eq!(ops.authenticate(token2.trim()).unwrap().name(), "reza");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // a second operator of the same name is refused, and the file is left as it was
    let (code, _, err) = mancard(&[
        "backend",
        "operator-token",
        "--name",
        "sara",
        "--scope",
        "read",
        "--add-to",
        f,
    ]);
    assert_ne!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // a file others may write is refused (whoever writes it makes themselves an operator)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        let err = Operators::load(&file).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // `backend serve` refuses a broken operators file with the reason
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"operators\": [{\"name\": \"x\"}]}",
    )
    .unwrap();
    let (code, _, err) = mancard(&[
        "backend",
        "serve",
        "--db",
        dir.path().join("db.sqlite").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--operators",
        dir.path().join("bad.json").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("operators file"), "{err}");
}
