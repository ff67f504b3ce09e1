//! What the app shows, read on the reader connection (never blocks a tap): the credential's
//! status line, the ledger and the history.
//!
//! The history shows for every tap and pass what the backend charges and why (its newest
//! verdict; the answer to the upload when a backend sends no verdicts), what the phone
//! authorized when the backend has not judged it yet, and a pass that expired unscanned as
//! not used. What the offline allowance counts is `crate::pass`'s.

use crate::error::WalletError;
use crate::pass::{counted_spent, pass_expiry, pass_is_over};
use crate::store::{settings, HistoryBounds, HistoryRow, SettledRow};
use crate::text;
use crate::types::{
    CredentialState, HistoryItem, HistoryKind, HistoryPage, HistoryStatus, LedgerView, WalletStatus,
};
use crate::util::now_utc;
use crate::wallet::Wallet;
use mancard_api::{TapStatus, VerdictStatus};
use mancard_l10n::{Arg, Lang};
use mancard_protocol::{CertificateBody, CredentialCertificate, Tariff};
use std::sync::atomic::Ordering;

fn to_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|x| u32::try_from(x).ok())
}

/// What the certificate still allows at wallet time `t`.
struct Allowance {
    amount_left: i64,
    counters_left: u64,
    /// Rides available offline: the fewer of what the amount left pays (at the highest fare
    /// of the rider's class) and the counters left.
    rides: u64,
    /// Few counters left: under a quarter of the certificate's range, or no more than the
    /// configured ride margin. Online, this alone asks for a new certificate, whatever the
    /// balance: counters, unlike money, cannot be topped up.
    counters_low: bool,
    replenish_due: bool,
}

/// Whether `left` of a certificate's `range` counters is low: under a quarter of the range,
/// or at most `margin`.
fn counters_low(left: u64, range: u64, margin: u64) -> bool {
    left <= margin || left.saturating_mul(4) < range
}

/// The state and the problem sentence, in order of precedence.
fn state_of(
    revoked_reason: Option<Option<String>>,
    key_problem: Option<String>,
    b: &CertificateBody,
    t: i64,
    a: &Allowance,
    lang: Lang,
) -> (CredentialState, Option<String>) {
    if let Some(reason) = revoked_reason {
        (
            CredentialState::Revoked,
            Some(text::revoked_problem(reason.as_deref(), lang)),
        )
    } else if let Some(p) = key_problem {
        // English keeps the keystore's own sentence; the rider's languages say what to do
        let p = match lang {
            Lang::En => p,
            _ => text::problem("key_unavailable", lang),
        };
        (CredentialState::KeyUnavailable, Some(p))
    } else if t < b.valid_from {
        (
            CredentialState::NotYetValid,
            Some(text::problem("not_yet_valid", lang)),
        )
    } else if t > b.valid_until {
        (
            CredentialState::Expired,
            Some(text::problem("expired", lang)),
        )
    } else if a.rides == 0 {
        (
            CredentialState::Exhausted,
            Some(text::problem("exhausted", lang)),
        )
    } else if a.replenish_due {
        (CredentialState::ReplenishDue, None)
    } else {
        (CredentialState::Active, None)
    }
}

fn no_credential(pending_request: bool, locked: bool, lang: Lang) -> WalletStatus {
    WalletStatus {
        state: CredentialState::NoCredential,
        fare_class: None,
        valid_from: None,
        valid_until: None,
        rides_available: 0,
        amount_available: 0,
        counters_left: 0,
        replenish_due: true,
        pending_request,
        locked,
        cert_hash_hex: None,
        summary: mancard_l10n::text(lang, "status-no-ticket", &[]),
        state_text: text::state_text(CredentialState::NoCredential, lang),
        problem: None,
    }
}

/// What the backend said about a tap or pass, as the history shows it.
struct Judged {
    status: HistoryStatus,
    charged: Option<i64>,
    reason: Option<String>,
}

/// A charge: "charged", or "corrected" when an NFC tap is charged another amount than the
/// phone authorized (a pass's maximum is a reservation, not a fare: a pass is never corrected).
fn charge(pass: bool, authorized: i64, charged: i64, reason: Option<String>) -> Judged {
    let status = if !pass && charged != authorized {
        HistoryStatus::Corrected
    } else {
        HistoryStatus::Charged
    };
    Judged {
        status,
        charged: Some(charged),
        reason,
    }
}

