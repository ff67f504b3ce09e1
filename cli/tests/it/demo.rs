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
            "offline",
            "transfer_line_b",
            "upload_bus_2",
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

    // Two buses: validator 7 on line 1, validator 8 on line 2.
    let validators = step(&evs, "validator_config")["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["validator_id"].as_u64().unwrap(),
                v["line"].as_u64().unwrap(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(validators, [(7, 1), (8, 2)]);

    // The ride: full fare on bus 1; the transfer onto bus 2 charged in full at its gate
    // (validator 8 never saw the first ride), a QR pass on bus 1 while offline, up to the cap
    // as bus 1 knows it.
    assert_eq!(step(&evs, "top_up")["status"], "credited");
    assert_eq!(step(&evs, "top_up")["balance"], 500_000);
    let first = step(&evs, "tap_line_a");
    assert_eq!(
        (&first["validator_id"], &first["fare"], &first["fare_kind"]),
        (&Value::from(7), &Value::from(20_000), &Value::from("full"))
    );
    let transfer = step(&evs, "transfer_line_b");
    assert_eq!(transfer["validator_id"], 8);
    assert_eq!(transfer["line"], 2);
    assert_eq!(transfer["fare"], 20_000, "full at the second bus's gate");
    assert_eq!(transfer["fare_kind"], "full");
    assert_eq!(transfer["first_ride_here"], true);
    let counter = transfer["counter"].as_u64().unwrap();
    assert_eq!(step(&evs, "offline")["validator_id"], 7);
    assert_eq!(step(&evs, "offline")["upload_failed"], true);
    assert_eq!(step(&evs, "qr")["medium"], "qr");
    assert_eq!(step(&evs, "qr")["validator_id"], 7);
    assert_eq!(
        step(&evs, "tap_cap")["fare"],
        10_000,
        "the cap as bus 1 knows it"
    );
    assert_eq!(step(&evs, "tap_capped")["fare"], 0);

    // Bus 2 uploads at once: the backend, knowing no earlier ride yet, charges it in full.
    let bus2 = step(&evs, "upload_bus_2");
    assert_eq!(bus2["validator_id"], 8);
    assert_eq!(bus2["settled"], 1);
    let rec = &bus2["answers"][0]["records"][0];
    assert_eq!(
        (rec["counter"].as_u64(), &rec["fare"]),
        (Some(counter), &Value::from(20_000))
    );
    assert_eq!(bus2["rerated"].as_array().unwrap().len(), 0);
    // Bus 1 comes back: its batch sealed offline is resent, the backend settles its rides and
    // re-rates the day: the transfer is corrected to the transfer fare (a fare adjustment).
    let up = step(&evs, "upload");
    assert_eq!(up["validator_id"], 7);
    assert_eq!(up["records"], 4);
    assert_eq!(up["batches"], 2);
    assert_eq!(up["resent"], 1);
    assert_eq!(up["settled"], 4);
    assert_eq!(
        up["rerated"],
        serde_json::json!([{"counter": counter, "refund": 15_000, "charged": 5_000}])
    );
    // The wallet's reports were duplicates; the rider sees the correction with its reason.
    let sync = step(&evs, "sync");
    assert_eq!(sync["duplicates"], 5);
    assert_eq!(sync["settled"], 0);
    let corrections = sync["corrections"].as_array().unwrap();
    let c = corrections
        .iter()
        .find(|c| c["counter"].as_u64() == Some(counter))
        .unwrap_or_else(|| panic!("no correction of the transfer: {sync:#}"));
    assert_eq!(c["gate_fare"], 20_000);
    assert_eq!(c["charged"], 5_000);
    assert_eq!(c["reason"], "transfer");
    assert_eq!(c["back"], 15_000);
    // The evening ride bus 1 capped at 10,000 costs 5,000 over the whole day.
    let cap = step(&evs, "tap_cap")["counter"].as_u64();
    let c = corrections
        .iter()
        .find(|c| c["counter"].as_u64() == cap)
        .unwrap();
    assert_eq!(
        (&c["charged"], &c["reason"]),
        (&Value::from(5_000), &Value::from("daily_cap"))
    );

    // No report is dated after the backend's clock when it arrives: every upload and the
    // sync came after the rides they reported.
    for name in ["upload_bus_2", "upload", "sync"] {
        let e = step(&evs, name);
        let (latest, now) = (
            e["latest_tap_time"].as_i64().unwrap(),
            e["backend_time"].as_i64().unwrap(),
        );
        assert!(latest <= now, "{name}: a tap at {latest} reported at {now}");
    }
    for r in step(&evs, "statement")["rides"].as_array().unwrap() {
        let t = r["time"].as_i64().unwrap();
        let uploaded_by = if r["validator_id"] == 8 {
            "upload_bus_2"
        } else {
            "upload"
        };
        assert!(
            t <= step(&evs, uploaded_by)["backend_time"].as_i64().unwrap(),
            "{r}"
        );
    }

    // The books.
    let st = step(&evs, "statement");
    assert_eq!(st["books_agree"], true, "{st:#}");
    assert_eq!(st["problems"].as_array().unwrap().len(), 0);
    assert_eq!(st["fares"], 60_000);
    assert_eq!(st["gates_total"], 80_000);
    assert_eq!(st["corrections_total"], 15_000);
    assert_eq!(st["balance"], 440_000);
    assert_eq!(st["wallet_confirmed_balance"], 440_000);
    assert_eq!(st["journal_total"], 80_000);
    assert_eq!(st["backend_total"], 60_000);
    assert_eq!(st["audit_ok"], true);
    let rides = st["rides"].as_array().unwrap();
    assert_eq!(rides.len(), 5);
    let t = rides
        .iter()
        .find(|r| r["counter"].as_u64() == Some(counter))
        .unwrap();
    assert_eq!(
        (
            &t["gate_fare"],
            &t["backend_charge"],
            &t["rated_kind"],
            &t["corrected"]
        ),
        (
            &Value::from(20_000),
            &Value::from(5_000),
            &Value::from("transfer"),
            &Value::from(15_000)
        )
    );
    let done = evs.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["ok"], true);

    // State kept: the pass image and every party's files.
    let png = std::fs::read(data.join("pass.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(data.join("backend.sqlite").exists());
    assert!(data.join("validator-7").join("journal.db").exists());
    assert!(data.join("validator-8").join("journal.db").exists());

    // The kept validators open with the other subcommands.
    for (dir, accepted) in [("validator-7", "4 accepted"), ("validator-8", "1 accepted")] {
        let status = mancard()
            .args(["validator", "--data-dir"])
            .arg(data.join(dir))
            .arg("status")
            .output()
            .unwrap();
        assert!(status.status.success());
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(text.contains(accepted), "{dir}: {text}");
    }

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
    assert!(
        text.contains(
            "(the batch sealed while offline resent with the same id); backend settled 4"
        ),
        "{text}"
    );
    assert!(
        text.contains("(already settled from the validators' batches: duplicates, charged once)"),
        "{text}"
    );
    assert!(
        text.contains("a correction of 15,000 rials (1,500 toman) back (ledger `fare_adjustment`)"),
        "{text}"
    );
    assert!(
        text.contains("(transfer): 15,000 rials (1,500 toman) back"),
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
        "tap beyond its raw crypto",
        "validator decision (sign challenge, verify answer), cached certificate",
        "boarding pass: sign + log + QR matrix",
        "whole tap via pcscd + vpcd",
        "wallet sync of 10,000 taps",
        "backend settlement ingest",
        "wallet tap with long history",
        "p99 of a tap with long history",
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
    assert_eq!(rows.len(), 9, "{rows:#?}");
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
            // The story says what happened: bus 1 uploaded nothing; the wallet's reports of
            // its NFC taps settled, its QR pass (no validator reported it) stays pending, not
            // charged; bus 2's tap was a duplicate.
            let up = step(&evs, "upload");
            assert_eq!(up["batches"], 0, "{up}");
            assert!(
                up["title"].as_str().unwrap().contains("nothing uploaded"),
                "{up}"
            );
            assert_eq!(step(&evs, "sync")["settled"], 3);
            assert_eq!(step(&evs, "sync")["duplicates"], 1);
            assert_eq!(step(&evs, "sync")["pending"], 1);
        }
        let done = evs.last().unwrap();
        assert_eq!(done["ok"], false);
        assert!(String::from_utf8_lossy(&out.stderr).contains("do not agree"));
    }
}
