//! The day, step by step. Every sentence is made from what the parties answered (the
//! backend's JSON, the validators' reports, the wallet's ledger), so a day that goes wrong
//! reads wrong: a fault changes the words, not only the books.

use super::client::Synced;
use super::legs::{offline, qr, tap, upload, validator_config, Leg};
use super::output::{hhmm, ies, local, money, plural, Out};
use super::parties::proof_time;
use super::world::World;
use super::{
    books, DemoArgs, Fault, ReaderChoice, Res, BUS_1, BUS_2, HTTP_TIMEOUT, LINE_A, LINE_B,
    LINE_EXPRESS, TOP_UP,
};
use mancard_api::{AdjustmentRequest, TapStatus};
use mancard_protocol::WalletLogEntry;
use mancard_validator::http;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;

/// The day. Returns Ok(Err(problems)) when the books do not agree.
pub(super) fn day(
    out: &mut Out,
    w: &mut World,
    dir: &Path,
    args: &DemoArgs,
) -> Res<Result<(), Vec<String>>> {
    let account_id = register(out, w, &args.phone)?;
    provision(out, w)?;
    top_up(out, w)?;
    validator_config(out, w, dir)?;
    let (v1, v2) = (BUS_1.0, BUS_2.0);
    let via = if w.reader == ReaderChoice::Pcsc {
        "through PC/SC: pcscd + vpcd"
    } else {
        "in process"
    };
    let title = format!("Bus 1: NFC tap on line {LINE_A} ({via})");
    tap(out, w, &leg("tap_line_a", &title, v1, LINE_A, 0))?;
    offline(out, w, v1, 5 * MINUTE)?;
    let title = format!(
        "Transfer onto bus 2, line {LINE_B}, 12 minutes later (within the 45-minute window)"
    );
    tap(
        out,
        w,
        &leg("transfer_line_b", &title, v2, LINE_B, 12 * MINUTE),
    )?;
    upload(out, w, ("upload_bus_2", v2, 15 * MINUTE), account_id, false)?;
    let title = format!(
        "Bus 1, still offline, on line {LINE_EXPRESS}: QR boarding (an iPhone rider's way)"
    );
    qr(out, w, dir, &leg("qr", &title, v1, LINE_EXPRESS, 2 * HOUR))?;
    let title = format!("Evening: bus 1 on line {LINE_A}, the daily cap as bus 1 knows it");
    tap(out, w, &leg("tap_cap", &title, v1, LINE_A, 9 * HOUR))?;
    let title = format!("Late ride: bus 1 on line {LINE_B}, free at the gate (capped)");
    tap(out, w, &leg("tap_capped", &title, v1, LINE_B, 13 * HOUR))?;
    let skip = args.fault == Some(Fault::SkipUpload);
    upload(
        out,
        w,
        ("upload", v1, 13 * HOUR + 30 * MINUTE),
        account_id,
        skip,
    )?;
    if args.fault == Some(Fault::BackendAdjustment) {
        w.engine()?
            .adjust(&AdjustmentRequest {
                account_id,
                amount: -1_000,
                idempotency_key: "demo-fault".into(),
                note: "unexplained debit (fault injected by the demo)".into(),
            })
            .map_err(|e| format!("adjustment: {e}"))?;
        out.note("fault injected: the backend debits 1,000 rials that no ride explains");
    }
    sync(out, w, 14 * HOUR)?;
    books::check(out, w, account_id)
}

fn leg<'a>(name: &'a str, title: &'a str, validator: u32, line: u32, at: i64) -> Leg<'a> {
    Leg {
        name,
        title,
        validator,
        line,
        at,
    }
}

