//! The day, step by step. Every sentence is made from what the parties answered (the
//! backend's JSON, the validator's reports, the wallet's ledger), so a day that goes wrong
//! reads wrong: a fault changes the words, not only the books.

use super::client::Synced;
use super::output::{fmt_ms, hhmm, ies, local, money, plural, round3, Out};
use super::world::{start_validator, Ride, World};
use super::{
    books, DemoArgs, Fault, ReaderChoice, Res, HTTP_TIMEOUT, LINE_A, LINE_B, LINE_EXPRESS, TOP_UP,
    VALIDATOR_ID,
};
use mancard_api::endpoints::VALIDATOR_BATCHES;
use mancard_api::{AdjustmentRequest, BatchResponse, TapStatus};
use mancard_validator::{http, Decision, TapOutcome, UploadReport};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

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
    let via = if w.reader == ReaderChoice::Pcsc {
        "through PC/SC: pcscd + vpcd"
    } else {
        "in process"
    };
    let title = format!("NFC tap on line {LINE_A} ({via})");
    tap(out, w, "tap_line_a", &title, LINE_A, 0)?;
    let title =
        format!("Transfer onto line {LINE_B} 12 minutes later, within the 45-minute window");
    tap(out, w, "transfer_line_b", &title, LINE_B, 12 * 60)?;
    offline(out, w)?;
    qr(out, w, dir, 2 * 3600)?;
    let title = format!("Evening: NFC tap on line {LINE_A}, the daily cap is reached");
    tap(out, w, "tap_cap", &title, LINE_A, 9 * 3600)?;
    let title = format!("Late ride on line {LINE_B}: free, capped");
    tap(out, w, "tap_capped", &title, LINE_B, 13 * 3600)?;
    upload(out, w, args.fault == Some(Fault::SkipUpload))?;
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
    sync(out, w)?;
    books::check(out, w, account_id)
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
        .sandbox_otp(&phone)
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

fn validator_config(out: &mut Out, w: &mut World, dir: &Path) -> Res<()> {
    let t = Instant::now();
    let setup = start_validator(w, dir)?;
    let st = w.validator()?.status()?;
    let day = w.day;
    out.step(
        "validator_config",
        "A validator fetches its signed config bundle",
        t.elapsed(),
        &[
            format!(
                "validator {VALIDATOR_ID} (Imam Square interchange, lines {LINE_A} and {LINE_B}) \
                 trusts issuer key {}; its own key is registered with the backend",
                setup.issuer_key_id
            ),
            format!(
                "GET {}: bundle version {} ({} bytes): issuer keys, deny list \
                 ({} card(s)), Urmia tariff",
                mancard_api::endpoints::VALIDATOR_CONFIG.path,
                st.config_version.unwrap_or(0),
                setup.bundle_bytes,
                st.deny_list_len
            ),
            format!(
                "from here on the validator's clock is driven by the demo: the day starts {}{}",
                local(day),
                if day - w.engine()?.now() > 6 * 3600 {
                    " (tomorrow morning: today's has passed; the certificate lives 72 h)"
                } else {
                    ""
                }
            ),
        ],
        json!({"validator_id": VALIDATOR_ID, "bundle_version": st.config_version,
               "bundle_bytes": setup.bundle_bytes, "deny_list": st.deny_list_len,
               "day_start": day}),
    );
    Ok(())
}

fn tap(out: &mut Out, w: &mut World, name: &str, title: &str, line: u32, at: i64) -> Res<()> {
    w.set_time(at)?;
    w.validator()?.set_line(line)?;
    let t = Instant::now();
    let o = w.tap_nfc()?;
    let took = t.elapsed();
    let seen = Seen {
        name,
        title,
        line,
        medium: "nfc",
        took,
    };
    describe(out, w, &seen, &o)
}

fn offline(out: &mut Out, w: &mut World) -> Res<()> {
    let t = Instant::now();
    let failed = w
        .validator()?
        .upload(|_b| Err("no network: the bus left coverage".to_string()));
    let st = w.validator()?.status()?;
    out.step(
        "offline",
        "The validator goes offline",
        t.elapsed(),
        &[
            format!(
                "upload attempt: {}",
                match &failed {
                    Ok(_) => "sent (unexpected)".to_string(),
                    Err(e) => e.to_string(),
                }
            ),
            format!(
                "{} tap(s) sealed in {} signed batch(es), kept until acknowledged; decisions go on \
                 with public keys only",
                st.journal.in_pending_batches, st.journal.pending_batches
            ),
        ],
        json!({"upload_failed": failed.is_err(), "pending_batches": st.journal.pending_batches,
               "pending_taps": st.journal.in_pending_batches + st.journal.unsealed}),
    );
    Ok(())
}

