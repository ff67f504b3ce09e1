//! The reconciliation: the validators' journals, the wallet's signed tap log, the backend
//! ledger and what the rider's wallet says was charged, side by side, ride by ride; the
//! backend's verdict on every record (each ride settled exactly once, the other reports of it
//! duplicates); what each gate charged from the rides it knew, and what the backend charges
//! rating the rider's whole day by the tariff (computed here again, independently); totals,
//! balances and the backend's audit. Any disagreement is a named problem and the demo exits 1.

use super::output::{hhmm, money, rials, Out};
use super::world::{Ride, World};
use super::{Res, TOP_UP};
use mancard::LedgerView;
use mancard_api::{LedgerKind, TapStatus};
use mancard_protocol::{FareClass, FareKind, RideState, TapProof, Tariff, WalletLogEntry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The three books, read at the end of the day.
struct Books {
    /// Validator journals: counter → fare the gate charged.
    journal: BTreeMap<u32, i64>,
    journal_rides: usize,
    /// Taps the validators never got to the backend.
    unsent: u64,
    /// Backend ledger: counter → fare charged (fare and fare-adjustment entries).
    backend: BTreeMap<u32, i64>,
    /// Backend ledger: counter → the sum of its corrections (`fare_adjustment`, + is back).
    adjusted: BTreeMap<u32, i64>,
    /// The tariff's fare of each ride over the rider's whole day: (fare, why).
    rated: BTreeMap<u32, (i64, FareKind)>,
    topups: i64,
    balance: i64,
    /// The backend's audit: ok, ledger entries, the whole report for a failure.
    audit_ok: bool,
    audit_entries: u64,
    audit_report: String,
    /// Wallet tap log: counter → (signed amount, medium).
    wallet: BTreeMap<u32, (i64, &'static str)>,
    /// Wallet tap log: seq → counter.
    wallet_seq: BTreeMap<u64, u32>,
    chain: u64,
    wallet_ledger: LedgerView,
}

/// The statement and the check. Ok(Err(problems)) when the books do not agree.
pub(super) fn check(out: &mut Out, w: &mut World, account_id: i64) -> Res<Result<(), Vec<String>>> {
    let t = Instant::now();
    let b = read(w, account_id)?;
    let mut problems = Vec::new();
    let (mut lines, rows) = statement(w, &b, &mut problems);
    settlement(w, &b, &mut problems);
    corrections(w, &b, &mut problems);
    let spent: i64 = b.rated.values().map(|(f, _)| f).sum();
    totals(w, &b, spent, &mut problems);
    lines.push(String::new());
    lines.extend(summary(&b, spent, w.rides.iter().map(|r| r.fare).sum()));
    let jsum: i64 = b.journal.values().sum();
    let bsum: i64 = b.backend.values().sum();
    let back: i64 = b.adjusted.values().sum();
    out.step(
        "statement",
        "Reconciled statement: validator journals, wallet, backend ledger",
        t.elapsed(),
        &lines,
        json!({"rides": rows, "top_up": TOP_UP, "fares": spent, "balance": b.balance,
               "gates_total": w.rides.iter().map(|r| r.fare).sum::<i64>(),
               "corrections_total": back,
               "wallet_confirmed_balance": b.wallet_ledger.confirmed_balance,
               "wallet_pending_taps": b.wallet_ledger.pending_taps, "journal_total": jsum,
               "backend_total": bsum, "audit_ok": b.audit_ok,
               "books_agree": problems.is_empty(), "problems": problems}),
    );
    Ok(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    })
}

fn read(w: &mut World, account_id: i64) -> Res<Books> {
    let engine = Arc::clone(w.engine()?);
    let (mut journal, mut journal_rides, mut unsent) = (BTreeMap::new(), 0, 0u64);
    for v in w.validators() {
        let rides = v.journal().rides()?;
        journal_rides += rides.len();
        journal.extend(rides.iter().map(|r| (r.counter, r.fare)));
        let js = v.status()?.journal;
        unsent += u64::try_from(js.unsealed + js.in_pending_batches).unwrap_or(0);
    }
    let ledger = engine
        .ledger(account_id)
        .map_err(|e| format!("backend ledger: {e}"))?;
    let balance = engine
        .account(account_id)
        .map_err(|e| format!("backend account: {e}"))?
        .balance;
    let audit = engine.audit().map_err(|e| format!("backend audit: {e}"))?;
    let mut backend: BTreeMap<u32, i64> = BTreeMap::new();
    let mut adjusted: BTreeMap<u32, i64> = BTreeMap::new();
    let mut topups = 0i64;
    for e in &ledger {
        match (e.kind, e.counter) {
            (LedgerKind::Fare, Some(c)) => *backend.entry(c).or_insert(0) -= e.amount,
            (LedgerKind::FareAdjustment, Some(c)) => {
                *backend.entry(c).or_insert(0) -= e.amount;
                *adjusted.entry(c).or_insert(0) += e.amount;
            }
            (LedgerKind::Topup, _) => topups += e.amount,
            _ => {}
        }
    }
    let mut wallet = BTreeMap::new();
    let mut wallet_seq = BTreeMap::new();
    for raw in w.wallet.tap_log(0, 10_000)? {
        let e = WalletLogEntry::decode(&raw).map_err(|e| format!("wallet log: {e}"))?;
        let m = match e.proof {
            TapProof::Nfc { .. } => "nfc",
            TapProof::Qr { .. } => "qr",
        };
        wallet.insert(e.counter(), (e.amount, m));
        wallet_seq.insert(e.seq, e.counter());
    }
    let rated = rate_day(&w.rides, &wallet);
    Ok(Books {
        journal,
        journal_rides,
        unsent,
        backend,
        adjusted,
        rated,
        topups,
        balance,
        audit_ok: audit.ok,
        audit_entries: u64::try_from(audit.ledger_entries)?,
        audit_report: format!("{audit:?}"),
        wallet,
        wallet_seq,
        chain: w.wallet.verify_tap_log()?,
        wallet_ledger: w.wallet.ledger()?,
    })
}

/// The tariff over the rider's whole day, ride by ride in time order, never above what the
/// phone signed: what the backend must charge (independently of how it computes it).
fn rate_day(
    rides: &[Ride],
    signed: &BTreeMap<u32, (i64, &'static str)>,
) -> BTreeMap<u32, (i64, FareKind)> {
    let tariff = Tariff::urmia_default();
    let mut order: Vec<&Ride> = rides.iter().collect();
    order.sort_by_key(|r| r.time);
    let mut state = RideState::default();
    let mut rated = BTreeMap::new();
    for r in order {
        let Ok(q) = tariff.fare(FareClass::Adult, r.line, r.time, &state) else {
            continue;
        };
        let cap = signed.get(&r.counter).map_or(q.amount, |(a, _)| *a);
        let amount = q.amount.min(cap);
        let mut next = q.next;
        next.spent_today -= q.amount - amount;
        state = next;
        rated.insert(r.counter, (amount, q.kind));
    }
    rated
}

/// The statement, ride by ride, each ride checked in the books: the gate's journal holds what
/// the gate charged, the backend charges the tariff's fare of the ride over the whole day.
fn statement(w: &World, b: &Books, problems: &mut Vec<String>) -> (Vec<String>, Vec<Value>) {
    let mut rows = Vec::new();
    let mut lines = vec![format!(
        "{:<6} {:>4} {:>3}  {:<3}  {:>15}  {:>15}  {:>15}  {:<9}",
        "time", "line", "val", "via", "gate (journal)", "phone signed", "backend", "why"
    )];
    for r in &w.rides {
        let j = b.journal.get(&r.counter).copied();
        let wv = b.wallet.get(&r.counter).copied();
        let bk = b.backend.get(&r.counter).copied();
        let rated = b.rated.get(&r.counter).copied();
        let why = rated.map(|(_, k)| kind_name(k)).unwrap_or("—");
        lines.push(format!(
            "{:<6} {:>4} {:>3}  {:<3}  {:>15}  {:>15}  {:>15}  {:<9}",
            hhmm(r.time),
            r.line,
            r.validator_id,
            r.medium,
            j.map(rials).unwrap_or_else(|| "—".into()),
            wv.map(|(a, _)| rials(a)).unwrap_or_else(|| "—".into()),
            bk.map(rials).unwrap_or_else(|| "—".into()),
            why
        ));
        rows.push(json!({"counter": r.counter, "time": r.time, "line": r.line,
                         "validator_id": r.validator_id, "medium": r.medium, "kind": r.kind,
                         "gate_fare": r.fare, "journal_fare": j,
                         "wallet_amount": wv.map(|x| x.0), "backend_charge": bk,
                         "rated_fare": rated.map(|x| x.0), "rated_kind": why,
                         "corrected": b.adjusted.get(&r.counter)}));
        if j != Some(r.fare) {
            problems.push(format!(
                "validator journal: counter {} should be {} but is {:?}",
                r.counter, r.fare, j
            ));
        }
        if bk.is_none() || bk != rated.map(|x| x.0) {
            problems.push(format!(
                "backend ledger: counter {} charged {:?}, the tariff over the day says {:?}",
                r.counter,
                bk,
                rated.map(|x| x.0)
            ));
        }
        wallet_ride(
            r.counter,
            r.medium,
            r.fare.max(bk.unwrap_or(0)),
            wv,
            problems,
        );
    }
    (lines, rows)
}

/// The verdict reason of a rating (what the rider's history says).
fn kind_name(k: FareKind) -> &'static str {
    match k {
        FareKind::Transfer => "transfer",
        FareKind::Capped => "daily_cap",
        _ => "full",
    }
}

/// The rider's wallet says what the backend charges for each ride, and why; a ride the backend
/// charged first at more than its fare over the day (a gate that did not know the earlier
/// ride) was corrected by exactly the difference.
fn corrections(w: &World, b: &Books, problems: &mut Vec<String>) {
    let first: BTreeMap<u32, i64> = w
        .batch_answers
        .iter()
        .flat_map(|a| a.records.iter())
        .filter(|r| r.status == TapStatus::Settled)
        .filter_map(|r| Some((r.counter?, r.fare?)))
        .collect();
    for r in &w.rides {
        let Some((fare, kind)) = b.rated.get(&r.counter).copied() else {
            continue;
        };
        match w.charged.iter().find(|v| v.counter == r.counter) {
            None => problems.push(format!(
                "wallet history: counter {} shows no charge from the backend",
                r.counter
            )),
            Some(v) => {
                let expect = match kind {
                    FareKind::Transfer | FareKind::Capped => Some(kind_name(kind)),
                    _ => None,
                };
                if v.charged != fare || v.reason.as_deref() != expect {
                    problems.push(format!(
                        "wallet history: counter {} shows {} ({:?}), the backend charges {} \
                         ({expect:?})",
                        r.counter, v.charged, v.reason, fare
                    ));
                }
            }
        }
        let back = b.adjusted.get(&r.counter).copied().unwrap_or(0);
        let charged_first = first.get(&r.counter).copied().unwrap_or(fare);
        if charged_first - fare != back {
            problems.push(format!(
                "backend ledger: counter {} was charged {charged_first} first and {fare} now, \
                 but its corrections total {back}",
                r.counter
            ));
        }
    }
}

/// The wallet's signed entry for one ride: present, same medium, the amount the gate took
/// (NFC signs the exact fare, QR a maximum).
fn wallet_ride(
    counter: u32,
    medium: &str,
    fare: i64,
    signed: Option<(i64, &str)>,
    problems: &mut Vec<String>,
) {
    match signed {
        None => problems.push(format!("wallet tap log: counter {counter} is missing")),
        Some((a, m)) => {
            if m != medium {
                problems.push(format!(
                    "wallet tap log: counter {counter} is {m}, the gate saw {medium}"
                ));
            }
            // What the phone signed is the most the ride may cost (the gate authorizes the
            // full fare before it knows the rider, and charges its quote, never more).
            if a < fare {
                problems.push(format!(
                    "wallet tap log: counter {counter} signed {a}, the gate charged {fare}"
                ));
            }
        }
    }
}

/// The backend's verdict on every record that reported a ride, from the validator's
/// batches and from the wallet's sync: each ride `settled` exactly once, every other
/// report of it a `duplicate`. An acknowledged upload is not enough.
fn settlement(w: &World, b: &Books, problems: &mut Vec<String>) {
    let mut verdicts: BTreeMap<u32, Vec<(&str, TapStatus)>> = BTreeMap::new();
    for a in &w.batch_answers {
        for r in &a.records {
            match r.counter {
                Some(c) => verdicts
                    .entry(c)
                    .or_default()
                    .push(("validator batch", r.status)),
                None => problems.push(format!(
                    "backend settlement: record {} of batch {} was {} with no counter",
                    r.seq,
                    a.batch_id,
                    r.status.as_str()
                )),
            }
        }
    }
    for (seq, status) in &w.wallet_verdicts {
        match b.wallet_seq.get(seq) {
            Some(c) => verdicts
                .entry(*c)
                .or_default()
                .push(("wallet sync", *status)),
            None => problems.push(format!(
                "backend settlement: a verdict on wallet log entry {seq}, which the log lacks"
            )),
        }
    }
    for r in &w.rides {
        let seen = verdicts.remove(&r.counter).unwrap_or_default();
        let settled = seen
            .iter()
            .filter(|(_, s)| *s == TapStatus::Settled)
            .count();
        if settled != 1 {
            problems.push(format!(
                "backend settlement: counter {} settled {settled} time(s), exactly once \
                 expected (verdicts: {})",
                r.counter,
                describe(&seen)
            ));
        }
        for (from, s) in &seen {
            if !matches!(s, TapStatus::Settled | TapStatus::Duplicate) {
                problems.push(format!(
                    "backend settlement: counter {} was {} in the {from}",
                    r.counter,
                    s.as_str()
                ));
            }
        }
    }
    for (c, seen) in verdicts {
        problems.push(format!(
            "backend settlement: counter {c} judged ({}) but no ride had it",
            describe(&seen)
        ));
    }
}

fn describe(seen: &[(&str, TapStatus)]) -> String {
    if seen.is_empty() {
        return "none".into();
    }
    seen.iter()
        .map(|(from, s)| format!("{} in the {from}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Totals, balances, pending taps, the journal's upload state, the audit and the cap.
fn totals(w: &World, b: &Books, spent: i64, problems: &mut Vec<String>) {
    let jsum: i64 = b.journal.values().sum();
    let bsum: i64 = b.backend.values().sum();
    let mut ours: Vec<u32> = w.rides.iter().map(|r| r.counter).collect();
    ours.sort_unstable();
    for (name, set) in [
        (
            "validator journal",
            b.journal.keys().copied().collect::<Vec<_>>(),
        ),
        ("backend ledger", b.backend.keys().copied().collect()),
        ("wallet tap log", b.wallet.keys().copied().collect()),
    ] {
        if set != ours {
            problems.push(format!(
                "{name} holds counters {set:?}, the rides were {ours:?}"
            ));
        }
    }
    let gates: i64 = w.rides.iter().map(|r| r.fare).sum();
    if jsum != gates || bsum != spent {
        problems.push(format!(
            "totals differ: gates {gates}, validator journals {jsum}; the tariff over the day \
             {spent}, backend {bsum}"
        ));
    }
    if b.topups != TOP_UP {
        problems.push(format!(
            "backend top-ups total {}, expected {TOP_UP}",
            b.topups
        ));
    }
    if b.balance != TOP_UP - spent {
        problems.push(format!(
            "backend ledger: balance {} ≠ top-up − fares = {} (entries no ride explains)",
            money(b.balance),
            money(TOP_UP - spent)
        ));
    }
    let wl = &b.wallet_ledger;
    if wl.confirmed_balance != b.balance {
        problems.push(format!(
            "wallet confirmed balance {} ≠ backend balance {}",
            wl.confirmed_balance, b.balance
        ));
    }
    if wl.pending_taps != 0 {
        problems.push(format!(
            "wallet still has {} pending tap(s) after the sync",
            wl.pending_taps
        ));
    }
    if b.unsent != 0 {
        problems.push(format!(
            "validator journal: {} tap(s) never reached the backend (not uploaded)",
            b.unsent
        ));
    }
    if !b.audit_ok {
        problems.push(format!("backend audit failed: {}", b.audit_report));
    }
    let cap = Tariff::urmia_default().daily_caps[0];
    if spent != cap {
        problems.push(format!(
            "the day should cost exactly the adult daily cap {cap}, it cost {spent}"
        ));
    }
}

/// The statement's last lines.
fn summary(b: &Books, spent: i64, gates: i64) -> [String; 3] {
    let wl = &b.wallet_ledger;
    let back: i64 = b.adjusted.values().sum();
    [
        format!(
            "the gates charged {} from the rides each knew; the backend, rating the whole day, \
             charges {} (after giving {} back as corrections)",
            money(gates),
            money(spent),
            money(back)
        ),
        format!(
            "top-up {}  −  fares {}  =  {}{}",
            money(TOP_UP),
            money(spent),
            money(TOP_UP - spent),
            if b.balance == TOP_UP - spent {
                "  = the backend balance".to_string()
            } else {
                format!("  ≠ the backend balance {}", money(b.balance))
            }
        ),
        format!(
            "backend: balance {}, audit {} ({} ledger entries); wallet: confirmed {}, pending {}, \
             tap-log chain of {} entries verified; validators: {} ride(s) journaled, {}",
            money(b.balance),
            if b.audit_ok { "ok" } else { "FAILED" },
            b.audit_entries,
            money(wl.confirmed_balance),
            wl.pending_taps,
            b.chain,
            b.journal_rides,
            if b.unsent == 0 {
                "all uploaded".to_string()
            } else {
                format!("{} not uploaded", b.unsent)
            }
        ),
    ]
}