/// Register and verify the phone number; the account id.
fn register(out: &mut Out, w: &mut World, phone: &str) -> Res<i64> {
    let t = Instant::now();
    let phone = w
        .client
        .register(&w.rt, phone)
        .map_err(|e| format!("register {phone}: {e}"))?;
    let sms = w
        .engine()?
        .sandbox_otp(&phone, None)
        .map_err(|e| format!("sandbox SMS: {e}"))?;
    let account_id = w
        .client
        .verify(&w.rt, &phone, &sms.code)
        .map_err(|e| format!("verify: {e}"))?;
    out.step(
        "register",
        "Register and verify the phone number",
        t.elapsed(),
        &[
            format!(
                "SMS code sent to {} (sandbox: read back from the backend)",
                phone
            ),
            format!(
                "code {} verified: account #{}, session opened (the token is never printed)",
                sms.code, account_id
            ),
        ],
        json!({"phone": phone, "account_id": account_id}),
    );
    Ok(account_id)
}

fn provision(out: &mut Out, w: &mut World) -> Res<()> {
    let t = Instant::now();
    let p = w
        .client
        .provision(&w.rt, false)
        .map_err(|e| format!("provision: {e}"))?;
    out.step(
        "provision",
        "Provision the wallet: a certificate for this phone",
        t.elapsed(),
        &[
            format!(
                "card pseudonym {} (random; not the phone number)",
                p.pseudonym
            ),
            format!(
                "certificate valid until {}, counters {}..={}, offline allowance {}",
                local(p.valid_until),
                p.counter_first,
                p.counter_last,
                money(p.max_amount)
            ),
            "the allowance is bounded by the confirmed balance: nothing to spend yet".into(),
        ],
        json!({"pseudonym": p.pseudonym, "valid_until": p.valid_until,
               "counter_first": p.counter_first, "counter_last": p.counter_last,
               "max_amount": p.max_amount}),
    );
    Ok(())
}

fn top_up(out: &mut Out, w: &mut World) -> Res<()> {
    let t = Instant::now();
    let (intent_id, payment_url) = w
        .client
        .start_top_up(&w.rt, TOP_UP)
        .map_err(|e| format!("top-up: {e}"))?;
    // The rider presses "Pay" on the (sandbox) bank page; the redirect back is not followed:
    // the wallet polls, which makes the backend verify the payment server to server.
    let paid = http::post(
        &payment_url,
        "application/x-www-form-urlencoded",
        b"",
        HTTP_TIMEOUT,
    )
    .map_err(|e| format!("sandbox gateway: {e}"))?;
    let (status, gateway_ref) = w
        .client
        .complete_top_up(&w.rt, &intent_id)
        .map_err(|e| format!("top-up: {e}"))?;
    if status != mancard_api::TopupStatus::Credited.as_str() {
        return Err(format!("the top-up ended {status}, not credited").into());
    }
    let r = w
        .client
        .provision(&w.rt, true)
        .map_err(|e| format!("replenish: {e}"))?;
    out.step(
        "top_up",
        "Top up 500,000 rials through the (sandbox) Shaparak gateway",
        t.elapsed(),
        &[
            format!("payment intent {} for {}", intent_id, money(TOP_UP)),
            format!(
                "gateway answered {} (pay → redirect); the wallet polls, the backend verifies \
                 server to server and credits once (ref {})",
                paid.status, gateway_ref
            ),
            format!(
                "new certificate: offline allowance {} (balance {}), counters {}..={}",
                money(r.max_amount),
                money(r.balance),
                r.counter_first,
                r.counter_last
            ),
        ],
        json!({"intent_id": intent_id, "amount": TOP_UP, "status": status,
               "gateway_http_status": paid.status, "balance": r.balance,
               "max_amount": r.max_amount}),
    );
    Ok(())
}

