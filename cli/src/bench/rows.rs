//! The rows: each runs a `mancard_testkit::scenarios` scenario and its peer interleaved (one
//! sample of each in turn), after a warm-up, and judges the medians against the goal.

use super::report::{quantile, us, Row};
use super::{row_or_failed, BenchArgs, Plan, Res};
use mancard_testkit::scenarios::peers::{RawInsert, RawSigner, RawVerifier};
use mancard_testkit::scenarios::{
    PassScenario, PcscTap, SettlementIngest, SyncBackend, ValidatorDecision, WalletTap,
};
use mancard_testkit::Issuer;
use std::path::Path;
use std::time::Instant;

const WARM_UP: usize = 50;

/// Every row, in the table's order; a failed row is kept (and fails the run).
pub(super) fn all(dir: &Path, plan: &Plan, args: &BenchArgs, progress: impl Fn(&str)) -> Vec<Row> {
    let issuer = Issuer::new(1);
    let mut rows = Vec::new();
    progress("wallet tap");
    let tap = wallet_tap(&dir.join("tap"), &issuer, plan.taps);
    rows.push(row_or_failed(TAP, SIGN_VERIFY, TAP_GOAL, tap_row(&tap)));
    rows.push(row_or_failed(
        OVERHEAD,
        SIGN,
        OVERHEAD_GOAL,
        overhead_row(&tap),
    ));
    progress("validator decision");
    rows.push(row_or_failed(
        DECISION,
        SIGN_VERIFY,
        "≤ 1.3×",
        validator_decision(&issuer, plan.verifies),
    ));
    progress("boarding pass");
    rows.push(row_or_failed(
        PASS,
        PASS_PEER,
        "≤ 3 ms",
        boarding_pass(&dir.join("pass"), &issuer, plan.passes),
    ));
    progress("PC/SC tap");
    rows.push(row_or_failed(
        PCSC,
        PCSC_PEER,
        "p99 ≤ 10 ms",
        pcsc_tap(&dir.join("pcsc"), &issuer, args, plan.pcsc_taps),
    ));
    progress("wallet sync");
    let sync_figure = if plan.quick { SYNC_QUICK } else { SYNC };
    rows.push(row_or_failed(
        sync_figure,
        "raw ring verify × 2 × taps, 1 core",
        "≤ 1 s",
        sync(&dir.join("sync"), plan, sync_figure),
    ));
    progress("settlement ingest");
    rows.push(row_or_failed(
        SETTLE,
        INSERT,
        "verify-bound",
        settlement(&dir.join("settle"), plan.batches),
    ));
    progress("tap with history");
    let figures = if plan.quick {
        (HISTORY_QUICK, HISTORY_P99_QUICK)
    } else {
        (HISTORY, HISTORY_P99)
    };
    let run = history(&dir.join("history"), &issuer, plan);
    rows.push(row_or_failed(
        figures.0,
        EMPTY,
        "≤ 1.2×",
        history_row(&run, figures.0),
    ));
    rows.push(row_or_failed(
        figures.1,
        EMPTY_P99,
        HISTORY_P99_GOAL,
        history_p99_row(&run, figures.1),
    ));
    rows
}

const TAP: &str = "phone side of a tap: SELECT+AUTHORIZE (process_apdu)";
const SIGN_VERIFY: &str = "raw ring P-256 verify + sign";
const TAP_GOAL: &str = "≤ 2×, p99 ≤ 1 ms";
const OVERHEAD: &str = "tap beyond its raw crypto: tap − raw sign − raw verify (medians)";
const SIGN: &str = "raw ring P-256 sign";
const OVERHEAD_GOAL: &str = "≤ 1× raw sign";
const DECISION: &str = "validator decision (sign challenge, verify answer), cached certificate";
const PASS: &str = "boarding pass: sign + log + QR matrix + SVG + PNG";
const PASS_PEER: &str = "raw ring P-256 sign + QR + renders";
const PCSC: &str = "whole tap via pcscd + vpcd (PC/SC)";
const PCSC_PEER: &str = "same tap in process (FnChannel)";
const SYNC: &str = "wallet sync of 10,000 taps (mancard::online)";
const SYNC_QUICK: &str = "wallet sync of 10,000 taps (--quick: 1,000)";
const SETTLE: &str = "backend settlement ingest, per tap";
const INSERT: &str = "raw SQLite insert of the same row";
const HISTORY: &str = "wallet tap with 100,000 taps of history";
const HISTORY_QUICK: &str = "wallet tap with long history (--quick: 10k)";
const EMPTY: &str = "same tap, really empty wallet";
const HISTORY_P99: &str = "p99 of a tap with 100,000 taps of history";
const HISTORY_P99_QUICK: &str = "p99 of a tap with long history (--quick: 10k)";
const EMPTY_P99: &str = "p99 of the same tap, really empty wallet";
const HISTORY_P99_GOAL: &str = "≤ 1 ms, ≤ 1.5×";

