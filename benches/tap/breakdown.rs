//! The tap path taken apart (docs/perf.md §7), three modes of `benches/tap.rs`:
//!
//! - `TAP_BENCH=breakdown` (`TAP_N` rounds, default 5,000): each round times the whole
//!   phone's side of a tap (SELECT + AUTHORIZE TAP P1 01 through `Wallet::process_apdu`, a
//!   reader met before), the raw ring sign and verify, and each part of the tap redone through
//!   the protocol's public API and a SQLite file with the tap log's table and the wallet's
//!   pragmas; medians and p99 of every part, and what the parts leave unexplained.
//! - `TAP_BENCH=loop` (`TAP_SECS`, default 20; `TAP_HISTORY` taps first; `TAP_PAUSE_US`
//!   between taps): taps and nothing else, for `perf record` / `strace -f`; prints the WAL's
//!   size at the end (it never starts over under back-to-back taps).
//! - `TAP_BENCH=sql`: the tap's SQLite commit five ways, interleaved (rusqlite `Transaction`,
//!   cached BEGIN/COMMIT, autocommit INSERT, without the counter's UNIQUE index, and on the
//!   `unix-excl` VFS).
//! - `TAP_BENCH=refusals`: a recorded refusal's time before and after the refusal log is full.

use mancard_protocol::{
    check_validator_standing, verify_challenge, AuthorizeCommand, AuthorizeResponse, CommandApdu,
    FareClass, ResponseApdu, SelectResponse, SigningKey, TapAuthorization, TapChallenge, TapProof,
    ValidatorCertificate, WalletLogEntry,
};
use mancard_testkit::scenarios::peers::{RawSigner, RawVerifier};
use mancard_testkit::scenarios::WalletTap;
use mancard_testkit::{Issuer, T0};
use ring::rand::SecureRandom;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The tap log's table and the wallet's pragmas (`src/store/schema.rs`), with its credential.
const TAP_LOG: &str = "
    PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
    PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -8192;
    CREATE TABLE credentials (id INTEGER PRIMARY KEY, x BLOB);
    INSERT INTO credentials VALUES (1, x'00');
    CREATE TABLE tap_log (
        seq INTEGER PRIMARY KEY CHECK (seq >= 0),
        credential_id INTEGER NOT NULL REFERENCES credentials(id),
        counter INTEGER NOT NULL UNIQUE, kind INTEGER NOT NULL CHECK (kind IN (1, 2)),
        amount INTEGER NOT NULL CHECK (amount >= 0), time INTEGER NOT NULL,
        line_id INTEGER, validator_id INTEGER, entry BLOB NOT NULL,
        hash BLOB NOT NULL CHECK (length(hash) = 32));";

const INSERT: &str = "INSERT INTO tap_log (seq, credential_id, counter, kind, amount, time, \
                      line_id, validator_id, entry, hash) \
                      VALUES (?1, 1, ?1, 1, 1, ?2, 1, 7, ?3, ?4)";

/// The parts, in the order `Round::run` times them.
const PARTS: [&str; 15] = [
    "whole phone side (2 × process_apdu)",
    "raw ring P-256 sign",
    "raw ring P-256 verify",
    "SELECT: session value (getrandom, 16 B)",
    "APDU parse (SELECT + AUTHORIZE) + SELECT answer",
    "AuthorizeCommand::parse (decodes the certificate)",
    "  of which ValidatorCertificate::decode",
    "AuthorizeCommand::parse_with_known (cached cert)",
    "checks: cert == cached, standing, clone",
    "verify_challenge (encode + ring verify)",
    "TapAuthorization::sign (digest + ring sign)",
    "log entry: build, encode, hash (proof id)",
    "SQLite: BEGIN; INSERT (cached); COMMIT",
    "SQLite: autocommit INSERT (cached)",
    "AUTHORIZE answer encode",
];

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Everything a round needs, made once.
struct Round {
    tap: WalletTap,
    signer: RawSigner,
    verifier: RawVerifier,
    tap_key: SigningKey,
    rng: ring::rand::SystemRandom,
    log: rusqlite::Connection,
    log2: rusqlite::Connection,
    select: Vec<u8>,
}

