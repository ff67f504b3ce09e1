//! Accounts: one-time codes by SMS (sandbox: logged and readable), logging in, the account
//! view. Sessions themselves (binding, proofs, listing, ending, purging) are in `sessions`.
//!
//! A stranger must not be able to lock a rider out: a new code never ends the older live ones
//! (a stranger's request cannot kill the code the rider is typing), code sends to one number are
//! paced (one a minute after a burst of three, [`Engine::pace_code_send`]) instead of capped per
//! hour, and a wrong guess only kills codes (each survives `otp_max_attempts` wrong guesses), so
//! the rightful rider can always get a fresh code within a minute. The guessing bound this
//! leaves is worked out in the ADR notes of issue #15.

use super::phone;
use super::sessions::token_hash;
use crate::engine::{random, Engine};
use crate::error::{Error, Result};
use crate::ids::AccountId;
use crate::store::Writer;
use mancard_api::{
    AccountResponse, OtpRequest, OtpResponse, SandboxOtp, SessionRequest, SessionResponse,
};
use mancard_protocol::sha256;

fn otp_hash(phone: &str, code: &str) -> [u8; 32] {
    sha256(&[
        b"MANCARD-OTP-v1\0",
        phone.as_bytes(),
        b"\0",
        code.as_bytes(),
    ])
}

/// Normalizes a phone number to E.164 (see [`phone::normalize_phone`]).
pub fn normalize_phone(raw: &str) -> Result<String> {
    phone::normalize_phone(raw)
}

impl Engine {
    /// Sends (sandbox: logs) a one-time code to a phone number.
    pub fn request_otp(&self, req: &OtpRequest) -> Result<OtpResponse> {
        let phone = normalize_phone(&req.phone)?;
        let p = &self.config().policy;
        let now = self.now();
        let n: [u8; 4] = random()?;
        let code = format!("{:06}", u32::from_be_bytes(n) % 1_000_000);
        let expires_at = now.saturating_add(p.otp_ttl_secs);
        self.store.write(|tx| -> Result<()> {
            self.pace_code_send(tx, &phone, now)?;
            tx.insert_otp(
                &phone,
                &otp_hash(&phone, &code),
                // the code itself is kept only in sandbox mode (for /sandbox/otp)
                self.config().sandbox.then_some(code.as_str()),
                now,
                expires_at,
            )?;
            Ok(())
        })?;
        self.send_code(&phone, &code)?;
        Ok(OtpResponse { phone, expires_at })
    }

    /// Paces code sends to one number (GCRA: one per `otp_send_interval_secs` on average,
    /// bursts of `otp_send_burst`). A refused request changes nothing, so hammering it does not
    /// push the next allowed send further away: whoever asked before, the rider waits at most
    /// one interval for a fresh code.
    pub(crate) fn pace_code_send(&self, tx: &Writer<'_>, phone: &str, now: i64) -> Result<()> {
        let p = &self.config().policy;
        let interval = p.otp_send_interval_secs.max(1);
        let burst = p.otp_send_burst.max(1);
        let tat = tx.otp_sender_next(phone)?.unwrap_or(now).max(now);
        let allowed_at = tat.saturating_sub(interval.saturating_mul(burst - 1));
        if allowed_at > now {
            return Err(Error::RetryLater {
                detail: "a code was just sent to this number; wait for it or ask again",
                retry_after: u64::try_from(allowed_at - now).unwrap_or(1),
            });
        }
        tx.set_otp_sender_next(phone, tat.saturating_add(interval))?;
        Ok(())
    }

    /// Sandbox only: the live code of a phone number.
    pub fn sandbox_otp(&self, phone: &str) -> Result<SandboxOtp> {
        if !self.config().sandbox {
            return Err(Error::NoSuchEndpoint);
        }
        let phone = normalize_phone(phone)?;
        let now = self.now();
        let live = self
            .store
            .read(|tx| tx.sandbox_otp(&phone, now))?
            .ok_or(Error::NoCode)?;
        Ok(SandboxOtp {
            phone,
            code: live.code,
            expires_at: live.expires_at,
        })
    }

    /// Exchanges a one-time code for a session (creating the account on first login).
    pub fn create_session(&self, req: &SessionRequest) -> Result<SessionResponse> {
        let phone = normalize_phone(&req.phone)?;
        let code = req.code.trim();
        if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::InvalidCode);
        }
        let p = &self.config().policy;
        let now = self.now();
        let token = hex::encode(random::<32>()?);
        let th = token_hash(&token);
        let public_id = hex::encode(random::<16>()?);
        let expires_at = now.saturating_add(p.session_ttl_secs);
        // Wrong-code attempts are committed even though the request fails.
        let outcome = self.store.write(|tx| -> Result<Result<AccountId>> {
            let live = tx.live_otps(&phone, now)?;
            if live.is_empty() {
                return Ok(Err(Error::Unauthorized(
                    "no live code for this number (expired, used, or killed by wrong guesses); \
                     request a new code",
                )));
            }
            let h = otp_hash(&phone, code);
            if !live.iter().any(|o| o.code_hash == h) {
                tx.otp_failed_attempt(&phone, now, p.otp_max_attempts.max(1))?;
                return Ok(Err(Error::Unauthorized("wrong code")));
            }
            tx.otp_end_all(&phone, now)?;
            let account_id = match tx.account_by_phone(&phone)? {
                Some(a) => a.id,
                None => tx.create_account(&phone, now)?,
            };
            tx.insert_session(&th, &public_id, account_id, now, expires_at)?;
            Ok(Ok(account_id))
        })?;
        let account_id = outcome?;
        Ok(SessionResponse {
            token,
            account_id: account_id.0,
            expires_at,
        })
    }

    /// The account and its confirmed balance.
    pub fn account(&self, account_id: impl Into<AccountId>) -> Result<AccountResponse> {
        let account_id = account_id.into();
        let now = self.now();
        self.store.read(|tx| {
            let a = tx.account(account_id)?.ok_or(Error::UnknownAccount)?;
            Ok(AccountResponse {
                account_id: account_id.0,
                phone: a.phone,
                fare_class: a.fare_class.name().to_string(),
                balance: tx.balance(account_id)?,
                server_time: now,
            })
        })
    }
}
