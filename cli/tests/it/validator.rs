//! `mancard validator`: the torn window is a setting (`init` and `run --torn-window-secs`,
//! persisted) and `status` shows the torn taps waiting and uploaded.

use mancard_protocol::{ChallengeBody, FareClass, SigningKey, TapChallenge};
use mancard_testkit::validator::{timeless_issuer, ISSUER_KEY_ID};
use mancard_validator::Validator;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub(crate) fn validator(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
        .arg("validator")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(crate) fn stdout_of(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// `mancard validator init` of validator `id` on line 1 in `dir`, trusting the issuer at
/// `anchor`, with `extra` flags: what it printed.
pub(crate) fn init(dir: &Path, anchor: &Path, id: &str, extra: &[&str]) -> String {
    let anchor = anchor.to_str().unwrap();
    let mut args = vec![
        "init",
        "--trust-anchor",
        anchor,
        "--validator-id",
        id,
        "--line",
        "1",
    ];
    args.extend_from_slice(extra);
    stdout_of(&validator(dir, &args))
}

/// The line `status` prints for the torn taps.
fn torn_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("torn taps:"))
        .unwrap_or_else(|| panic!("no torn taps line in:\n{text}"))
}

/// A challenge this validator signed at `time` (a fresh nonce each).
fn challenge(key: &SigningKey, nonce: u8, time: i64) -> TapChallenge {
    ChallengeBody {
        validator_id: 4242,
        nonce: [nonce; 16],
        session: [7; 16],
        validator_time: time,
        line_id: 1,
        fare: 20_000,
        fare_class: FareClass::Adult,
    }
    .sign(key)
    .unwrap()
}

#[test]
fn the_torn_window_is_a_setting_and_status_shows_the_torn_taps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("validator");
    let anchor = tmp.path().join("issuer.pub");
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    std::fs::write(&anchor, issuer.anchor().to_text()).unwrap();

    // init sets the window; the default is 120 s
    let out = init(&dir, &anchor, "4242", &["--torn-window-secs", "45"]);
    assert_eq!(
        torn_line(&out),
        "torn taps:           0 waiting, 0 uploaded (torn window 45 s)"
    );
    let plain = tmp.path().join("plain");
    let out = init(&plain, &anchor, "4243", &[]);
    assert!(torn_line(&out).ends_with("(torn window 120 s)"), "{out}");

    // two torn taps: one within the window, one older that the next upload carries
    {
        let mut v = Validator::open(&dir).unwrap();
        let key = SigningKey::generate().unwrap().0;
        let now = chrono::Utc::now().timestamp();
        v.journal()
            .record_torn(&challenge(&key, 1, now), now)
            .unwrap();
        v.journal()
            .record_torn(&challenge(&key, 2, now - 600), now - 600)
            .unwrap();
        let rep = v.upload(|_| Ok(())).unwrap();
        assert_eq!((rep.records, rep.torn), (0, 1));
    }
    let out = stdout_of(&validator(&dir, &["status"]));
    assert_eq!(
        torn_line(&out),
        "torn taps:           1 waiting, 1 uploaded (torn window 45 s)"
    );

    // run changes it (persisted); a negative window is refused by the parser
    stdout_of(&validator(
        &dir,
        &[
            "run",
            "--reader",
            "qr",
            "--once",
            "--torn-window-secs",
            "30",
        ],
    ));
    let out = stdout_of(&validator(&dir, &["status"]));
    assert_eq!(
        torn_line(&out),
        "torn taps:           1 waiting, 1 uploaded (torn window 30 s)"
    );
    assert_eq!(Validator::open(&dir).unwrap().torn_window_secs(), 30);
    let bad = validator(&dir, &["run", "--reader", "qr", "--torn-window-secs", "-5"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(Validator::open(&dir).unwrap().torn_window_secs(), 30);
}
