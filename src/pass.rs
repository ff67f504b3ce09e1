//! QR boarding passes, and what they hold against the offline allowance.
//!
//! A pass reserves its maximum amount when it is made. A validator may accept it until its
//! expiry plus the clock skew of the time rules; after that nobody can scan it any more, and
//! unless the backend says it was charged its reservation is released: the wallet's offline
//! spendable amount no longer counts it (the backend charges a pass only when a validator
//! reports it, and its over-allowance check counts NFC authorizations only, so this never makes
//! an honest phone look like fraud). A charged pass counts what it was charged. NFC
//! authorizations always count in full.

use crate::error::WalletError;
use crate::hce::LogWrite;
use crate::qr::{QrMatrix, MAX_QR_VERSION};
use crate::store::{PassHold, Read};
use crate::types::BoardingPassQr;
use crate::wallet::{Active, LastPass, Wallet, WriterState};
use mancard_api::{TapStatus, VerdictStatus};
use mancard_protocol::{
    check_validity, PassBody, SigningKey, TapProof, TimeRules, WalletLogEntry,
    DEFAULT_PASS_LIFETIME_SECS,
};

/// Seconds after its expiry during which a validator may still accept a pass: the protocol's
/// default clock skew (the same everywhere in the wallet, so that the status, the history and
/// the pass path agree on when a pass is over).
pub(crate) fn pass_grace_secs() -> i64 {
    i64::from(TimeRules::default().clock_skew_secs)
}

/// The end of validity of the pass in a log entry (issue time + lifetime, server-corrected
/// UTC seconds); None if the entry is not a pass or does not decode.
pub(crate) fn pass_expiry(entry: &[u8]) -> Option<i64> {
    match WalletLogEntry::decode(entry).ok()?.proof {
        TapProof::Qr { pass } => Some(
            pass.body
                .issued_at
                .saturating_add(i64::from(pass.body.lifetime_secs)),
        ),
        TapProof::Nfc { .. } => None,
    }
}

/// Whether a pass that expired at `expiry` can no longer be scanned at wallet time `t`.
pub(crate) fn pass_is_over(expiry: Option<i64>, t: i64) -> bool {
    expiry.is_some_and(|e| t > e.saturating_add(pass_grace_secs()))
}

/// What the backend charges for a pass, if it says it was charged: the newest verdict of the
/// feed, else (a backend without the feed) the answer to its upload.
pub(crate) fn pass_charge(
    verdict: Option<(VerdictStatus, i64)>,
    settled: Option<(TapStatus, Option<i64>)>,
) -> Option<i64> {
    match (verdict, settled) {
        (Some((VerdictStatus::Charged | VerdictStatus::Fraud, charged)), _) => Some(charged),
        (Some(_), _) => None,
        (None, Some((TapStatus::Settled | TapStatus::Duplicate, fare))) => fare,
        (None, _) => None,
    }
}

/// What one pass holds against the allowance at wallet time `t`.
fn pass_hold(p: &PassHold, t: i64) -> i64 {
    match pass_charge(p.verdict, p.settled) {
        Some(charged) => charged,
        None if pass_is_over(pass_expiry(&p.entry), t) => 0,
        None => p.amount,
    }
}

/// Rials counted against credential `id`'s offline allowance at wallet time `t`.
pub(crate) fn counted_spent(r: Read<'_>, id: i64, t: i64) -> Result<i64, WalletError> {
    let s = r.spending(id)?;
    Ok(s.passes
        .iter()
        .fold(s.nfc, |sum, p| sum.saturating_add(pass_hold(p, t))))
}

impl Wallet {
    /// Recounts what the installed credential has spent at wallet time `t`, releasing the
    /// reservations of passes that are over (and counting what charged passes were charged).
    /// The tap path keeps the count in memory and only adds to it; this brings it down again.
    pub(crate) fn release_expired_passes(
        &self,
        ws: &mut WriterState,
        t: i64,
    ) -> Result<(), WalletError> {
        let Some(id) = ws.active.as_ref().map(|a| a.id) else {
            return Ok(());
        };
        let spent = counted_spent(ws.db.read(), id, t)?;
        if let Some(a) = ws.active.as_mut() {
            a.spent = spent;
        }
        Ok(())
    }

    /// Whether a pass of `max_amount` fits in what the installed credential has left at `t`:
    /// if it does not seem to, passes that are over may still be counted, so recount first.
    fn check_reserve(
        &self,
        ws: &mut WriterState,
        max_amount: i64,
        t: i64,
    ) -> Result<(), WalletError> {
        if ws
            .active
            .as_ref()
            .is_some_and(|a| max_amount > a.remaining())
        {
            self.release_expired_passes(ws, t)?;
        }
        let remaining = ws.active.as_ref().map_or(0, Active::remaining);
        if max_amount > remaining {
            return Err(WalletError::AllowanceExhausted {
                needed: max_amount,
                remaining,
            });
        }
        Ok(())
    }
}

