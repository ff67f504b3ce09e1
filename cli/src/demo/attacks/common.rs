//! How the reel reads and tells the parties' answers: a validator's decision, the backend's
//! verdict on a reported tap, the verdict feed of a sync.

use super::super::output::money;
use super::super::parties::Uploaded;
use super::super::Res;
use super::api::Answer;
use mancard_api::{SyncResponse, TapResult, TapStatus};
use mancard_protocol::{StatusWord, TapProof, WalletLogEntry};
use mancard_validator::{Decision, TapOutcome};

/// What a validator's display said: "OK - 20,000 rials (…)" or "refused: … (code)".
pub(super) fn decision(o: &TapOutcome) -> String {
    match &o.decision {
        Decision::Accepted(a) => format!(
            "{} (counter {}, journal #{})",
            o.decision.display_text(),
            a.counter,
            a.journal_seq
        ),
        Decision::Refused(r) => format!("refused: {} ({})", r.display_text(), r.code()),
    }
}

/// The accepted ride's (counter, fare), if the gate opened.
pub(super) fn accepted(o: &TapOutcome) -> Option<(u32, i64)> {
    o.decision.acceptance().map(|a| (a.counter, a.fare))
}

/// The refusal code, if the gate stayed closed.
pub(super) fn refused(o: &TapOutcome) -> Option<&'static str> {
    o.decision.refusal().map(|r| r.code())
}

/// A status word as the phone answered it: "6982", "9000".
pub(super) fn sw(s: StatusWord) -> String {
    format!("{:04X}", s.code())
}

/// The backend's answer on one reported tap: "settled, 20,000 rials", "rejected
/// (challenge_mismatch)".
pub(super) fn tap_said(r: &TapResult) -> String {
    let mut s = r.status.as_str().to_string();
    if let Some(reason) = &r.reason {
        s.push_str(&format!(" ({reason})"));
    }
    if let Some(f) = r.fare {
        s.push_str(&format!(", charged {}", money(f)));
    }
    s
}

/// A tap's result and reason, for a check: (status, reason).
pub(super) fn status_of(r: Option<&TapResult>) -> (Option<TapStatus>, Option<String>) {
    (r.map(|r| r.status), r.and_then(|r| r.reason.clone()))
}

/// A sync answer (a 200) and its first tap result.
pub(super) fn synced(a: &Answer) -> Res<SyncResponse> {
    a.parse()
}

/// The record of `counter` in a validator's upload (the backend's answers).
pub(super) fn record(up: &Uploaded, counter: u32) -> Option<&TapResult> {
    up.answers
        .iter()
        .flat_map(|b| b.records.iter())
        .find(|r| r.counter == Some(counter))
}

/// Every record of an upload, told.
pub(super) fn upload_said(up: &Uploaded) -> String {
    let records: Vec<String> = up
        .answers
        .iter()
        .flat_map(|b| b.records.iter())
        .map(|r| match r.counter {
            Some(c) => format!("counter {c}: {}", tap_said(r)),
            None => format!("record {}: {}", r.seq, tap_said(r)),
        })
        .collect();
    let torn: usize = up.answers.iter().map(|b| b.torn).sum();
    let mut s = if records.is_empty() {
        "no tap records".to_string()
    } else {
        records.join("; ")
    };
    if torn > 0 {
        s.push_str(&format!(
            "; {torn} torn challenge(s) recorded (the gate stayed closed)"
        ));
    }
    s
}

/// The NFC proof of a log entry.
pub(super) fn nfc(
    e: &WalletLogEntry,
) -> Res<(
    &mancard_protocol::TapChallenge,
    &mancard_protocol::TapAuthorization,
)> {
    match &e.proof {
        TapProof::Nfc {
            challenge,
            authorization,
        } => Ok((challenge, authorization)),
        TapProof::Qr { .. } => Err("expected an NFC tap in the log, found a pass".into()),
    }
}

/// " (reason)", or nothing.
pub(super) fn why(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}
