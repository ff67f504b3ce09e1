//! SIGKILL at random instants while a child process taps in a loop: counters are never reused
//! and the tap log chain stays valid.
//!
//! The child is this same test binary, re-run with `--ignored --exact crash::crash_child` and
//! `MANCARD_CRASH_DIR` set; it prints every authorization it returned (what a validator
//! received) on stdout, and the parent collects them across all runs.

use mancard_protocol::{
    CommandApdu, ResponseApdu, StatusWord, TapAuthorization, TapChallenge, VerifiedCertificate,
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
    let pid = u64::from(std::process::id());
    let out = std::io::stdout();
    for i in 0u64.. {
        let ch = challenge((pid << 32) | i, 100, T0);
        let sel = w.process_apdu(CommandApdu::select_mancard().encode().unwrap());
        assert_eq!(ResponseApdu::parse(&sel).unwrap().sw, StatusWord::Ok);
        let r =
            ResponseApdu::parse(&w.process_apdu(CommandApdu::authorize_tap(&ch).encode().unwrap()))
                .unwrap();
        w.deactivated();
        assert_eq!(r.sw, StatusWord::Ok);
        let mut o = out.lock();
        writeln!(
            o,
            "AUTH {} {}",
            hex::encode(ch.encode()),
            hex::encode(&r.data)
        )
        .unwrap();
        o.flush().unwrap();
    }
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
        provision(&w, &issuer, CertSpec::default())
    };
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
    let (_, a) = tap(&w, &challenge(u64::MAX, 100, T0)).unwrap();
    assert!(a.counter > max_so_far.unwrap());
    println!("{RUNS} kills, {} taps answered, {n} logged", seen.len());
}