/// The status of a tap or pass from its newest verdict, else the answer to its upload, else
/// (not judged yet) whether it is a pass and over at wallet time `t`.
fn judge(row: &HistoryRow, pass: bool, t: i64) -> Judged {
    let unjudged = |reason: Option<String>| {
        let over = pass && pass_is_over(row.entry.as_deref().and_then(pass_expiry), t);
        let status = match (pass, over) {
            (false, _) => HistoryStatus::NotSettled,
            (true, false) => HistoryStatus::PassShown,
            (true, true) => HistoryStatus::PassNotUsed,
        };
        Judged {
            status,
            charged: None,
            reason,
        }
    };
    let judged = |status, charged, reason| Judged {
        status,
        charged: Some(charged),
        reason,
    };
    match (&row.verdict, &row.settled) {
        (Some((status, charged, reason)), settled) => {
            let charged = *charged;
            let reason = reason.clone().or_else(|| rerated(settled.as_ref()));
            match status {
                VerdictStatus::Charged => charge(pass, row.amount, charged, reason),
                VerdictStatus::Fraud => judged(HistoryStatus::Fraud, charged, reason),
                VerdictStatus::Rejected => judged(HistoryStatus::Rejected, charged, reason),
                VerdictStatus::NotCharged if pass => {
                    judged(HistoryStatus::PassNotUsed, charged, reason)
                }
                VerdictStatus::NotCharged => judged(HistoryStatus::NotCharged, charged, reason),
                VerdictStatus::Pending => unjudged(reason),
            }
        }
        (None, Some(s)) => {
            let reason = s.reason.clone().or_else(|| rerated(Some(s)));
            match s.status {
                TapStatus::Settled | TapStatus::Duplicate => match s.fare {
                    Some(fare) => charge(pass, row.amount, fare, reason),
                    None => unjudged(reason),
                },
                TapStatus::Fraud => judged(HistoryStatus::Fraud, s.fare.unwrap_or(0), reason),
                TapStatus::Rejected => judged(HistoryStatus::Rejected, 0, reason),
                TapStatus::NotCharged if pass => judged(HistoryStatus::PassNotUsed, 0, reason),
                TapStatus::NotCharged => judged(HistoryStatus::NotCharged, 0, reason),
                TapStatus::Pending => unjudged(reason),
            }
        }
        (None, None) => unjudged(None),
    }
}

/// "re-rated" when a `fare_adjustment` changed the tap's stored fare.
fn rerated(s: Option<&SettledRow>) -> Option<String> {
    s.and_then(|s| s.detail.as_deref())
        .filter(|d| *d == crate::sync_store::RERATED)
        .map(str::to_string)
}

/// One history item from its row, at wallet time `t`.
fn history_item(row: HistoryRow, t: i64, lang: Lang) -> Result<HistoryItem, WalletError> {
    let kind = HistoryKind::parse(&row.kind).ok_or_else(|| WalletError::DatabaseCorrupt {
        message: format!("unknown history kind {:?}", row.kind),
    })?;
    let p = Position {
        major: row.major,
        minor: row.minor,
        id: row.id,
    };
    let (amount, authorized, judged, text, detail) = match kind {
        HistoryKind::Tap | HistoryKind::Pass => {
            let j = judge(&row, kind == HistoryKind::Pass, t);
            let amount = match j.status {
                HistoryStatus::NotSettled | HistoryStatus::PassShown => row.amount,
                HistoryStatus::PassNotUsed => 0,
                _ => j.charged.unwrap_or(0),
            };
            let text = text::status_text(j.status, row.amount, amount, j.reason.as_deref(), lang);
            let detail = if row.recovered {
                mancard_l10n::text(lang, "detail-recovered", &[])
            } else {
                String::new()
            };
            (amount, Some(row.amount), j, text, detail)
        }
        HistoryKind::Refusal | HistoryKind::TopUp => {
            let status = if kind == HistoryKind::Refusal {
                HistoryStatus::Refused
            } else {
                HistoryStatus::Credited
            };
            let j = Judged {
                status,
                charged: None,
                reason: None,
            };
            let text = text::status_text(status, row.amount, 0, None, lang);
            // a refusal is worded from its status word (English keeps the phone's sentence);
            // a top-up's detail is its reference
            let detail = match (kind, row.status_word, lang) {
                (HistoryKind::Refusal, Some(sw), l) if l != Lang::En => {
                    text::phone_refusal(u16::try_from(sw).unwrap_or(0x6F00), l)
                }
                (HistoryKind::TopUp, _, l) => text::credit_detail(&row.detail, l),
                _ => row.detail.clone(),
            };
            (row.amount, None, j, text, detail)
        }
    };
    Ok(HistoryItem {
        id: p.to_string(),
        time: row.time,
        kind,
        amount,
        authorized,
        charged: judged.charged,
        status: judged.status,
        reason: judged.reason,
        status_text: text,
        log_seq: if p.minor == 0 {
            u64::try_from(p.id).ok()
        } else {
            None
        },
        counter: to_u32(row.counter),
        line_id: to_u32(row.line_id),
        validator_id: to_u32(row.validator_id),
        status_word: row.status_word.and_then(|s| u16::try_from(s).ok()),
        detail,
    })
}

