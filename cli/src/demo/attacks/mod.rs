//! `mancard demo --attacks`: the attack reel. Every attack of issue #13 and every protocol-v2
//! row of docs/threat-model.md is tried against the real parties (the backend on loopback
//! HTTP, the wallet core, the validators); tampered messages are built at the protocol level
//! with keys a rooted phone leaks, a stolen validator's key, or bytes nobody signed. For each:
//! what the attacker did, what each party answered (validator decision, phone status word,
//! backend answer), what was charged, and the checks of the expected refusal or charge, each
//! made on the answers (an attack "succeeds" when one of them does not hold). The reel ends
//! with the books: the backend's audit, every validator journal uploaded, every rider's
//! balance explained by what the attacks charged. Exit 1 if any attack succeeds.

mod api;
mod books;
mod common;
mod evidence;
mod fraud;
mod readers;
mod reel;
mod rider;
mod rides;
mod v2;

use super::output::{money, round3, Out};
use super::Res;
use crate::CliResult;
use reel::Reel;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// One attack tried: what the attacker did, what each party said, what was charged, and
/// whether each expected refusal or charge happened.
pub(super) struct Attack {
    name: &'static str,
    title: &'static str,
    origin: &'static str,
    did: Vec<String>,
    said: Vec<(String, String)>,
    charged: i64,
    charged_note: String,
    checks: Vec<(String, bool)>,
    error: Option<String>,
    ms: f64,
}

impl Attack {
    pub(super) fn new(name: &'static str, title: &'static str, origin: &'static str) -> Self {
        Self {
            name,
            title,
            origin,
            did: Vec::new(),
            said: Vec::new(),
            charged: 0,
            charged_note: String::new(),
            checks: Vec::new(),
            error: None,
            ms: 0.0,
        }
    }

    /// What the attacker did.
    pub(super) fn did(&mut self, what: impl Into<String>) {
        self.did.push(what.into());
    }

    /// What a party answered.
    pub(super) fn said(&mut self, party: impl Into<String>, what: impl Into<String>) {
        self.said.push((party.into(), what.into()));
    }

    /// An expected outcome and whether it happened.
    pub(super) fn expect(&mut self, what: impl Into<String>, ok: bool) {
        self.checks.push((what.into(), ok));
    }

    /// What the backend charged the attacked accounts in this attack, and why.
    pub(super) fn charged(&mut self, rials: i64, note: impl Into<String>) {
        self.charged = rials;
        self.charged_note = note.into();
    }

    /// Caught: every expectation held (and there was at least one), and nothing failed.
    pub(super) fn caught(&self) -> bool {
        self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.1)
    }

    fn json(&self, n: usize) -> Value {
        json!({"event": "attack", "n": n, "name": self.name, "title": self.title,
               "origin": self.origin, "caught": self.caught(), "charged": self.charged,
               "charged_note": self.charged_note, "attacker": self.did,
               "parties": self.said.iter().map(|(p, s)| json!({"party": p, "said": s}))
                   .collect::<Vec<_>>(),
               "checks": self.checks.iter().map(|(e, ok)| json!({"expect": e, "ok": ok}))
                   .collect::<Vec<_>>(),
               "error": self.error, "ms": round3(self.ms)})
    }

    fn print(&self, n: usize) {
        let verdict = if self.caught() {
            "caught"
        } else {
            "NOT CAUGHT"
        };
        println!(
            "\n{n:>2}. {} ({})  [{verdict}, {:.0} ms]",
            self.title, self.origin, self.ms
        );
        for d in &self.did {
            println!("    attacker: {d}");
        }
        for (p, s) in &self.said {
            println!("    {p}: {s}");
        }
        println!(
            "    charged: {} — {}",
            money(self.charged),
            self.charged_note
        );
        for (e, ok) in &self.checks {
            println!("    {} {e}", if *ok { "✓" } else { "✗ FAILED:" });
        }
        if let Some(e) = &self.error {
            println!("    ✗ ERROR: {e}");
        }
    }
}

/// An attack of the reel: tries it on the reel's world and says what happened.
type Play = fn(&mut Reel, &mut Attack) -> Res<()>;

/// Every attack, in the reel's order: (name, title, origin, how it is played).
const REEL: &[(&str, &str, &str, Play)] = &[
    evidence::CHEAPER_SELF_REPORT,
    evidence::ALLOWANCE_ACROSS_CERTIFICATES,
    evidence::PROVISIONING_RETRY,
    evidence::UNSIGNED_BYTES,
    rides::UNSCANNED_PASSES,
    rides::TORN_TAP,
    rides::SHARED_PASS,
    rides::FROM_THE_FUTURE,
    fraud::HISTORY_AND_FREEZE,
    v2::FLIPPED_S_PASS,
    v2::REENCODED_CERTIFICATE,
    v2::PASS_TOO_LONG,
    readers::STREET_READER,
    readers::LOCKED_PHONE,
    readers::ROGUE_READER,
    readers::READER_CACHE_PROBE,
    v2::DISHONEST_VALIDATOR,
    v2::STOLEN_VALIDATOR,
    v2::PSEUDONYMS,
];

pub(super) fn run(out: &mut Out, dir: &Path) -> CliResult {
    if !out.json {
        println!(
            "ManCard attack reel: every attack of issue #13 and of protocol v2, tried against \
             the real parties on this machine"
        );
        println!(
            "(backend on loopback HTTP with a fresh database in {}, the wallet core, \
             validators 7 and 8; the sandbox clock moved forward only)",
            dir.display()
        );
    }
    let mut reel = Reel::start(dir)?;
    let mut played = Vec::new();
    for (i, (name, title, origin, play)) in REEL.iter().enumerate() {
        let mut a = Attack::new(name, title, origin);
        let t = Instant::now();
        if let Err(e) = play(&mut reel, &mut a) {
            a.error = Some(e.to_string());
        }
        a.ms = t.elapsed().as_secs_f64() * 1000.0;
        if out.json {
            println!("{}", a.json(i + 1));
        } else {
            a.print(i + 1);
        }
        played.push(a);
    }
    let books = books::check(&mut reel, &played, out.json);
    let stopped = reel.stop();
    let problems = books?;
    stopped.map_err(|e| format!("backend shutdown: {e}"))?;
    Ok(finish(out, &played, &problems))
}

/// The last words: every attack caught and the books agree (exit 0), or what failed (exit 1).
fn finish(out: &Out, played: &[Attack], problems: &[String]) -> ExitCode {
    let caught = played.iter().filter(|a| a.caught()).count();
    let missed: Vec<&str> = played
        .iter()
        .filter(|a| !a.caught())
        .map(|a| a.name)
        .collect();
    let ok = missed.is_empty() && problems.is_empty();
    let seconds = out.started.elapsed().as_secs_f64();
    if out.json {
        println!(
            "{}",
            json!({"event": "done", "ok": ok, "attacks": played.len(), "caught": caught,
                   "not_caught": missed, "problems": problems, "seconds": round3(seconds)})
        );
    } else if ok {
        println!(
            "\nAll {} attacks caught; the books agree. Whole reel: {seconds:.2} s.",
            played.len()
        );
    } else {
        println!("\n{caught} of {} attacks caught.", played.len());
        for m in &missed {
            println!("  - NOT CAUGHT: {m}");
        }
        for p in problems {
            println!("  - THE BOOKS: {p}");
        }
    }
    if ok {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: {} attack(s) not caught, {} problem(s) in the books",
        missed.len(),
        problems.len()
    );
    ExitCode::from(1)
}
