//! `mancard wallet apdu-session`: the real binary, a provisioned wallet on disk, and whole taps
//! driven line by line through its stdin/stdout by the real validator (`tap_nfc` over a
//! [`CardChannel`] that writes each command as a hex line and reads the answer line).

use mancard::HistoryKind;
use mancard_protocol::{
    AuthorizeResponse, CommandApdu, FareClass, ResponseApdu, RideState, SelectResponse, SigningKey,
    StatusWord, Tariff,
};
use mancard_testkit::issuer::{CertSpec, Issuer};
use mancard_testkit::time::DAY;
use mancard_testkit::validator::{timeless_issuer, validator_in_memory, ISSUER_KEY_ID};
use mancard_testkit::wallet::{self, Reader};
use mancard_validator::{CardChannel, ChannelError, Decision, TapOutcome};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one answer (or the process's exit) may take before the test fails instead of
/// hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// The SELECT of the ManCard application, as a script would write it.
const SELECT: &str = "00A4040009F04D414E434152440100";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A wallet in `dir` (the CLI's layout: `dir/wallet`, `dir/keystore`) with a certificate from
/// `issuer` valid around the wall clock (counters 0..=999) and the issuer's config bundle;
/// returns the certificate's pseudonym bytes. The wallet is closed when this returns.
fn provision(dir: &Path, issuer: &Issuer) -> [u8; 16] {
    let w = wallet::open(dir);
    let t = now();
    let spec = CertSpec {
        valid_from: t - DAY,
        valid_until: t + 7 * DAY,
        class: FareClass::Adult,
        first: 0,
        last: 999,
        max_amount: 10_000_000,
    };
    let cert = wallet::provision_at(&w, issuer, spec, t);
    cert.body.pseudonym.0
}

/// One `mancard wallet --data-dir DIR apdu-session` process: its stdin, its stdout line by
/// line (read by a thread, so a silent process fails the test after [`PATIENCE`]), its stderr.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Session {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mancard"))
            .arg("wallet")
            .arg("--data-dir")
            .arg(dir)
            .arg("apdu-session")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Self {
            stdin: child.stdin.take(),
            child,
            answers,
            stderr: Some(stderr),
        }
    }

    /// Writes one line (a newline added) and flushes it.
    fn write(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next answer line.
    fn answer(&mut self) -> Result<String, RecvTimeoutError> {
        self.answers.recv_timeout(PATIENCE)
    }

    /// Writes `line` and returns its answer line.
    fn ask(&mut self, line: &str) -> String {
        self.write(line.as_bytes());
        self.answer()
            .unwrap_or_else(|e| panic!("no answer to {line:?}: {e}"))
    }

    /// Writes `command` (hex) and returns the wallet's answer, parsed.
    fn command(&mut self, command: &CommandApdu) -> ResponseApdu {
        let line = self.ask(&hex::encode_upper(command.encode().unwrap()));
        ResponseApdu::parse(&hex::decode(&line).unwrap()).unwrap()
    }

    /// Closes stdin (EOF) and waits: the exit status, the answer lines nobody asked for, and
    /// stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("apdu-session did not exit at EOF");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut extra = Vec::new();
        while let Ok(line) = self.answers.recv_timeout(PATIENCE) {
            extra.push(line);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, extra, stderr)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A failed test must not leave the process behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The validator's channel: each command a hex line on the session's stdin, each answer the
/// next line of its stdout, which must be uppercase hex.
impl CardChannel for Session {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.write(hex::encode_upper(apdu).as_bytes());
        let line = self.answer().map_err(|e| match e {
            RecvTimeoutError::Timeout => ChannelError::Timeout,
            RecvTimeoutError::Disconnected => ChannelError::CardRemoved,
        })?;
        if !line
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        {
            return Err(ChannelError::Reader(format!(
                "the answer is not uppercase hex: {line:?}"
            )));
        }
        hex::decode(&line).map_err(|e| ChannelError::Reader(e.to_string()))
    }
}

/// The accepted tap's counter (panics with the refusal otherwise).
fn accepted(o: &TapOutcome) -> u32 {
    match &o.decision {
        Decision::Accepted(a) => a.counter,
        Decision::Refused(r) => panic!("the validator refused the tap: {r:?}"),
    }
}

fn wallet_cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
        .arg("wallet")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A test reader (validator 77) certified by `issuer` around the wall clock.
fn reader(issuer: &Issuer) -> Reader {
    let key = SigningKey::generate().unwrap().0;
    let t = now();
    let cert = issuer.validator_cert_with(77, &key.public_key(), Vec::new(), t - DAY, t + DAY);
    Reader::with_certificate(key, cert)
}

/// AUTHORIZE TAP from `r` for `session`, at the full adult fare of line 1 now.
fn authorize(r: &Reader, session: [u8; 16]) -> CommandApdu {
    let t = now();
    let fare = Tariff::urmia_default()
        .fare(FareClass::Adult, 1, t, &RideState::default())
        .unwrap()
        .amount;
    let challenge = r.challenge(session, t, 1, fare, FareClass::Adult);
    CommandApdu::authorize_tap(&challenge, Some(&r.cert))
}

#[test]
fn the_validator_taps_a_scripted_wallet_twice_in_one_field_and_again_after_deactivate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let pseudonym = provision(dir, &issuer);
    let mut v = validator_in_memory(&issuer, now());

    let mut s = Session::start(dir);
    // First sight: SELECT, AUTHORIZE TAP, READ CERTIFICATE, all in one process.
    let first = v.tap_nfc(&mut s);
    let c1 = accepted(&first);
    assert_eq!((first.apdus, first.cert_cached), (3, false));
    // Comments and blank lines are not answered: were they, the next tap would read
    // their answers instead of its own.
    s.write(b"# the second tap, the phone still in the field");
    s.write(b"");
    let second = v.tap_nfc(&mut s);
    assert_eq!(accepted(&second), c1 + 1);
    assert_eq!((second.apdus, second.cert_cached), (2, true));
    s.write(b"deactivate");
    let third = v.tap_nfc(&mut s);
    assert_eq!(accepted(&third), c1 + 2);
    let (status, extra, stderr) = s.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(extra, Vec::<String>::new(), "answers nobody asked for");
    assert!(
        stderr.contains("7 APDU(s) answered, 0 line(s) not hex, 1 deactivation(s)"),
        "{stderr}"
    );

    // The validator journaled the three rides of this phone...
    let rides = v.journal().rides().unwrap();
    assert_eq!(
        rides.iter().map(|r| r.counter).collect::<Vec<_>>(),
        vec![c1, c1 + 1, c1 + 2]
    );
    assert!(rides.iter().all(|r| r.pseudonym.0 == pseudonym));
    // ...and the wallet, closed cleanly at EOF, holds the same three taps on an intact chain.
    {
        let w = wallet::open(dir);
        assert_eq!(w.verify_tap_log().unwrap(), 3);
        let page = w.history(None, 10).unwrap();
        let mut counters: Vec<u32> = page
            .items
            .iter()
            .filter(|i| i.kind == HistoryKind::Tap)
            .filter_map(|i| i.counter)
            .collect();
        counters.sort_unstable();
        assert_eq!(counters, vec![c1, c1 + 1, c1 + 2]);
    }

    // A second session taps on: the clean close recorded the counter, so no block is skipped.
    let mut s = Session::start(dir);
    let fourth = v.tap_nfc(&mut s);
    assert_eq!(accepted(&fourth), c1 + 3);
    let (status, extra, stderr) = s.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(extra.is_empty(), "{extra:?}");
}

