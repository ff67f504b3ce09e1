//! `mancard validator run --lang`: the rider's display in Persian (the default), South
//! Azerbaijani or English, from the same catalog codes; an unknown language is refused.

use crate::validator::init;
use mancard_testkit::validator::{card, timeless_issuer, ISSUER_KEY_ID};
use mancard_validator::Validator;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `mancard validator --data-dir DIR run --reader qr --once [ARGS]` with `stdin` as the
/// scanned text.
fn scan(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mancard"))
        .arg("validator")
        .arg("--data-dir")
        .arg(dir)
        .args(["run", "--reader", "qr", "--once"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // a run refused for its arguments exits before it reads: its closed stdin is no failure
    match child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{stdin}\n").as_bytes())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
        _ => {}
    }
    child.wait_with_output().unwrap()
}

fn display(o: &Output) -> String {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_validator_speaks_persian_by_default_and_the_language_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("validator");
    let anchor = tmp.path().join("issuer.pub");
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    std::fs::write(&anchor, issuer.anchor().to_text()).unwrap();
    init(&dir, &anchor, "4242", &[]);
    let now = chrono::Utc::now().timestamp();
    {
        let mut v = Validator::open(&dir).unwrap();
        v.install_config(&issuer.bundle(1, now - 3600, vec![]).encode())
            .unwrap();
    }
    let phone = card(&issuer, now);
    let pass = |counter| phone.pass(counter, now, 100_000).to_text();

    // Persian by default: accepted, the fare in toman with Persian digits
    let o = scan(&dir, &[], &pass(100));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(display(&o), "پذیرفته شد – ۲٬۰۰۰ تومان (کرایهٔ کامل)");
    // the same pass again, in South Azerbaijani: refused as already used
    let o = scan(&dir, &["--lang", "azb"], &pass(100));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        display(&o),
        "رد اولوندو: آرتیق ایستیفاده اولونوب – بو سفرین کیرایه‌سی اؤدنیب"
    );
    // the reason code on standard error is the same whatever the language
    assert!(String::from_utf8_lossy(&o.stderr).contains("already_used"));
    // English, and Persian asked for by its regional tag
    let o = scan(&dir, &["--lang", "en"], "not a pass");
    assert_eq!(display(&o), "REFUSED: Not a ManCard QR code");
    let o = scan(&dir, &["--lang", "fa-IR"], "not a pass");
    assert_eq!(display(&o), "پذیرفته نشد: این کد QR مال ManCard نیست");

    // a language ManCard does not speak is a usage error, and nothing is decided
    let o = scan(&dir, &["--lang", "de"], &pass(101));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fa (Persian)"));
    let o = scan(&dir, &["--lang", "en"], &pass(101));
    assert!(
        o.status.success(),
        "pass 101 was not used by the refused run: {o:?}"
    );
}
