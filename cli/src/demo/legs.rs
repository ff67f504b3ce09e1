//! The day's legs: the validators set up, each ride at its gate, a bus out of coverage, the
//! QR pass, and the uploads with what the backend answered and what it re-rated. Every
//! sentence is made from the answers the parties gave.

use super::output::{fmt_ms, hhmm, local, money, plural, round3, Out};
use super::parties::{self, Uploaded};
use super::world::{start_validators, Ride, World};
use super::{Res, BUS_1};
use mancard_api::{BatchResponse, LedgerKind};
use mancard_validator::{Decision, TapOutcome};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) fn validator_config(out: &mut Out, w: &mut World, dir: &Path) -> Res<()> {
    let t = Instant::now();
    let set_up = start_validators(w, dir)?;
    let mut lines = Vec::new();
    let mut data = Vec::new();
    for s in &set_up {
        let st = w.validator(s.id)?.status()?;
        lines.push(format!(
            "validator {} (bus {}, line {}) trusts issuer key {}, registers its own key (the \
             backend answers its certificate) and fetches GET {}: bundle version {} ({} bytes): \
             issuer keys, deny list ({} card(s)), Urmia tariff",
            s.id,
            if s.id == BUS_1.0 { 1 } else { 2 },
            s.line,
            s.issuer_key_id,
            mancard_api::endpoints::VALIDATOR_CONFIG.path,
            st.config_version.unwrap_or(0),
            s.bundle_bytes,
            st.deny_list_len
        ));
        data.push(json!({"validator_id": s.id, "line": s.line,
                         "bundle_version": st.config_version, "bundle_bytes": s.bundle_bytes,
                         "deny_list": st.deny_list_len}));
    }
    lines.push(format!(
        "each validator knows only the rides it saw itself; their clocks read the story's: \
         the first ride is at {}",
        local(w.day)
    ));
    out.step(
        "validator_config",
        "Two buses' validators fetch their signed config bundles",
        t.elapsed(),
        &lines,
        json!({"validators": data, "day_start": w.day}),
    );
    Ok(())
}

/// One ride: at `at` seconds into the day, at validator `validator` on `line`.
pub(super) struct Leg<'a> {
    pub(super) name: &'a str,
    pub(super) title: &'a str,
    pub(super) validator: u32,
    pub(super) line: u32,
    pub(super) at: i64,
}

pub(super) fn tap(out: &mut Out, w: &mut World, leg: &Leg<'_>) -> Res<()> {
    w.set_time(leg.at)?;
    w.validator(leg.validator)?.set_line(leg.line)?;
    let t = Instant::now();
    let o = w.tap_nfc(leg.validator)?;
    let took = t.elapsed();
    describe(out, w, leg, "nfc", took, &o)
}

/// Bus 1 leaves coverage: its upload attempt fails, its taps wait sealed in a batch.
pub(super) fn offline(out: &mut Out, w: &mut World, validator: u32, at: i64) -> Res<()> {
    w.set_time(at)?;
    let t = Instant::now();
    let (engine, url) = (std::sync::Arc::clone(w.engine()?), w.url()?);
    let (_, failed) = parties::upload(w.validator(validator)?, &engine, &url, false)?;
    let st = w.validator(validator)?.status()?;
    out.step(
        "offline",
        &format!("Bus 1 leaves coverage: validator {validator} is offline"),
        t.elapsed(),
        &[
            format!(
                "upload attempt: {}",
                failed.as_deref().unwrap_or("sent (unexpected)")
            ),
            format!(
                "{} tap(s) sealed in {} signed batch(es), kept until acknowledged; decisions go on \
                 with public keys only",
                st.journal.in_pending_batches, st.journal.pending_batches
            ),
        ],
        json!({"validator_id": validator, "upload_failed": failed.is_some(),
               "pending_batches": st.journal.pending_batches,
               "pending_taps": st.journal.in_pending_batches + st.journal.unsealed}),
    );
    Ok(())
}

