//! Accounts: one-time codes by SMS (sandbox: logged and readable), sessions, the account view.

use crate::engine::{random, Engine};
use crate::error::{Error, Result};
use crate::ids::AccountId;
use mancard_api::{
    AccountResponse, OtpRequest, OtpResponse, SandboxOtp, SessionRequest, SessionResponse,
};
use mancard_protocol::sha256;

/// Normalizes a phone number to `+<digits>`.
pub fn normalize_phone(raw: &str) -> Result<String> {
    let s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let (plus, digits) = match s.strip_prefix('+') {
        Some(d) => (true, d.to_string()),
        None => (false, s.clone()),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidPhone(
            "a phone number is digits, optionally after a leading +",
        ));
    }
    let digits = if !plus && digits.len() == 11 && digits.starts_with("09") {
        format!("98{}", digits.get(1..).unwrap_or_default())
    } else {
        digits
    };
    if !(8..=15).contains(&digits.len()) {
        return Err(Error::InvalidPhone("a phone number has 8 to 15 digits"));
    }
    Ok(format!("+{digits}"))
}

fn otp_hash(phone: &str, code: &str) -> [u8; 32] {
    sha256(&[
        b"MANCARD-OTP-v1\0",
        phone.as_bytes(),
        b"\0",
        code.as_bytes(),
    ])
}

fn token_hash(token: &str) -> [u8; 32] {
    sha256(&[b"MANCARD-SESSION-v1\0", token.as_bytes()])
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
        self.store.write(|tx| {
            if tx.otp_count_since(&phone, now - 3600)? >= p.otp_max_per_hour {
                return Err(Error::RateLimited(
                    "too many codes requested for this number; try again later",
                ));
            }
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
        let expires_at = now.saturating_add(p.session_ttl_secs);
        // Wrong-code attempts are committed even though the request fails.
        let outcome = self.store.write(|tx| -> Result<Result<AccountId>> {
            let Some(otp) = tx.live_otp(&phone, now)? else {
                return Ok(Err(Error::Unauthorized(
                    "no live code for this number (expired, used or never sent)",
                )));
            };
            if otp.attempts >= p.otp_max_attempts {
                return Ok(Err(Error::RateLimited(
                    "too many wrong codes; request a new code",
                )));
            }
            if otp.code_hash != otp_hash(&phone, code) {
                tx.otp_failed_attempt(otp.id)?;
                return Ok(Err(Error::Unauthorized("wrong code")));
            }
            tx.otp_mark_used(otp.id, now)?;
            let account_id = match tx.account_by_phone(&phone)? {
                Some(a) => a.id,
                None => tx.create_account(&phone, now)?,
            };
            tx.insert_session(&th, account_id, now, expires_at)?;
            Ok(Ok(account_id))
        })?;
        let account_id = outcome?;
        Ok(SessionResponse {
            token,
            account_id: account_id.0,
            expires_at,
        })
    }

    /// The account of a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<AccountId> {
        if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Unauthorized("malformed bearer token"));
        }
        let now = self.now();
        self.store
            .read(|tx| tx.session_account(&token_hash(token), now))?
            .ok_or(Error::Unauthorized("unknown or expired session"))
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
