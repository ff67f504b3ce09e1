//! SIGKILL at random instants while a child process taps in a loop: counters are never reused
//! and the tap log's signed chain stays valid.
//!
//! The child is this same test binary, re-run with `--ignored --exact crash::crash_child` and
//! `MANCARD_CRASH_DIR` set; it prints every authorization it returned (what a validator
//! received) on stdout, and the parent collects them across all runs.

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
const RUNS: usize = 220;

#[test]
#[ignore = "child half of sigkill_during_taps_never_reuses_a_counter"]
fn crash_child() {
    let Some(dir) = std::env::var_os(ENV_DIR).map(std::path::PathBuf::from) else {
        eprintln!(
            "crash_child only runs as the child of sigkill_during_taps_never_reuses_a_counter"
        );
        return;
    };
    let w = open(&dir);
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
    }
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

fn parse_line(line: &str) -> Option<(TapChallenge, TapAuthorization)> {
    let mut it = line.strip_prefix("AUTH ")?.split(' ');
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
    let exe = std::env::current_exe().unwrap();
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
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, d.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
            .spawn()
            .unwrap();
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
        let mut lines = Vec::new();
        if run % 3 == 0 {
            // kill anywhere, including while the wallet is opening
            std::thread::sleep(Duration::from_micros(rng.next() % 30_000));
        } else {
            // kill while tapping: after the first answer, at a random instant
            loop {
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(l) => {
                        let first_auth = l.starts_with("AUTH ");
                        lines.push(l);
                        if first_auth {
                            break;
                        }
                    }
                    Err(_) => panic!(
                        "run {run}: the child never tapped: {}",
                        std::fs::read_to_string(&err_path).unwrap_or_default()
                    ),
                }
            }
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
    }
    assert!(
        runs_with_taps > RUNS / 2,
        "only {runs_with_taps} runs tapped at all"
    );
    assert!(seen.len() > RUNS, "only {} taps", seen.len());

    // after all the kills the wallet opens, its log chain verifies, and it holds every answer
    let w = open(d.path());
    let n = w.verify_tap_log().unwrap();
    let logged: HashSet<u32> = w
        .tap_log(0, u32::MAX)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap().counter())
        .collect();
    assert_eq!(logged.len() as u64, n);
    let missing: Vec<_> = seen.difference(&logged).collect();
    assert!(missing.is_empty(), "answered but not logged: {missing:?}");
    let t = load_reader(d.path()).tap(&w).unwrap();
    assert!(t.authorization.counter > max_so_far.unwrap());
    println!("{RUNS} kills, {} taps answered, {n} logged", seen.len());
}
