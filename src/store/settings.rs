//! `settings`: one value per key (balances, clock offset, lock, tariff, config bundle, trusted
//! issuer keys, session, sync cursors).

use super::{Read, Write};
use crate::error::WalletError;
use rusqlite::types::FromSql;
use rusqlite::{params, OptionalExtension, ToSql};

pub(crate) const CONFIRMED_BALANCE: &str = "confirmed_balance";
pub(crate) const CONFIRMED_THROUGH_SEQ: &str = "confirmed_through_seq";
pub(crate) const CONFIRMED_AT: &str = "confirmed_at";
pub(crate) const SERVER_TIME_OFFSET: &str = "server_time_offset";
pub(crate) const LOCKED: &str = "locked";
pub(crate) const TARIFF: &str = "tariff";
/// The installed config bundle (an encoded, signed `ValidatorConfig`).
pub(crate) const CONFIG_BUNDLE: &str = "config_bundle";
/// The issuer keys given with the last installed certificate (a count-prefixed list).
pub(crate) const ISSUER_KEYS: &str = "issuer_keys";
pub(crate) const SESSION_SEALED: &str = "session_sealed";
pub(crate) const SESSION_ACCOUNT: &str = "session_account";
pub(crate) const SESSION_PHONE: &str = "session_phone";
pub(crate) const SESSION_EXPIRES: &str = "session_expires_at";
pub(crate) const UPLOAD_FROM_SEQ: &str = "sync_upload_from_seq";
pub(crate) const LEDGER_CURSOR: &str = "sync_ledger_cursor";
/// The id of the newest tap verdict received (the verdict feed's cursor).
pub(crate) const VERDICT_CURSOR: &str = "sync_verdict_cursor";
pub(crate) const LAST_SYNC_AT: &str = "last_sync_at";

/// The stored (sealed) session.
pub(crate) struct StoredSession {
    pub(crate) sealed: Vec<u8>,
    pub(crate) account_id: Option<i64>,
    pub(crate) phone: Option<String>,
    pub(crate) expires_at: Option<i64>,
}

impl Read<'_> {
    /// The value of `key`, if set.
    pub(crate) fn setting<T: FromSql>(&self, key: &str) -> Result<Option<T>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get("value"),
            )
            .optional()?)
    }

    /// The stored session, if any.
    pub(crate) fn session(&self) -> Result<Option<StoredSession>, WalletError> {
        let Some(sealed) = self.setting::<Vec<u8>>(SESSION_SEALED)? else {
            return Ok(None);
        };
        Ok(Some(StoredSession {
            sealed,
            account_id: self.setting(SESSION_ACCOUNT)?,
            phone: self
                .setting::<Vec<u8>>(SESSION_PHONE)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            expires_at: self.setting(SESSION_EXPIRES)?,
        }))
    }
}

impl Write<'_> {
    /// Sets (inserting or replacing) the value of `key`.
    pub(crate) fn set_setting(&self, key: &str, value: impl ToSql) -> Result<(), WalletError> {
        self.tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Removes `keys`.
    pub(crate) fn delete_settings(&self, keys: &[&str]) -> Result<(), WalletError> {
        let mut st = self
            .tx
            .prepare_cached("DELETE FROM settings WHERE key = ?1")?;
        for k in keys {
            st.execute(params![k])?;
        }
        Ok(())
    }

    /// Stores a session (replacing any older one).
    pub(crate) fn store_session(
        &self,
        sealed: Vec<u8>,
        account_id: i64,
        phone: &str,
        expires_at: i64,
    ) -> Result<(), WalletError> {
        self.set_setting(SESSION_SEALED, sealed)?;
        self.set_setting(SESSION_ACCOUNT, account_id)?;
        self.set_session_phone(phone)?;
        self.set_setting(SESSION_EXPIRES, expires_at)
    }

    /// As a blob: the settings column has numeric affinity ("+98…" would become a number).
    pub(crate) fn set_session_phone(&self, phone: &str) -> Result<(), WalletError> {
        self.set_setting(SESSION_PHONE, phone.as_bytes())
    }

    pub(crate) fn clear_session(&self) -> Result<(), WalletError> {
        self.delete_settings(&[
            SESSION_SEALED,
            SESSION_ACCOUNT,
            SESSION_PHONE,
            SESSION_EXPIRES,
        ])
    }

    /// The confirmed balance as of `as_of` (backend time), accounting for every tap-log
    /// entry through `through_seq` (None: no entry).
    pub(crate) fn set_confirmed(
        &self,
        balance: i64,
        through_seq: Option<i64>,
        as_of: i64,
    ) -> Result<(), WalletError> {
        self.set_setting(CONFIRMED_BALANCE, balance)?;
        match through_seq {
            Some(s) => self.set_setting(CONFIRMED_THROUGH_SEQ, s)?,
            None => self.delete_settings(&[CONFIRMED_THROUGH_SEQ])?,
        }
        self.set_setting(CONFIRMED_AT, as_of)
    }
}
