//! Accounts and their one-time codes.

use super::db::{named_params, Row};
use super::ids::fare_class;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;
use mancard_protocol::FareClass;

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub phone: String,
    pub fare_class: FareClass,
}

/// A stored one-time code.
#[derive(Debug, Clone)]
pub struct OtpRow {
    pub id: i64,
    pub code_hash: Vec<u8>,
    pub attempts: i64,
    pub expires_at: i64,
}

/// A live code in clear (sandbox only).
#[derive(Debug, Clone)]
pub struct SandboxCode {
    pub code: String,
    pub expires_at: i64,
}

fn account_row(r: &Row<'_>) -> Result<Account, StoreError> {
    Ok(Account {
        id: r.get("id")?,
        phone: r.get("phone")?,
        fare_class: fare_class(r, "fare_class")?,
    })
}

impl Reader<'_> {
    pub fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError> {
        self.conn.query_opt(
            "SELECT id, phone, fare_class FROM accounts WHERE phone = :phone",
            named_params! {":phone": phone},
            account_row,
        )
    }

    pub fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.conn.query_opt(
            "SELECT id, phone, fare_class FROM accounts WHERE id = :id",
            named_params! {":id": id},
            account_row,
        )
    }

    /// Every account id, ascending.
    pub fn account_ids(&self) -> Result<Vec<AccountId>, StoreError> {
        self.conn.query_vec(
            "SELECT id FROM accounts ORDER BY id",
            named_params! {},
            |r| r.get("id"),
        )
    }

    /// The live (unused, unexpired) code of one code request of a phone number.
    pub fn live_otp(
        &self,
        phone: &str,
        request_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<OtpRow>, StoreError> {
        self.conn.query_opt(
            "SELECT id, code_hash, attempts, expires_at FROM otp_codes
             WHERE request_hash = :request AND phone = :phone
               AND used_at IS NULL AND expires_at >= :now",
            named_params! {":phone": phone, ":request": &request_hash[..], ":now": now},
            |r| {
                Ok(OtpRow {
                    id: r.get("id")?,
                    code_hash: r.get("code_hash")?,
                    attempts: r.get("attempts")?,
                    expires_at: r.get("expires_at")?,
                })
            },
        )
    }

    /// Whether `code_hash` is the code of any live request of the number.
    pub fn is_live_code(
        &self,
        phone: &str,
        code_hash: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 AS hit FROM otp_codes
                 WHERE phone = :phone AND code_hash = :code
                   AND used_at IS NULL AND expires_at >= :now
                 LIMIT 1",
                named_params! {":phone": phone, ":code": &code_hash[..], ":now": now},
                |r| r.get::<i64>("hit"),
            )?
            .is_some())
    }

    /// When the next code may be sent to a phone number at the earliest, plus the burst
    /// allowance (GCRA's theoretical arrival time); `None`: no recent send.
    pub fn otp_sender_next(&self, phone: &str) -> Result<Option<i64>, StoreError> {
        self.conn.query_opt(
            "SELECT next_at FROM otp_senders WHERE phone = :phone",
            named_params! {":phone": phone},
            |r| r.get("next_at"),
        )
    }

    /// The earliest next send to a phone number from one client address plus its burst
    /// allowance (GCRA); `None`: no recent send from there.
    pub fn otp_pair_sender_next(
        &self,
        phone: &str,
        address: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.conn.query_opt(
            "SELECT next_at FROM otp_pair_senders WHERE phone = :phone AND address = :address",
            named_params! {":phone": phone, ":address": address},
            |r| r.get("next_at"),
        )
    }

    /// Sandbox only: the live code of a phone number in clear (of one request if given,
    /// else the newest).
    pub fn sandbox_otp(
        &self,
        phone: &str,
        request_hash: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<Option<SandboxCode>, StoreError> {
        self.conn.query_opt(
            "SELECT sandbox_code, expires_at FROM otp_codes
                 WHERE phone = :phone AND used_at IS NULL AND expires_at >= :now
                   AND sandbox_code IS NOT NULL
                   AND (request_hash = :request OR :request IS NULL)
                 ORDER BY id DESC LIMIT 1",
            named_params! {
                ":phone": phone,
                ":now": now,
                ":request": request_hash.map(|h| &h[..]),
            },
            |r| {
                Ok(SandboxCode {
                    code: r.get("sandbox_code")?,
                    expires_at: r.get("expires_at")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    pub fn create_account(&self, phone: &str, now: i64) -> Result<AccountId, StoreError> {
        self.tx.query_one(
            "INSERT INTO accounts (phone, created_at) VALUES (:phone, :now) RETURNING id",
            named_params! {":phone": phone, ":now": now},
            |r| r.get("id"),
        )
    }

    /// Stores a new code of one request (the older live ones of the number stay live).
    pub fn insert_otp(
        &self,
        phone: &str,
        request_hash: &[u8; 32],
        code_hash: &[u8; 32],
        sandbox_code: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO otp_codes
                 (phone, request_hash, code_hash, sandbox_code, created_at, expires_at)
             VALUES (:phone, :request, :code_hash, :sandbox_code, :now, :expires_at)",
            named_params! {
                ":phone": phone,
                ":request": &request_hash[..],
                ":code_hash": &code_hash[..],
                ":sandbox_code": sandbox_code,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    /// Counts a wrong guess against one code; the code dies (marked used) at its
    /// `max_attempts`th wrong guess.
    pub fn otp_failed_attempt(
        &self,
        id: i64,
        now: i64,
        max_attempts: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET attempts = attempts + 1,
                 used_at = CASE WHEN attempts + 1 >= :max THEN :now ELSE used_at END
             WHERE id = :id AND used_at IS NULL",
            named_params! {":id": id, ":now": now, ":max": max_attempts},
        )?;
        Ok(())
    }

    /// Sets when the next code may be sent to a phone number from one client address.
    pub fn set_otp_pair_sender_next(
        &self,
        phone: &str,
        address: &str,
        next_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO otp_pair_senders (phone, address, next_at)
             VALUES (:phone, :address, :next)
             ON CONFLICT(phone, address) DO UPDATE SET next_at = excluded.next_at",
            named_params! {":phone": phone, ":address": address, ":next": next_at},
        )?;
        Ok(())
    }

    /// Sets when the next code may be sent (see [`Reader::otp_sender_next`]).
    pub fn set_otp_sender_next(&self, phone: &str, next_at: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO otp_senders (phone, next_at) VALUES (:phone, :next)
             ON CONFLICT(phone) DO UPDATE SET next_at = excluded.next_at",
            named_params! {":phone": phone, ":next": next_at},
        )?;
        Ok(())
    }

    /// Ends every live code of a phone number (after a successful login).
    pub fn otp_end_all(&self, phone: &str, now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET used_at = :now WHERE phone = :phone AND used_at IS NULL",
            named_params! {":phone": phone, ":now": now},
        )?;
        Ok(())
    }

    pub fn otp_mark_used(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET used_at = :now WHERE id = :id",
            named_params! {":id": id, ":now": now},
        )?;
        Ok(())
    }
}
