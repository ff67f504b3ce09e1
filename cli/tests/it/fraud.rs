//! `mancard backend fraud list|show|resolve` on a database with a fraud case, and `mancard
//! inspect` on the case's evidence.

use mancard_backend::{BackendConfig, Engine};
use mancard_testkit::backend::{signed_batch, EngineRider, Validator};
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

/// A database whose one rider's tap key signed counter N twice (a clone on another bus): one
/// `duplicate_counter` case. Returns the rider's certificate (hex) and another rider's.
fn database_with_a_case(db: &Path) -> (String, String) {
    let e = Engine::open(BackendConfig::sandbox(db), "http://127.0.0.1".into()).unwrap();
    let mut r = EngineRider::setup(&e, "+989127770301", 100_000);
    let other = EngineRider::setup(&e, "+989127770302", 0);
    let v1 = Validator::register_on(&e, 1);
    let v2 = Validator::register_on(&e, 2);
    let t = e.now() + 10;
    let prev = r.prev;
    let genuine = r.nfc_record(&v1, 1, 20_000, t);
    (r.next_counter, r.prev) = (genuine.counter, prev);
    let clone = r.nfc_record(&v2, 2, 20_000, t + 60);
    let b = e
        .ingest_batch(&signed_batch(&v1.key, 1, [1; 16], t, vec![genuine]))
        .unwrap();
    assert_eq!(b.settled, 1, "{b:?}");
    let b = e
        .ingest_batch(&signed_batch(&v2.key, 2, [2; 16], t, vec![clone]))
        .unwrap();
    assert_eq!(b.fraud, 1, "{b:?}");
    (
        hex::encode(r.cert.encode()),
        hex::encode(other.cert.encode()),
    )
}

#[test]
fn an_operator_lists_shows_inspects_and_resolves_a_fraud_case() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backend.sqlite");
    let (cert, other_cert) = database_with_a_case(&db);
    let db = db.to_str().unwrap();

    let (code, out, err) = mancard(&["backend", "fraud", "list", "--db", db]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("case    1  open      duplicate_counter"),
        "{out}"
    );

    let (code, out, err) = mancard(&["backend", "fraud", "show", "--db", db, "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let evidence = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence (hex, decode with `mancard inspect`): "))
        .unwrap_or_else(|| panic!("no evidence line: {out}"))
        .to_string();
    assert!(evidence.starts_with("4601"), "tag F, version 1: {evidence}");
    assert!(out.contains("  part 1: tap proof (NFC)"), "{out}");
    assert!(out.contains("  part 2: tap proof (NFC)"), "{out}");
    assert_eq!(
        out.matches("verifies under certificate").count(),
        2,
        "{out}"
    );

    // inspect decodes the evidence and checks both tap signatures under the certificate
    let (code, out, err) = mancard(&["inspect", &evidence, "--certificate", &cert]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("fraud case evidence:\n  parts: 2\n"),
        "{out}"
    );
    assert!(out.contains("tap challenge:"), "{out}");
    assert!(out.contains("tap authorization:"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("verification: OK (part ")
                && l.contains(": tap signature (counter"))
            .count(),
        2,
        "{out}"
    );
    // ... and under another rider's certificate, they do not verify
    let (code, out, _) = mancard(&["inspect", &evidence, "--certificate", &other_cert]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("verification: FAILED").count(), 2, "{out}");

    // resolve: exactly one of --dismiss / --confirm
    let base = ["backend", "fraud", "resolve", "--db", db, "1"];
    let who = [
        "--note",
        "same rider, phone restored from backup",
        "--operator",
        "ops-ali",
    ];
    let (code, _, err) = mancard(&[&base[..], &who[..]].concat());
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = mancard(&[&base[..], &["--dismiss", "--confirm"], &who[..]].concat());
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = mancard(&[&base[..], &["--dismiss"], &who[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("case 1 is dismissed\n"), "{out}");
    assert!(out.contains(": not frozen"), "{out}");
    assert!(out.contains(": not revoked"), "{out}");
    let (code, out, err) = mancard(&[&base[..], &["--dismiss"], &who[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("case 1 is already dismissed\n"), "{out}");
    let (code, _, err) = mancard(&[&base[..], &["--confirm"], &who[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already resolved (dismissed)"), "{err}");

    let (code, out, _) = mancard(&["backend", "fraud", "list", "--db", db]);
    assert_eq!((code, out.as_str()), (0, "no open fraud cases\n"));
    let (code, out, _) = mancard(&[
        "backend", "fraud", "list", "--db", db, "--status", "resolved",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("case    1  dismissed duplicate_counter"),
        "{out}"
    );
    let (code, out, _) = mancard(&["backend", "fraud", "show", "--db", db, "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("resolved by ops-ali at ") && out.contains(": same rider, phone restored"),
        "{out}"
    );

    let (code, _, err) = mancard(&["backend", "fraud", "show", "--db", db, "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("no fraud case 99"), "{err}");
}
