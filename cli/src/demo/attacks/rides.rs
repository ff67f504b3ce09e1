//! Issue #13, §4–6: billed for rides never taken (unscanned passes, a torn tap and its
//! retry), one pass on two buses, and taps from the future.

use super::super::client::history_verdicts;
use super::super::output::money;
use super::super::Res;
use super::common::{accepted, decision, record, refused, upload_said, why};
use super::reel::{Reel, V7, V8};
use super::{Attack, Play};
use mancard::Wallet;
use mancard_api::TapStatus;
use mancard_protocol::apdu::INS_AUTHORIZE_TAP;
use mancard_protocol::{AuthorizeResponse, ResponseApdu};
use mancard_validator::{CardChannel, ChannelError, FnChannel};
use std::sync::Arc;

/// Seconds after which a pass shown now has expired (its lifetime and the skew).
const PASS_EXPIRED: i64 = 100;
/// Seconds after which a torn tap is past validator's torn window (120 s by default).
const TORN_WINDOW_PASSED: i64 = 130;

pub(super) const UNSCANNED_PASSES: (&str, &str, &str, Play) = (
    "unscanned_passes",
    "Billed for rides never taken: two QR passes shown, never scanned",
    "issue #13 §4",
    unscanned_passes,
);

fn unscanned_passes(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let n = reel.rider("Nima", 100_000, false)?;
    let allowance = n.wallet.ledger()?.offline_allowance_remaining;
    let mut counters = Vec::new();
    let mut reserved = Vec::new();
    for _ in 0..2 {
        n.follow(&reel.engine)?;
        let (_, pass) = n.pass()?;
        counters.push(pass.body.counter);
        reserved.push(allowance - n.wallet.ledger()?.offline_allowance_remaining);
        reel.wait(PASS_EXPIRED)?;
    }
    a.did(
        "Nima's app shows two QR passes (a reservation of the offline allowance each); no \
         validator ever scans them; they expire",
    );
    let rep = n.sync()?;
    let seen = history_verdicts(&n.wallet)?;
    let told: Vec<String> = counters
        .iter()
        .map(|c| {
            let v = seen.iter().find(|v| v.counter == *c);
            format!(
                "pass {c}: {}",
                v.map(|v| format!("{} {}", v.status, money(v.charged)))
                    .unwrap_or_else(|| "no verdict".into())
            )
        })
        .collect();
    a.said(
        "backend (Nima's sync)",
        format!(
            "{} entries uploaded, {} settled, {} rejected; balance {}",
            rep.uploaded,
            rep.settled,
            rep.rejected,
            money(rep.balance)
        ),
    );
    a.said("Nima's history", told.join("; "));
    let not_used = counters.iter().all(|c| {
        seen.iter()
            .any(|v| v.counter == *c && v.status == "pass_not_used" && v.charged == 0)
    });
    a.expect("both passes show as not used, 0 charged", not_used);
    let after = n.wallet.ledger()?.offline_allowance_remaining;
    a.said(
        "Nima's wallet",
        format!(
            "while a pass is shown it reserves {}; after both expired the offline allowance is {} \
             (before the passes {})",
            reserved
                .iter()
                .map(|r| money(*r))
                .collect::<Vec<_>>()
                .join(" and "),
            money(after),
            money(allowance)
        ),
    );
    a.expect(
        "each pass reserves allowance while it is valid, and the reservation is released at \
         expiry: the offline allowance is whole again",
        reserved.iter().all(|r| *r > 0) && after == allowance,
    );
    let charged = reel.charged(n.account_id)?;
    a.expect("nothing is charged", charged == 0);
    a.charged(charged, "nothing: no validator reported a pass");
    Ok(())
}

/// A phone lifted from the reader at the worst moment: it signs the AUTHORIZE TAP, and its
/// answer never reaches the reader.
struct Lifted {
    wallet: Arc<Wallet>,
    torn: bool,
}

impl CardChannel for Lifted {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let answer = self.wallet.process_apdu(apdu.to_vec());
        let signed = apdu.get(1) == Some(&INS_AUTHORIZE_TAP)
            && ResponseApdu::parse(&answer).is_ok_and(|r| {
                matches!(
                    AuthorizeResponse::decode(&r.data),
                    Ok(AuthorizeResponse::Authorized(_))
                )
            });
        if signed && !self.torn {
            self.torn = true;
            return Err(ChannelError::CardRemoved);
        }
        Ok(answer)
    }
}

pub(super) const TORN_TAP: (&str, &str, &str, Play) = (
    "torn_tap_and_retry",
    "A torn tap and its retry; a torn tap never completed",
    "issue #13 §4",
    torn_tap,
);