/// Times `f` once, in microseconds.
fn timed(f: impl FnOnce() -> Res<()>) -> Res<f64> {
    let t = Instant::now();
    f()?;
    Ok(us(t.elapsed()))
}

/// The wallet tap and its raw cryptography, interleaved: each round times one raw verify, one
/// raw sign and one tap (the phone's side), so the three medians see the same machine.
struct TapRun {
    taps: Vec<f64>,
    signs: Vec<f64>,
    verifies: Vec<f64>,
    note: String,
}

fn wallet_tap(dir: &Path, issuer: &Issuer, n: usize) -> Res<TapRun> {
    let tap = WalletTap::new(dir, issuer)?;
    let (signer, verifier) = (RawSigner::new()?, RawVerifier::new()?);
    for _ in 0..WARM_UP {
        verifier.run_once()?;
        signer.run_once()?;
        tap.run_phone_side()?;
    }
    let mut run = TapRun {
        taps: Vec::with_capacity(n),
        signs: Vec::with_capacity(n),
        verifies: Vec::with_capacity(n),
        note: String::new(),
    };
    for _ in 0..n {
        run.verifies.push(timed(|| verifier.run_once())?);
        run.signs.push(timed(|| signer.run_once())?);
        run.taps.push(us(tap.run_phone_side()?));
    }
    let st = tap.wallet().stats();
    run.note = format!(
        "n={n}; the phone's two process_apdu calls (verify the challenge, sign, commit), not \
         the reader's signing between them; counter fsyncs so far {} for {} log entries",
        st.counter_fsyncs, st.log_entries
    );
    Ok(run)
}

fn tap_row(run: &Res<TapRun>) -> Res<Row> {
    let run = run.as_ref().map_err(|e| e.to_string())?;
    let peer = run
        .verifies
        .iter()
        .zip(&run.signs)
        .map(|(v, s)| v + s)
        .collect();
    let row = Row::measured(TAP, run.taps.clone(), (SIGN_VERIFY.into(), peer), TAP_GOAL);
    let ok = match (row.ratio(), row.p99_us) {
        (Some(r), Some(p99)) => Some(r <= 2.0 && p99 <= 1_000.0),
        _ => None,
    };
    Ok(row.judged(ok, run.note.clone()))
}

/// What the tap costs beyond the cryptography it contains (decode, checks, hashing, the
/// SQLite commit, encode), against one raw signature: medians of the same run.
fn overhead_row(run: &Res<TapRun>) -> Res<Row> {
    let run = run.as_ref().map_err(|e| e.to_string())?;
    let (tap, sign, verify) = (
        quantile(&run.taps, 0.5),
        quantile(&run.signs, 0.5),
        quantile(&run.verifies, 0.5),
    );
    let beyond = tap - sign - verify;
    let row = Row::derived(
        OVERHEAD,
        beyond,
        (SIGN.into(), sign),
        OVERHEAD_GOAL,
        run.taps.len(),
    );
    let ok = row.ratio().map(|r| r <= 1.0);
    Ok(row.judged(
        ok,
        format!(
            "n={}, the tap row's samples: tap {tap:.1} − sign {sign:.1} − verify {verify:.1} µs",
            run.taps.len()
        ),
    ))
}

fn validator_decision(issuer: &Issuer, n: usize) -> Res<Row> {
    let mut s = ValidatorDecision::new(issuer, 100_000)?;
    let (mut dec, mut raw) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + WARM_UP {
        let r = timed(|| s.peer_once())?;
        let d = timed(|| s.run_once())?;
        if i >= WARM_UP {
            raw.push(r);
            dec.push(d);
        }
    }
    let row = Row::measured(DECISION, dec, (SIGN_VERIFY.into(), raw), "≤ 1.3×");
    let ok = row.ratio().map(|r| r <= 1.3);
    Ok(row.judged(
        ok,
        format!(
            "n={n}; deny list of 100,000 cards; challenge signature, fare, validity, replay, \
             tap signature"
        ),
    ))
}