/// Tells one ride from the validator's decision, and remembers it for the books.
fn describe(
    out: &mut Out,
    w: &mut World,
    leg: &Leg<'_>,
    medium: &'static str,
    took: Duration,
    o: &TapOutcome,
) -> Res<()> {
    let a = match &o.decision {
        Decision::Accepted(a) => a.clone(),
        Decision::Refused(r) => {
            return Err(format!(
                "{}: validator {} refused: {} ({})",
                leg.title,
                leg.validator,
                r.display_text(),
                r.code()
            )
            .into())
        }
    };
    let kind = format!("{:?}", a.fare_kind).to_lowercase();
    let seen_here = w
        .rides
        .iter()
        .filter(|r| r.validator_id == leg.validator)
        .count();
    w.rides.push(Ride {
        time: o.time,
        line: leg.line,
        validator_id: leg.validator,
        medium,
        counter: a.counter,
        fare: a.fare,
        kind: kind.clone(),
    });
    let spent: i64 = w.rides.iter().map(|r| r.fare).sum();
    let lines = ride_lines(w, leg, o, &a, seen_here == 0)?;
    out.step(
        leg.name,
        leg.title,
        took,
        &lines,
        json!({"validator_id": leg.validator, "line": leg.line, "medium": medium,
               "accepted": true, "fare": a.fare, "fare_kind": kind, "base_fare": a.base_fare,
               "counter": a.counter, "time": o.time, "apdus": o.apdus,
               "cert_cached": o.cert_cached, "first_ride_here": seen_here == 0,
               "decision_ms": round3(o.elapsed.as_secs_f64() * 1000.0),
               "gates_total": spent}),
    );
    Ok(())
}

/// The sentences of one ride: the gate's display, the fare, what this validator knew.
fn ride_lines(
    w: &World,
    leg: &Leg<'_>,
    o: &TapOutcome,
    a: &mancard_validator::Acceptance,
    first_here: bool,
) -> Res<Vec<String>> {
    let kind = format!("{:?}", a.fare_kind).to_lowercase();
    let mut lines = vec![
        format!(
            "{}  validator {}, line {}  →  {}",
            hhmm(o.time),
            leg.validator,
            leg.line,
            o.decision.display_text()
        ),
        format!(
            "fare {} ({kind}; line fare {}), counter {}, journal #{}",
            money(a.fare),
            money(a.base_fare),
            a.counter,
            a.journal_seq
        ),
    ];
    if first_here && w.rides.len() > 1 {
        let elsewhere: Vec<String> = w
            .rides
            .iter()
            .filter(|r| r.validator_id != leg.validator)
            .map(|r| format!("{} at validator {}", hhmm(r.time), r.validator_id))
            .collect();
        lines.push(format!(
            "validator {} never saw this card before (its ride{} {} happened on another \
             bus): it charges from what it knows; the backend rates the whole day",
            leg.validator,
            plural(u64::try_from(elsewhere.len()).unwrap_or(0)),
            elsewhere.join(", ")
        ));
    }
    if o.medium == mancard_validator::Medium::Nfc {
        lines.extend(nfc_lines(w, o));
    }
    let spent: i64 = w.rides.iter().map(|r| r.fare).sum();
    let ledger = w.wallet.ledger()?;
    lines.push(format!(
        "the gates so far {}; wallet: {} pending, offline allowance left {}",
        money(spent),
        money(ledger.pending_amount),
        money(ledger.offline_allowance_remaining)
    ));
    Ok(lines)
}

/// What an NFC exchange took: APDUs, certificate cache, decision time.
fn nfc_lines(w: &World, o: &TapOutcome) -> Vec<String> {
    let mut lines = vec![format!(
        "{} APDU pair(s){}, validator decision + journal {}",
        o.apdus,
        if o.cert_cached {
            " (certificate cached: no READ CERTIFICATE)"
        } else {
            " (first sight: READ CERTIFICATE, issuer signature verified, cached)"
        },
        fmt_ms(o.elapsed.as_secs_f64() * 1000.0)
    )];
    if w.reader == super::ReaderChoice::Pcsc {
        lines.push(
            "(the step's time is mostly the phone being presented and lifted: pcscd polls \
             the virtual reader for a card)"
                .into(),
        );
    }
    lines
}