fn torn_tap(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let o = reel.rider("Omid", 100_000, false)?;
    o.follow(&reel.engine)?;
    let entries = o.log()?.len();
    let mut lifted = Lifted {
        wallet: Arc::clone(&o.wallet),
        torn: false,
    };
    let first = reel.validator(V7.0)?.tap_nfc(&mut lifted);
    o.wallet.deactivated();
    a.did(
        "Omid's phone signs at validator 7 and is lifted before its answer arrives; he taps again",
    );
    a.said("validator 7 (first tap)", decision(&first));
    let second = reel.tap(&o, V7)?;
    a.said("validator 7 (the retry)", decision(&second));
    let log = o.log()?;
    let signed = log.last().map(|e| e.counter());
    a.expect(
        "the first tap is torn: the gate stays closed (communication)",
        refused(&first) == Some("communication"),
    );
    a.expect(
        "the retry opens the gate on the counter the phone signed first (the identical \
         authorization, no new counter)",
        accepted(&second).map(|x| x.0) == signed && log.len() == entries + 1,
    );
    let up = reel.upload(V7.0)?;
    a.said("backend (validator 7's batch)", upload_said(&up));
    let rep = o.sync()?;
    a.said(
        "Omid's app (sync)",
        format!("{} uploaded, {} settled", rep.uploaded, rep.settled),
    );
    let fare = accepted(&second).map(|x| x.1).unwrap_or(-1);
    let charged_omid = reel.charged(o.account_id)?;
    a.expect(
        format!("the ride is charged once: {}", money(fare)),
        charged_omid == fare,
    );
    let never = torn_never_completed(reel, a)?;
    a.charged(
        charged_omid + never,
        "Omid's ride once; nothing for the tap whose gate stayed closed",
    );
    Ok(())
}

/// Ozra's tap at validator 8 tears and she walks away: the torn record goes up after the
/// window, and her phone's report of the tap it signed is not charged. What it charged.
fn torn_never_completed(reel: &mut Reel, a: &mut Attack) -> Res<i64> {
    let z = reel.rider("Ozra", 100_000, false)?;
    z.follow(&reel.engine)?;
    let mut lifted = Lifted {
        wallet: Arc::clone(&z.wallet),
        torn: false,
    };
    let torn = reel.validator(V8.0)?.tap_nfc(&mut lifted);
    z.wallet.deactivated();
    a.did("Ozra's phone signs at validator 8, is lifted, and she takes another bus");
    a.said("validator 8", decision(&torn));
    let counter = z.last_entry()?.counter();
    reel.wait(TORN_WINDOW_PASSED)?;
    let up = reel.upload(V8.0)?;
    let torn_records: usize = up.answers.iter().map(|b| b.torn).sum();
    a.said("backend (validator 8's batch)", upload_said(&up));
    a.expect(
        "validator 8 uploads the torn challenge after its window: the gate did not open",
        torn_records == 1,
    );
    let rep = z.sync()?;
    let v = history_verdicts(&z.wallet)?;
    let mine = v.iter().find(|v| v.counter == counter);
    a.said(
        "Ozra's history",
        mine.map(|v| format!("{} {}{}", v.status, money(v.charged), why(&v.reason)))
            .unwrap_or_else(|| format!("no verdict ({} uploaded)", rep.uploaded)),
    );
    a.expect(
        "her phone's report of the tap is not charged: not_charged (torn_gate_closed)",
        mine.is_some_and(|v| {
            v.status == "not_charged"
                && v.charged == 0
                && v.reason.as_deref() == Some("torn_gate_closed")
        }),
    );
    let charged = reel.charged(z.account_id)?;
    a.expect("nothing charged to Ozra", charged == 0);
    Ok(charged)
}

pub(super) const SHARED_PASS: (&str, &str, &str, Play) = (
    "shared_pass",
    "One pass, many buses: a photo of the pass shown on a second bus",
    "issue #13 §5",
    shared_pass,
);