/// The wallet syncs at `at`: its log uploaded (after the rides, on the backend's clock), the
/// backend's verdicts and ledger learned; the rider's view of each ride the backend charged
/// differently than the gate did.
fn sync(out: &mut Out, w: &mut World, at: i64) -> Res<()> {
    w.set_time(at)?;
    let latest = latest_logged(w)?;
    let backend_time = w.engine()?.now();
    let t = Instant::now();
    let s = w
        .client
        .sync(&w.rt, &w.wallet)
        .map_err(|e| format!("sync: {e}"))?;
    let took = t.elapsed();
    let mut lines = vec![
        sync_sentence(&s),
        format!(
            "confirmed balance {}; credential {}",
            money(s.balance),
            s.credential_status
        ),
    ];
    let mut corrections = Vec::new();
    for r in &w.rides {
        let Some(v) = s.charged.iter().find(|v| v.counter == r.counter) else {
            continue;
        };
        if v.charged == r.fare {
            continue;
        }
        let reason = v.reason.as_deref().unwrap_or("no reason given");
        let diff = if v.charged < r.fare {
            format!("{} back", money(r.fare - v.charged))
        } else {
            format!("{} more", money(v.charged - r.fare))
        };
        lines.push(format!(
            "the rider's history: {} line {} (validator {}): the gate took {}, the backend \
             charges {} ({reason}): {diff}",
            hhmm(r.time),
            r.line,
            r.validator_id,
            money(r.fare),
            money(v.charged),
        ));
        corrections.push(json!({"counter": r.counter, "time": r.time, "line": r.line,
                                "validator_id": r.validator_id, "gate_fare": r.fare,
                                "charged": v.charged, "reason": v.reason,
                                "status": v.status, "back": r.fare - v.charged}));
    }
    out.step(
        "sync",
        "The wallet syncs: the backend's verdicts reach the rider",
        took,
        &lines,
        json!({"uploaded": s.uploaded, "balance": s.balance,
               "fare_corrections": s.fare_corrections, "ledger_entries": s.ledger_entries,
               "credential_status": s.credential_status,
               "settled": s.count(TapStatus::Settled),
               "duplicates": s.count(TapStatus::Duplicate),
               "pending": s.count(TapStatus::Pending),
               "latest_tap_time": latest, "backend_time": backend_time,
               "corrections": corrections,
               "verdicts": s.charged.iter().map(|v| json!({"counter": v.counter,
                   "status": v.status, "charged": v.charged, "reason": v.reason}))
                   .collect::<Vec<_>>()}),
    );
    w.wallet_verdicts = s.verdicts;
    w.charged = s.charged;
    Ok(())
}

/// The latest signed time in the wallet's tap log (what its sync reports).
fn latest_logged(w: &World) -> Res<Option<i64>> {
    let mut latest = None;
    for raw in w.wallet.tap_log(0, 10_000)? {
        let e = WalletLogEntry::decode(&raw).map_err(|e| format!("wallet log: {e}"))?;
        latest = latest.max(Some(proof_time(&e.proof).max(e.time)));
    }
    Ok(latest)
}

/// What the sync's upload came to: duplicates of the validator's batches, or taps the
/// backend first heard of from the wallet.
fn sync_sentence(s: &Synced) -> String {
    let learned = format!(
        "{} ledger entr{} learned",
        s.ledger_entries,
        ies(s.ledger_entries)
    );
    let (settled, dup) = (s.count(TapStatus::Settled), s.count(TapStatus::Duplicate));
    let pending = s.count(TapStatus::Pending);
    let refused = (s.verdicts.len() as u64).saturating_sub(settled + dup + pending);
    if s.uploaded == 0 {
        return format!("no tap-log entry to upload; {learned}");
    }
    let head = format!("{} tap-log entr{} uploaded", s.uploaded, ies(s.uploaded));
    if dup == s.uploaded && settled == 0 && refused == 0 && pending == 0 {
        return format!(
            "{head} (already settled from the validators' batches: duplicates, charged once); \
             {learned}"
        );
    }
    let mut parts = Vec::new();
    if settled > 0 {
        parts.push(format!(
            "{settled} first settled from the wallet's own log (no validator's batch brought \
             them)"
        ));
    }
    if dup > 0 {
        parts.push(format!(
            "{dup} duplicate{} of the validators' batches, charged once",
            plural(dup)
        ));
    }
    if pending > 0 {
        parts.push(format!(
            "{pending} pass{} no validator reported (pending: not charged)",
            if pending == 1 { "" } else { "es" }
        ));
    }
    if refused > 0 {
        parts.push(format!("{refused} refused (fraud or rejected)"));
    }
    format!("{head}: {}; {learned}", parts.join(", "))
}