pub(super) fn qr(out: &mut Out, w: &mut World, dir: &Path, leg: &Leg<'_>) -> Res<()> {
    w.set_time(leg.at)?;
    w.validator(leg.validator)?.set_line(leg.line)?;
    let t = Instant::now();
    // The phone's clock reads the same time as the validator's (the wallet corrects the
    // device clock by its offset, which `set_time` moved with the story's clock).
    let pass = w.wallet.boarding_pass(chrono::Utc::now().timestamp())?;
    let made = t.elapsed();
    let png = dir.join("pass.png");
    std::fs::write(&png, pass.png(6)?).map_err(|e| format!("{}: {e}", png.display()))?;
    out.raw(&pass.terminal());
    let t2 = Instant::now();
    let o = w.validator(leg.validator)?.verify_qr(&pass.text);
    let verified = t2.elapsed();
    out.note(&format!(
        "QR pass: {} characters (Base45), QR version {} ({}×{} modules), valid until {}, \
         reserves up to {}; made in {}, written to {}",
        pass.text.len(),
        pass.matrix.version,
        pass.matrix.width,
        pass.matrix.width,
        hhmm(pass.expires_at),
        money(pass.max_amount),
        fmt_ms(made.as_secs_f64() * 1000.0),
        png.display()
    ));
    describe(out, w, leg, "qr", made + verified, &o)
}

/// One upload step: validator `validator` uploads its journal at `at` (or, with `skip`, stays
/// out of coverage); the backend's answers, and what it re-rated (its `fare_adjustment`
/// ledger entries written by this upload).
pub(super) fn upload(
    out: &mut Out,
    w: &mut World,
    (name, validator, at): (&str, u32, i64),
    account_id: i64,
    skip: bool,
) -> Res<()> {
    w.set_time(at)?;
    let t = Instant::now();
    let engine = std::sync::Arc::clone(w.engine()?);
    let url = w.url()?;
    let before = engine
        .ledger(account_id)
        .map_err(|e| format!("backend ledger: {e}"))?
        .len();
    let waiting = u64::try_from(w.validator(validator)?.status()?.journal.pending_batches)?;
    if skip {
        out.note(&format!(
            "fault injected: validator {validator} never comes back online"
        ));
    }
    let (up, failed) = parties::upload(w.validator(validator)?, &engine, &url, !skip)?;
    if let (Some(e), false) = (&failed, skip) {
        return Err(format!("validator {validator} upload: {e}").into());
    }
    let rerated = rerated_since(w, account_id, before)?;
    let st = w.validator(validator)?.status()?;
    let left = u64::try_from(st.journal.unsealed + st.journal.in_pending_batches)?;
    let (title, mut lines) = upload_sentences(validator, &up, waiting, left);
    lines.extend(rerated.iter().map(|r| r.sentence(w)));
    let count = |f: fn(&BatchResponse) -> usize| up.answers.iter().map(f).sum::<usize>();
    out.step(
        name,
        &title,
        t.elapsed(),
        &lines,
        json!({"validator_id": validator, "batches": up.report.acked.len(),
               "records": up.report.records,
               "settled": count(|a| a.settled), "duplicates": count(|a| a.duplicates),
               "resent": waiting.min(up.report.acked.len() as u64),
               "not_uploaded": left, "answers": up.answers,
               "latest_tap_time": up.latest_tap, "backend_time": up.backend_time,
               "rerated": rerated.iter().map(Rerated::json).collect::<Vec<_>>()}),
    );
    w.batch_answers.extend(up.answers);
    Ok(())
}