fn shared_pass(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    reel.add_validator(V10, 0)?;
    let l = reel.rider("Leila", 200_000, false)?;
    let mut fares = 0;
    for (round, other) in [V8, V10].into_iter().enumerate() {
        l.follow(&reel.engine)?;
        let (text, pass) = l.pass()?;
        let on7 = reel.scan(&text, V7)?;
        let on_other = reel.scan(&text, other)?;
        if round == 0 {
            a.did("Leila shows her pass on bus 1; a friend shows a photo of it on bus 2");
            a.said("validator 7", decision(&on7));
            a.said("validator 8 (the photo)", decision(&on_other));
        } else {
            a.did("an hour later, again with a new pass; its photo on bus 3");
        }
        fares += accepted(&on7).map(|x| x.1).unwrap_or(0);
        let up7 = reel.upload(V7.0)?;
        let up8 = reel.upload(other.0)?;
        let r8 = record(&up8, pass.body.counter);
        a.said(
            format!(
                "backend (round {}: validator 7, then {})",
                round + 1,
                other.0
            ),
            format!("{}; {}", upload_said(&up7), upload_said(&up8)),
        );
        a.expect(
            format!(
                "round {}: the second bus's report is a shared_pass abuse event, not charged again",
                round + 1
            ),
            r8.is_some_and(|r| {
                r.status == TapStatus::Duplicate && r.reason.as_deref() == Some("shared_pass")
            }),
        );
        reel.wait(3600)?;
    }
    let rep = l.sync()?;
    let v = history_verdicts(&l.wallet)?;
    let first = v
        .iter()
        .find(|v| v.reason.as_deref() == Some("shared_pass"));
    a.said(
        "Leila's app (sync)",
        format!(
            "credential {}{}; her history: {}",
            rep.credential_status,
            rep.credential_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            first
                .map(|v| format!("{} {}{}", v.status, money(v.charged), why(&v.reason)))
                .unwrap_or_else(|| "no shared pass shown".into())
        ),
    );
    a.expect(
        "her history shows the pass charged once, with the reason shared_pass",
        first.is_some_and(|v| v.charged > 0),
    );
    a.expect(
        "shared passes seen by two different buses in one day (limit 1): her card is revoked \
         (shared_pass)",
        rep.credential_status == "revoked"
            && rep.credential_reason.as_deref() == Some("shared_pass"),
    );
    let charged = reel.charged(l.account_id)?;
    a.expect(
        format!("each pass charged once ({})", money(fares)),
        charged == fares,
    );
    a.charged(charged, "each pass once, at bus 1's fare");
    Ok(())
}

/// Validator 10: bus 3, on line 2.
const V10: (u32, u32) = (10, 2);

/// Validator 9: a validator whose clock runs two hours fast.
const V9: (u32, u32) = (9, 1);
const FAST: i64 = 2 * 3600;

pub(super) const FROM_THE_FUTURE: (&str, &str, &str, Play) = (
    "tap_from_the_future",
    "Taps from the future: a reader and a phone two hours ahead",
    "issue #13 §6",
    from_the_future,
);

fn from_the_future(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    reel.add_validator(V9, FAST)?;
    let f = reel.rider("Farid", 100_000, false)?;
    let cases = reel.cases()?;
    f.wallet
        .set_server_time_offset(reel.engine.now() + FAST - chrono::Utc::now().timestamp())?;
    let w = Arc::clone(&f.wallet);
    let mut ch = FnChannel::new(move |apdu| w.process_apdu(apdu));
    let o = reel.validator(V9.0)?.tap_nfc(&mut ch);
    f.wallet.deactivated();
    a.did(
        "validator 9's clock runs two hours fast, and so does Farid's phone: the tap is dated \
         two hours ahead",
    );
    a.said("validator 9", decision(&o));
    let up = reel.upload(V9.0)?;
    a.said("backend (validator 9's batch)", upload_said(&up));
    let rejected =
        up.answers.iter().flat_map(|b| b.records.iter()).all(|r| {
            r.status == TapStatus::Rejected && r.reason.as_deref() == Some("from_the_future")
        });
    a.expect(
        "the validator's record is refused: from_the_future",
        rejected && up.report.records == 1,
    );
    let counter = f.last_entry()?.counter();
    let rep = f.sync()?;
    let v = history_verdicts(&f.wallet)?;
    let mine = v.iter().find(|v| v.counter == counter);
    a.said(
        "Farid's app (sync)",
        format!(
            "{} uploaded, {} rejected; history: {}",
            rep.uploaded,
            rep.rejected,
            mine.map(|v| format!("{}{}", v.status, why(&v.reason)))
                .unwrap_or_else(|| "no verdict".into())
        ),
    );
    a.expect(
        "the phone's report is refused too, and its history says why (from_the_future)",
        mine.is_some_and(|v| {
            v.status == "rejected" && v.reason.as_deref() == Some("from_the_future")
        }),
    );
    a.expect("no fraud case", reel.cases()? == cases);
    let charged = reel.charged(f.account_id)?;
    a.expect("nothing charged", charged == 0);
    a.charged(charged, "nothing: a tap from the future is refused");
    Ok(())
}
