//! `mancard load` against a live sandbox backend (`mancard backend serve --sandbox` on a
//! loopback port, started here): every request kind runs, nothing answers 5xx, the books
//! balance (exit 0); and a run whose books cannot be checked (an operator token without the
//! `read` scope: no audit) exits 1 saying so. The comparison itself (lost and doubled taps
//! and top-ups) is tested with crafted ledgers in `cli/src/load/books.rs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn mancard() -> Command {
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

/// The backend as the load test wants it: sandbox, operators, the per-address and
/// per-account limits a single load client hits turned off, a large offline allowance.
struct Backend {
    child: Child,
    url: String,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, ops: &Path) -> Backend {
    let mut child = mancard()
        .args([
            "backend",
            "serve",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(dir.join("backend.sqlite"))
        .arg("--operators")
        .arg(ops)
        .args([
            "--max-offline-amount",
            "50000000",
            "--max-in-flight-per-address",
            "off",
            "--max-connections-per-address",
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
    Backend { child, url }
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
