//! `mancard load` against a live sandbox backend (`mancard backend serve --sandbox` on a
//! loopback port, started here): every request kind runs, nothing answers 5xx, the books
//! balance (exit 0); and a run whose books cannot be checked (an operator token without the
//! `read` scope: no audit) exits 1 saying so. The comparison itself (lost and doubled taps
//! and top-ups) is tested with crafted ledgers in `cli/src/load/books.rs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub(super) fn mancard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
}

/// A new operator in `ops` with `scopes`: its token.
fn operator(ops: &Path, name: &str, scopes: &[&str]) -> String {
    let mut c = mancard();
    c.args(["backend", "operator-token", "--name", name, "--add-to"])
        .arg(ops);
    for s in scopes {
        c.args(["--scope", s]);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A process the test started (a backend, the sandbox gateway) and the URL it listens on;
/// killed when dropped.
struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, ops: &Path) -> Running {
    serve_on(&dir.join("backend.sqlite").to_string_lossy(), ops, &[])
}

/// The backend as the load test wants it, on `db` (a SQLite file or a PostgreSQL URL) with
/// `extra` arguments: sandbox, operators, the per-address and per-account limits a single
/// load client hits turned off, a large offline allowance.
fn serve_on(db: &str, ops: &Path, extra: &[&str]) -> Running {
    let mut child = mancard()
        .args([
            "backend",
            "serve",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db,
        ])
        .args(extra)
        .arg("--operators")
        .arg(ops)
        .args([
            "--max-offline-amount",
            "50000000",
            "--max-in-flight-per-address",
            "off",
            "--max-connections-per-address",
            "off",
            "--max-uploads-per-address",
            "off",
        ])
        .args([
            "--rate-limit",
            "otp_per_address=off",
            "--rate-limit",
            "session_per_address=off",
        ])
        .args([
            "--rate-limit",
            "sync_per_account=off",
            "--rate-limit",
            "credential_per_account=off",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the backend exited").unwrap();
        if let Some(u) = line.split("listening on ").nth(1) {
            break u.trim().to_string();
        }
    };
    // keep draining the log so the backend never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    Running { child, url }
}

fn load(url: &str, token: &str, extra: &[&str]) -> (i32, String, String) {
    let out = mancard()
        .args([
            "load",
            "--backend",
            url,
            "--validators",
            "2",
            "--wallets",
            "3",
        ])
        .args(["--taps-per-batch", "3", "--resend-every", "2"])
        .args(extra)
        .env("MANCARD_OPERATOR_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn load_against_a_live_backend_keeps_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("operators.json");
    let token = operator(&ops, "load", &["keys", "read"]);
    let keys_only = operator(&ops, "keysonly", &["keys"]);
    let b = serve(dir.path(), &ops);

    let (code, out, err) = load(&b.url, &token, &["--duration", "4s", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON document");
    let kinds = doc["kinds"].as_array().unwrap();
    for name in [
        "upload",
        "upload (resend)",
        "sync",
        "topup: create",
        "topup: pay",
    ] {
        let k = kinds
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {out}"));
        assert!(k["count"].as_u64().unwrap() > 0, "{name}: {k}");
        assert_eq!(k["status_5xx"], 0, "{name}: {k}");
        assert!(k["p50_ms"].as_u64().unwrap() <= k["p99_ms"].as_u64().unwrap());
    }
    assert_eq!(doc["total"]["status_5xx"], 0, "{out}");
    let books = &doc["books"];
    assert_eq!(books["ok"], true, "{out}");
    assert!(books["taps"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(books["audit"]["taps"], books["taps"], "{out}");
    assert!(books["batches_resent"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(doc["problems"].as_array().unwrap().len(), 0, "{out}");
    // ingest against the verify rate of the same run: of taps (two verifies each) and of
    // signatures, the one twice the other
    let ing = &doc["ingest"];
    let (taps, verifies) = (
        ing["tap_verifies_per_second_all_cores"].as_f64().unwrap(),
        ing["verifies_per_second_all_cores"].as_f64().unwrap(),
    );
    assert!(taps > 0.0 && (taps * 2.0 - verifies).abs() <= 1.0, "{ing}");
    let (per_tap, per_verify) = (
        ing["ratio_to_tap_verify_rate"].as_f64().unwrap(),
        ing["ratio_to_verify_rate"].as_f64().unwrap(),
    );
    assert!(
        per_tap > 0.0 && (per_tap - 2.0 * per_verify).abs() <= 0.002,
        "{ing}"
    );

    // the table, against the same backend (its accounts are new: fresh numbers)
    let (code, out, err) = load(&b.url, &token, &["--duration", "2s", "--rate", "50"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("p95 ms") && out.contains("upload") && out.contains("total"),
        "{out}"
    );
    assert!(out.contains("audit clean"), "{out}");

    // books that cannot be checked are not passed: no audit without the read scope
    let (code, out, err) = load(&b.url, &keys_only, &["--duration", "1s", "--json"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let problems = doc["problems"].to_string();
    assert!(problems.contains("audit could not be read"), "{problems}");
    assert!(err.contains("the books do not agree"), "{err}");

    // no token: a human error, exit 2
    let out = mancard()
        .args(["load", "--backend", &b.url, "--duration", "1s"])
        .env_remove("MANCARD_OPERATOR_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MANCARD_OPERATOR_TOKEN"));
}

/// The sandbox payment gateway as a process of its own, shared by several backend instances
/// (as a bank's gateway is).
fn gateway() -> Running {
    let mut child = mancard()
        .args(["gateway-sandbox", "serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the gateway exited").unwrap();
    let url = line
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"))
        .trim()
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    Running { child, url }
}

/// A new PostgreSQL database on the test command's server (`MANCARD_TEST_PG_URL`, started by
/// `scripts/test.sh`), or `None` when there is none and it is not required.
pub(super) fn postgres_database(dir: &Path) -> Option<String> {
    if std::env::var("MANCARD_TEST_PG_URL").is_err() {
        assert!(
            std::env::var("MANCARD_REQUIRE_POSTGRES").is_err(),
            "MANCARD_REQUIRE_POSTGRES is set but MANCARD_TEST_PG_URL is not"
        );
        eprintln!("skipped: no PostgreSQL (set MANCARD_TEST_PG_URL; scripts/test.sh does)");
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(rt.block_on(mancard_testkit::backend::pg_database(dir)))
}

/// Issue #16's multi-instance run: three backend processes on loopback ports sharing one
/// PostgreSQL database, one issuer key file and one payment gateway; 50 validators uploading
/// batches, each to a randomly picked instance and some again to another, while 200 wallets
/// sync and top up through random instances. Every tap is charged exactly once, every paid
/// top-up credited once, the audit is clean (on every instance) and no answer is a 5xx.
#[test]
fn three_processes_on_one_postgres_charge_every_tap_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = postgres_database(dir.path()) else {
        return;
    };
    let ops = dir.path().join("operators.json");
    let token = operator(&ops, "load", &["keys", "read"]);
    let keys = dir.path().join("issuer-keys.json");
    let keys = keys.to_string_lossy().to_string();
    let gw = gateway();
    let extra = [
        "--keys",
        keys.as_str(),
        "--sandbox-gateway-url",
        gw.url.as_str(),
    ];
    let instances: Vec<Running> = (0..3).map(|_| serve_on(&db, &ops, &extra)).collect();
    let urls: Vec<&str> = instances.iter().map(|b| b.url.as_str()).collect();
    let out = mancard()
        .args(["load", "--backend", &urls.join(",")])
        .args(["--validators", "50", "--wallets", "200"])
        .args(["--taps-per-batch", "4", "--resend-every", "3"])
        .args(["--presealed", "1", "--duration", "15s", "--json"])
        .env("MANCARD_OPERATOR_TOKEN", &token)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON document");
    assert_eq!(doc["total"]["status_5xx"], 0, "{stdout}");
    let books = &doc["books"];
    assert_eq!(books["ok"], true, "{stdout}");
    assert!(books["taps"].as_u64().unwrap() >= 200, "{stdout}");
    assert_eq!(books["audit"]["taps"], books["taps"], "{stdout}");
    assert!(books["batches_resent"].as_u64().unwrap() > 0, "{stdout}");
    assert!(books["topups_credited"].as_u64().unwrap() > 0, "{stdout}");
    for name in ["upload", "upload (resend)", "sync", "topup: create"] {
        let k = doc["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        assert!(k["count"].as_u64().unwrap() > 0, "{name}: {k}");
    }
    // every instance reads the same clean books
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for u in &urls {
        let audit: serde_json::Value = rt.block_on(async {
            let r = client
                .get(format!("{u}/v1/admin/audit"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        });
        assert_eq!(audit["ok"], true, "{u}: {audit}");
        seen.push((audit["taps"].clone(), audit["ledger_total"].clone()));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}