fn boarding_pass(dir: &Path, issuer: &Issuer, n: usize) -> Res<Row> {
    let s = PassScenario::new(dir, issuer)?;
    let (mut passes, mut peer) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut info = String::new();
    for k in 0..n + 10 {
        let t = Instant::now();
        let shown = s.run_once()?;
        let made = us(t.elapsed());
        let floor = timed(|| s.peer_once(&shown.text))?;
        if k >= 10 {
            passes.push(made);
            peer.push(floor);
        } else if k == 0 {
            info = format!(
                "{} chars, QR version {} ({}×{}), SVG {} B, PNG {} B",
                shown.text.len(),
                shown.version,
                shown.width,
                shown.width,
                shown.svg_bytes,
                shown.png_bytes
            );
        }
    }
    let row = Row::measured(PASS, passes, (PASS_PEER.into(), peer), "≤ 3 ms");
    let ok = row.median_us.map(|m| m <= 3_000.0);
    Ok(row.judged(
        ok,
        format!("n={n}; what the app's BoardingPass carries: {info}"),
    ))
}

fn pcsc_tap(dir: &Path, issuer: &Issuer, args: &BenchArgs, n: usize) -> Res<Row> {
    if args.no_pcsc {
        return Ok(Row::skipped(
            PCSC,
            PCSC_PEER,
            "p99 ≤ 10 ms",
            "--no-pcsc: left out on purpose",
        ));
    }
    let Some(mut s) = PcscTap::start(dir, issuer, &args.reader_name, &args.vpcd)? else {
        return Err(
            "pcscd is not running (start it with scripts/pcsc-up.sh, or pass --no-pcsc \
                    to leave this row out)"
                .into(),
        );
    };
    let (mut whole, mut inproc) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 10 {
        let e = us(s.run_once()?);
        let e2 = us(s.peer_once()?);
        if i >= 10 {
            whole.push(e);
            inproc.push(e2);
        }
    }
    s.finish();
    let row = Row::measured(PCSC, whole, (PCSC_PEER.into(), inproc), "p99 ≤ 10 ms");
    let ok = row.p99_us.map(|p| p <= 10_000.0);
    Ok(row.judged(
        ok,
        format!(
            "n={n}; connect, SELECT, AUTHORIZE, journal (synchronous=FULL), reset; {}",
            args.reader_name
        ),
    ))
}

/// Rounds of (fresh wallet with N pending taps, one sync), each followed by N raw verifies.
fn sync(dir: &Path, plan: &Plan, figure: &'static str) -> Res<Row> {
    let n = plan.sync_taps;
    let backend = SyncBackend::start(dir, n)?;
    let verifier = RawVerifier::new()?;
    let (mut syncs, mut peers) = (Vec::new(), Vec::new());
    let mut uploaded = 0;
    for round in 0..plan.sync_rounds {
        let r = backend.round(round, n)?;
        let t = Instant::now();
        let rep = r.run_once()?;
        syncs.push(us(t.elapsed()));
        uploaded = rep.uploaded;
        // the least a backend does for an NFC tap of protocol v2: verify the validator's
        // challenge signature and the phone's
        peers.push(us(verifier.run_n(2 * n)?));
        backend.check_converged(&r)?;
    }
    backend.shutdown()?;
    let peer = format!("raw ring verify × 2 × {n}, 1 core");
    let row = Row::measured(figure, syncs, (peer, peers), "≤ 1 s");
    let ok = if n >= 10_000 {
        row.median_us.map(|m| m <= 1e6)
    } else {
        None
    };
    let rounds = plan.sync_rounds;
    Ok(row.judged(
        ok,
        format!(
            "{rounds} rounds, each a fresh wallet: {n} taps, {uploaded} uploaded and settled over \
             loopback HTTP in one sync() call, wallet and backend converged"
        ),
    ))
}

