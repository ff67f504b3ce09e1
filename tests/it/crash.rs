//! SIGKILL at random instants while a child process taps: counters are never reused, the tap
//! log's signed chain verifies after every restart, and restarts skip few counters.
//!
//! The child is this same test binary, re-run with `--ignored --exact crash::crash_child` and
//! `MANCARD_CRASH_DIR` set; it prints every authorization it returned (what a validator
//! received) on stdout, and the parent collects them across all runs. With
//! `MANCARD_CRASH_ONCE` set it taps once, lets the field drop and then idles (an HCE process
//! Android kills between taps).

use mancard_protocol::{
    SigningKey, TapAuthorization, TapChallenge, ValidatorCertificate, VerifiedCertificate,
    WalletLogEntry,
};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const ENV_DIR: &str = "MANCARD_CRASH_DIR";
const ENV_ONCE: &str = "MANCARD_CRASH_ONCE";
const RUNS: usize = 220;
/// The quiet period after the field drops before the child's wallet parks its counter.
const QUIET_MS: u32 = 100;

#[test]
#[ignore = "child half of sigkill_during_taps_never_reuses_a_counter"]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_DIR).map(std::path::PathBuf::from) else {
        eprintln!(
            "crash_child only runs as the child of sigkill_during_taps_never_reuses_a_counter"
        );
        return;
    };
    let once = std::env::var_os(ENV_ONCE).is_some();
    let w = open_with(
        &dir,
        mancard::WalletConfig {
            park_after_quiet_ms: QUIET_MS,
            ..test_config()
        },
    );
    let reader = load_reader(&dir);
    let q = Quote {
        fare: Some(100),
        ..Quote::default()
    };
    let out = std::io::stdout();
    loop {
        let t = reader.tap_with(&w, &q).unwrap();
        let mut o = out.lock();
        writeln!(
            o,
            "AUTH {} {}",
            hex::encode(t.challenge.encode()),
            hex::encode(t.authorization.encode())
        )
        .unwrap();
        o.flush().unwrap();
        drop(o);
        if once {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Spawns the child; its stdout lines arrive on the returned channel.
fn spawn_child(
    dir: &std::path::Path,
    once: bool,
    err_path: &std::path::Path,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args([
        "--ignored",
        "--exact",
        "crash::crash_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ENV_DIR, dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::from(std::fs::File::create(err_path).unwrap()));
    if once {
        cmd.env(ENV_ONCE, "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx, reader)
}

/// Waits for the child's first authorization line (collected into `lines`).
fn wait_first_auth(
    rx: &std::sync::mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    run: usize,
    err_path: &std::path::Path,
) {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => {
                let first_auth = parse_line(&l).is_some();
                lines.push(l);
                if first_auth {
                    return;
                }
            }
            Err(_) => panic!(
                "run {run}: the child never tapped: {}",
                std::fs::read_to_string(err_path).unwrap_or_default()
            ),
        }
    }
}

/// After a kill: the wallet opens, its signed chain verifies, and it holds every answer the
/// validator received; then it closes cleanly.
fn reopen_and_verify(dir: &std::path::Path, seen: &HashSet<u32>, run: usize) -> u64 {
    let w = open(dir);
    let n = w
        .verify_tap_log()
        .unwrap_or_else(|e| panic!("run {run}: the chain does not verify: {e}"));
    let logged: HashSet<u32> = w
        .tap_log(0, u32::MAX)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap().counter())
        .collect();
    assert_eq!(logged.len() as u64, n);
    let missing: Vec<_> = seen.difference(&logged).collect();
    assert!(
        missing.is_empty(),
        "run {run}: answered but not logged: {missing:?}"
    );
    w.close().unwrap();
    n
}

/// The validator the child taps with: its key and certificate, made by the parent (which
/// holds the issuer key) and stored next to the wallet.
fn save_reader(dir: &std::path::Path, issuer: &Issuer) {
    let (key, pkcs8) = SigningKey::generate().unwrap();
    let cert = issuer.validator_cert(READER_ID, &key.public_key());
    std::fs::write(dir.join("reader.pk8"), pkcs8.as_slice()).unwrap();
    std::fs::write(dir.join("reader.cert"), cert.encode()).unwrap();
}

fn load_reader(dir: &std::path::Path) -> Reader {
    let key = SigningKey::from_pkcs8(&std::fs::read(dir.join("reader.pk8")).unwrap()).unwrap();
    let cert =
        ValidatorCertificate::decode(&std::fs::read(dir.join("reader.cert")).unwrap()).unwrap();
    Reader::with_certificate(key, cert)
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An `AUTH challenge authorization` line (the first one follows libtest's
/// `test crash::crash_child ... ` on the same line).
fn parse_line(line: &str) -> Option<(TapChallenge, TapAuthorization)> {
    let at = line.find("AUTH ")?;
    let mut it = line.get(at..)?.strip_prefix("AUTH ")?.split(' ');
    let ch = TapChallenge::decode(&hex::decode(it.next()?).ok()?).ok()?;
    let a = TapAuthorization::decode(&hex::decode(it.next()?).ok()?).ok()?;
    Some((ch, a))
}

#[test]
fn sigkill_during_taps_never_reuses_a_counter() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let cert = {
        let w = open(d.path());
        let cert = provision(&w, &issuer, CertSpec::default());
        set_clock(&w, T0);
        cert
    };
    save_reader(d.path(), &issuer);
    let vc = VerifiedCertificate::new(cert, &[issuer.issuer_key()]).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = XorShift(seed);

    let mut seen: HashSet<u32> = HashSet::new();
    let mut max_so_far: Option<u32> = None;
    let mut runs_with_taps = 0;
    let err_path = d.path().join("child-stderr.txt");
    for run in 0..RUNS {
        let (mut child, rx, reader) = spawn_child(d.path(), false, &err_path);
        let mut lines = Vec::new();
        if run % 3 == 0 {
            // kill anywhere, including while the wallet is opening
            std::thread::sleep(Duration::from_micros(rng.next() % 30_000));
        } else {
            // kill while tapping: after the first answer, at a random instant
            wait_first_auth(&rx, &mut lines, run, &err_path);
            std::thread::sleep(Duration::from_micros(rng.next() % 15_000));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let text = lines.join("\n");
        let auths: Vec<_> = text.lines().filter_map(parse_line).collect();
        if !auths.is_empty() {
            runs_with_taps += 1;
        }
        for (i, (ch, a)) in auths.iter().enumerate() {
            // the validator side: every answer verifies, no counter twice, counters only grow
            if i == 0 || i + 1 == auths.len() {
                vc.verify_tap(ch, a).unwrap();
            }
            assert!(
                seen.insert(a.counter),
                "run {run}: counter {} reused",
                a.counter
            );
            if let Some(m) = max_so_far {
                assert!(a.counter > m, "run {run}: counter {} after {m}", a.counter);
            }
            max_so_far = Some(a.counter);
        }
        reopen_and_verify(d.path(), &seen, run);
    }
    assert!(
        runs_with_taps > RUNS / 2,
        "only {runs_with_taps} runs tapped at all"
    );
    assert!(seen.len() > RUNS, "only {} taps", seen.len());

    // after all the kills the wallet still taps, above every counter it ever answered with
    let n = reopen_and_verify(d.path(), &seen, RUNS);
    let w = open(d.path());
    let t = load_reader(d.path()).tap(&w).unwrap();
    assert!(t.authorization.counter > max_so_far.unwrap());
    println!("{RUNS} kills, {} taps answered, {n} logged", seen.len());
}

#[test]
fn a_hundred_sigkill_restarts_then_a_tap_succeeds() {
    const KILLS: usize = 100;
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    {
        let w = open(d.path());
        // the backend's default counter range: 1,024 counters
        provision(&w, &issuer, crate::counters::backend_sized());
        set_clock(&w, T0);
    }
    save_reader(d.path(), &issuer);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = XorShift(seed);
    let err_path = d.path().join("child-stderr.txt");
    let mut seen: HashSet<u32> = HashSet::new();
    let mut counters: Vec<u32> = Vec::new();
    // the kinds of kill since the last counter answered
    let mut kills_since: Vec<Kill> = Vec::new();
    let mut gaps = Gaps::default();
    for run in 0..KILLS {
        let (mut child, rx, reader) = spawn_child(d.path(), true, &err_path);
        let mut lines = Vec::new();
        let kill = match run % 4 {
            // anywhere: opening, selecting, signing
            0 => {
                std::thread::sleep(Duration::from_micros(rng.next() % 40_000));
                Kill::Anywhere
            }
            // right after the tap, before the quiet period has parked the counter
            1 | 2 => {
                wait_first_auth(&rx, &mut lines, run, &err_path);
                std::thread::sleep(Duration::from_micros(rng.next() % 5_000));
                Kill::BeforePark
            }
            // idle after the tap, the counter parked (what Android usually kills)
            _ => {
                wait_first_auth(&rx, &mut lines, run, &err_path);
                std::thread::sleep(Duration::from_millis(u64::from(QUIET_MS) * 4));
                Kill::Idle
            }
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for (_, a) in lines.iter().filter_map(|l| parse_line(l)) {
            assert!(
                seen.insert(a.counter),
                "run {run}: counter {} reused",
                a.counter
            );
            if let Some(m) = counters.last() {
                assert!(a.counter > *m, "run {run}: counter {} after {m}", a.counter);
                gaps.add(run, a.counter - m - 1, &kills_since);
            }
            kills_since.clear();
            counters.push(a.counter);
        }
        kills_since.push(kill);
        reopen_and_verify(d.path(), &seen, run);
    }
    let w = open(d.path());
    let last = load_reader(d.path())
        .tap(&w)
        .unwrap_or_else(|sw| panic!("after {KILLS} kills the rider is refused: {sw:?}"))
        .authorization
        .counter;
    if let Some(m) = counters.last() {
        gaps.add(KILLS, last - m - 1, &kills_since);
    }
    counters.push(last);
    println!(
        "{KILLS} kills, {} taps: {} counters skipped ({} after idle kills, {} of {} idle kills \
         skipped any), {} of 1,024 left",
        counters.len(),
        gaps.skipped,
        gaps.after_idle,
        gaps.idle_skipping,
        gaps.idle,
        1_023 - last
    );
    // the quiet period parks the counter, so an idle kill skips nothing (a loaded machine may
    // be slow to park now and then: most of them, not all)
    assert!(
        gaps.idle_skipping * 4 <= gaps.idle,
        "{} of {} idle kills skipped counters: the quiet period did not park",
        gaps.idle_skipping,
        gaps.idle
    );
}

/// When the child was killed.
#[derive(Clone, Copy, PartialEq)]
enum Kill {
    Anywhere,
    BeforePark,
    Idle,
}

/// Counters skipped between consecutive answers, by the kills in between.
#[derive(Default)]
struct Gaps {
    skipped: u32,
    after_idle: u32,
    idle: u32,
    idle_skipping: u32,
}

impl Gaps {
    /// A gap of `gap` counters across `kills`. A kill skips what lies between the tap's counter
    /// n and the durable mark. The SELECT reserves one block b past the parked mark; an
    /// AUTHORIZE right behind it waits for that reservation and doubles the block; after the
    /// tap at most half of the doubled block is left, so one more reservation may run a
    /// doubled block past the mark: n + 3b, and n + 1 .. n + 3b - 1 skipped. (Whether it runs
    /// depends on whether the first reservation read the block before or after it doubled.)
    fn add(&mut self, run: usize, gap: u32, kills: &[Kill]) {
        let b = mancard::WalletConfig::default().counter_block;
        let most = u32::try_from(kills.len()).unwrap() * (3 * b - 1);
        assert!(
            gap <= most,
            "run {run}: {gap} counters skipped across {} kills, at most {most} expected",
            kills.len()
        );
        self.skipped += gap;
        if kills == [Kill::Idle] {
            self.idle += 1;
            self.after_idle += gap;
            if gap > 0 {
                self.idle_skipping += 1;
            }
        }
    }
}
