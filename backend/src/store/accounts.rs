//! Accounts and their one-time codes.

use super::ids::fare_class;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;
use mancard_protocol::FareClass;
use rusqlite::{named_params, OptionalExtension, Row};

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

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get("id")?,
        phone: r.get("phone")?,
        fare_class: fare_class(r, "fare_class")?,
    })
}

impl Reader<'_> {
    pub fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, phone, fare_class FROM accounts WHERE phone = :phone")?
            .query_row(named_params! {":phone": phone}, account_row)
            .optional()?)
    }

    pub fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, phone, fare_class FROM accounts WHERE id = :id")?
            .query_row(named_params! {":id": id}, account_row)
            .optional()?)
    }

    /// Every account id, ascending.
    pub fn account_ids(&self) -> Result<Vec<AccountId>, StoreError> {
        let mut st = self.conn.prepare("SELECT id FROM accounts ORDER BY id")?;
        let rows = st.query_map([], |r| r.get("id"))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Codes sent to a phone number since `since`.
    pub fn otp_count_since(&self, phone: &str, since: i64) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) AS n FROM otp_codes WHERE phone = :phone AND created_at >= :since",
            named_params! {":phone": phone, ":since": since},
            |r| r.get("n"),
        )?)
    }

    /// The unused, unexpired codes of a phone number, newest first (a new code does not end
    /// the older ones: a stranger's request must not kill the code the rider is typing).
    pub fn live_otps(&self, phone: &str, now: i64) -> Result<Vec<OtpRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, code_hash, attempts, expires_at FROM otp_codes
             WHERE phone = :phone AND used_at IS NULL AND expires_at >= :now
             ORDER BY id DESC",
        )?;
        let rows = st.query_map(named_params! {":phone": phone, ":now": now}, |r| {
            Ok(OtpRow {
                id: r.get("id")?,
                code_hash: r.get("code_hash")?,
                attempts: r.get("attempts")?,
                expires_at: r.get("expires_at")?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next code may be sent to a phone number at the earliest, plus the burst
    /// allowance (GCRA's theoretical arrival time); `None`: no recent send.
    pub fn otp_sender_next(&self, phone: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT next_at FROM otp_senders WHERE phone = :phone")?
            .query_row(named_params! {":phone": phone}, |r| r.get("next_at"))
            .optional()?)
    }

    /// Sandbox only: the live code of a phone number in clear.
    pub fn sandbox_otp(&self, phone: &str, now: i64) -> Result<Option<SandboxCode>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sandbox_code, expires_at FROM otp_codes
                 WHERE phone = :phone AND used_at IS NULL AND expires_at >= :now
                   AND sandbox_code IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                named_params! {":phone": phone, ":now": now},
                |r| {
                    Ok(SandboxCode {
                        code: r.get("sandbox_code")?,
                        expires_at: r.get("expires_at")?,
                    })
                },
            )
            .optional()?)
    }
}

impl Writer<'_> {
    pub fn create_account(&self, phone: &str, now: i64) -> Result<AccountId, StoreError> {
        self.tx.execute(
            "INSERT INTO accounts (phone, created_at) VALUES (:phone, :now)",
            named_params! {":phone": phone, ":now": now},
        )?;
        Ok(AccountId(self.tx.last_insert_rowid()))
    }

    /// Stores a new code (the older live ones of the number stay live).
    pub fn insert_otp(
        &self,
        phone: &str,
        code_hash: &[u8; 32],
        sandbox_code: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO otp_codes (phone, code_hash, sandbox_code, created_at, expires_at)
             VALUES (:phone, :code_hash, :sandbox_code, :now, :expires_at)",
            named_params! {
                ":phone": phone,
                ":code_hash": &code_hash[..],
                ":sandbox_code": sandbox_code,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    /// Counts a wrong guess against every live code of the phone number; a code that reaches
    /// `max_attempts` wrong guesses dies (marked used).
    pub fn otp_failed_attempt(
        &self,
        phone: &str,
        now: i64,
        max_attempts: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET attempts = attempts + 1,
                 used_at = CASE WHEN attempts + 1 >= :max THEN :now ELSE used_at END
             WHERE phone = :phone AND used_at IS NULL AND expires_at >= :now",
            named_params! {":phone": phone, ":now": now, ":max": max_attempts},
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