/// A ride whose charge the backend corrected (a `fare_adjustment` ledger entry).
struct Rerated {
    counter: u32,
    refund: i64,
    charged: i64,
}

impl Rerated {
    fn sentence(&self, w: &World) -> String {
        let ride = w.rides.iter().find(|r| r.counter == self.counter);
        format!(
            "the backend re-rated the rider's day: the {} ride on line {} (validator {}) now \
             costs {} — a correction of {} back (ledger `fare_adjustment`)",
            ride.map(|r| hhmm(r.time)).unwrap_or_default(),
            ride.map(|r| r.line).unwrap_or_default(),
            ride.map(|r| r.validator_id).unwrap_or_default(),
            money(self.charged),
            money(self.refund)
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"counter": self.counter, "refund": self.refund, "charged": self.charged})
    }
}

/// The `fare_adjustment` entries of the account's ledger after the first `before` entries,
/// with each ride's charge now.
fn rerated_since(w: &World, account_id: i64, before: usize) -> Res<Vec<Rerated>> {
    let ledger = w
        .engine()?
        .ledger(account_id)
        .map_err(|e| format!("backend ledger: {e}"))?;
    let charge = |c: u32| -> i64 {
        -ledger
            .iter()
            .filter(|e| e.counter == Some(c))
            .filter(|e| matches!(e.kind, LedgerKind::Fare | LedgerKind::FareAdjustment))
            .map(|e| e.amount)
            .sum::<i64>()
    };
    Ok(ledger
        .iter()
        .skip(before)
        .filter(|e| e.kind == LedgerKind::FareAdjustment)
        .filter_map(|e| {
            e.counter.map(|c| Rerated {
                counter: c,
                refund: e.amount,
                charged: charge(c),
            })
        })
        .collect())
}

/// The upload step's title and sentences, from the report and the backend's answers.
fn upload_sentences(
    validator: u32,
    up: &Uploaded,
    waiting: u64,
    left: u64,
) -> (String, Vec<String>) {
    if up.report.acked.is_empty() {
        return (
            format!("Validator {validator} stays out of coverage: nothing uploaded"),
            vec![format!(
                "no batch acknowledged; {left} tap{} still only in the validator's journal",
                plural(left)
            )],
        );
    }
    let resent = match waiting.min(up.report.acked.len() as u64) {
        0 => String::new(),
        1 => " (the batch sealed while offline resent with the same id)".to_string(),
        n => format!(" (the {n} batches sealed while offline resent with their ids)"),
    };
    let sum = |f: fn(&BatchResponse) -> usize| up.answers.iter().map(f).sum::<usize>();
    let (settled, dup, fraud, rejected) = (
        sum(|a| a.settled),
        sum(|a| a.duplicates),
        sum(|a| a.fraud),
        sum(|a| a.rejected),
    );
    let others = if dup + fraud + rejected == 0 {
        String::new()
    } else {
        format!(", {dup} duplicate(s), {fraud} fraud, {rejected} rejected")
    };
    let mut lines = vec![format!(
        "{} signed batch(es), {} tap(s){resent}; backend settled {settled}{others}",
        up.report.acked.len(),
        up.report.records
    )];
    let charged: Vec<String> = up
        .answers
        .iter()
        .flat_map(|a| a.records.iter())
        .filter_map(|r| Some(format!("counter {} {}", r.counter?, money(r.fare?))))
        .collect();
    if !charged.is_empty() {
        lines.push(format!(
            "the backend charges, rating the rider's whole day as it knows it: {}",
            charged.join("; ")
        ));
    }
    if let (Some(tap), Some(now)) = (up.latest_tap, up.backend_time) {
        lines.push(format!(
            "latest tap reported {}, backend clock {} (reports come after their rides)",
            hhmm(tap),
            hhmm(now)
        ));
    }
    (
        format!("Validator {validator} is in coverage: it uploads its journal"),
        lines,
    )
}
