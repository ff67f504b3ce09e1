//! The main job end to end: the built `mancard demo --json` tells the whole day and its books
//! agree; `mancard bench --quick` measures every row and exits 0.

use serde_json::Value;
use std::process::Command;

fn mancard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn step<'a>(evs: &'a [Value], name: &str) -> &'a Value {
    evs.iter()
        .find(|e| e["event"] == "step" && e["step"] == name)
        .unwrap_or_else(|| panic!("no `{name}` step in {evs:#?}"))
}

#[test]
fn demo_json_tells_the_day_and_the_books_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = mancard()
        .args(["demo", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let evs = events(&out.stdout);

    // Every step of the story, in order.
    let names: Vec<&str> = evs
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "backend",
            "wallet",
            "register",
            "provision",
            "top_up",
            "validator_config",
            "tap_line_a",
            "transfer_line_b",
            "offline",
            "qr",
            "tap_cap",
            "tap_capped",
            "upload",
            "sync",
            "statement"
        ]
    );
    for e in evs.iter().filter(|e| e["event"] == "step") {
        assert!(e["ms"].as_f64().unwrap() >= 0.0, "{e}");
    }

    // The ride: full fare, transfer, QR while offline, up to the daily cap.
    assert_eq!(step(&evs, "top_up")["status"], "credited");
    assert_eq!(step(&evs, "top_up")["balance"], 500_000);
    assert_eq!(step(&evs, "tap_line_a")["fare"], 20_000);
    assert_eq!(step(&evs, "tap_line_a")["fare_kind"], "full");
    assert_eq!(step(&evs, "transfer_line_b")["fare"], 5_000);
    assert_eq!(step(&evs, "transfer_line_b")["fare_kind"], "transfer");
    assert_eq!(step(&evs, "transfer_line_b")["cert_cached"], true);
    assert_eq!(step(&evs, "offline")["upload_failed"], true);
    assert_eq!(step(&evs, "qr")["medium"], "qr");
    assert_eq!(step(&evs, "tap_capped")["fare"], 0);
    assert_eq!(step(&evs, "upload")["records"], 5);
    // Said from the answers: the batch sealed offline was resent, the backend settled every
    // record from the validator's batches, and the wallet's reports were duplicates.
    assert_eq!(step(&evs, "upload")["batches"], 2);
    assert_eq!(step(&evs, "upload")["resent"], 1);
    assert_eq!(step(&evs, "upload")["settled"], 5);
    assert_eq!(step(&evs, "sync")["duplicates"], 5);
    assert_eq!(step(&evs, "sync")["settled"], 0);

    // The books.
    let st = step(&evs, "statement");
    assert_eq!(st["books_agree"], true, "{st:#}");
    assert_eq!(st["problems"].as_array().unwrap().len(), 0);
    assert_eq!(st["fares"], 60_000);
    assert_eq!(st["balance"], 440_000);
    assert_eq!(st["wallet_confirmed_balance"], 440_000);
    assert_eq!(st["journal_total"], 60_000);
    assert_eq!(st["backend_total"], 60_000);
    assert_eq!(st["audit_ok"], true);
    assert_eq!(st["rides"].as_array().unwrap().len(), 5);
    let done = evs.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["ok"], true);

    // State kept: the pass image and every party's files.
    let png = std::fs::read(data.join("pass.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(data.join("backend.sqlite").exists());
    assert!(data.join("validator").join("journal.db").exists());

    // The kept wallet opens with the other subcommands.
    let status = mancard()
        .args(["validator", "--data-dir"])
        .arg(data.join("validator"))
        .arg("status")
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("5 accepted"));

    // A used data directory is refused, with a message and a non-zero status.
    let again = mancard()
        .args(["demo", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn demo_text_story_names_rials_and_toman() {
    let out = mancard().arg("demo").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("500,000 rials (50,000 toman)"), "{text}");
    assert!(text.contains("The books agree."), "{text}");
    assert!(text.contains("transfer"), "{text}");
    assert!(
        text.contains(
            "(the batch sealed while offline resent with the same id); backend settled 5"
        ),
        "{text}"
    );
    assert!(
        text.contains("(already settled from the validator's batches: duplicates, charged once)"),
        "{text}"
    );
}

/// `bench --quick`, with the PC/SC row left out on purpose only where pcscd is not required
/// (`MANCARD_REQUIRE_PCSC=1`, as the test command sets, makes it measured or failed).
fn bench_quick(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["bench", "--quick"];
    args.extend_from_slice(extra);
    if std::env::var("MANCARD_REQUIRE_PCSC").as_deref() != Ok("1") {
        args.push("--no-pcsc");
    }
    mancard().args(args).output().unwrap()
}

#[test]
fn bench_quick_prints_every_row() {
    let out = bench_quick(&[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "phone side of a tap: SELECT+AUTHORIZE",
        "validator decision (sign challenge, verify answer), cached certificate",
        "boarding pass: sign + log + QR matrix",
        "whole tap via pcscd + vpcd",
        "wallet sync of 10,000 taps",
        "backend settlement ingest",
        "wallet tap with long history",
    ] {
        assert!(text.contains(figure), "row `{figure}` missing:\n{text}");
    }
    for peer in [
        "raw ring P-256 sign",
        "raw ring P-256 verify",
        "raw SQLite insert",
    ] {
        assert!(text.contains(peer), "peer `{peer}` missing:\n{text}");
    }
    bench_quick_json_has_a_ratio_for_each_measured_row();
}

/// Run by `bench_quick_prints_every_row`: one test, because the PC/SC row's virtual reader
/// is shared.
fn bench_quick_json_has_a_ratio_for_each_measured_row() {
    let out = bench_quick(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = events(&out.stdout);
    assert_eq!(rows.len(), 7, "{rows:#?}");
    for r in &rows {
        // A failed row fails the run; none may be `n/a`.
        assert_eq!(r["failed"], false, "{r}");
        match r["median_us"].as_f64() {
            Some(m) => {
                assert!(m > 0.0, "{r}");
                assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
                // Every peer is measured in the run, never a constant.
                assert!(r["peer_median_us"].as_f64().unwrap() > 0.0, "{r}");
                assert!(r["samples"].as_u64().unwrap() >= 2, "{r}");
            }
            // Only the PC/SC row may be absent, left out on purpose, and it says why.
            None => {
                assert_ne!(
                    std::env::var("MANCARD_REQUIRE_PCSC").as_deref(),
                    Ok("1"),
                    "{r}"
                );
                assert_eq!(r["skipped"], true, "{r}");
                assert!(r["figure"].as_str().unwrap().contains("PC/SC"), "{r}");
                assert!(r["note"].as_str().unwrap().starts_with("skipped"), "{r}");
            }
        }
    }
    // The sync row has at least three samples.
    let sync = rows
        .iter()
        .find(|r| r["figure"].as_str().unwrap().starts_with("wallet sync"))
        .unwrap();
    assert!(sync["samples"].as_u64().unwrap() >= 3, "{sync}");
    // The always-available rows are measured.
    for fig in [
        "phone side of a tap: SELECT+AUTHORIZE (process_apdu)",
        "validator decision (sign challenge, verify answer), cached certificate",
        "boarding pass: sign + log + QR matrix + SVG + PNG",
        "backend settlement ingest, per tap",
        "wallet sync of 10,000 taps (--quick: 1,000)",
        "wallet tap with long history (--quick: 10k)",
    ] {
        let r = rows.iter().find(|r| r["figure"] == fig).unwrap();
        assert!(r["median_us"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn demo_over_the_raw_http_api_agrees_too() {
    // The same day with the demo's own HTTP calls instead of `mancard::online`: the backend's
    // API (docs/api.md) and the wallet's public API are enough to keep the books.
    let out = mancard()
        .args(["demo", "--json", "--client", "http"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = events(&out.stdout);
    let st = step(&evs, "statement");
    assert_eq!(st["books_agree"], true, "{st:#}");
    assert_eq!(st["balance"], 440_000);
    assert_eq!(st["wallet_confirmed_balance"], 440_000);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = mancard()
        .args(["demo", "--reader", "bluetooth"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bluetooth"));
    // A data directory that is a file cannot hold the demo.
    let f = tempfile::NamedTempFile::new().unwrap();
    let out = mancard()
        .args(["demo", "--data-dir"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

#[test]
fn books_that_disagree_exit_1_and_say_where() {
    for (fault, where_) in [
        ("skip-upload", "validator journal"),
        ("backend-adjustment", "backend ledger"),
    ] {
        let out = mancard()
            .args(["demo", "--json", "--fault", fault])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{fault}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let evs = events(&out.stdout);
        let st = step(&evs, "statement");
        assert_eq!(st["books_agree"], false, "{fault}");
        let problems = st["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.as_str().unwrap().starts_with(where_)),
            "{fault}: {problems:?}"
        );
        if fault == "skip-upload" {
            // The story says what happened: nothing uploaded, the wallet's reports settled.
            let up = step(&evs, "upload");
            assert_eq!(up["batches"], 0, "{up}");
            assert!(
                up["title"].as_str().unwrap().contains("nothing uploaded"),
                "{up}"
            );
            assert_eq!(step(&evs, "sync")["settled"], 5);
            assert_eq!(step(&evs, "sync")["duplicates"], 0);
        }
        let done = evs.last().unwrap();
        assert_eq!(done["ok"], false);
        assert!(String::from_utf8_lossy(&out.stderr).contains("do not agree"));
    }
}