fn settlement(dir: &Path, batches: usize) -> Res<Row> {
    const RIDERS: usize = 20;
    const PER_BATCH: usize = 1_000;
    let mut s = SettlementIngest::new(dir, RIDERS, PER_BATCH)?;
    let mut raw = RawInsert::open(dir)?;
    let (mut ingest, mut insert) = (Vec::new(), Vec::new());
    for b in 0..batches {
        let batch = s.next_batch()?;
        let rows = batch.records.len().max(1) as f64;
        insert.push(us(raw.run_once(&batch.records, b)?) / rows);
        let t = Instant::now();
        s.run_once(&batch)?;
        ingest.push(us(t.elapsed()) / rows);
    }
    s.audit()?;
    let row = Row::measured(SETTLE, ingest, (INSERT.into(), insert), "verify-bound");
    let (m, p) = (
        row.median_us.unwrap_or(0.0).max(1e-9),
        row.peer_us.unwrap_or(0.0).max(1e-9),
    );
    let note = format!(
        "{batches} batch(es) × {PER_BATCH} NFC taps, {RIDERS} riders, every record settled: \
         {:.0} taps/s vs {:.0} rows/s (WAL, synchronous=FULL); ingest verifies every signature",
        1e6 / m,
        1e6 / p
    );
    Ok(row.judged(None, note))
}

/// Measured taps per really empty wallet of the history rows' peer (a new one each time,
/// warmed by [`EMPTY_WARM_UP`] taps): it never holds more than 120 taps.
const EMPTY_WALLET_TAPS: usize = 100;
const EMPTY_WARM_UP: usize = 20;

/// The phone's side of a tap on a wallet with a long history and on a really empty wallet,
/// interleaved (one sample of each in turn).
struct HistoryRun {
    full: Vec<f64>,
    empty: Vec<f64>,
    note: String,
}

fn history(dir: &Path, issuer: &Issuer, plan: &Plan) -> Res<HistoryRun> {
    let t = Instant::now();
    let full = WalletTap::with_history(&dir.join("full"), issuer, plan.history)?;
    let seeded = t.elapsed();
    let fresh_empty = |i: usize| -> Res<WalletTap> {
        // Warmed like its subject, so neither side pays a cold start inside the loop.
        let w = WalletTap::new(&dir.join(format!("empty-{i}")), issuer)?;
        for _ in 0..EMPTY_WARM_UP {
            w.run_phone_side()?;
        }
        Ok(w)
    };
    let mut empty = fresh_empty(0)?;
    for _ in 0..WARM_UP {
        full.run_phone_side()?;
    }
    let mut run = HistoryRun {
        full: Vec::with_capacity(plan.taps),
        empty: Vec::with_capacity(plan.taps),
        note: String::new(),
    };
    for i in 0..plan.taps {
        if i > 0 && i % EMPTY_WALLET_TAPS == 0 {
            empty = fresh_empty(i)?;
        }
        run.full.push(us(full.run_phone_side()?));
        run.empty.push(us(empty.run_phone_side()?));
    }
    run.note = format!(
        "n={}; the phone's side of each tap; {} history taps made through process_apdu in \
         {:.1} s, then the wallet closed and opened again; the peer is a new empty wallet \
         every {EMPTY_WALLET_TAPS} taps (after {EMPTY_WARM_UP} warm-up taps)",
        plan.taps,
        plan.history,
        seeded.as_secs_f64()
    );
    Ok(run)
}

fn history_row(run: &Res<HistoryRun>, figure: &'static str) -> Res<Row> {
    let run = run.as_ref().map_err(|e| e.to_string())?;
    let row = Row::measured(
        figure,
        run.full.clone(),
        (EMPTY.into(), run.empty.clone()),
        "≤ 1.2×",
    );
    let ok = row.ratio().map(|r| r <= 1.2);
    Ok(row.judged(ok, run.note.clone()))
}

/// The tail: p99 with the long history, against the p99 of the really empty wallet.
fn history_p99_row(run: &Res<HistoryRun>, figure: &'static str) -> Res<Row> {
    let run = run.as_ref().map_err(|e| e.to_string())?;
    let row = Row::measured_p99(
        figure,
        run.full.clone(),
        (EMPTY_P99.into(), run.empty.clone()),
        HISTORY_P99_GOAL,
    );
    let ok = match (row.ratio(), row.p99_us) {
        (Some(r), Some(p99)) => Some(p99 <= 1_000.0 && r <= 1.5),
        _ => None,
    };
    Ok(row.judged(
        ok,
        format!(
            "n={}, the history row's samples (p99 of each side)",
            run.full.len()
        ),
    ))
}
