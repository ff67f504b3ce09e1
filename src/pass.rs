//! QR boarding passes.

use crate::error::WalletError;
use crate::hce::LogWrite;
use crate::qr::{QrMatrix, MAX_QR_VERSION};
use crate::types::BoardingPassQr;
use crate::wallet::{Active, LastPass, Wallet};
use mancard_protocol::{
    check_validity, PassBody, SigningKey, TapProof, DEFAULT_PASS_LIFETIME_SECS,
};

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
        let (active, key) = usable(ws.active.as_ref())?;
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
        let remaining = active.remaining();
        if max_amount > remaining {
            return Err(WalletError::AllowanceExhausted {
                needed: max_amount,
                remaining,
            });
        }
        let counter = self
            .next_counter_for(ws.next_counter, active)
            .map_err(|_| WalletError::CountersExhausted)?;
        self.ensure_reserved(counter)
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
            message: "the ticket has been revoked".into(),
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