impl Wallet {
    fn allowance(&self, b: &CertificateBody, spent: i64, t: i64, tariff: &Tariff) -> Allowance {
        let next = self.counters().next.load(Ordering::Acquire);
        let amount_left = b.allowance.max_amount.saturating_sub(spent).max(0);
        let counters_left = u64::from(b.allowance.counter_last)
            .saturating_add(1)
            .saturating_sub(next.max(u64::from(b.allowance.counter_first)));
        let max_fare = self
            .config()
            .pass_max_amount
            .unwrap_or_else(|| tariff.max_fare(b.fare_class));
        let rides_by_amount = if max_fare > 0 {
            u64::try_from(amount_left / max_fare).unwrap_or(0)
        } else {
            u64::MAX
        };
        let rides = counters_left.min(rides_by_amount);
        let range = b.allowance.counters();
        let margin = self.config().replenish_below_rides;
        let counters_low = counters_low(counters_left, range, margin);
        let replenish_due = rides <= margin
            || counters_low
            || b.valid_until.saturating_sub(t) <= self.config().replenish_before_expiry_secs;
        Allowance {
            amount_left,
            counters_left,
            rides,
            counters_low,
            replenish_due,
        }
    }

    /// The credential's state and the "N rides / X available offline until T" line, at `now`
    /// (device clock; corrected by the server offset). N is the fewer of the rides the offline
    /// allowance pays for and the counters left.
    pub fn status(&self, now: i64) -> Result<WalletStatus, WalletError> {
        self.status_and_counters(now).map(|(s, _)| s)
    }

    /// [`Wallet::status`], and whether the certificate's counters are low (under a quarter of
    /// its range left, or no more than the ride margin): what the online layer replenishes for
    /// whatever the balance.
    pub(crate) fn status_and_counters(
        &self,
        now: i64,
    ) -> Result<(WalletStatus, bool), WalletError> {
        let t = self.corrected(now);
        let tariff = self.tariff();
        let locked = self.is_locked();
        let lang = self.language();
        let key_problem = self.key_problem();
        let (pending_request, current) = {
            let r = self.reader();
            let r = r.read();
            let current = match r.current_credential()? {
                Some(c) => Some((counted_spent(r, c.id, t)?, c)),
                None => None,
            };
            (r.has_pending_tap_key()?, current)
        };
        let Some((spent, c)) = current else {
            return Ok((no_credential(pending_request, locked, lang), false));
        };
        let cert = CredentialCertificate::decode(&c.certificate).map_err(|e| {
            WalletError::DatabaseCorrupt {
                message: format!("stored certificate: {e}"),
            }
        })?;
        let b = &cert.body;
        let a = self.allowance(b, spent, t, &tariff);
        let revoked = c.is_revoked().then(|| c.revoked_reason.clone());
        let (state, problem) = state_of(revoked, key_problem, b, t, &a, lang);
        let usable = matches!(
            state,
            CredentialState::Active | CredentialState::ReplenishDue
        );
        let summary = if usable {
            let rides = i64::try_from(a.rides).unwrap_or(i64::MAX);
            let args = [
                ("rides", Arg::Count(rides)),
                ("amount", Arg::Amount(a.amount_left)),
                (
                    "until",
                    Arg::DateTime(b.valid_until, tariff.utc_offset_secs),
                ),
            ];
            mancard_l10n::text(lang, "status-usable", &args)
        } else {
            let problem = Arg::Text(problem.clone().unwrap_or_default());
            mancard_l10n::text(lang, "status-not-usable", &[("problem", problem)])
        };
        let status = WalletStatus {
            state,
            fare_class: Some(b.fare_class.name().to_string()),
            valid_from: Some(b.valid_from),
            valid_until: Some(b.valid_until),
            rides_available: if usable { a.rides } else { 0 },
            amount_available: if usable { a.amount_left } else { 0 },
            counters_left: a.counters_left,
            replenish_due: a.replenish_due,
            pending_request,
            locked,
            cert_hash_hex: Some(hex::encode(cert.id())),
            summary,
            state_text: text::state_text(state, lang),
            problem,
        };
        Ok((status, a.counters_low))
    }