/// A gate's view of one ride, for [`describe`].
struct Seen<'a> {
    name: &'a str,
    title: &'a str,
    line: u32,
    medium: &'static str,
    took: Duration,
}

/// Tells one ride from the validator's decision, and remembers it for the books.
fn describe(out: &mut Out, w: &mut World, seen: &Seen<'_>, o: &TapOutcome) -> Res<()> {
    let (title, line, medium) = (seen.title, seen.line, seen.medium);
    let a = match &o.decision {
        Decision::Accepted(a) => a.clone(),
        Decision::Refused(r) => {
            return Err(format!(
                "{title}: the validator refused: {} ({})",
                r.display_text(),
                r.code()
            )
            .into())
        }
    };
    let kind = format!("{:?}", a.fare_kind).to_lowercase();
    w.rides.push(Ride {
        time: o.time,
        line,
        medium,
        counter: a.counter,
        fare: a.fare,
        kind: kind.clone(),
    });
    let spent: i64 = w.rides.iter().map(|r| r.fare).sum();
    let ledger = w.wallet.ledger()?;
    let mut lines = vec![
        format!(
            "{}  line {line}  →  {}",
            hhmm(o.time),
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
    if medium == "nfc" {
        lines.extend(nfc_lines(w, o));
    }
    lines.push(format!(
        "today so far {}; wallet: {} pending, offline allowance left {}",
        money(spent),
        money(ledger.pending_amount),
        money(ledger.offline_allowance_remaining)
    ));
    out.step(
        seen.name,
        title,
        seen.took,
        &lines,
        json!({"line": line, "medium": medium, "accepted": true, "fare": a.fare,
               "fare_kind": kind, "base_fare": a.base_fare, "counter": a.counter,
               "time": o.time, "apdus": o.apdus, "cert_cached": o.cert_cached,
               "decision_ms": round3(o.elapsed.as_secs_f64() * 1000.0),
               "spent_today": spent}),
    );
    Ok(())
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
    if w.reader == ReaderChoice::Pcsc {
        lines.push(
            "(the step's time is mostly the phone being presented and lifted: pcscd polls \
             the virtual reader for a card)"
                .into(),
        );
    }
    lines
}

fn qr(out: &mut Out, w: &mut World, dir: &Path, at: i64) -> Res<()> {
    w.set_time(at)?;
    w.validator()?.set_line(LINE_EXPRESS)?;
    let t = Instant::now();
    // The phone's clock reads the same time as the validator's (the wallet corrects the
    // device clock by its offset, which `set_time` moved with the validator's clock).
    let pass = w.wallet.boarding_pass(chrono::Utc::now().timestamp())?;
    let made = t.elapsed();
    let png = dir.join("pass.png");
    std::fs::write(&png, pass.png(6)?).map_err(|e| format!("{}: {e}", png.display()))?;
    out.raw(&pass.terminal());
    let t2 = Instant::now();
    let o = w.validator()?.verify_qr(&pass.text);
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
    let title =
        format!("Offline validator, QR boarding on line {LINE_EXPRESS} (an iPhone rider's way)");
    let seen = Seen {
        name: "qr",
        title: &title,
        line: LINE_EXPRESS,
        medium: "qr",
        took: made + verified,
    };
    describe(out, w, &seen, &o)
}

/// Back in coverage (unless the fault keeps it out): the validator uploads its journal and
/// the backend answers each batch record by record.
fn upload(out: &mut Out, w: &mut World, skip: bool) -> Res<()> {
    let t = Instant::now();
    // Batches sealed while offline wait in the journal; they go first, with their ids.
    let waiting = u64::try_from(w.validator()?.status()?.journal.pending_batches).unwrap_or(0);
    if skip {
        out.note("fault injected: the validator never comes back online");
    }
    let url = http::join(&w.url()?, VALIDATOR_BATCHES.path);
    let mut answers: Vec<BatchResponse> = Vec::new();
    let rep = w.validator()?.upload(|b| {
        if skip {
            return Err("no network (fault injected)".to_string());
        }
        let r = http::post(&url, "application/octet-stream", &b.bytes, HTTP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let body = r.ok().map_err(|e| e.to_string())?;
        let answer =
            serde_json::from_slice(&body).map_err(|e| format!("unreadable batch answer: {e}"))?;
        answers.push(answer);
        Ok(())
    });
    let rep = match rep {
        Ok(r) => r,
        Err(e) if skip => {
            out.note(&format!("upload: {e}"));
            UploadReport::default()
        }
        Err(e) => return Err(e.into()),
    };
    let st = w.validator()?.status()?;
    let left = u64::try_from(st.journal.unsealed + st.journal.in_pending_batches).unwrap_or(0);
    let (title, line) = upload_sentence(&rep, &answers, waiting, left);
    let count = |f: fn(&BatchResponse) -> usize| answers.iter().map(f).sum::<usize>();
    out.step(
        "upload",
        title,
        t.elapsed(),
        &[line],
        json!({"batches": rep.acked.len(), "records": rep.records,
               "settled": count(|a| a.settled), "duplicates": count(|a| a.duplicates),
               "resent": waiting.min(rep.acked.len() as u64),
               "not_uploaded": left, "answers": answers}),
    );
    w.batch_answers = answers;
    Ok(())
}

/// The upload step's title and sentence, from the report and the backend's answers.
fn upload_sentence(
    rep: &UploadReport,
    answers: &[BatchResponse],
    waiting: u64,
    left: u64,
) -> (&'static str, String) {
    if rep.acked.is_empty() {
        return (
            "The validator stays out of coverage: nothing uploaded",
            format!(
                "no batch acknowledged; {left} tap{} still only in the validator's journal",
                plural(left)
            ),
        );
    }
    let resent = waiting.min(rep.acked.len() as u64);
    let resent = match resent {
        0 => String::new(),
        1 => " (the batch sealed while offline resent with the same id)".to_string(),
        n => format!(" (the {n} batches sealed while offline resent with their ids)"),
    };
    let sum = |f: fn(&BatchResponse) -> usize| answers.iter().map(f).sum::<usize>();
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
    (
        "Back in coverage: the validator uploads its journal",
        format!(
            "{} signed batch(es), {} tap(s){resent}; backend settled {settled}{others}",
            rep.acked.len(),
            rep.records
        ),
    )
}

fn sync(out: &mut Out, w: &mut World) -> Res<()> {
    let t = Instant::now();
    let s = w
        .client
        .sync(&w.rt, &w.wallet)
        .map_err(|e| format!("sync: {e}"))?;
    out.step(
        "sync",
        "The wallet syncs",
        t.elapsed(),
        &[
            sync_sentence(&s),
            format!(
                "confirmed balance {}; fare corrections {}; credential {}",
                money(s.balance),
                s.fare_corrections,
                s.credential_status
            ),
        ],
        json!({"uploaded": s.uploaded, "balance": s.balance,
               "fare_corrections": s.fare_corrections, "ledger_entries": s.ledger_entries,
               "credential_status": s.credential_status,
               "settled": s.count(TapStatus::Settled),
               "duplicates": s.count(TapStatus::Duplicate)}),
    );
    w.wallet_verdicts = s.verdicts;
    Ok(())
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
    let refused = (s.verdicts.len() as u64).saturating_sub(settled + dup);
    if s.uploaded == 0 {
        return format!("no tap-log entry to upload; {learned}");
    }
    let head = format!("{} tap-log entr{} uploaded", s.uploaded, ies(s.uploaded));
    if dup == s.uploaded && settled == 0 && refused == 0 {
        return format!(
            "{head} (already settled from the validator's batches: duplicates, charged once); \
             {learned}"
        );
    }
    let mut parts = Vec::new();
    if settled > 0 {
        parts.push(format!(
            "{settled} first settled from the wallet's own log (the validator's batches never \
             brought them)"
        ));
    }
    if dup > 0 {
        parts.push(format!(
            "{dup} duplicate{} of the validator's batches, charged once",
            plural(dup)
        ));
    }
    if refused > 0 {
        parts.push(format!("{refused} refused (fraud or rejected)"));
    }
    format!("{head}: {}; {learned}", parts.join(", "))
}