#[test]
fn the_session_lasts_from_line_to_line_until_deactivate_and_bad_lines_get_a_status_word() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    provision(dir, &issuer);
    let r = reader(&issuer);
    let mut s = Session::start(dir);

    // SELECT written by hand: lowercase, spaced, with a comment; the answer is uppercase.
    let line = s.ask("00 a4 04 00 09 f0 4d 41 4e 43 41 52 44 01 00   # SELECT");
    assert_eq!(line, line.to_uppercase());
    let sel = ResponseApdu::parse(&hex::decode(&line).unwrap()).unwrap();
    assert_eq!(sel.sw, StatusWord::Ok);
    let dropped = SelectResponse::decode(&sel.data).unwrap().session;
    // The field drops: the challenge for that session is now out of order.
    s.write(b"deactivate");
    assert_eq!(
        s.command(&authorize(&r, dropped)).sw,
        StatusWord::ConditionsNotSatisfied
    );

    // Malformed APDUs reach the wallet, which answers each with a well-formed status word.
    assert_eq!(s.ask("00A4040009F04D41"), "6700"); // truncated: Lc 9, 3 bytes
    assert_eq!(s.ask("00"), "6700"); // shorter than a header
    assert_eq!(s.ask("80FF0000"), "6D00"); // unknown instruction

    // A session started here lasts across the lines, whatever is not hex in between.
    let sel = s.command(&CommandApdu::select_mancard());
    let session = SelectResponse::decode(&sel.data).unwrap().session;
    assert_eq!(s.ask("zz"), "6700");
    assert_eq!(s.ask("00A404000"), "6700"); // an odd number of digits
    s.write(&[0xFF, 0xFE, b'0', b'0']); // not even text
    assert_eq!(s.answer().unwrap(), "6700");
    assert_eq!(s.ask(&"0".repeat(5000)), "6700"); // over 4096 bytes
    let auth = s.command(&authorize(&r, session));
    assert_eq!(auth.sw, StatusWord::Ok);
    assert!(matches!(
        AuthorizeResponse::decode(&auth.data).unwrap(),
        AuthorizeResponse::Authorized(_)
    ));
    assert_eq!(
        s.command(&CommandApdu::read_certificate()).sw,
        StatusWord::Ok
    );

    let (status, extra, stderr) = s.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(extra.is_empty(), "{extra:?}");
    for n in [8, 9, 10, 11] {
        assert!(
            stderr.contains(&format!("apdu-session: line {n}: ")),
            "no message for line {n}: {stderr}"
        );
    }
    assert!(stderr.contains("answered 6700"), "{stderr}");
    assert!(
        stderr.contains("8 APDU(s) answered, 4 line(s) not hex, 1 deactivation(s)"),
        "{stderr}"
    );
}

