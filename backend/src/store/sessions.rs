//! Sessions (bearer token digests) and provisioning nonces.

use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;
use rusqlite::{named_params, OptionalExtension};

impl Reader<'_> {
    /// The account of a live session.
    pub fn session_account(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<AccountId>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT account_id FROM sessions WHERE token_hash = :hash AND expires_at >= :now",
            )?
            .query_row(named_params! {":hash": &token_hash[..], ":now": now}, |r| {
                r.get("account_id")
            })
            .optional()?)
    }
}

impl Writer<'_> {
    pub fn insert_session(
        &self,
        token_hash: &[u8; 32],
        account_id: AccountId,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO sessions (token_hash, account_id, created_at, expires_at)
             VALUES (:hash, :account, :now, :expires_at)",
            named_params! {
                ":hash": &token_hash[..],
                ":account": account_id,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    pub fn insert_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: AccountId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO nonces (nonce, account_id, expires_at) VALUES (:nonce, :account, :exp)",
            named_params! {":nonce": &nonce[..], ":account": account_id, ":exp": expires_at},
        )?;
        Ok(())
    }

    /// Consumes a nonce: true if it was this account's, unused and unexpired.
    pub fn take_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: AccountId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE nonces SET used_at = :now
             WHERE nonce = :nonce AND account_id = :account AND used_at IS NULL
               AND expires_at >= :now",
            named_params! {":nonce": &nonce[..], ":account": account_id, ":now": now},
        )?;
        Ok(n == 1)
    }
}