    /// Confirmed, pending and available balances; the offline allowance left now (the
    /// device clock corrected by the server offset: passes that are over no longer count).
    pub fn ledger(&self) -> Result<LedgerView, WalletError> {
        let t = self.corrected(now_utc());
        let r = self.reader();
        let r = r.read();
        let confirmed_balance: i64 = r.setting(settings::CONFIRMED_BALANCE)?.unwrap_or(0);
        let confirmed_at: Option<i64> = r.setting(settings::CONFIRMED_AT)?;
        let through: i64 = r.setting(settings::CONFIRMED_THROUGH_SEQ)?.unwrap_or(-1);
        let (pending_taps, pending_amount) = r.pending_after(through)?;
        let remaining = match r.active_certificate()? {
            Some((id, b)) => {
                let spent = counted_spent(r, id, t)?;
                CredentialCertificate::decode(&b)
                    .map(|c| c.body.allowance.max_amount.saturating_sub(spent).max(0))
                    .ok()
            }
            None => None,
        };
        Ok(LedgerView {
            confirmed_balance,
            confirmed_at,
            pending_taps: u64::try_from(pending_taps).unwrap_or(0),
            pending_amount,
            available_balance: confirmed_balance.saturating_sub(pending_amount),
            offline_allowance_remaining: remaining.unwrap_or(0),
        })
    }

    /// History, newest first: taps, passes, refusals and top-ups, each with its status (what
    /// the backend charged and why; a pass past its expiry as of the corrected clock and never
    /// charged is "not used"). `cursor` is the
    /// `next_cursor` of the previous page (or any item's `id`: the page then starts just after
    /// that item); None for the newest page. `limit` is clamped to 1–500.
    ///
    /// Taps and passes are read from the tap log itself (so the tap path writes one row);
    /// refusals and top-ups from the `events` table, placed by the log position they followed.
    pub fn history(&self, cursor: Option<String>, limit: u32) -> Result<HistoryPage, WalletError> {
        let limit = i64::from(limit.clamp(1, 500));
        let pos = match cursor.as_deref() {
            None => Position::TOP,
            Some(c) => Position::parse(c)
                .ok_or_else(|| WalletError::invalid(format!("not a history cursor: {c:?}")))?,
        };
        // Exact bounds for each stream: log entry s sits at (s + 1, 0, s); an event at
        // (after_seq, 1, id).
        let bounds = HistoryBounds {
            major: pos.major,
            minor: pos.minor,
            log_below: if pos.minor == 0 {
                pos.major - 1
            } else {
                pos.major
            },
            event_id_below: if pos.minor == 1 { pos.id } else { i64::MIN },
            limit: limit + 1,
        };
        let rows = self.reader().read().history_rows(&bounds)?;
        let t = self.corrected(now_utc());
        let lang = self.language();
        let mut items = Vec::new();
        let mut more = false;
        for row in rows {
            if items.len() as i64 == limit {
                more = true;
                break;
            }
            items.push(history_item(row, t, lang)?);
        }
        let next_cursor = if more {
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        Ok(HistoryPage { items, next_cursor })
    }
}

/// Where a history item sits: (major, minor, id), ordered; printed as "major.minor.id".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    major: i64,
    minor: i64,
    id: i64,
}

impl Position {
    const TOP: Self = Self {
        major: i64::MAX,
        minor: 1,
        id: i64::MAX,
    };

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        let p = Self {
            major: it.next()?.parse().ok()?,
            minor: it.next()?.parse().ok()?,
            id: it.next()?.parse().ok()?,
        };
        (it.next().is_none() && (p.minor == 0 || p.minor == 1) && p.major >= 0).then_some(p)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::counters_low;

    #[test]
    fn counters_are_low_under_a_quarter_of_the_range_or_within_the_margin() {
        assert!(!counters_low(256, 1_024, 4));
        assert!(counters_low(255, 1_024, 4));
        assert!(!counters_low(6, 24, 4));
        assert!(counters_low(5, 24, 4));
        assert!(counters_low(4, 8, 4));
        assert!(!counters_low(5, 8, 4));
    }
}