#[test]
fn the_one_shot_apdu_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    provision(dir, &issuer);

    let out = wallet_cli(dir, &["apdu", SELECT]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0].len(), 2 * (SelectResponse::LEN + 2), "{text}");
    assert!(lines[0].ends_with("9000") && lines[0] == lines[0].to_uppercase());
    assert!(lines[1].starts_with("SW 9000: "), "{text}");
    assert!(lines[1].ends_with("(18 data byte(s))"), "{text}");

    // One field per process: an AUTHORIZE TAP has no SELECT before it.
    let r = reader(&issuer);
    let cmd = hex::encode(authorize(&r, [7; 16]).encode().unwrap());
    let out = wallet_cli(dir, &["apdu", &cmd]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("6985"), "{text}");
    assert!(text.contains("SW 6985: "), "{text}");

    // Not hex: an error, exit 2, as before.
    let out = wallet_cli(dir, &["apdu", "zz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the APDU is not hex"));
}

#[test]
fn a_session_without_a_wallet_fails_and_an_empty_stream_ends_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = wallet_cli(&tmp.path().join("nothing"), &["apdu-session"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no wallet in"), "{err}");
    assert!(!tmp.path().join("nothing").exists(), "nothing is created");

    let issuer = timeless_issuer(ISSUER_KEY_ID);
    provision(tmp.path(), &issuer);
    let out = wallet_cli(tmp.path(), &["apdu-session"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 APDU(s) answered"), "{err}");
}

#[test]
fn help_explains_the_stream() {
    let out = Command::new(env!("CARGO_BIN_EXE_mancard"))
        .args(["wallet", "apdu-session", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in ["deactivate", "UPPERCASE", "6700", "EOF", "#", SELECT] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}
