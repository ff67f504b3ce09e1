//! Accounts: one-time codes by SMS (sandbox: logged and readable), logging in, the account
//! view. Sessions themselves (binding, proofs, listing, ending, purging) are in `sessions`.
//!
//! A stranger must not be able to lock a rider out:
//! - every code request gets its own code and a `request_id` only its requester sees; a
//!   login names its request, and a wrong guess counts only against that request's code. A
//!   stranger guessing at a number burns the stranger's own codes, never the rider's;
//! - a new code never ends the older live ones;
//! - code sends are paced per number and client address (a burst of 3, then one per two
//!   minutes) inside a looser pace per number (a burst of 6, then one per 30 s; the SMS a
//!   number can be bombed with). One address gets at most a quarter of the number's pace, so
//!   a stranger at one address leaves the rider a fresh code within the number's interval.
//!
//! Codes are 8 digits: what bounds guessing is the number's pace (at most 3 guesses per code
//! sent), worked out in ADR 0010.

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

/// Digits of a one-time code.
pub const CODE_DIGITS: usize = 8;

fn request_hash(request_id: &str) -> [u8; 32] {
    sha256(&[b"MANCARD-OTP-REQUEST-v1\0", request_id.as_bytes()])
}

/// A request id as the client sent it: 32 lowercase hex characters, else `InvalidRequestId`.
fn parse_request_id(raw: &str) -> Result<[u8; 32]> {
    let id = raw.trim();
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::InvalidRequestId);
    }
    Ok(request_hash(id))
}

impl Engine {
    /// Sends (sandbox: logs) a one-time code to a phone number, asked for from client
    /// address `from` (the edge's key of the address: IPv4, or an IPv6 /64).
    pub fn request_otp(&self, req: &OtpRequest, from: &str) -> Result<OtpResponse> {
        let phone = normalize_phone(&req.phone)?;
        let p = &self.config().policy;
        let now = self.now();
        let n: [u8; 8] = random()?;
        let code = format!("{:08}", u64::from_be_bytes(n) % 100_000_000);
        let request_id = hex::encode(random::<16>()?);
        let expires_at = now.saturating_add(p.otp_ttl_secs);
        self.store.write(|tx| -> Result<()> {
            self.pace_code_send(tx, &phone, from, now)?;
            tx.insert_otp(
                &phone,
                &request_hash(&request_id),
                &otp_hash(&phone, &code),
                // the code itself is kept only in sandbox mode (for /sandbox/otp)
                self.config().sandbox.then_some(code.as_str()),
                now,
                expires_at,
            )?;
            Ok(())
        })?;
        self.send_code(&phone, &code)?;
        Ok(OtpResponse {
            phone,
            expires_at,
            request_id,
        })
    }

    /// Paces code sends (GCRA) to one number from one address, and to one number from
    /// everyone. A refused request changes neither, so hammering does not push the next
    /// allowed send further away.
    pub(crate) fn pace_code_send(
        &self,
        tx: &Writer<'_>,
        phone: &str,
        from: &str,
        now: i64,
    ) -> Result<()> {
        let p = &self.config().policy;
        let pair = gcra(
            tx.otp_pair_sender_next(phone, from)?,
            now,
            p.otp_pair_send_interval_secs,
            p.otp_pair_send_burst,
        );
        let number = gcra(
            tx.otp_sender_next(phone)?,
            now,
            p.otp_send_interval_secs,
            p.otp_send_burst,
        );
        let (pair_next, number_next) = match (pair, number) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(wait), _) => {
                return Err(Error::RetryLater {
                    detail: "codes were just sent to this number from here; wait for them or \
                             ask again later",
                    retry_after: wait,
                })
            }
            (_, Err(wait)) => {
                return Err(Error::RetryLater {
                    detail: "a code was just sent to this number; wait for it or ask again",
                    retry_after: wait,
                })
            }
        };
        tx.set_otp_pair_sender_next(phone, from, pair_next)?;
        tx.set_otp_sender_next(phone, number_next)?;
        Ok(())
    }

    /// Sandbox only: the live code of a phone number (of one request if named).
    pub fn sandbox_otp(&self, phone: &str, request_id: Option<&str>) -> Result<SandboxOtp> {
        if !self.config().sandbox {
            return Err(Error::NoSuchEndpoint);
        }
        let phone = normalize_phone(phone)?;
        let request = request_id.map(parse_request_id).transpose()?;
        let now = self.now();
        let live = self
            .store
            .read(|tx| tx.sandbox_otp(&phone, request.as_ref(), now))?
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
        if code.len() != CODE_DIGITS || !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::InvalidCode);
        }
        let request = parse_request_id(&req.request_id)?;
        let p = &self.config().policy;
        let now = self.now();
        let token = hex::encode(random::<32>()?);
        let th = token_hash(&token);
        let public_id = hex::encode(random::<16>()?);
        let expires_at = now.saturating_add(p.session_ttl_secs);
        // Wrong-code attempts are committed even though the request fails.
        let outcome = self.store.write(|tx| -> Result<Result<AccountId>> {
            let h = otp_hash(&phone, code);
            let live = tx.live_otp(&phone, &request, now)?;
            if live
                .as_ref()
                .is_none_or(|l| l.code_hash.as_slice() != h.as_slice())
                && tx.is_live_code(&phone, &h, now)?
            {
                // The code of another live request of this number: whoever typed it read an
                // SMS sent to the number (a stranger's request, or the rider's own earlier
                // one), so it is not a guess and costs the named request nothing.
                return Ok(Err(Error::CodeOfAnotherRequest));
            }
            let Some(live) = live else {
                return Ok(Err(Error::Unauthorized(
                    "no live code for this request (expired, used, or killed by wrong \
                     guesses); request a new code",
                )));
            };
            if live.code_hash.as_slice() != h.as_slice() {
                tx.otp_failed_attempt(live.id, now, p.otp_max_attempts.max(1))?;
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

/// One GCRA step: the stored theoretical arrival time `stored` (`None`: nothing recent), one
/// send per `interval` seconds after a burst of `burst`. `Ok`: allowed, with the time to
/// store; `Err`: seconds to wait.
fn gcra(stored: Option<i64>, now: i64, interval: i64, burst: i64) -> std::result::Result<i64, u64> {
    let interval = interval.max(1);
    let burst = burst.max(1);
    let tat = stored.unwrap_or(now).max(now);
    let allowed_at = tat.saturating_sub(interval.saturating_mul(burst - 1));
    if allowed_at > now {
        return Err(u64::try_from(allowed_at - now).unwrap_or(1));
    }
    Ok(tat.saturating_add(interval))
}