impl Round {
    fn new(dir: &std::path::Path) -> Self {
        let issuer = Issuer::new(1);
        let open = |name: &str| {
            let c = rusqlite::Connection::open(dir.join(name)).unwrap();
            c.execute_batch(TAP_LOG).unwrap();
            c
        };
        Self {
            tap: WalletTap::new(&dir.join("w"), &issuer).unwrap(),
            signer: RawSigner::new().unwrap(),
            verifier: RawVerifier::new().unwrap(),
            tap_key: SigningKey::generate().unwrap().0,
            rng: ring::rand::SystemRandom::new(),
            log: open("log.sqlite3"),
            log2: open("log2.sqlite3"),
            select: CommandApdu::select_mancard().encode().unwrap(),
        }
    }

    /// One sample of every part, in `PARTS` order.
    fn run(&self, seq: i64) -> [f64; 15] {
        let mut s = [0.0; 15];
        s[0] = self.tap.run_phone_side().unwrap().as_secs_f64() * 1e6;
        let t = Instant::now();
        self.signer.run_once().unwrap();
        s[1] = us(t);
        let t = Instant::now();
        self.verifier.run_once().unwrap();
        s[2] = us(t);
        let t = Instant::now();
        let mut session = [0u8; 16];
        self.rng.fill(&mut session).unwrap();
        s[3] = us(t);
        let reader = self.tap.reader();
        let ch = reader.challenge(session, T0, 1, 1, FareClass::Adult);
        let apdu = CommandApdu::authorize_tap(&ch, Some(&reader.cert))
            .encode()
            .unwrap();
        let t = Instant::now();
        let a = CommandApdu::parse(black_box(&apdu)).unwrap();
        black_box(CommandApdu::parse(black_box(&self.select)).unwrap());
        black_box(ResponseApdu::ok(SelectResponse { session }.encode()).encode());
        s[4] = us(t);
        let cmd = self.decode_parts(&a, &mut s);
        let t = Instant::now();
        let cert = cmd.validator_cert.as_ref().unwrap();
        assert!(*cert == reader.cert);
        check_validator_standing(cert, |v| v == 999_999, T0).unwrap();
        let cert = black_box(cert.clone());
        s[8] = us(t);
        let t = Instant::now();
        verify_challenge(&cmd.challenge, &cert).unwrap();
        s[9] = us(t);
        self.sign_and_store(&cmd.challenge, seq, &mut s);
        s
    }

    fn decode_parts(&self, a: &CommandApdu, s: &mut [f64; 15]) -> AuthorizeCommand {
        let t = Instant::now();
        let cmd = AuthorizeCommand::parse(a.p1, &a.data).unwrap();
        s[5] = us(t);
        let rest = &a.data[TapChallenge::LEN..];
        let t = Instant::now();
        black_box(ValidatorCertificate::decode(rest).unwrap());
        s[6] = us(t);
        let known = &self.tap.reader().cert;
        let t = Instant::now();
        let again = AuthorizeCommand::parse_with_known(a.p1, &a.data, |_| Some(known)).unwrap();
        s[7] = us(t);
        assert_eq!(again, cmd);
        cmd
    }

    fn sign_and_store(&self, challenge: &TapChallenge, seq: i64, s: &mut [f64; 15]) {
        let (cert_id, prev) = ([7u8; 32], [9u8; 32]);
        let t = Instant::now();
        let auth =
            TapAuthorization::sign(&self.tap_key, &challenge.body, &cert_id, 5, 1, &prev).unwrap();
        s[10] = us(t);
        let t = Instant::now();
        let entry = WalletLogEntry {
            seq: seq as u64,
            time: T0,
            amount: 1,
            proof: TapProof::Nfc {
                challenge: challenge.clone(),
                authorization: auth.clone(),
            },
        };
        let (bytes, hash) = (entry.encode(), entry.hash());
        s[11] = us(t);
        let p = rusqlite::params![seq, T0, bytes, &hash[..]];
        let t = Instant::now();
        self.log
            .prepare_cached("BEGIN")
            .unwrap()
            .execute([])
            .unwrap();
        self.log.prepare_cached(INSERT).unwrap().execute(p).unwrap();
        self.log
            .prepare_cached("COMMIT")
            .unwrap()
            .execute([])
            .unwrap();
        s[12] = us(t);
        let t = Instant::now();
        self.log2
            .prepare_cached(INSERT)
            .unwrap()
            .execute(p)
            .unwrap();
        s[13] = us(t);
        let t = Instant::now();
        let answer = AuthorizeResponse::Authorized(auth).encode();
        black_box(ResponseApdu::ok(answer).encode());
        s[14] = us(t);
    }
}

fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `TAP_BENCH=breakdown`.
pub fn parts() {
    let n: usize = env_or("TAP_N", 5_000);
    let dir = tempfile::tempdir().unwrap();
    let round = Round::new(dir.path());
    let mut samples: Vec<Vec<f64>> = (0..PARTS.len()).map(|_| Vec::with_capacity(n)).collect();
    for i in 0..n + 200 {
        let s = round.run(i as i64);
        if i >= 200 {
            for (v, x) in samples.iter_mut().zip(s) {
                v.push(x);
            }
        }
    }
    println!("tap breakdown, n = {n} interleaved rounds (µs): median · p99");
    let med: Vec<f64> = samples.iter().map(|v| quantile(v, 0.5)).collect();
    for (name, v) in PARTS.iter().zip(&samples) {
        println!(
            "  {name:<52} {:>8.2} · {:>8.2}",
            quantile(v, 0.5),
            quantile(v, 0.99)
        );
    }
    // the parts a tap does, as the wallet does them today: parse with the cache, commit
    // in autocommit mode
    let parts: f64 = [3, 4, 7, 8, 9, 10, 11, 13, 14]
        .iter()
        .map(|&i| med[i])
        .sum();
    let beyond = med[0] - med[1] - med[2];
    println!(
        "  sum of the parts {parts:.2}; whole − parts (locks, dispatch, counters, glue) {:.2}",
        med[0] - parts
    );
    println!(
        "  whole − raw sign − raw verify {beyond:.2} µs = {:.2}× raw sign",
        beyond / med[1]
    );
    // what the wallet saves by parsing with its reader cache and committing in autocommit
    let saved = (med[5] - med[7]) + (med[12] - med[13]);
    println!("  the cached parse and the autocommit INSERT save {saved:.2} µs a tap (this run)");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `TAP_BENCH=loop`: taps through the phone's side for `TAP_SECS` seconds on a wallet with
/// `TAP_HISTORY` taps of history, `TAP_PAUSE_US` apart.
pub fn profile_loop() {
    let secs: u64 = env_or("TAP_SECS", 20);
    let history: u64 = env_or("TAP_HISTORY", 0);
    let pause: u64 = env_or("TAP_PAUSE_US", 0);
    let dir = tempfile::tempdir().unwrap();
    let tap = WalletTap::with_history(dir.path(), &Issuer::new(1), history).unwrap();
    eprintln!("history made; tapping for {secs} s");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut t = Vec::new();
    while Instant::now() < end {
        t.push(tap.run_phone_side().unwrap().as_secs_f64() * 1e6);
        if pause > 0 {
            std::thread::sleep(Duration::from_micros(pause));
        }
    }
    let wal = std::fs::metadata(dir.path().join("wallet/wallet.sqlite3-wal")).map(|m| m.len());
    println!(
        "phone side n={} median={:.1} µs p99={:.1} µs max={:.1} µs; WAL {wal:?} bytes; {:?}",
        t.len(),
        quantile(&t, 0.5),
        quantile(&t, 0.99),
        quantile(&t, 1.0),
        tap.wallet().stats()
    );
}

/// The five connections `sql_variants` commits through (a tap log each; the fifth on the
/// `unix-excl` VFS), and a second `unix-excl` connection to the fifth's file, open like the
/// wallet's reader.
fn sql_connections(dir: &std::path::Path) -> ([rusqlite::Connection; 5], rusqlite::Connection) {
    let open = |name: &str, unique: bool| {
        let c = rusqlite::Connection::open(dir.join(name)).unwrap();
        let ddl = if unique {
            TAP_LOG.to_string()
        } else {
            TAP_LOG.replace(
                "counter INTEGER NOT NULL UNIQUE",
                "counter INTEGER NOT NULL",
            )
        };
        c.execute_batch(&ddl).unwrap();
        c
    };
    // the VFS that keeps the WAL index in memory and takes no file lock per transaction
    // (one exclusive lock for the process)
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let excl =
        rusqlite::Connection::open_with_flags_and_vfs(dir.join("e"), flags, c"unix-excl").unwrap();
    excl.execute_batch(TAP_LOG).unwrap();
    let other = rusqlite::Connection::open_with_flags_and_vfs(
        dir.join("e"),
        OpenFlags::SQLITE_OPEN_READ_WRITE,
        c"unix-excl",
    )
    .unwrap();
    let conns = [
        open("a", true),
        open("b", true),
        open("c", true),
        open("d", false),
        excl,
    ];
    (conns, other)
}

/// `TAP_BENCH=sql`: the tap's commit five ways, interleaved.
pub fn sql_variants() {
    let n: usize = env_or("TAP_N", 5_000);
    let dir = tempfile::tempdir().unwrap();
    let (mut conns, other) = sql_connections(dir.path());
    let names = [
        "rusqlite Transaction (BEGIN, COMMIT parsed each time) + cached INSERT",
        "cached BEGIN / INSERT / COMMIT",
        "autocommit INSERT",
        "autocommit INSERT, no UNIQUE(counter) (not done: see perf.md)",
        "autocommit INSERT, VFS unix-excl (second connection open)",
    ];
    let (entry, hash) = (vec![0x5au8; 263], [3u8; 32]);
    let mut s: Vec<Vec<f64>> = (0..5).map(|_| Vec::with_capacity(n)).collect();
    for i in 0..n + 200 {
        for (k, c) in conns.iter_mut().enumerate() {
            let p = rusqlite::params![i as i64, T0, &entry, &hash[..]];
            let t = Instant::now();
            match k {
                0 => {
                    let tx = c.transaction().unwrap();
                    tx.prepare_cached(INSERT).unwrap().execute(p).unwrap();
                    tx.commit().unwrap();
                }
                1 => {
                    c.prepare_cached("BEGIN").unwrap().execute([]).unwrap();
                    c.prepare_cached(INSERT).unwrap().execute(p).unwrap();
                    c.prepare_cached("COMMIT").unwrap().execute([]).unwrap();
                }
                _ => {
                    c.prepare_cached(INSERT).unwrap().execute(p).unwrap();
                }
            }
            if i >= 200 {
                s[k].push(us(t));
            }
        }
    }
    let seen: i64 = other
        .query_row("SELECT count(*) FROM tap_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        seen as usize,
        n + 200,
        "the second connection sees every commit"
    );
    for (name, v) in names.iter().zip(&s) {
        println!(
            "{name:<72} median {:6.2} µs p99 {:6.2} µs",
            quantile(v, 0.5),
            quantile(v, 0.99)
        );
    }
}

/// `TAP_BENCH=refusals`: a rogue reader refused `TAP_N` times (default 3,000) through
/// `process_apdu` (SELECT, AUTHORIZE TAP by id of an unknown validator: 6986, recorded): the
/// time of each AUTHORIZE, before the refusal log is full and once every refusal also drops
/// the oldest one.
pub fn refusals() {
    use mancard_protocol::{ChallengeBody, StatusWord};
    let n: usize = env_or("TAP_N", 3_000);
    let dir = tempfile::tempdir().unwrap();
    let tap = WalletTap::new(dir.path(), &Issuer::new(1)).unwrap();
    let w = tap.wallet();
    let rogue = SigningKey::generate().unwrap().0;
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let sel =
            ResponseApdu::parse(&w.process_apdu(CommandApdu::select_mancard().encode().unwrap()))
                .unwrap();
        let session = SelectResponse::decode(&sel.data).unwrap().session;
        let ch = ChallengeBody {
            validator_id: 100_000 + i as u32,
            nonce: [7; 16],
            session,
            validator_time: T0,
            line_id: 1,
            fare: 0,
            fare_class: FareClass::Adult,
        }
        .sign(&rogue)
        .unwrap();
        let apdu = CommandApdu::authorize_tap(&ch, None).encode().unwrap();
        let s = Instant::now();
        let r = w.process_apdu(apdu);
        t.push(us(s));
        w.deactivated();
        assert_eq!(
            ResponseApdu::parse(&r).unwrap().sw,
            StatusWord::ReaderCertificateRequired
        );
    }
    let (before, after) = t.split_at(n.min(400));
    println!(
        "refused AUTHORIZE (6986, recorded): first {} median {:.1} µs p99 {:.1} µs; then {} \
         (each also drops the oldest) median {:.1} µs p99 {:.1} µs",
        before.len(),
        quantile(before, 0.5),
        quantile(before, 0.99),
        after.len(),
        quantile(after, 0.5),
        quantile(after, 0.99)
    );
}