impl Wallet {
    /// A boarding pass to show as a QR code, at `now` (device clock, UTC seconds; corrected by
    /// the stored server offset). A pass uses a counter like a tap, continues the signed tap
    /// chain, and reserves its maximum amount (the tariff's highest fare for the fare class, or
    /// the configured amount) against the offline allowance. Its lifetime is the configured one
    /// but never more than the config bundle allows (without a bundle, the protocol's default).
    /// Until `refresh_at` the same pass is returned again (no new counter); after it, a new one
    /// is made.
    pub fn boarding_pass(&self, now: i64) -> Result<BoardingPassQr, WalletError> {
        if self.is_locked() {
            return Err(WalletError::Locked);
        }
        let offset = self.server_time_offset();
        let t = now.saturating_add(offset);
        let tariff = self.tariff();
        let mut ws = self.writer();
        let (active, _) = usable(ws.active.as_ref())?;
        check_validity(&active.cert, t).map_err(|e| WalletError::CredentialNotValid {
            message: e.to_string(),
            revoked: false,
        })?;
        if let Some(last) = &ws.last_pass {
            if last.credential_id == active.id
                && (last.qr.issued_at..last.refresh_at_corrected).contains(&t)
            {
                return Ok(last.qr.clone());
            }
        }
        let max_amount = self
            .config()
            .pass_max_amount
            .unwrap_or_else(|| tariff.max_fare(active.cert.body.fare_class));
        self.check_reserve(&mut ws, max_amount, t)?;
        let (active, key) = usable(ws.active.as_ref())?;
        let counter = self
            .next_counter_for(ws.next_counter, active)
            .map_err(|_| WalletError::CountersExhausted)?;
        self.ensure_reserved(counter, false)
            .map_err(|r| WalletError::storage(r.reason))?;
        let max_lifetime = ws.bundle.as_ref().map_or(DEFAULT_PASS_LIFETIME_SECS, |b| {
            b.body.time_rules.max_pass_lifetime_secs
        });
        let lifetime = self
            .config()
            .pass_lifetime_secs
            .clamp(1, max_lifetime.max(1));
        let pass = PassBody {
            certificate: active.cert.clone(),
            counter,
            issued_at: t,
            lifetime_secs: lifetime,
            fare_class: active.cert.body.fare_class,
            max_amount,
            prev: ws.log.expected_prev(&active.hash),
        }
        .sign(key)
        .map_err(|e| WalletError::internal(format!("signing failed: {e}")))?;
        let text = pass.to_text();
        let credential_id = active.id;
        self.commit_log(
            &mut ws,
            LogWrite {
                credential_id,
                proof: TapProof::Qr { pass },
                amount: max_amount,
                time: t,
                line_id: None,
                validator_id: None,
            },
            counter,
        )?;
        drop(ws);
        // no field will drop after a pass: park the counter after the quiet period all the same
        self.counters().touch();
        self.request_quiet();
        let (qr, refresh_corrected) = render(text, counter, t, lifetime, offset, max_amount)?;
        let mut ws = self.writer();
        if ws.next_counter == u64::from(counter).saturating_add(1) {
            ws.last_pass = Some(LastPass {
                credential_id,
                qr: qr.clone(),
                refresh_at_corrected: refresh_corrected,
            });
        }
        Ok(qr)
    }
}

/// The installed credential and its tap key, if a pass can be made with them.
fn usable(active: Option<&Active>) -> Result<(&Active, &SigningKey), WalletError> {
    let active = active.ok_or(WalletError::NoCredential)?;
    if active.revoked {
        return Err(WalletError::CredentialNotValid {
            message: crate::text::revoked_refusal(active.revoked_reason.as_deref()),
            revoked: true,
        });
    }
    let key = active
        .key
        .as_ref()
        .ok_or_else(|| WalletError::KeyUnavailable {
            message: active
                .key_problem
                .clone()
                .unwrap_or_else(|| "the tap key is not loaded".into()),
        })?;
    Ok((active, key))
}

/// The pass's QR code and its times: it expires after `lifetime` seconds and is refreshed a
/// quarter of the lifetime early (so a scanner always sees a valid pass); `refresh_at` is on
/// the device clock (`offset` removed). Also returns the server-corrected refresh time.
fn render(
    text: String,
    counter: u32,
    t: i64,
    lifetime: u16,
    offset: i64,
    max_amount: i64,
) -> Result<(BoardingPassQr, i64), WalletError> {
    let matrix = QrMatrix::encode(&text)?;
    if matrix.version > MAX_QR_VERSION {
        return Err(WalletError::internal(format!(
            "the pass needs QR version {}, above the budget of {MAX_QR_VERSION}",
            matrix.version
        )));
    }
    let expires_at = t.saturating_add(i64::from(lifetime));
    let refresh_corrected = expires_at.saturating_sub(i64::from(lifetime / 4));
    let qr = BoardingPassQr {
        text,
        matrix,
        counter,
        issued_at: t,
        expires_at,
        refresh_at: refresh_corrected.saturating_sub(offset),
        max_amount,
    };
    Ok((qr, refresh_corrected))
}
